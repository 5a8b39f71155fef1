"""Comparing two runs: the alignment (loops, extra and missing nodes, a renamed graph, an
empty run), the first divergence of states, and ``GET /api/v1/compare``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from rest_framework.test import APIClient

from traces.compare import Pair, align, compare, comparison_json, last_success
from traces.ingest import ingest_trace
from traces.models import ApiKey, Project, Run
from traces.trace import ExecutionTrace


def kinds(rows: list[Pair]) -> list[tuple[str, str, int | None, int | None]]:
    return [(p.kind, p.node, p.a, p.b) for p in rows]


def test_loops_pair_each_occurrence_with_the_same_occurrence() -> None:
    a = ["plan", "retrieve", "read", "retrieve", "read", "write"]
    b = ["plan", "retrieve", "read", "retrieve", "read", "retrieve", "read", "write"]
    rows = align(a, b)
    assert kinds(rows) == [
        ("paired", "plan", 0, 0),
        ("paired", "retrieve", 1, 1),
        ("paired", "read", 2, 2),
        ("paired", "retrieve", 3, 3),
        ("paired", "read", 4, 4),
        ("inserted", "retrieve", None, 5),
        ("inserted", "read", None, 6),
        ("paired", "write", 5, 7),
    ]
    assert [p.occurrence for p in rows if p.node == "retrieve"] == [1, 2, 3]
    # The third retrieve is a repeat: run a runs the node too, only fewer times.
    assert rows[5].repeated
    assert rows[6].repeated


def test_extra_and_missing_nodes_keep_both_orders() -> None:
    rows = align(["plan", "check", "write"], ["plan", "search", "write", "review"])
    assert kinds(rows) == [
        ("paired", "plan", 0, 0),
        ("missing", "check", 1, None),
        ("inserted", "search", None, 1),
        ("paired", "write", 2, 2),
        ("inserted", "review", None, 3),
    ]
    assert not any(p.repeated for p in rows)


def test_crossing_orders_follow_run_a_and_place_every_step_once() -> None:
    rows = align(["x", "y", "z"], ["z", "y", "x"])
    assert kinds(rows) == [
        ("paired", "x", 0, 2),
        ("paired", "y", 1, 1),
        ("paired", "z", 2, 0),
    ]


def test_renamed_nodes_stand_alone_and_an_empty_run_is_all_inserted() -> None:
    assert [p.kind for p in align(["a1", "a2"], ["b1", "b2"])] == [
        "missing",
        "missing",
        "inserted",
        "inserted",
    ]
    assert kinds(align([], ["plan", "plan"])) == [
        ("inserted", "plan", None, 0),
        ("inserted", "plan", None, 1),
    ]
    assert align([], []) == []


class Name(str):
    """A node name that counts how often it is hashed or compared: work done in C (a
    dictionary lookup, a scan of a list) that no line of Python shows."""

    touched = 0

    def __hash__(self) -> int:
        Name.touched += 1
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        Name.touched += 1
        return str.__eq__(self, other)


def work_of(a: list[str], b: list[str]) -> int:
    """The work ``align(a, b)`` does: the lines of ``traces/compare.py`` it executes plus
    the times it hashes or compares a name. A count no machine's load changes, unlike a
    time."""
    lines = 0
    module = align.__code__.co_filename

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal lines
        if frame.f_code.co_filename != module:
            return None
        if event == "line":
            lines += 1
        return tracer

    a, b = [Name(n) for n in a], [Name(n) for n in b]
    Name.touched = 0
    sys.settrace(tracer)
    try:
        align(a, b)
    finally:
        sys.settrace(None)
    return lines + Name.touched


@pytest.mark.parametrize(
    "shape",
    [
        "a loop against itself",
        "a loop against one that went round once more per ten steps",
        "runs that share no node",
        "runs whose orders cross",
    ],
)
def test_alignment_work_grows_linearly_with_the_steps(shape: str) -> None:
    loop = ["retrieve", "read", "critic"]

    def runs(n: int) -> tuple[list[str], list[str]]:
        a = [loop[i % 3] for i in range(n)]
        if shape == "a loop against itself":
            return a, list(a)
        if shape == "a loop against one that went round once more per ten steps":
            return a, [s for i, step in enumerate(a) for s in [step] * (2 if i % 10 == 0 else 1)]
        if shape == "runs that share no node":
            return a, [f"other-{i % 7}" for i in range(n)]
        return a, list(reversed(a))

    small, big = work_of(*runs(1_000)), work_of(*runs(10_000))
    assert len(align(*runs(10_000))) >= 10_000
    # Ten times the steps, about ten times the work (a quadratic alignment does a hundred).
    assert 9 * small <= big <= 11 * small, (small, big)


def fixture_trace(fixtures_dir: Path, name: str, **changes: Any) -> ExecutionTrace:
    data = json.loads((fixtures_dir / f"{name}.json").read_bytes())
    data.update(changes)
    return ExecutionTrace.from_json(json.dumps(data))


def test_the_failed_and_the_successful_research_runs_diverge_at_their_first_step(
    project: Project, fixtures_dir: Path
) -> None:
    good, _ = ingest_trace(project, fixture_trace(fixtures_dir, "research_agent_success"))
    bad, _ = ingest_trace(project, fixture_trace(fixtures_dir, "tool_timeout_failure"))
    found = compare(bad, good)
    # Different questions: the states differ before the first node ran.
    assert found.divergence is not None
    assert tuple(found.divergence) == (0, "before")
    body = comparison_json(bad, good, found)
    assert body["counts"] == {"paired": 5, "missing": 0, "inserted": 6, "repeated": 5}
    assert body["divergence"]["node"] == "planner"
    assert last_success(bad) == good


def test_divergence_is_the_first_pair_whose_state_after_differs(
    project: Project, fixtures_dir: Path
) -> None:
    data = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    data["execution_id"] = "copy"
    # The same run, but the reader of the second loop read something else.
    fifth = data["nodes_executed"][5]
    fifth["state_after"] = {**fifth["state_after"], "notes": ["a different note"]}
    good, _ = ingest_trace(project, fixture_trace(fixtures_dir, "research_agent_success"))
    copy, _ = ingest_trace(project, ExecutionTrace.from_json(json.dumps(data)))
    found = compare(good, copy)
    assert found.divergence is not None
    assert tuple(found.divergence) == (5, "after")
    rows = comparison_json(good, copy, found)["rows"]
    assert [r["same_state"] for r in rows[4:7]] == [True, False, True]
    assert compare(good, good).divergence is None


def test_runs_of_two_projects_compare_by_content(
    project: Project, other_project: Project, fixtures_dir: Path
) -> None:
    here, _ = ingest_trace(project, fixture_trace(fixtures_dir, "research_agent_success"))
    there, _ = ingest_trace(other_project, fixture_trace(fixtures_dir, "research_agent_success"))
    assert compare(here, there).divergence is None


@pytest.fixture
def two_runs(project: Project, fixtures_dir: Path) -> tuple[Run, Run]:
    good, _ = ingest_trace(project, fixture_trace(fixtures_dir, "research_agent_success"))
    bad, _ = ingest_trace(project, fixture_trace(fixtures_dir, "tool_timeout_failure"))
    return bad, good


def test_the_api_answers_the_comparison(api: APIClient, two_runs: tuple[Run, Run]) -> None:
    bad, good = two_runs
    response = api.get(f"/api/v1/compare?a={bad.execution_id}&b={good.execution_id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["a"]["status"] == "failed"
    assert body["b"]["status"] == "completed"
    assert body["row_count"] == 11
    assert len(body["rows"]) == 11
    assert body["divergence"]["row"] == 0
    failed = body["rows"][4]
    assert failed["node"] == "retriever"
    assert failed["a"]["success"] is False
    assert failed["duration_delta_ms"] == failed["b"]["duration_ms"] - failed["a"]["duration_ms"]
    page = api.get(f"/api/v1/compare?a={bad.execution_id}&b={good.execution_id}&offset=4&limit=2")
    assert [(r["node"], r["kind"]) for r in page.json()["rows"]] == [
        ("retriever", "paired"),
        ("reader", "inserted"),
    ]


def test_the_api_names_a_bad_parameter(api: APIClient, two_runs: tuple[Run, Run]) -> None:
    bad, _ = two_runs
    response = api.get(f"/api/v1/compare?a={bad.execution_id}")
    assert response.status_code == 400
    assert response.json()["path"] == "b"
    response = api.get(f"/api/v1/compare?a={bad.execution_id}&b=x&limit=-1")
    assert response.status_code == 400
    assert response.json()["path"] == "limit"


def test_a_run_of_another_project_is_not_found(
    api: APIClient, two_runs: tuple[Run, Run], other_project: Project, fixtures_dir: Path
) -> None:
    bad, _ = two_runs
    trace = fixture_trace(fixtures_dir, "research_agent_success", execution_id="theirs")
    theirs, _ = ingest_trace(other_project, trace)
    response = api.get(f"/api/v1/compare?a={bad.execution_id}&b={theirs.execution_id}")
    assert response.status_code == 404
    # Their own key reaches it.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    response = client.get(f"/api/v1/compare?a={theirs.execution_id}&b={theirs.execution_id}")
    assert response.status_code == 200
    assert response.json()["divergence"] is None
