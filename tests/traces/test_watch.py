"""Watching one JSON path through a stored run (traces/watch.py) and the pointer reader it
decodes states with (traces/diffview.py pointer_reader)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from traces.diffview import path_history, pointer_reader, value_at
from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.parsing import parse_trace
from traces.store import load_trace
from traces.watch import watch


def long_loop(nodes: int) -> dict[str, Any]:
    """A retriever → reader → critic loop of ``nodes`` steps in DashFlow's JSON form: the
    critic raises ``iteration``, every step rolls ``notes``, the reader leaves the state
    as it was (the same snapshot before and after), every 97th step fails without a
    state after, and ``draft`` appears at step 10 and is removed at step 20."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    state: dict[str, Any] = {"question": "q", "iteration": 0, "notes": []}
    steps = []
    for i in range(nodes):
        node = ("retriever", "reader", "critic")[i % 3]
        after = dict(state)
        if node != "reader":
            after["notes"] = [*state["notes"][-2:], f"note {i}"]
        if node == "critic":
            after["iteration"] = state["iteration"] + 1
        if i == 10:
            after["draft"] = {"text": "first"}
        if i == 20:
            after.pop("draft", None)
        success = i % 97 != 50
        steps.append(
            {
                "node": node,
                "duration_ms": 5,
                "tokens_used": 1,
                "state_before": state,
                "state_after": after if success else None,
                "tools_called": [],
                "success": success,
                "error_message": None if success else "boom",
                "index": i,
                "started_at": (start + timedelta(milliseconds=10 * i)).isoformat(),
                "metadata": {},
            }
        )
        if success:
            state = after
    return {
        "execution_id": f"loop-{nodes}",
        "nodes_executed": steps,
        "total_duration_ms": 10 * nodes,
        "total_tokens": nodes,
        "errors": [],
        "completed": True,
        "started_at": start.isoformat(),
        "final_state": state,
        "metadata": {},
    }


@pytest.fixture
def loop_run(project: Project) -> Run:
    run, _ = ingest_trace(project, parse_trace(msgspec.json.encode(long_loop(3000))))
    return run


def reference(run: Run, pointer: str) -> list[tuple[int, bool, Any]]:
    """The changes ``path_history`` finds over the whole loaded trace: what watch must
    return however it reads the states."""
    trace = load_trace(run)
    history = path_history(
        [
            (n.index, n.state_before, n.state_after)
            for n in trace.nodes_executed
            if n.state_before is not None and n.state_after is not None
        ],
        pointer,
    )
    return [(h["index"], h["found"], h["value"]) for h in history["steps"] if h["changed"]]


@pytest.mark.parametrize("pointer", ["/iteration", "/notes/2", "/draft", "/draft/text", ""])
def test_watch_on_a_long_run_returns_every_change_the_whole_trace_shows(
    loop_run: Run, pointer: str
) -> None:
    watched = watch(loop_run, pointer)

    expected = reference(loop_run, pointer)
    assert [(c["index"], c["found"], c["value"]) for c in watched["changes"]] == expected
    assert watched["first_changed"] == expected[0][0]
    assert watched["last_changed"] == expected[-1][0]


def test_watch_counts_every_critic_and_names_each_changing_node(loop_run: Run) -> None:
    watched = watch(loop_run, "/iteration")

    # 1,000 critics, less the ones that failed (no state after, so no change).
    failed_critics = sum(1 for i in range(2, 3000, 3) if i % 97 == 50)
    assert len(watched["changes"]) == 1000 - failed_critics
    assert {c["node"] for c in watched["changes"]} == {"critic"}
    assert watched["changes"][-1]["value"] == 1000 - failed_critics
    failed = sum(1 for i in range(3000) if i % 97 == 50)
    assert watched["steps_seen"] == 3000 - failed


def test_watch_reports_a_removed_value_as_not_found(loop_run: Run) -> None:
    watched = watch(loop_run, "/draft")

    assert [(c["index"], c["node"], c["found"]) for c in watched["changes"]] == [
        (10, "reader", True),
        (20, "critic", False),
    ]
    assert watched["changes"][1]["value"] is None


def test_watch_of_a_path_no_step_touches_has_no_changes(loop_run: Run) -> None:
    watched = watch(loop_run, "/question")

    assert watched["changes"] == []
    assert (watched["first_changed"], watched["last_changed"]) == (None, None)


def test_watch_refuses_a_malformed_pointer(loop_run: Run) -> None:
    with pytest.raises(ValueError, match="must be empty or start with '/'"):
        watch(loop_run, "iteration")


STATES: list[Any] = [
    {"a": {"b": [1, {"c": None}]}, "x/y": 1, "m~n": 2, "": 3, 'q"\\\n<b>': {"k": 4}},
    {"a": 1.0, "z": True},
    [{"a": 1}, {"a": 2}],
    "text",
    None,
    {},
]
POINTERS = [
    '/q"\\\n<b>',
    '/q"\\\n<b>/k',
    "",
    "/a",
    "/a/b",
    "/a/b/1/c",
    "/a/b/2",
    "/x~1y",
    "/m~0n",
    "/",
    "/0/a",
    "/z",
    "/q",
]


@pytest.mark.parametrize("pointer", POINTERS)
def test_the_pointer_reader_reads_what_value_at_reads_in_the_decoded_state(pointer: str) -> None:
    read = pointer_reader(pointer)

    for state in STATES:
        raw = msgspec.json.encode(state)
        found, value = read(raw)
        expected = value_at(state, pointer)
        assert (found, value) == expected, (state, pointer)
        # 1.0 stays a float and true a bool: JSON's types, not Python's equality.
        assert type(value) is type(expected[1])
