"""The selection (the run list's filters, execution ids, a failure group, review verdicts,
node names) and running an export: reruns start over, cancel stops it, retention
deletes old exports with their files."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from dashflow_site.celery import app as celery_app
from tests.traces.exports_support import (
    eager,
    expected_file,
    export_dir,
    files,
    jsonl_ids,
    store_copies,
    store_runs,
)
from tests.traces.test_formats import awkward_trace
from traces import exports, ingest, store, tasks
from traces.errors import InputError
from traces.formats import finetune_row, training_example
from traces.models import (
    Export,
    ExportStatus,
    Failure,
    FailureGroup,
    Project,
    Run,
    StepVerdict,
)
from traces.selection import parse_selection

__all__ = ["eager", "export_dir"]  # fixtures, used by name

pytestmark = pytest.mark.usefixtures("export_dir")


@pytest.fixture
def runs(project: Project, fixtures_dir: Path) -> dict[str, Run]:
    return store_runs(project, fixtures_dir)


def export_of(project: Project, fmt: str, filters: dict[str, Any]) -> tuple[Export, bytes]:
    """Validate ``filters`` as the API does, run the export; the row and the file."""
    _, stored = parse_selection(project, filters)
    export = Export.objects.create(project=project, format=fmt, filters=stored)
    assert exports.run_export(str(export.pk)) == "done"
    export.refresh_from_db()
    return export, exports.final_path(export).read_bytes()


def test_run_list_filters_select_the_same_runs_as_the_run_list(
    project: Project, runs: dict[str, Run], api: APIClient
) -> None:
    for filters in (
        {"status": "failed"},
        {"node": "retriever"},
        {"status": "completed", "node": "planner"},
        {"started_after": "2020-01-01", "started_before": "2100-01-01"},
    ):
        listed = api.get("/api/v1/runs", filters).json()["results"]
        _, body = export_of(project, "traces_jsonl", filters)
        assert sorted(jsonl_ids(body)) == sorted(r["execution_id"] for r in listed), filters
        assert listed, f"{filters} selects nothing: the test proves nothing"


def test_execution_ids_select_exactly_those_runs(project: Project, runs: dict[str, Run]) -> None:
    wanted = [runs["subgraph_child"].execution_id, runs["tool_timeout_failure"].execution_id]
    export, body = export_of(project, "traces_jsonl", {"execution_ids": wanted})
    assert sorted(jsonl_ids(body)) == sorted(wanted)
    assert export.filters == {"execution_ids": wanted}


def test_a_failure_group_selects_the_runs_with_a_failure_in_it(
    project: Project, runs: dict[str, Run]
) -> None:
    # Ingestion grouped the stored runs' failures (traces/failures.py); take the group of
    # the failing fixture and check no other run comes with it.
    failing = runs["tool_timeout_failure"]
    failure = Failure.objects.filter(run=failing).select_related("group").first()
    assert failure is not None
    group = failure.group
    others = set(Failure.objects.filter(group=group).values_list("run__execution_id", flat=True))
    assert others == {failing.execution_id}
    assert FailureGroup.objects.filter(project=project).count() >= 1
    _, body = export_of(project, "traces_jsonl", {"group": group.pk})
    assert jsonl_ids(body) == [failing.execution_id]


def test_verdicts_select_reviewed_runs_and_only_their_reviewed_steps(
    project: Project, runs: dict[str, Run]
) -> None:
    success, failure = runs["research_agent_success"], runs["tool_timeout_failure"]
    StepVerdict.objects.create(run=success, step_position=0, verdict="good")
    StepVerdict.objects.create(run=success, step_position=2, verdict="bad")
    StepVerdict.objects.create(run=failure, step_position=1, verdict="good")

    export, body = export_of(project, "csv", {"verdict": "good"})
    expected, rows = expected_file(
        "csv",
        sorted([success, failure], key=lambda r: (r.started_at, r.pk)),
        steps=lambda t: {0} if t.execution_id == success.execution_id else {1},
    )
    assert body == expected
    assert export.row_count == rows == 2
    assert export.runs_total == 2

    export, body = export_of(project, "csv", {"verdict": "bad"})
    assert export.runs_total == 1
    assert export.row_count == 1
    assert body.splitlines()[1].startswith(f"{success.execution_id},2,".encode())

    export, _ = export_of(project, "csv", {"verdict": "any"})
    assert export.row_count == 3


def test_nodes_limit_the_steps_and_the_runs(project: Project, runs: dict[str, Run]) -> None:
    export, body = export_of(project, "csv", {"nodes": ["planner"]})
    lines = body.decode().splitlines()[1:]
    assert lines, "no planner steps: the test proves nothing"
    assert {line.split(",")[2] for line in lines} == {"planner"}
    with_planner = [r for r in runs.values() if r.steps.filter(node="planner").exists()]
    assert export.runs_total == len(with_planner)
    assert export.row_count == sum(r.steps.filter(node="planner").count() for r in with_planner)


def test_a_filter_the_run_list_does_not_know_is_refused(project: Project) -> None:
    with pytest.raises(InputError) as refused:
        parse_selection(project, {"colour": "red"})
    assert refused.value.path == "filters.colour"
    assert "status" in refused.value.rule  # it lists the names it knows


def test_a_rerun_after_a_dead_worker_starts_over_and_leaves_one_complete_file(
    project: Project, runs: dict[str, Run], export_dir: Path
) -> None:
    export = Export.objects.create(project=project, format="csv")
    # A worker died mid-export: the row says running, half a file lies around.
    Export.objects.filter(pk=export.pk).update(
        status=ExportStatus.RUNNING, runs_done=2, runs_total=4, row_count=99
    )
    export_dir.mkdir(parents=True)
    exports.part_path(export.pk).write_bytes(b"half a file from the dead worker\n")

    assert exports.run_export(str(export.pk)) == "done"
    export.refresh_from_db()
    expected, rows = expected_file("csv", sorted(runs.values(), key=lambda r: (r.started_at, r.pk)))
    assert exports.final_path(export).read_bytes() == expected
    assert (export.row_count, export.runs_done, export.runs_total) == (rows, 4, 4)
    assert files(export_dir) == [f"{export.pk}.csv"]

    # A second delivery of the same task finds it done and touches nothing.
    before = exports.final_path(export).stat().st_mtime_ns
    assert exports.run_export(str(export.pk)) == "skipped"
    assert exports.final_path(export).stat().st_mtime_ns == before


def test_an_export_that_fails_says_why_and_leaves_no_file(
    project: Project, runs: dict[str, Run], export_dir: Path
) -> None:
    export = Export.objects.create(project=project, format="csv", filters={"group": 424242})
    assert exports.run_export(str(export.pk)) == "failed"
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED
    assert "filters.group" in export.error
    assert files(export_dir) == []


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_running_export_and_removes_its_partial_file(
    project: Project, fixtures_dir: Path, export_dir: Path, settings: Any
) -> None:
    settings.EXPORT_RUN_DELAY_MS = 50
    settings.EXPORT_PROGRESS_EVERY = 1
    store_copies(project, fixtures_dir, "research_agent_success", 60)
    export = Export.objects.create(project=project, format="csv")
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(exports.run_export(str(export.pk)))
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 20
    while Export.objects.get(pk=export.pk).runs_done < 3:
        assert time.monotonic() < deadline, "the export did not start"
        time.sleep(0.02)
    assert exports.part_path(export.pk).exists()
    assert exports.cancel_or_delete(Export.objects.get(pk=export.pk)) == "cancelled"
    worker.join(20)
    assert outcome == ["cancelled"]
    export.refresh_from_db()
    assert export.status == ExportStatus.CANCELLED
    assert export.runs_done < 60
    assert files(export_dir) == []


def make_old(export: Export, days: float) -> None:
    Export.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(days=days))


def test_retention_deletes_old_exports_with_their_files_and_keeps_recent_ones(
    project: Project, runs: dict[str, Run], export_dir: Path, settings: Any
) -> None:
    settings.EXPORT_RETENTION_DAYS = 7
    old, _ = export_of(project, "csv", {})
    recent, _ = export_of(project, "traces_jsonl", {})
    make_old(old, 7.5)
    make_old(recent, 6.5)
    # A file no export owns any more (its row went with its project), two weeks old.
    orphan = export_dir / "0e5c0ffe-0000-4000-8000-000000000000.csv"
    orphan.write_bytes(b"x")
    two_weeks = time.time() - 14 * 86400
    os.utime(orphan, (two_weeks, two_weeks))

    assert exports.delete_expired() == 1
    assert list(Export.objects.values_list("pk", flat=True)) == [recent.pk]
    assert files(export_dir) == [f"{recent.pk}.jsonl"]


def test_retention_runs_hourly_on_celery_beat_and_lazily_on_the_api(
    project: Project, runs: dict[str, Run], api: APIClient, eager: None
) -> None:
    schedule = celery_app.conf.beat_schedule["delete-expired-exports"]
    assert schedule["task"] == "traces.tasks.delete_expired_exports"
    assert schedule["schedule"] == 3600

    first, _ = export_of(project, "csv", {})
    make_old(first, 30)
    assert tasks.delete_expired_exports.delay().get() == 1
    assert not Export.objects.exists()

    second, _ = export_of(project, "csv", {})
    make_old(second, 30)
    exports._last_sweep = 0.0  # the lazy sweep runs at most once a minute per process
    assert api.get("/api/v1/exports").json()["results"] == []
    assert not Export.objects.exists()


def test_a_run_deleted_after_the_export_was_requested_is_left_out(
    project: Project, runs: dict[str, Run]
) -> None:
    wanted = [runs["subgraph_child"].execution_id, runs["tool_timeout_failure"].execution_id]
    _, stored = parse_selection(project, {"execution_ids": wanted})
    export = Export.objects.create(project=project, format="traces_jsonl", filters=stored)
    runs["subgraph_child"].delete()
    assert exports.run_export(str(export.pk)) == "done"
    assert jsonl_ids(exports.final_path(export).read_bytes()) == [wanted[1]]


def test_graph_selects_the_runs_of_one_graph(project: Project, runs: dict[str, Run]) -> None:
    graph = runs["research_agent_success"].graph_name
    assert graph
    wanted = sorted(
        Run.objects.filter(project=project, graph_name=graph).values_list("execution_id", flat=True)
    )
    assert 0 < len(wanted) < len(runs)
    _, body = export_of(project, "traces_jsonl", {"graph": graph})
    assert sorted(jsonl_ids(body)) == wanted


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_a_worker_runs_the_export_is_refused(
    project: Project, fixtures_dir: Path, export_dir: Path, settings: Any
) -> None:
    settings.EXPORT_RUN_DELAY_MS = 50
    settings.EXPORT_PROGRESS_EVERY = 1
    runs = store_copies(project, fixtures_dir, "research_agent_success", 30)
    export = Export.objects.create(project=project, format="csv")
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(exports.run_export(str(export.pk)))
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 20
    while Export.objects.get(pk=export.pk).runs_done < 2:
        assert time.monotonic() < deadline, "the export did not start"
        time.sleep(0.02)
    with pytest.raises(exports.ExportBusy):
        exports.run_export(str(export.pk))
    worker.join(30)
    assert outcome == ["done"]
    expected, rows = expected_file("csv", runs)
    export.refresh_from_db()
    assert export.row_count == rows
    assert exports.final_path(export).read_bytes() == expected
    assert files(export_dir) == [f"{export.pk}.csv"]
    # Once it is free, the retried delivery finds the export done and does nothing.
    assert exports.run_export(str(export.pk)) == "skipped"


@pytest.mark.parametrize("fmt", ["training_examples", "openai_finetune"])
def test_example_files_are_the_definition_byte_for_byte(
    project: Project, fixtures_dir: Path, fmt: str
) -> None:
    """The export loads run after run reusing the states a run shares with the previous
    one, and puts rows together from each state's encoded part; the file is still every
    run's rows as formats.training_example() / finetune_row() (with the reviewed steps'
    verdicts) define them, each encoded whole."""
    names = sorted(p.stem for p in fixtures_dir.glob("*.json"))
    stored = list(store_runs(project, fixtures_dir, names).values())
    stored += store_copies(project, fixtures_dir, "research_agent_success", 3)
    # States hard to cut into fields (escapes, Unicode, big numbers, non-objects): training
    # examples copy stored fields out as text (exports._loader).
    stored.insert(0, ingest.ingest_trace(project, awkward_trace())[0])
    reviewed = stored[-2]
    StepVerdict.objects.create(run=reviewed, step_position=0, verdict="good")
    StepVerdict.objects.create(run=reviewed, step_position=4, verdict="bad")
    verdicts = {0: "good", 4: "bad"}

    export, body = export_of(project, fmt, {})

    build = training_example if fmt == "training_examples" else finetune_row
    expected = b""
    for run in sorted(stored, key=lambda r: (r.started_at, r.pk)):
        trace = store.load_trace(Run.objects.get(pk=run.pk))
        reviews = verdicts if run.pk == reviewed.pk else {}
        rows = [build(n, reviews.get(i)) for i, n in enumerate(trace.nodes_executed)]
        expected += b"".join(msgspec.json.encode(r) + b"\n" for r in rows if r is not None)
    assert body == expected
    assert export.row_count == expected.count(b"\n") > 2000
    assert b'"_verdict":"bad"' in body or b'"weight":0' in body
