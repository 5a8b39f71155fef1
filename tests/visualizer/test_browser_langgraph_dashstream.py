"""Runs from where agents already emit, watched in a real browser against a real Daphne:
a LangGraph graph streamed through ``stream_langgraph`` and a DashFlow run sent as
DashStream frames one request at a time. Each grows on the open run page without a
reload, and a step shows its real diff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashflow_producer import RunStreamer
from dashflow_producer.langgraph import stream_langgraph
from django.db import connection
from playwright.sync_api import Page, expect

from tests.langgraph_app import EXPECTED_PARALLEL, TOOL, build_graph, graph_input
from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_live import sign_in
from traces import dashstream
from traces.trace import ExecutionTrace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_a_langgraph_run_grows_on_the_run_page_and_shows_its_diffs(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    sign_in(page, server)
    run_id = "browser-langgraph"
    config = {"configurable": {"thread_id": "browser-thread"}}
    with RunStreamer(server.origin, api_key, run_id) as client:
        for chunk in stream_langgraph(
            build_graph(parallel=True), graph_input(), config, client=client
        ):
            if chunk["type"] != "task":
                continue
            if chunk["payload"]["name"] == "tools":
                assert client.flush()
                page.goto(f"{server.origin}/projects/acme/runs/{run_id}/")
                expect(page.locator("#live-indicator")).to_be_visible()
                expect(page.locator("#steps tr td.node-name")).to_have_text(
                    ["plan", "recall", "agent"]
                )
                page.evaluate("window.notReloaded = true")
            elif chunk["step"] == 4:  # the second agent step has started
                assert client.flush()
                expect(page.locator("#run-running")).to_have_text("running: agent (#4)")
                expect(page.locator("#steps tr td.node-name")).to_have_text(
                    ["plan", "recall", "agent", "tools"]
                )
        assert client.flush()

    expect(page.locator("#steps tr td.node-name")).to_have_text(EXPECTED_PARALLEL["nodes"])
    expect(page.locator("#run-status")).to_have_text("Completed")
    expect(page.locator("#stat-tokens")).to_have_text(str(EXPECTED_PARALLEL["total_tokens"]))
    assert page.evaluate("window.notReloaded") is True
    # The tools step: its diff is the tool's answer appended to the messages.
    page.locator("#steps tr").nth(3).click()
    expect(page.locator("#step-title")).to_contain_text("tools")
    expect(page.locator("#step-diff tr[data-path='/messages/2']")).to_contain_text("sunny in Paris")
    expect(page.locator("#step-meta")).to_contain_text(TOOL)
    # Its messages (LangChain's, as the producer sent them) read as a chat: the agent's
    # call to the tool, then the tool's answer, new in this step.
    chat = page.locator("#step-states .chat")
    expect(chat.locator(".chat-msg .chat-role")).to_have_text(["user", "assistant", "tool"])
    expect(chat.locator(".chat-msg").nth(1).locator(".chat-call")).to_contain_text(f"→ {TOOL}")
    expect(chat.locator(".chat-msg.new")).to_have_count(1)
    expect(chat.locator(".chat-msg.new .chat-text")).to_contain_text("sunny in Paris")
    # plan and recall ran in one superstep: each step says so.
    page.locator("#steps tr").nth(1).click()
    expect(page.locator("#step-title")).to_contain_text("recall")
    expect(page.locator("#step-meta")).to_contain_text("in parallel with: plan")


def test_a_dashstream_run_grows_frame_by_frame_on_the_run_page(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Path
) -> None:
    doc = json.loads((fixtures_dir / "research_agent_success.json").read_text())
    trace = ExecutionTrace.from_json(json.dumps(doc))
    frames = [dashstream.frame(m) for m in dashstream.messages(trace)]
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/x-protobuf"}

    def send(frame: bytes) -> None:
        response = server.request("POST", "/api/v1/dashstream", frame, headers)
        assert response.status == 200, response.body

    kinds = [dashstream.decode_frame(f).WhichOneof("message") for f in frames]
    first_diff = kinds.index("state_diff")
    for frame in frames[: first_diff + 1]:
        send(frame)
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/{doc['execution_id']}/")
    expect(page.locator("#live-indicator")).to_be_visible()
    expect(page.locator("#steps tr")).to_have_count(1)
    expect(page.locator("#run-stream")).to_contain_text("0 missing")
    page.evaluate("window.notReloaded = true")

    for frame in frames[first_diff + 1 :]:
        send(frame)
    names = [n["node"] for n in doc["nodes_executed"]]
    expect(page.locator("#steps tr td.node-name")).to_have_text(names)
    expect(page.locator("#run-status")).to_have_text("Completed")
    assert page.evaluate("window.notReloaded") is True
    page.locator("#steps tr").nth(1).click()
    before = doc["nodes_executed"][1]["state_before"]
    after = doc["nodes_executed"][1]["state_after"]
    changed = sorted(k for k in after if before.get(k) != after.get(k))
    assert changed, "the fixture's second step changes its state"
    # A change at that key or inside it (a list grows by its new items).
    expect(page.locator(f"#step-diff tr[data-path^='/{changed[0]}']").first).to_be_visible()
