"""One summary rule: a run posted whole and the same run streamed as live events end with
the same summary columns, steps, errors and failures (traces/summary.py).

Each run goes in through the HTTP API both ways, under two execution ids: once as
``POST /api/v1/traces``, once as ``POST /api/v1/runs/<id>/events`` (``run_started``, a
``node_finished`` per node, an ``error`` per ErrorTrace, then ``run_finished`` when the
trace has ended), in one batch or in batches of two.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from traces import store
from traces.models import Failure, Project, Run, RunError, RunStatus, Step

pytestmark = pytest.mark.django_db

# The 2,000-node benchmark trace adds a minute and nothing the others do not cover.
SLOW_FIXTURES = {"long_loop_2000.json"}

SUMMARY_COLUMNS = (
    "status",
    "completed",
    "ended_at",
    "ended_at_text",
    "duration_ms",
    "total_tokens",
    "node_count",
    "error_count",
    "first_error",
    "first_error_type",
    "first_error_node",
    "thread_id",
    "parent_execution_id",
    "root_execution_id",
    "depth",
    "graph_name",
    "started_at",
    "started_at_text",
    "metadata",
    "final_state_id",
)
# The columns of a step and an error row but the run they belong to.
STEP_COLUMNS = [c for c in store.STEP_COLUMNS if c != "run_id"]
ERROR_COLUMNS = [c for c in store.ERROR_COLUMNS if c != "run_id"]


def node(name: str, *, success: bool = True, error: str | None = None) -> dict[str, Any]:
    return {
        "node": name,
        "duration_ms": 10,
        "tokens_used": 7,
        "state_before": {"step": name},
        "state_after": {"step": name, "done": success},
        "success": success,
        "error_message": error,
        "started_at": "2026-03-02T09:30:00.100+00:00",
    }


def error(name: str, message: str, error_type: str | None) -> dict[str, Any]:
    return {
        "node": name,
        "message": message,
        "error_type": error_type,
        "state_at_error": {"step": name},
        "timestamp": "2026-03-02T09:30:00.200+00:00",
    }


def constructed(
    nodes: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    *,
    completed: bool,
    ended: bool = True,
) -> dict[str, Any]:
    return {
        "thread_id": "thread-7",
        "execution_id": "constructed",
        "nodes_executed": nodes,
        "errors": errors,
        "completed": completed,
        "started_at": "2026-03-02T09:30:00.000+00:00",
        "ended_at": "2026-03-02T09:30:01.000+00:00" if ended else None,
        "total_duration_ms": 1000,
        "total_tokens": 99,
        "final_state": {"answer": 42} if ended else None,
        "metadata": {"graph_name": "edge", "customer": "Acme"},
    }


EDGE_CASES = {
    # The first ErrorTrace has no type: it is still errors[0].
    "untyped_error_then_typed": constructed(
        [node("plan"), node("fetch")],
        [error("fetch", "boom", ""), error("fetch", "Timeout after 30s", "Timeout")],
        completed=False,
    ),
    "unset_error_type_then_typed": constructed(
        [node("plan")],
        [error("plan", "boom", None), error("plan", "Rate limited", "RateLimit")],
        completed=False,
    ),
    # A failed node, then the ErrorTrace that explains it: the error is the first error.
    "failed_node_then_error": constructed(
        [node("plan"), node("fetch", success=False, error="fetch failed"), node("answer")],
        [error("fetch", "Timeout: GET https://a/1", "Timeout")],
        completed=False,
    ),
    # No ErrorTrace: the first failed node, even one without a message.
    "failed_node_without_message_then_another": constructed(
        [node("plan", success=False), node("fetch", success=False, error="second")],
        [],
        completed=False,
    ),
    # An ErrorTrace with neither message nor type, then a failed node: still errors[0].
    "empty_error_then_failed_node": constructed(
        [node("plan"), node("fetch", success=False, error="later")],
        [error("plan", "", None)],
        completed=False,
    ),
    # Ended incomplete with nothing failed: failed.
    "ended_incomplete_without_errors": constructed([node("plan")], [], completed=False),
    "completed_despite_an_error": constructed(
        [node("plan")], [error("plan", "recovered", "Transient")], completed=True
    ),
    # Not ended: running, both ways. (A live run states no totals before it ends, so
    # this partial trace states those its nodes add up.)
    "still_running": {
        **constructed([node("plan"), node("fetch")], [], completed=False, ended=False),
        "total_duration_ms": 0,
        "total_tokens": 14,
    },
}


def fixture_docs() -> list[Any]:
    root = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "dashflow"
    return [
        pytest.param(json.loads(path.read_text()), id=path.stem)
        for path in sorted(root.glob("*.json"))
        if path.name not in SLOW_FIXTURES
    ]


CASES = fixture_docs() + [pytest.param(doc, id=name) for name, doc in EDGE_CASES.items()]


def live_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace as a producer streams it."""
    started = {
        name: doc[name]
        for name in ("thread_id", "parent_execution_id", "root_execution_id", "depth")
        if doc.get(name) is not None
    }
    started.update(started_at=doc.get("started_at"), metadata=doc.get("metadata", {}))
    events: list[dict[str, Any]] = [{"type": "run_started", "data": started}]
    events += [{"type": "node_finished", "data": n} for n in doc["nodes_executed"]]
    events += [{"type": "error", "data": e} for e in doc.get("errors", [])]
    if doc.get("completed") or doc.get("ended_at") is not None:
        finished = {
            "completed": doc.get("completed", False),
            "ended_at": doc.get("ended_at"),
            "final_state": doc.get("final_state"),
            "total_duration_ms": doc.get("total_duration_ms", 0),
            "total_tokens": doc.get("total_tokens", 0),
        }
        events.append({"type": "run_finished", "data": finished})
    return [{"seq": seq, **event} for seq, event in enumerate(events, start=1)]


