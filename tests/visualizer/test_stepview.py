"""The step panel's view model and its endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.trace import ExecutionTrace
from visualizer.stepview import VALUE_PREVIEW_CHARS, step_view, watch_view

FAILURE = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"


@pytest.fixture
def failure_run(project: Project, fixtures_dir: Path) -> Run:
    trace = ExecutionTrace.from_json((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    run, _ = ingest_trace(project, trace)
    return run


def test_a_step_shows_what_it_changed_as_json_pointer_paths(failure_run: Run) -> None:
    view = step_view(failure_run, failure_run.steps.get(index=3))

    assert view["has_both_states"] is True
    assert [(c["op"], c["path"]) for c in view["changes"]] == [
        ("add", "/messages/2"),
        ("replace", "/iteration"),
    ]
    iteration = view["changes"][1]
    assert (iteration["before"]["text"], iteration["after"]["text"]) == ("0", "1")
    assert view["summary"]["keys"] == ["messages", "iteration"]
    assert view["state_after"]["value"]["question"] == "Summarise the 2025 Kafka release notes"


def test_a_failed_step_without_a_state_after_is_compared_with_the_state_at_its_error(
    failure_run: Run,
) -> None:
    view = step_view(failure_run, failure_run.steps.get(index=4))

    # The fixture's error (execution_index 4) recorded the state it failed in: the same
    # as the step's input, so nothing changed before the node failed.
    assert view["compared_with"] == "state at error"
    assert view["has_both_states"] is True
    assert view["changes"] == []
    assert view["state_before"]["present"] is True
    assert view["state_after"]["present"] is True
    assert view["step"]["error_message"].startswith("Timeout: GET")


def test_a_failed_step_shows_what_changed_up_to_its_error(project: Any) -> None:
    trace = {
        "execution_id": "fails-midway",
        "nodes_executed": [
            {"node": "plan", "state_before": {"q": "x"}, "state_after": {"q": "x", "n": 1},
             "duration_ms": 5, "success": True, "index": 0},
            {"node": "fetch", "state_before": {"q": "x", "n": 1}, "duration_ms": 9,
             "success": False, "error_message": "boom", "index": 1},
        ],
        "errors": [{"node": "fetch", "message": "boom", "execution_index": 1,
                    "state_at_error": {"q": "x", "n": 2, "partial": [1]}}],
        "completed": False,
    }  # fmt: skip
    run, _ = ingest_trace(project, ExecutionTrace.from_json(json.dumps(trace)))

    view = step_view(run, run.steps.get(index=1))

    assert view["compared_with"] == "state at error"
    assert [(c["op"], c["path"]) for c in view["changes"]] == [
        ("replace", "/n"),
        ("add", "/partial"),
    ]
    ok = step_view(run, run.steps.get(index=0))
    assert ok["compared_with"] == "state after"


def test_a_state_over_the_size_gate_is_shown_as_its_size(failure_run: Run, settings: Any) -> None:
    settings.STATE_INLINE_MAX_BYTES = 100

    view = step_view(failure_run, failure_run.steps.get(index=3))

    assert view["state_before"]["too_large"] is True
    assert "value" not in view["state_before"]
    assert view["state_before"]["bytes"] > 100
    assert view["download_url"].endswith(f"/runs/{FAILURE}/steps/3?project=acme&download=1")
    # The diff is still computed from the whole states.
    assert len(view["changes"]) == 2


def test_the_step_endpoint_is_for_members_only(
    failure_run: Run, member: Any, other_project: Project
) -> None:
    url = f"/projects/acme/runs/{FAILURE}/steps/3.json"
    alice = Client()
    alice.force_login(member)

    assert alice.get(url).status_code == 200
    assert alice.get(f"/projects/acme/runs/{FAILURE}/steps/99.json").status_code == 404
    assert Client().get(url).status_code == 302
    outsider = Client()
    outsider.force_login(member.__class__.objects.create_user("mallory", password="pw-mallory-1"))
    assert outsider.get(url).status_code == 404


def test_watching_a_path_names_the_steps_that_wrote_it(failure_run: Run) -> None:
    view = watch_view(failure_run, "/iteration")

    # iteration goes 0 -> 1 in the critic (step 3); the failed retriever has no state after.
    assert [(c["index"], c["node"]) for c in view["changes"]] == [(3, "critic")]
    assert view["changes"][0]["value"]["text"] == "1"
    assert (view["first_changed"], view["last_changed"]) == (3, 3)
    assert view["steps_seen"] == 4


def test_watching_a_list_element_sees_it_appear(failure_run: Run) -> None:
    view = watch_view(failure_run, "/messages/1")

    assert [(c["index"], c["node"]) for c in view["changes"]] == [(0, "planner")]
    assert view["changes"][0]["value"]["text"] == '{"role":"assistant","content":"Plan: 3 steps."}'


def test_a_malformed_watch_path_is_a_400_naming_it(failure_run: Run, member: Any) -> None:
    client = Client()
    client.force_login(member)

    response = client.get(f"/projects/acme/runs/{FAILURE}/watch.json", {"path": "iteration"})

    assert response.status_code == 400
    assert response.json()["path"] == "path"


def test_a_state_over_the_size_gate_is_summarised_by_its_largest_entries(
    failure_run: Run, settings: Any
) -> None:
    settings.STATE_INLINE_MAX_BYTES = 100

    summary = step_view(failure_run, failure_run.steps.get(index=3))["state_after"]["summary"]

    assert summary["type"] == "object"
    assert summary["length"] == 7
    sizes = [e["bytes"] for e in summary["entries"]]
    assert sizes == sorted(sizes, reverse=True)
    assert summary["entries"][0]["key"] == "messages"
    assert summary["entries"][0]["type"] == "array"


def test_long_values_are_collapsed_with_their_full_text_alongside(
    project: Project, fixtures_dir: Path
) -> None:
    trace = ExecutionTrace.from_json((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    long_text = "x" * 5000
    node = trace.nodes_executed[3]
    node.state_after = {**node.state_after, "answer": long_text}
    run, _ = ingest_trace(project, trace)

    view = step_view(run, run.steps.get(index=3))

    [answer] = [c for c in view["changes"] if c["path"] == "/answer"]
    assert answer["after"]["truncated"] is True
    assert len(answer["after"]["text"]) == VALUE_PREVIEW_CHARS
    assert answer["after"]["length"] == 5002
    assert answer["after"]["full"] == f'"{long_text}"'
    # Short values carry no second copy.
    assert "full" not in answer["before"]


def test_a_windowed_timeline_is_only_the_timeline_over_that_window(
    failure_run: Run, member: Any
) -> None:
    client = Client()
    client.force_login(member)
    url = f"/projects/acme/runs/{FAILURE}/timeline.json"

    whole = client.get(url).json()
    window = client.get(url, {"from": "800", "to": "900"}).json()

    assert set(whole) == {"timeline", "breakdown", "graph"}
    assert set(window) == {"timeline"}
    assert window["timeline"]["layout"]["xaxis"]["range"] == [800.0, 900.0]
    assert sorted(i for t in window["timeline"]["data"] for i in t["customdata"]) == [2, 3, 4]
    for bad in ({"from": "x", "to": "1"}, {"from": "5", "to": "1"}, {"to": "1"}):
        response = client.get(url, bad)
        assert response.status_code == 400
        assert response.json()["path"] in ("from", "to")


def test_the_run_page_embeds_steps_as_columns_without_states(failure_run: Run, member: Any) -> None:
    client = Client()
    client.force_login(member)

    html = client.get(f"/projects/acme/runs/{FAILURE}/").content.decode()

    start = html.index('<script id="run-data" type="application/json">') + 46
    data = json.loads(html[start : html.index("</script>", start)])
    assert data["steps"]["index"] == [0, 1, 2, 3, 4]
    assert data["steps"]["node"] == ["planner", "retriever", "reader", "critic", "retriever"]
    assert data["steps"]["success"] == [True, True, True, True, False]
    assert data["steps"]["offset"][0] == 0.0
    assert "state_before" not in data["steps"]
    assert "metadata" not in data["steps"]
    assert data["errors"][0]["execution_index"] == 4


def test_a_step_carries_its_states_chat_messages_with_the_new_ones_marked(
    failure_run: Run,
) -> None:
    view = step_view(failure_run, failure_run.steps.get(index=3))

    messages = view["transcript"]["messages"]
    assert [(m["index"], m["role"], m["new"]) for m in messages] == [
        (0, "user", False),
        (1, "assistant", False),
        (2, "assistant", True),
    ]
    # A failed step without a state after: the messages of the state it received.
    failed = step_view(failure_run, failure_run.steps.get(index=4))["transcript"]
    assert [m["new"] for m in failed["messages"]] == [False, False, False]


def test_the_watch_endpoint_answers_the_watch_view_as_json(failure_run: Run, member: Any) -> None:
    client = Client()
    client.force_login(member)

    response = client.get(f"/projects/acme/runs/{FAILURE}/watch.json", {"path": "/iteration"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(watch_view(failure_run, "/iteration")))
    assert [c["index"] for c in response.json()["changes"]] == [3]
