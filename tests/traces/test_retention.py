"""Run retention (traces/retention.py): a project's runs older than its retention go in
short batches with everything that hangs off them; pinned runs, recent runs and other
projects stay; the dry-run count is what a purge then deletes; beat runs it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from tests.traces.exports_support import export_dir, trace_of
from tests.traces.test_live_ingest import node, post
from tests.traces.test_review import add_user
from traces import exports, ingest, live, retention, review, store, tasks, zstd
from traces.capture_policy import load_attachment
from traces.errors import InputError
from traces.models import (
    Activity,
    CaptureAttachment,
    Comment,
    DashStreamCursor,
    Export,
    Failure,
    FailureGroup,
    InboxItem,
    Project,
    Role,
    Run,
    RunError,
    RunEvent,
    RunReview,
    SpanBuffer,
    StateSnapshot,
    Step,
    StepRollup,
    StepVerdict,
)

__all__ = ["export_dir"]  # a fixture, used by name

DAYS = 30


def store_run(project: Project, fixtures_dir: Path, name: str, execution_id: str) -> Run:
    return ingest.ingest_trace(project, trace_of(fixtures_dir, name, execution_id))[0]


def age(runs: Iterable[Run], days: int) -> None:
    """Make the runs look started and last written ``days`` days ago."""
    when = timezone.now() - timedelta(days=days)
    Run.objects.filter(pk__in=[r.pk for r in runs]).update(started_at=when, updated_at=when)


def snapshot_ids(runs: Iterable[Run]) -> set[int]:
    ids = [r.pk for r in runs]
    found: set[int] = set()
    for before, after in Step.objects.filter(run_id__in=ids).values_list(
        "state_before_id", "state_after_id"
    ):
        found.update(x for x in (before, after) if x is not None)
    found.update(
        x
        for x in RunError.objects.filter(run_id__in=ids).values_list("state_at_error_id", flat=True)
        if x is not None
    )
    found.update(
        x
        for x in Run.objects.filter(pk__in=ids).values_list("final_state_id", flat=True)
        if x is not None
    )
    return found


HANGING = (Step, RunError, RunEvent, Failure, StepVerdict, Comment, RunReview, DashStreamCursor)


def rows_of(runs: Iterable[Run]) -> dict[str, int]:
    ids = [r.pk for r in runs]
    counts = {m.__name__: m.objects.filter(run_id__in=ids).count() for m in HANGING}
    counts["Activity"] = Activity.objects.filter(run_id__in=ids).count()
    return counts


def post_events(api: APIClient, execution_id: str) -> None:
    started = {"seq": 1, "type": "run_started", "data": {"metadata": {"graph_name": "g"}}}
    finished = {"seq": 2, "type": "node_finished", "data": node(0, state_after={"live": 1})}
    response = post(api, [started, finished], execution_id)
    assert response.status_code == 200, response.content


@pytest.fixture
def aged(project: Project) -> Project:
    project.retention_days = DAYS
    project.save()
    return project


def test_a_purge_deletes_expired_runs_and_everything_hanging_off_them_only(
    aged: Project,
    other_project: Project,
    fixtures_dir: Path,
    api: APIClient,
    export_dir: Path,
) -> None:
    bob = add_user(aged, "bob", Role.MEMBER)
    ada = add_user(aged, "ada", Role.ADMIN)
    # The same fixture twice: the old run and the recent one share their snapshots.
    old = store_run(aged, fixtures_dir, "tool_timeout_failure", "old-failed")
    recent = store_run(aged, fixtures_dir, "tool_timeout_failure", "recent-failed")
    old_other = store_run(aged, fixtures_dir, "research_agent_success", "old-success")
    pinned = store_run(aged, fixtures_dir, "subgraph_child", "old-pinned")
    post_events(api, "old-live")
    live = Run.objects.get(project=aged, execution_id="old-live")
    DashStreamCursor.objects.create(run=live, project=aged, thread_id="t")
    SpanBuffer.objects.create(project=aged, trace_id="old-live", spans=b"", finished=True)
    elsewhere = store_run(other_project, fixtures_dir, "tool_timeout_failure", "old-failed")

    step = old.steps.first()
    assert step is not None
    review.add_comment(old, ada, "look, @bob", step=step, path="/messages")
    review.update_review(old, ada, status="reviewed")
    review.set_verdict(old, step, ada, "bad", "wrong tool")
    assert InboxItem.objects.filter(user=bob).count() == 1
    group = FailureGroup.objects.get(project=aged)
    assert group.count == 2

    everything = exports.start_export(aged, ada, "traces_jsonl", {})
    only_recent = exports.start_export(
        aged, ada, "traces_jsonl", {"execution_ids": ["recent-failed"]}
    )
    for export in (everything, only_recent):
        assert exports.run_export(str(export.pk)) == "done"
    everything_file = exports.final_path(everything)
    assert everything_file.exists()

    doomed = [old, old_other, live]
    age([*doomed, pinned], DAYS + 1)
    age([elsewhere], DAYS * 10)
    retention.set_pinned(pinned, True)
    kept_runs = [recent, pinned]
    shared = snapshot_ids(doomed) & snapshot_ids(kept_runs)
    only_doomed = snapshot_ids(doomed) - snapshot_ids(kept_runs)
    assert shared
    assert only_doomed
    kept_rows = rows_of(kept_runs)
    elsewhere_rows = rows_of([elsewhere])
    rollups = StepRollup.objects.filter(project=aged).count()

    assert retention.dry_run_count(aged) == 3
    done = retention.purge(aged)

    assert done.runs == 3
    assert set(Run.objects.filter(project=aged).values_list("execution_id", flat=True)) == {
        "recent-failed",
        "old-pinned",
    }
    assert rows_of(doomed) == dict.fromkeys(rows_of(doomed), 0)
    assert rows_of(kept_runs) == kept_rows
    assert rows_of([elsewhere]) == elsewhere_rows
    assert Run.objects.filter(pk=elsewhere.pk).exists()
    assert not StateSnapshot.objects.filter(pk__in=only_doomed).exists()
    assert StateSnapshot.objects.filter(pk__in=shared).count() == len(shared)
    assert done.snapshots == len(only_doomed)
    for run in kept_runs:
        assert store.load_trace(run).execution_id == run.execution_id
    assert not InboxItem.objects.filter(user=bob).exists()
    assert not SpanBuffer.objects.filter(project=aged).exists()
    group.refresh_from_db()
    assert group.count == 1  # the recent run's occurrence
    assert FailureGroup.objects.get(project=other_project).count == 1
    # Exports holding a deleted run go with their files; one without stays.
    assert done.exports == 1
    assert not Export.objects.filter(pk=everything.pk).exists()
    assert not everything_file.exists()
    assert exports.final_path(only_recent).exists()
    # Daily rollups are aggregates: they keep the history of deleted runs.
    assert StepRollup.objects.filter(project=aged).count() == rollups
    assert retention.dry_run_count(aged) == 0


def test_small_batches_delete_every_expired_run_over_several_transactions(
    aged: Project, fixtures_dir: Path
) -> None:
    runs = [store_run(aged, fixtures_dir, "research_agent_success", f"r{i}") for i in range(7)]
    age(runs, DAYS + 2)
    deletes: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('DELETE FROM "traces_run"'):
            deletes.append(sql)
        return execute(sql, params, many, context)

    counted = retention.dry_run_count(aged)
    with connection.execute_wrapper(watch):
        done = retention.purge(aged, batch=2)

    assert (counted, done.runs, done.batches) == (7, 7, 4)
    assert len(deletes) == 4  # one DELETE of runs per transaction, at most 2 runs each
    assert not Run.objects.filter(project=aged).exists()


def test_a_few_huge_runs_make_batches_of_their_own(
    aged: Project, fixtures_dir: Path, settings: Any
) -> None:
    runs = [store_run(aged, fixtures_dir, "research_agent_success", f"r{i}") for i in range(3)]
    age(runs, DAYS + 2)
    settings.RETENTION_BATCH_STEPS = runs[0].node_count  # one run's steps per batch

    done = retention.purge(aged, batch=100)

    assert (done.runs, done.batches) == (3, 3)


def test_recent_runs_and_runs_written_within_the_window_stay(
    aged: Project, fixtures_dir: Path
) -> None:
    started_long_ago = store_run(aged, fixtures_dir, "research_agent_success", "a")
    Run.objects.filter(pk=started_long_ago.pk).update(
        started_at=timezone.now() - timedelta(days=DAYS + 5)
    )  # but written just now: a run re-sent or still streaming
    store_run(aged, fixtures_dir, "subgraph_child", "b")

    assert retention.dry_run_count(aged) == 0
    assert retention.purge(aged).runs == 0
    assert Run.objects.filter(project=aged).count() == 2


def test_a_project_without_retention_keeps_everything(project: Project, fixtures_dir: Path) -> None:
    run = store_run(project, fixtures_dir, "research_agent_success", "a")
    age([run], 10_000)

    assert retention.dry_run_count(project) == 0
    assert tasks.purge_expired_runs() == 0
    assert Run.objects.filter(pk=run.pk).exists()


def test_the_beat_task_purges_every_project_with_a_retention(
    aged: Project, other_project: Project, fixtures_dir: Path
) -> None:
    other_project.retention_days = 5
    other_project.save()
    a = store_run(aged, fixtures_dir, "research_agent_success", "a")
    b = store_run(other_project, fixtures_dir, "research_agent_success", "b")
    c = store_run(other_project, fixtures_dir, "subgraph_child", "c")
    age([a], DAYS + 1)
    age([b], 6)
    age([c], 4)

    assert tasks.purge_expired_runs.apply().get() == 2

    assert list(Run.objects.values_list("execution_id", flat=True)) == ["c"]


def test_beat_schedules_the_purge() -> None:
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    entry = next(e for e in schedule.values() if e["task"] == "traces.tasks.purge_expired_runs")
    assert entry["schedule"] == float(django_settings.RETENTION_PURGE_EVERY)
    assert tasks.purge_expired_runs.name == entry["task"]


def test_the_command_counts_with_dry_run_then_deletes(aged: Project, fixtures_dir: Path) -> None:
    runs = [store_run(aged, fixtures_dir, "research_agent_success", f"r{i}") for i in range(3)]
    age(runs[:2], DAYS + 1)
    out = StringIO()

    call_command("purge_expired", "--dry-run", stdout=out)
    assert "acme: 2 runs would be deleted" in out.getvalue()
    assert Run.objects.filter(project=aged).count() == 3

    call_command("purge_expired", "--batch", "1", stdout=out)
    assert "acme: deleted 2 runs in 2 batches" in out.getvalue()
    assert list(Run.objects.filter(project=aged).values_list("execution_id", flat=True)) == ["r2"]


@pytest.mark.parametrize(
    ("value", "expected"), [("", None), (None, None), ("7", 7), (30, 30), (" 90 ", 90)]
)
def test_retention_days_accepts_whole_days_or_nothing(value: Any, expected: int | None) -> None:
    assert retention.parse_retention_days(value) == expected


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "ten", True, 36_501, [7]])
def test_retention_days_refuses_anything_else(value: Any) -> None:
    with pytest.raises(InputError) as caught:
        retention.parse_retention_days(value)
    assert caught.value.path == "retention_days"


@pytest.mark.django_db(transaction=True)
def test_a_run_a_writer_holds_is_skipped_not_waited_on(aged: Project, fixtures_dir: Path) -> None:
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite has one writer at a time: no row is ever held by another")
    runs = [store_run(aged, fixtures_dir, "research_agent_success", f"r{i}") for i in range(3)]
    age(runs, DAYS + 1)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        # Another connection holds r1's row, as a live event's transaction does.
        try:
            with transaction.atomic():
                Run.objects.select_for_update().get(pk=runs[1].pk)
                held.set()
                release.wait(120)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(60)
        done = retention.purge(aged, batch=1)
    finally:
        release.set()
        thread.join(60)

    assert done.runs == 2
    assert list(Run.objects.filter(project=aged).values_list("execution_id", flat=True)) == ["r1"]
    assert retention.purge(aged).runs == 1  # the next purge takes it


def test_an_export_whose_selection_no_longer_reads_goes_with_the_runs(
    aged: Project, fixtures_dir: Path, export_dir: Path
) -> None:
    run = store_run(aged, fixtures_dir, "tool_timeout_failure", "old-failed")
    group = FailureGroup.objects.get(project=aged)
    export = exports.start_export(aged, None, "traces_jsonl", {"group": group.pk})
    assert exports.run_export(str(export.pk)) == "done"
    file = exports.final_path(export)
    group.delete()  # its filter names a group that is gone: nothing can tell what it holds
    age([run], DAYS + 1)

    done = retention.purge(aged)

    assert (done.runs, done.exports) == (1, 1)
    assert not Export.objects.filter(pk=export.pk).exists()
    assert not file.exists()


def test_a_purged_runs_attachments_go_with_it_and_another_runs_stay(
    project: Project, fixtures_dir: Path
) -> None:
    # A value a capture rule kept aside is a row per run holding it: the purge takes the
    # expired run's (a secret kept aside must not outlive its run), the kept run's stays.
    old = store_run(project, fixtures_dir, "research_agent_success", "att-old")
    new = store_run(project, fixtures_dir, "research_agent_success", "att-new")
    value = zstd.compress(b'"sk-kept-aside"')
    for run in (old, new):
        CaptureAttachment.objects.create(
            project=project, ident="a" * 32, run=run, size=15, data=value
        )
    age([old], DAYS + 1)
    retention.set_retention(project, DAYS)

    assert retention.purge(project).runs == 1

    assert list(CaptureAttachment.objects.values_list("run_id", flat=True)) == [new.pk]
    loaded = load_attachment(project, "a" * 32)
    assert loaded is not None
    assert loaded["value"] == "sk-kept-aside"


def test_a_replaced_runs_events_replay_without_a_state_the_purge_deleted(
    project: Project, api: APIClient, fixtures_dir: Path
) -> None:
    # The purge sees a state in use through steps, errors and runs, not through the
    # events of a run since replaced whole: such a state may go, and the replay goes on.
    post_events(api, "replaced-live")
    run = Run.objects.get(execution_id="replaced-live")
    named = {i for e in RunEvent.objects.filter(run=run) for i in e.states.values()}
    ingest.ingest_trace(project, trace_of(fixtures_dir, "research_agent_success", "replaced-live"))
    gone = StateSnapshot.objects.filter(pk__in=named).exclude(pk__in=snapshot_ids([run]))
    assert gone.exists()
    gone.delete()

    replayed = list(live.replay(run, 0, 100))

    assert [e["seq"] for e in replayed] == [1, 2]
    assert replayed[1]["data"]["state_after"] is None