def post_whole(api: APIClient, doc: dict[str, Any], execution_id: str) -> None:
    body = json.dumps({**doc, "execution_id": execution_id})
    response = api.post("/api/v1/traces", data=body, content_type="application/json")
    assert response.status_code == 201, response.content


def post_live(api: APIClient, doc: dict[str, Any], execution_id: str, batch: int) -> None:
    events = live_events(doc)
    for start in range(0, len(events), batch):
        response = api.post(
            f"/api/v1/runs/{execution_id}/events",
            data=json.dumps({"events": events[start : start + batch]}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content


def rows(run: Run) -> dict[str, Any]:
    return {
        "run": {name: getattr(run, name) for name in SUMMARY_COLUMNS},
        "steps": list(Step.objects.filter(run=run).order_by("position").values(*STEP_COLUMNS)),
        "errors": list(
            RunError.objects.filter(run=run).order_by("position").values(*ERROR_COLUMNS)
        ),
        "failures": sorted(
            Failure.objects.filter(run=run).values_list(
                "key", "group__fingerprint", "message", "step_position", "seen_at"
            )
        ),
    }


@pytest.mark.parametrize("batch", [1000, 2], ids=["one_batch", "batches_of_2"])
@pytest.mark.parametrize("doc", CASES)
def test_a_run_posted_whole_and_streamed_live_gets_the_same_rows(
    api: APIClient, project: Project, doc: dict[str, Any], batch: int
) -> None:
    doc = copy.deepcopy(doc)
    post_whole(api, doc, "whole")
    post_live(api, doc, "live", batch)

    whole = Run.objects.get(project=project, execution_id="whole")
    live = Run.objects.get(project=project, execution_id="live")
    assert rows(live) == rows(whole)
    # The search text holds the same items; one batch holds them in the same order too
    # (a live run's later batches append theirs after the earlier ones').
    lines = whole.search_text.replace("whole", "<id>").split("\n")
    live_lines = live.search_text.replace("live", "<id>").split("\n")
    assert sorted(live_lines) == sorted(lines)
    if batch >= len(live_events(doc)):
        assert live_lines == lines


def test_the_rule_where_the_two_paths_used_to_differ(api: APIClient, project: Project) -> None:
    """The cases above, spelled out: errors[0] whatever its type; else the first failed
    node; ended incomplete is failed; not ended is running."""
    expected = {
        "untyped_error_then_typed": (RunStatus.FAILED, "boom", "", "fetch"),
        "unset_error_type_then_typed": (RunStatus.FAILED, "boom", "", "plan"),
        "failed_node_then_error": (
            RunStatus.FAILED,
            "Timeout: GET https://a/1",
            "Timeout",
            "fetch",
        ),
        "failed_node_without_message_then_another": (RunStatus.FAILED, "", "", "plan"),
        "empty_error_then_failed_node": (RunStatus.FAILED, "", "", "plan"),
        "ended_incomplete_without_errors": (RunStatus.FAILED, "", "", ""),
        "completed_despite_an_error": (RunStatus.FAILED, "recovered", "Transient", "plan"),
        "still_running": (RunStatus.RUNNING, "", "", ""),
    }
    for name, doc in EDGE_CASES.items():
        post_live(api, doc, f"live-{name}", batch=1)
        run = Run.objects.get(project=project, execution_id=f"live-{name}")
        got = (run.status, run.first_error, run.first_error_type, run.first_error_node)
        assert got == expected[name], name
