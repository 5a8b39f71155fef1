"""``ingest_trace`` / ``load_trace``: a stored trace comes back equal to the file, saving is
idempotent, states are content-addressed per project, and u64 values survive the
database's signed BIGINT."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from traces.errors import InputError
from traces.ingest import ingest_trace
from traces.models import Project, Run, RunError, RunStatus, StateSnapshot, Step
from traces.parsing import parse_trace
from traces.store import load_trace
from traces.trace import ExecutionTrace

U64_MAX = 2**64 - 1
pytestmark = pytest.mark.django_db


def load_raw(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(path.read_bytes())
    return raw


def parse(doc: dict[str, Any]) -> ExecutionTrace:
    return ExecutionTrace.from_json(json.dumps(doc))


def parse_or_refusal(doc: dict[str, Any]) -> ExecutionTrace | InputError:
    try:
        return parse(doc)
    except InputError as exc:
        return exc


def canonical_digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def distinct_states(raw: dict[str, Any]) -> set[str]:
    """Digests of every non-null state in a raw trace, computed without the code under test."""
    values = [raw["final_state"]]
    for n in raw["nodes_executed"]:
        values += [n["state_before"], n["state_after"]]
    values += [e["state_at_error"] for e in raw["errors"]]
    return {canonical_digest(v) for v in values if v is not None}


def row_counts() -> dict[str, int]:
    return {
        "runs": Run.objects.count(),
        "steps": Step.objects.count(),
        "errors": RunError.objects.count(),
        "snapshots": StateSnapshot.objects.count(),
    }


def node(name: str, **fields: Any) -> dict[str, Any]:
    return {"node": name, "duration_ms": 1, **fields}


@pytest.fixture
def research_raw(fixtures_dir: Path) -> dict[str, Any]:
    return load_raw(fixtures_dir / "research_agent_success.json")


@pytest.fixture
def timeout_raw(fixtures_dir: Path) -> dict[str, Any]:
    return load_raw(fixtures_dir / "tool_timeout_failure.json")


def test_every_fixture_saved_and_loaded_equals_the_file(
    project: Project, fixture_files: list[Path]
) -> None:
    for path in fixture_files:
        run, created = ingest_trace(project, ExecutionTrace.from_json(path.read_bytes()))
        assert created, path.name
        run = Run.objects.get(pk=run.pk)  # read back from the database, not the saved object
        loaded = load_trace(run)
        assert json.loads(loaded.to_json()) == json.loads(path.read_bytes()), path.name


def test_loaded_trace_keeps_optional_fields_omitted(
    project: Project, research_raw: dict[str, Any]
) -> None:
    run, _ = ingest_trace(project, parse(research_raw))
    out = json.loads(load_trace(Run.objects.get(pk=run.pk)).to_json())
    assert list(out) == list(research_raw)
    assert "depth" not in out
    assert "execution_metrics" not in out


def test_load_without_states_reads_no_snapshot(
    project: Project, research_raw: dict[str, Any]
) -> None:
    run, _ = ingest_trace(project, parse(research_raw))
    loaded = load_trace(Run.objects.get(pk=run.pk), with_states=False)
    assert loaded.final_state is None
    assert all(n.state_before is None and n.state_after is None for n in loaded.nodes_executed)
    assert [n.node for n in loaded.nodes_executed] == [
        n["node"] for n in research_raw["nodes_executed"]
    ]


def snapshot_reads(queries: CaptureQueriesContext) -> int:
    table = StateSnapshot._meta.db_table
    return sum(1 for q in queries.captured_queries if f'FROM "{table}"' in q["sql"])


def test_loading_runs_in_turn_reuses_the_states_they_share(
    project: Project, research_raw: dict[str, Any], timeout_raw: dict[str, Any]
) -> None:
    """An export loads run after run with one ``reuse``: the states a run shares with the
    previous one are neither read nor decoded again, and the trace is the same."""
    changed = copy.deepcopy(research_raw)
    changed["execution_id"] = "research-changed"
    changed["nodes_executed"][-1]["state_after"] = {"answer": "a state the first lacks"}
    changed["final_state"] = {"answer": "a final state the first lacks"}
    first = ingest_trace(project, parse(research_raw))[0]
    second = ingest_trace(project, parse(changed))[0]
    other = ingest_trace(project, parse(timeout_raw))[0]

    reuse: dict[int, Any] = {}
    previous: ExecutionTrace | None = None
    reads = []
    for turn, run in enumerate((first, second, second, other, first)):
        run = Run.objects.get(pk=run.pk)
        with CaptureQueriesContext(connection) as queries:
            loaded = load_trace(run, reuse=reuse)
        reads.append(snapshot_reads(queries))
        assert loaded.to_json() == load_trace(run).to_json()
        steps = run.steps.values_list("state_before_id", "state_after_id")
        errors = run.errors.exclude(state_at_error_id=None)
        own = {i for row in steps for i in row if i is not None}
        own |= set(errors.values_list("state_at_error_id", flat=True))
        own |= {run.final_state_id} - {None}
        assert set(reuse) == own  # this run's states, no more
        if turn == 1:
            # What the second shares with the first is one object, handed over.
            assert previous is not None
            assert loaded.nodes_executed[0].state_before is previous.nodes_executed[0].state_before
            assert loaded.nodes_executed[-1].state_after != previous.nodes_executed[-1].state_after
        previous = loaded
    # first: all read; second after first: only its new states; second again: nothing;
    # other (shares nothing): all read; first after other: all read again.
    assert reads[0] >= 1
    assert reads[1] >= 1
    assert reads[2] == 0
    assert reads[3] >= 1
    assert reads[4] >= 1


def test_saving_the_same_trace_twice_changes_nothing(
    project: Project, fixture_files: list[Path]
) -> None:
    for path in fixture_files:
        first, created = ingest_trace(project, ExecutionTrace.from_json(path.read_bytes()))
        assert created is True, path.name
        before = row_counts()
        updated_at = Run.objects.get(pk=first.pk).updated_at
        second, created_again = ingest_trace(project, ExecutionTrace.from_json(path.read_bytes()))
        assert created_again is False, path.name
        assert second.pk == first.pk, path.name
        assert row_counts() == before, path.name
        assert Run.objects.get(pk=first.pk).updated_at == updated_at, path.name


def test_first_save_writes_one_run_and_a_row_per_step_and_error(
    project: Project, timeout_raw: dict[str, Any]
) -> None:
    run, _ = ingest_trace(project, parse(timeout_raw))
    assert Run.objects.filter(project=project).count() == 1
    steps = list(Step.objects.filter(run=run).order_by("position"))
    assert [s.node for s in steps] == [n["node"] for n in timeout_raw["nodes_executed"]]
    assert [s.position for s in steps] == list(range(len(timeout_raw["nodes_executed"])))
    assert RunError.objects.filter(run=run).count() == len(timeout_raw["errors"])


def test_long_loop_stores_one_snapshot_per_distinct_state(
    project: Project, fixtures_dir: Path
) -> None:
    raw = load_raw(fixtures_dir / "long_loop_2000.json")
    expected = distinct_states(raw)
    nodes = len(raw["nodes_executed"])
    run, _ = ingest_trace(project, parse(raw))
    snapshots = StateSnapshot.objects.filter(project=project)
    assert snapshots.count() == len(expected)
    assert set(snapshots.values_list("digest", flat=True)) == expected
    assert len(expected) < nodes  # far fewer than the 2 * nodes states the trace carries
    assert Step.objects.filter(run=run).count() == nodes


def test_next_state_before_shares_the_previous_state_after_snapshot(
    project: Project, research_raw: dict[str, Any]
) -> None:
    run, _ = ingest_trace(project, parse(research_raw))
    steps = list(Step.objects.filter(run=run).order_by("position"))
    raw_nodes = research_raw["nodes_executed"]
    shared = 0
    for i in range(1, len(steps)):
        if raw_nodes[i]["state_before"] == raw_nodes[i - 1]["state_after"]:
            assert steps[i].state_before_id == steps[i - 1].state_after_id
            shared += 1
    assert shared > 0  # the fixture's premise: consecutive states chain


def test_equal_states_with_different_key_order_share_a_snapshot(project: Project) -> None:
    doc = {
        "nodes_executed": [
            node("a", state_before={"x": 1, "y": [1, 2]}, state_after={"y": [1, 2], "x": 1}),
        ]
    }
    ingest_trace(project, parse(doc))
    assert StateSnapshot.objects.filter(project=project).count() == 1


def test_each_project_stores_a_shared_state_once(
    project: Project, other_project: Project, research_raw: dict[str, Any]
) -> None:
    expected = distinct_states(research_raw)
    ingest_trace(project, parse(research_raw))
    ingest_trace(other_project, parse(research_raw))
    for p in (project, other_project):
        digests = list(StateSnapshot.objects.filter(project=p).values_list("digest", flat=True))
        assert sorted(digests) == sorted(expected)
    assert StateSnapshot.objects.count() == 2 * len(expected)
    # A second run in the same project reuses the project's snapshots.
    again = copy.deepcopy(research_raw)
    again["execution_id"] = str(uuid.uuid4())
    _, created = ingest_trace(project, parse(again))
    assert created is True
    assert StateSnapshot.objects.filter(project=project).count() == len(expected)


def test_loading_from_one_project_never_uses_another_projects_snapshots(
    project: Project, other_project: Project, research_raw: dict[str, Any]
) -> None:
    ingest_trace(project, parse(research_raw))
    run, _ = ingest_trace(other_project, parse(research_raw))
    own = set(StateSnapshot.objects.filter(project=other_project).values_list("pk", flat=True))
    step_ids = {
        pk
        for pair in Step.objects.filter(run=run).values_list("state_before_id", "state_after_id")
        for pk in pair
        if pk is not None
    }
    assert step_ids
    assert step_ids <= own


def test_snapshot_data_is_compressed(project: Project, fixtures_dir: Path) -> None:
    ingest_trace(
        project, ExecutionTrace.from_json((fixtures_dir / "long_loop_2000.json").read_bytes())
    )
    largest = StateSnapshot.objects.filter(project=project).order_by("-size_bytes").first()
    assert largest is not None
    assert len(bytes(largest.data)) < largest.size_bytes
    assert len(largest.json_bytes()) == largest.size_bytes


def test_large_state_is_stored_much_smaller_than_its_json(project: Project) -> None:
    state = {"documents": [{"id": i, "text": "lifetimes and async " * 20} for i in range(200)]}
    size = len(json.dumps(state, separators=(",", ":")).encode())
    ingest_trace(project, parse({"nodes_executed": [node("reader", state_after=state)]}))
    snap = StateSnapshot.objects.get(project=project)
    assert snap.size_bytes == size
    assert len(bytes(snap.data)) < size / 10
    assert snap.value() == state


def test_changed_trace_with_same_execution_id_replaces_steps(
    project: Project, research_raw: dict[str, Any]
) -> None:
    partial = copy.deepcopy(research_raw)
    partial["nodes_executed"] = partial["nodes_executed"][:4]
    partial["completed"] = False
    partial["ended_at"] = None
    run, created = ingest_trace(project, parse(partial))
    assert created is True
    assert Step.objects.filter(run=run).count() == 4

    final, created_again = ingest_trace(project, parse(research_raw))
    assert created_again is False
    assert final.pk == run.pk
    assert Run.objects.filter(project=project).count() == 1
    nodes = len(research_raw["nodes_executed"])
    assert Step.objects.filter(run=run).count() == nodes
    assert list(Step.objects.filter(run=run).values_list("position", flat=True)) == list(
        range(nodes)
    )
    stored = Run.objects.get(pk=run.pk)
    assert stored.node_count == nodes
    assert stored.status == RunStatus.COMPLETED
    assert json.loads(load_trace(stored).to_json()) == research_raw


def test_shorter_replacement_trace_leaves_no_stale_steps_or_errors(
    project: Project, timeout_raw: dict[str, Any]
) -> None:
    run, _ = ingest_trace(project, parse(timeout_raw))
    assert RunError.objects.filter(run=run).count() == 1
    retried = copy.deepcopy(timeout_raw)
    retried["nodes_executed"] = retried["nodes_executed"][:2]
    retried["errors"] = []
    ingest_trace(project, parse(retried))
    assert Step.objects.filter(run=run).count() == 2
    assert RunError.objects.filter(run=run).count() == 0
    stored = Run.objects.get(pk=run.pk)
    assert stored.node_count == 2
    assert stored.error_count == 0
    assert json.loads(load_trace(stored).to_json()) == retried


def test_trace_without_execution_id_gets_a_uuid(
    project: Project, research_raw: dict[str, Any]
) -> None:
    doc = copy.deepcopy(research_raw)
    doc["execution_id"] = None
    trace = parse(doc)
    run, created = ingest_trace(project, trace)
    assert created is True
    assert trace.execution_id is not None
    assert str(uuid.UUID(trace.execution_id)) == trace.execution_id
    assert Run.objects.get(pk=run.pk).execution_id == trace.execution_id
    assert load_trace(run).execution_id == trace.execution_id


def test_two_traces_without_execution_id_are_two_runs(
    project: Project, research_raw: dict[str, Any]
) -> None:
    doc = copy.deepcopy(research_raw)
    doc["execution_id"] = None
    first, _ = ingest_trace(project, parse(doc))
    second, created = ingest_trace(project, parse(doc))
    assert created is True
    assert first.execution_id != second.execution_id
    assert Run.objects.filter(project=project).count() == 2


def test_summary_columns_of_a_successful_run(
    project: Project, research_raw: dict[str, Any]
) -> None:
    run, _ = ingest_trace(project, parse(research_raw))
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == RunStatus.COMPLETED
    assert stored.node_count == len(research_raw["nodes_executed"])
    assert stored.error_count == 0
    assert stored.first_error == ""
    assert stored.first_error_type == ""
    assert stored.graph_name == research_raw["metadata"]["graph_name"]
    assert stored.duration_ms == research_raw["total_duration_ms"]
    assert stored.total_tokens == research_raw["total_tokens"]
    assert stored.execution_id == research_raw["execution_id"]


def test_summary_columns_of_a_failed_run(project: Project, timeout_raw: dict[str, Any]) -> None:
    run, _ = ingest_trace(project, parse(timeout_raw))
    stored = Run.objects.get(pk=run.pk)
    first = timeout_raw["errors"][0]
    assert stored.status == RunStatus.FAILED
    assert stored.node_count == len(timeout_raw["nodes_executed"])
    assert stored.error_count == len(timeout_raw["errors"])
    assert stored.first_error == first["message"]
    assert stored.first_error_type == first["error_type"]
    assert stored.first_error_node == first["node"]
    assert stored.graph_name == "research-agent"


def test_incomplete_trace_without_errors_or_end_is_running(
    project: Project, research_raw: dict[str, Any]
) -> None:
    doc = copy.deepcopy(research_raw)
    doc["nodes_executed"] = doc["nodes_executed"][:3]
    doc["completed"] = False
    doc["ended_at"] = None
    run, _ = ingest_trace(project, parse(doc))
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == RunStatus.RUNNING
    assert stored.node_count == 3
    assert stored.ended_at is None


def test_incomplete_trace_that_ended_is_failed(
    project: Project, research_raw: dict[str, Any]
) -> None:
    doc = copy.deepcopy(research_raw)
    doc["completed"] = False
    run, _ = ingest_trace(project, parse(doc))
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_failed_node_without_error_trace_marks_the_run_failed(project: Project) -> None:
    doc = {
        "nodes_executed": [node("fetch", success=False, error_message="HTTP 503")],
        "completed": True,
    }
    run, _ = ingest_trace(project, parse(doc))
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == RunStatus.FAILED
    assert stored.first_error == "HTTP 503"
    assert stored.first_error_node == "fetch"
    assert stored.error_count == 0


def test_graph_name_is_blank_without_metadata(project: Project, fixtures_dir: Path) -> None:
    raw = load_raw(fixtures_dir / "non_object_states.json")
    assert "graph_name" not in raw["metadata"]  # the fixture's premise
    run, _ = ingest_trace(project, parse(raw))
    assert Run.objects.get(pk=run.pk).graph_name == ""


def _huge_trace() -> dict[str, Any]:
    return {
        "execution_id": "u64-run",
        "depth": U64_MAX,
        "nodes_executed": [
            {
                "node": "a",
                "duration_ms": U64_MAX,
                "tokens_used": 2**63,
                "index": U64_MAX,
                "state_before": {"counter": 2**63},
                "state_after": {"counter": U64_MAX},
                "metadata": {"big": U64_MAX},
            },
            {"node": "b", "duration_ms": 2**63 - 1, "tokens_used": 2**63 + 1},
        ],
        "total_duration_ms": U64_MAX,
        "total_tokens": 2**63,
        "errors": [{"node": "a", "message": "overflow?", "execution_index": U64_MAX}],
        "final_state": [U64_MAX, 2**63],
        "metadata": {"graph_name": "big", "limit": U64_MAX},
    }


def test_u64_values_at_or_above_2_63_round_trip_through_the_database(project: Project) -> None:
    doc = _huge_trace()
    run, _ = ingest_trace(project, parse(doc))
    stored = Run.objects.get(pk=run.pk)
    assert stored.duration_ms == U64_MAX
    assert stored.total_tokens == 2**63
    assert stored.depth == U64_MAX
    step = Step.objects.get(run=run, position=0)
    assert step.duration_ms == U64_MAX
    assert step.tokens_used == 2**63
    assert step.index == U64_MAX
    assert Step.objects.get(run=run, position=1).tokens_used == 2**63 + 1
    assert RunError.objects.get(run=run).execution_index == U64_MAX
    out = json.loads(load_trace(stored).to_json())
    expected = json.loads(parse(doc).to_json())
    assert out == expected
    assert out["nodes_executed"][0]["state_after"] == {"counter": U64_MAX}
    assert out["nodes_executed"][0]["metadata"] == {"big": U64_MAX}
    assert out["metadata"]["limit"] == U64_MAX


def test_u64_values_survive_an_update_of_the_run(project: Project) -> None:
    doc = _huge_trace()
    run, _ = ingest_trace(project, parse(doc))
    doc["total_tokens"] = U64_MAX - 1
    _, created = ingest_trace(project, parse(doc))
    assert created is False
    assert Run.objects.get(pk=run.pk).total_tokens == U64_MAX - 1


def test_u64_column_holds_the_wrapped_signed_value(project: Project) -> None:
    run, _ = ingest_trace(project, parse(_huge_trace()))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT duration_ms, total_tokens FROM {Run._meta.db_table} WHERE id = %s", [run.pk]
        )
        duration, tokens = cursor.fetchone()
    # Two's complement in a signed BIGINT: 2**64-1 is stored as -1, 2**63 as -2**63.
    assert (duration, tokens) == (-1, -(2**63))


def _long_node_name(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["node"] = "n" * 300


def _long_execution_id(d: dict[str, Any]) -> None:
    d["execution_id"] = "e" * 300


def _long_thread_id(d: dict[str, Any]) -> None:
    d["thread_id"] = "t" * 300


def _long_error_type(d: dict[str, Any]) -> None:
    d["errors"] = [{"node": "n", "message": "m", "error_type": "E" * 300}]


def _long_started_at(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["started_at"] = "2026-03-02T09:30:00.120+00:00" + "x" * 60


def _nul_in_error_message(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["error_message"] = "binary output: \u0000\u0001"


def _nul_in_node_metadata(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["metadata"] = {"raw": "a\u0000b"}


def _nul_in_run_metadata(d: dict[str, Any]) -> None:
    d["metadata"] = {"raw": "a\u0000b"}


def _nul_in_tool_name(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["tools_called"] = ["a\u0000b"]


def _nul_in_error_context(d: dict[str, Any]) -> None:
    d["errors"] = [{"node": "n", "message": "m", "context": "a\u0000b"}]


def _nul_in_state(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["state_after"] = {"raw": "a\u0000b"}


@pytest.mark.parametrize(
    "mutate",
    [
        _long_node_name,
        _long_execution_id,
        _long_thread_id,
        _long_error_type,
        _long_started_at,
        _nul_in_error_message,
        _nul_in_node_metadata,
        _nul_in_run_metadata,
        _nul_in_tool_name,
        _nul_in_error_context,
        _nul_in_state,
    ],
)
def test_a_trace_the_parser_accepts_is_stored_exactly_on_every_database(
    project: Project, mutate: Callable[[dict[str, Any]], None]
) -> None:
    # The parser is the gate: whatever it accepts must store and load unchanged (on
    # PostgreSQL as on SQLite), or be refused there with a path, never fail in the database.
    doc: dict[str, Any] = {"execution_id": "edge", "nodes_executed": [node("n")]}
    mutate(doc)
    trace = parse_or_refusal(doc)
    if isinstance(trace, InputError):
        assert trace.path.startswith("$.")
        return
    run, _ = ingest_trace(project, trace)
    loaded = load_trace(Run.objects.get(pk=run.pk))
    assert json.loads(loaded.to_json()) == json.loads(trace.to_json())


@pytest.mark.django_db(transaction=True)
def test_runs_sharing_new_states_stored_at_once_all_succeed(
    project: Project, fixtures_dir: Path
) -> None:
    """Concurrent saves race to insert the same new snapshots; the losers start over
    (ingest.WRITE_ATTEMPTS) and find them, so every request succeeds and each state is
    stored once."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    body = json.loads((fixtures_dir / "research_agent_success.json").read_text())

    def ingest(i: int) -> None:
        try:
            ingest_trace(
                project, parse_trace(json.dumps({**body, "execution_id": f"r{i}"}).encode())
            )
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ingest, range(8)))

    assert Run.objects.filter(project=project).count() == 8
    one = StateSnapshot.objects.filter(project=project).count()
    assert one == len(distinct_states(body))
