"""The LangGraph adapter (``dashflow_producer.langgraph.stream_langgraph``): a real
LangGraph graph (tests/langgraph_app.py: a fake chat model with usage metadata and a
tool call, a conditional edge, a real tool, two nodes in one superstep) streamed to a real
Daphne through the producer client, watched mid-run over the API and a run websocket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from dashflow_producer import RunStreamer
from dashflow_producer.langgraph import astream_langgraph, stream_langgraph
from django.contrib.auth import get_user_model
from django.db import connection
from langgraph.graph import END, START, StateGraph

from tests.langgraph_app import (
    ANSWER,
    EXPECTED_PARALLEL,
    GRAPH_NAME,
    PLAN_NOTE,
    RECALL_NOTE,
    TOOL,
    State,
    build_graph,
    graph_input,
)
from tests.servers import Daphne, daphne, database_url, server_env, session_cookie
from traces.jsondiff import diff
from traces.models import ApiKey, Membership, Project, Role, Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def get(server: Daphne, key: str, path: str) -> Any:
    response = server.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, response.body
    return response.json()


def test_a_langgraph_run_streams_live_with_its_nodes_states_tokens_and_tool_call(
    server: Daphne,
) -> None:
    project = Project.objects.create(slug="lg", name="LangGraph")
    key = ApiKey.issue(project)[1]
    viewer = get_user_model().objects.create_user("viewer", password="pw-viewer-123")
    Membership.objects.create(project=project, user=viewer, role=Role.MEMBER)
    run_id = "langgraph-run-1"
    config = {"configurable": {"thread_id": "lg-thread-7"}}

    with RunStreamer(server.origin, key, run_id) as client:
        chunks = []
        for chunk in stream_langgraph(
            build_graph(parallel=True), graph_input(), config, client=client
        ):
            chunks.append(chunk)
            if chunk["type"] == "task" and chunk["payload"]["name"] == "tools":
                # Mid-run: plan, recall and the first agent step have finished, tools has
                # started. What was emitted so far is on the server once flush returns.
                assert client.flush()
                live = get(server, key, f"/api/v1/runs/{run_id}")
                assert live["status"] == "running"
                assert [n["node"] for n in live["nodes"]] == ["plan", "recall", "agent"]
                socket = server.websocket(
                    f"/ws/runs/{run_id}/?project=lg&after=0", session_cookie(viewer)
                )
                replayed = socket.receive_until_seq(client.stats.queued)
                assert replayed[-1]["type"] == "node_started"
                assert replayed[-1]["data"]["node"] == "tools"
        assert client.flush()
        # The rest reaches the viewer's socket as it happens, up to run_finished.
        rest = socket.receive_until_seq(client.stats.queued)
        socket.close()
        assert rest[-1]["type"] == "run_finished"
        assert client.stats.dropped == 0

    assert {c["type"] for c in chunks} >= {"task", "task_result"}  # LangGraph's own chunks
    trace = get(server, key, f"/api/v1/runs/{run_id}/trace")
    nodes = trace["nodes_executed"]
    assert [n["node"] for n in nodes] == EXPECTED_PARALLEL["nodes"]
    assert trace["thread_id"] == "lg-thread-7"
    assert trace["completed"] is True
    assert [n["tokens_used"] for n in nodes] == EXPECTED_PARALLEL["tokens"]
    assert trace["total_tokens"] == EXPECTED_PARALLEL["total_tokens"]
    assert [n["tools_called"] for n in nodes] == EXPECTED_PARALLEL["tools"]
    assert nodes[2]["metadata"]["tool_calls"][0]["name"] == TOOL
    assert trace["metadata"]["graph_name"] == GRAPH_NAME

    # Parallel: plan and recall ran in one superstep, and both started before either
    # finished.
    assert nodes[0]["metadata"]["parallel_with"] == ["recall"]
    assert nodes[1]["metadata"]["parallel_with"] == ["plan"]
    assert nodes[0]["metadata"]["langgraph_step"] == nodes[1]["metadata"]["langgraph_step"]
    run = Run.objects.get(project=project, execution_id=run_id)
    order = [(e.type, e.seq) for e in run.events.all()]
    assert [t for t, _ in order[1:5]] == [
        "node_started",
        "node_started",
        "node_finished",
        "node_finished",
    ]

    # States: each node's before is what it received, its after the merged state; the
    # diffs are real ones (the tool's answer appended, the notes of both parallel nodes).
    tools = nodes[3]
    changes = diff(tools["state_before"], tools["state_after"])
    assert [(c.op, c.path) for c in changes] == [("add", "/messages/2")]
    assert tools["state_after"]["messages"][2]["type"] == "tool"
    assert tools["state_after"]["messages"][2]["content"] == "sunny in Paris"
    assert nodes[0]["state_after"]["notes"] == [PLAN_NOTE, RECALL_NOTE]
    assert nodes[1]["state_after"] == nodes[0]["state_after"]
    assert nodes[4]["state_before"] == tools["state_after"]
    assert trace["final_state"]["messages"][-1]["content"] == ANSWER
    assert nodes[4]["metadata"]["writes"]["messages"][0]["content"] == ANSWER
    assert run.status == RunStatus.COMPLETED


def test_a_node_that_raises_fails_the_run_and_the_caller_gets_the_exception(
    server: Daphne,
) -> None:
    project = Project.objects.create(slug="lg-fail", name="LangGraph failing")
    key = ApiKey.issue(project)[1]

    def ok(state: State) -> dict[str, Any]:
        return {"notes": ["ok"]}

    def boom(state: State) -> dict[str, Any]:
        raise ValueError("the weather service is down")

    graph = StateGraph(State)
    graph.add_node("ok", ok)
    graph.add_node("boom", boom)
    graph.add_edge(START, "ok")
    graph.add_edge("ok", "boom")
    graph.add_edge("boom", END)

    with RunStreamer(server.origin, key, "langgraph-fail") as client:
        with pytest.raises(ValueError, match="weather service is down"):
            for _ in stream_langgraph(graph.compile(), graph_input(), client=client):
                pass
        assert client.flush()

    trace = get(server, key, "/api/v1/runs/langgraph-fail/trace")
    assert [n["node"] for n in trace["nodes_executed"]] == ["ok", "boom"]
    failed = trace["nodes_executed"][1]
    assert failed["success"] is False
    assert "weather service is down" in failed["error_message"]
    assert trace["errors"][0]["node"] == "boom"
    assert trace["completed"] is False
    assert Run.objects.get(execution_id="langgraph-fail").status == RunStatus.FAILED


def test_leaving_the_loop_early_finishes_the_run_as_not_completed(server: Daphne) -> None:
    project = Project.objects.create(slug="lg-stop", name="LangGraph stopped")
    key = ApiKey.issue(project)[1]
    with RunStreamer(server.origin, key, "langgraph-stopped") as client:
        stream = stream_langgraph(build_graph(), graph_input(), client=client)
        for chunk in stream:
            if chunk["type"] == "task" and chunk["payload"]["name"] == "tools":
                break
        stream.close()
        assert client.flush()

    trace = get(server, key, "/api/v1/runs/langgraph-stopped/trace")
    assert [n["node"] for n in trace["nodes_executed"]] == ["plan", "agent", "tools"]
    assert trace["completed"] is False
    assert trace["errors"] == []
    assert trace["nodes_executed"][2]["state_after"] is None


def test_an_async_app_streams_the_same_run_through_astream(server: Daphne) -> None:
    project = Project.objects.create(slug="lg-async", name="LangGraph async")
    key = ApiKey.issue(project)[1]
    config = {"configurable": {"thread_id": "lg-async-thread"}}

    async def consume(client: RunStreamer) -> list[dict[str, Any]]:
        return [
            chunk
            async for chunk in astream_langgraph(
                build_graph(parallel=True), graph_input(), config, client=client
            )
        ]

    with RunStreamer(server.origin, key, "langgraph-async") as client:
        chunks = asyncio.run(consume(client))
        assert client.flush()

    assert [c["payload"]["name"] for c in chunks if c["type"] == "task"] == (
        EXPECTED_PARALLEL["nodes"]
    )
    trace = get(server, key, "/api/v1/runs/langgraph-async/trace")
    assert [n["node"] for n in trace["nodes_executed"]] == EXPECTED_PARALLEL["nodes"]
    assert [n["tokens_used"] for n in trace["nodes_executed"]] == EXPECTED_PARALLEL["tokens"]
    assert [n["tools_called"] for n in trace["nodes_executed"]] == EXPECTED_PARALLEL["tools"]
    assert trace["thread_id"] == "lg-async-thread"
    assert trace["completed"] is True
