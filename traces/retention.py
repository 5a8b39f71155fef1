"""Run retention: a project's runs older than its ``retention_days`` are deleted, with
everything that hangs off them; a pinned run is kept.

A run expires when it started *and* was last written more than ``retention_days`` ago
(a run still receiving events, or re-sent, is not deleted under its writer). ``purge``
deletes a project's expired runs in batches, each batch in its own short transaction:
at most ``RETENTION_BATCH_RUNS`` runs and, past the first run, ``RETENTION_BATCH_STEPS``
steps, so no transaction holds row locks for long and ingestion carries on between them.
Runs a writer holds locked right now are skipped (``SKIP LOCKED``) and left to the next
sweep. The Celery beat task ``traces.tasks.purge_expired_runs`` runs ``purge_all`` every
``RETENTION_PURGE_EVERY`` seconds; ``manage.py purge_expired`` does the same by hand.

What goes with a run: its steps, errors, live events, DashStream cursor, review, step
verdicts, comments (a comment is anchored to its run or step: it goes with the run),
activity, failure occurrences (their groups are recounted; an untriaged group left empty
goes), inbox items that link to the run, its OTLP span buffer, the state snapshots no
other run of the project still uses (they are shared by content digest), and the
project's exports that contain it (rows and files). What stays: the dashboard's daily
rollups (``StepRollup``), aggregates that keep the history of deleted runs, and alert
firings, whose run lists are a record of what fired.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from . import events, exports, failures
from .errors import InputError
from .models import (
    Export,
    FailureGroup,
    InboxItem,
    Project,
    Run,
    RunError,
    RunEvent,
    SpanBuffer,
    StateSnapshot,
    Step,
)
from .selection import parse_selection

log = logging.getLogger(__name__)

MAX_RETENTION_DAYS = 36_500  # a hundred years: anything longer is "forever"
SNAPSHOT_ATTEMPTS = 3


@dataclass
class Purged:
    """What one purge of one project deleted."""

    runs: int = 0
    batches: int = 0
    snapshots: int = 0
    exports: int = 0
    rows: dict[str, int] = field(default_factory=dict)

    def add_rows(self, counts: dict[str, int]) -> None:
        for label, n in counts.items():
            if n:
                self.rows[label] = self.rows.get(label, 0) + n


def parse_retention_days(value: Any) -> int | None:
    """``retention_days`` from a form or a JSON body: blank or null keeps runs forever,
    else a whole number of days from 1 to 36,500."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InputError("retention_days", "expected a whole number of days, or empty")
    try:
        days = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InputError("retention_days", "expected a whole number of days, or empty") from None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise InputError("retention_days", f"must be between 1 and {MAX_RETENTION_DAYS} days")
    return days


def set_retention(project: Project, value: Any) -> int | None:
    """Validate and store the project's retention; returns the days (None: forever)."""
    days = parse_retention_days(value)
    project.retention_days = days
    project.save(update_fields=["retention_days"])
    return days


def set_pinned(run: Run, pinned: bool) -> None:
    """Pin (keep whatever the retention) or unpin a run; its viewers see it live."""
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(pinned=pinned)
        run.pinned = pinned
        events.run_changed(run)


def cutoff(project: Project, now: datetime | None = None) -> datetime | None:
    """Runs started and last written before this instant expire; None: kept forever."""
    if project.retention_days is None:
        return None
    return (now or timezone.now()) - timedelta(days=project.retention_days)


def expired_runs(project: Project, now: datetime | None = None) -> QuerySet[Run]:
    """The project's runs the next purge deletes (oldest first)."""
    limit = cutoff(project, now)
    if limit is None:
        return Run.objects.none()
    return Run.objects.filter(
        project=project, started_at__lt=limit, updated_at__lt=limit, pinned=False
    ).order_by("started_at", "id")


def dry_run_count(project: Project, now: datetime | None = None) -> int:
    """How many runs a purge would delete now (the settings page shows it)."""
    return expired_runs(project, now).count()


def purge(project: Project, now: datetime | None = None, batch: int | None = None) -> Purged:
    """Delete the project's expired runs, ``batch`` runs (``RETENTION_BATCH_RUNS``) per
    transaction, until none is left that is not locked by a writer."""
    size = batch or settings.RETENTION_BATCH_RUNS
    now = now or timezone.now()
    result = Purged()
    while True:
        with transaction.atomic():
            done = _purge_batch(project, now, size)
        if done is None:
            break
        result.batches += 1
        result.runs += done.runs
        result.add_rows(done.rows)
        for export in done.exports:
            # Queued or running: cancelled, its worker removes the partial file; else
            # deleted with its file. Either way no file keeps the deleted runs.
            exports.cancel_or_delete(export)
        result.exports += len(done.exports)
        result.snapshots += _delete_unused_snapshots(project, done.snapshots)
    if result.runs:
        log.info(
            "retention: %s: deleted %d runs in %d batches, %d snapshots, %d exports",
            project.slug,
            result.runs,
            result.batches,
            result.snapshots,
            result.exports,
        )
    return result


def purge_all(now: datetime | None = None) -> int:
    """``purge`` every project that has a retention; how many runs went. One project
    that fails is logged and the others still run."""
    deleted = 0
    for project in Project.objects.filter(retention_days__isnull=False).order_by("pk"):
        try:
            deleted += purge(project, now).runs
        except Exception:  # one project's failure must not stop the others; logged
            log.exception("retention: purging %s failed", project.slug)
    return deleted


@dataclass
class _Batch:
    runs: int
    rows: dict[str, int]
    snapshots: set[int]  # the ones the runs named: deleted afterwards if unused
    exports: list[Export]  # holding the runs: deleted once the batch is committed


def _purge_batch(project: Project, now: datetime, size: int) -> _Batch | None:
    """One batch inside the caller's transaction: lock up to ``size`` expired runs that no
    writer holds, delete them and what hangs off them. None when nothing is left."""
    rows = list(
        expired_runs(project, now)
        .select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
        .values_list("pk", "execution_id", "created_at", "node_count")[:size]
    )
    if not rows:
        return None
    rows = _within_step_budget(rows)
    ids = [r[0] for r in rows]
    execution_ids = [r[1] for r in rows]
    snapshots = _snapshots_of(ids)
    group_ids = list(
        FailureGroup.objects.filter(failures__run_id__in=ids).values_list("pk", flat=True)
    )
    holding = _exports_holding(project, ids, min(r[2] for r in rows))
    _, deleted_rows = Run.objects.filter(pk__in=ids).delete()
    counts = {label.rsplit(".", 1)[-1]: n for label, n in deleted_rows.items()}
    counts["InboxItem"] = _delete_inbox_items(project, execution_ids)
    counts["SpanBuffer"] = SpanBuffer.objects.filter(
        project=project, trace_id__in=execution_ids
    ).delete()[0]
    locked = FailureGroup.objects.select_for_update().filter(pk__in=group_ids).order_by("pk")
    kept, gone = failures.recount_groups(list(locked))
    failures.publish_groups(kept)
    failures.publish_deleted(project.pk, gone)
    return _Batch(len(ids), counts, snapshots, holding)


def _within_step_budget(rows: list[Any]) -> list[Any]:
    """The first rows whose steps add up to ``RETENTION_BATCH_STEPS`` (at least one row):
    a few huge runs make a batch of their own instead of one long transaction."""
    budget: int = settings.RETENTION_BATCH_STEPS
    taken: list[Any] = []
    steps = 0
    for row in rows:
        if taken and steps + row[3] > budget:
            break
        taken.append(row)
        steps += row[3]
    return taken


def _snapshots_of(run_ids: list[int]) -> set[int]:
    """Every snapshot the runs' rows name: the ones that may be unused once they go."""
    found: set[int] = set()
    for before, after in Step.objects.filter(run_id__in=run_ids).values_list(
        "state_before_id", "state_after_id"
    ):
        found.update(x for x in (before, after) if x is not None)
    found.update(
        RunError.objects.filter(run_id__in=run_ids, state_at_error__isnull=False).values_list(
            "state_at_error_id", flat=True
        )
    )
    found.update(
        Run.objects.filter(pk__in=run_ids, final_state__isnull=False).values_list(
            "final_state_id", flat=True
        )
    )
    for states in RunEvent.objects.filter(run_id__in=run_ids).values_list("states", flat=True):
        found.update(int(v) for v in (states or {}).values())
    return found


def _delete_unused_snapshots(project: Project, candidates: set[int]) -> int:
    """Delete the candidates no step, error or run of the project names any more, in a
    transaction of its own after the runs' batch committed.

    An ingestion that reuses one of them at the same moment makes one side's foreign key
    check fail: checked at once here, this delete is retried (and then sees the new
    reference); on the ingestion's side ``ingest.atomic_with_retries`` writes it again.
    """
    if not candidates:
        return 0
    ids = sorted(candidates)
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    if connection.vendor == "postgresql":
                        with connection.cursor() as cursor:
                            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    deleted += _unused(project, chunk).delete()[0]
                break
            except IntegrityError:
                if attempt == SNAPSHOT_ATTEMPTS:
                    log.warning("retention: %s: snapshots kept, in use", project.slug)
    return deleted


def _unused(project: Project, ids: list[int]) -> QuerySet[StateSnapshot]:
    ref = OuterRef("pk")
    return StateSnapshot.objects.filter(project=project, pk__in=ids).exclude(
        Exists(Step.objects.filter(state_before=ref))
        | Exists(Step.objects.filter(state_after=ref))
        | Exists(RunError.objects.filter(state_at_error=ref))
        | Exists(Run.objects.filter(final_state=ref))
    )


def _exports_holding(project: Project, run_ids: list[int], oldest: datetime) -> list[Export]:
    """The project's exports whose selection takes any of these runs (and that were
    created after the oldest of them arrived: an older export cannot hold it)."""
    holding = []
    for export in Export.objects.filter(project=project, created_at__gte=oldest):
        try:
            selection, _ = parse_selection(project, export.filters, strict=False)
        except InputError:
            # Its selection no longer reads (its failure group went with its runs, say):
            # it may hold these runs and nothing can tell, so it goes with them.
            holding.append(export)
            continue
        if selection.runs(project).filter(pk__in=run_ids).exists():
            holding.append(export)
    return holding


def _delete_inbox_items(project: Project, execution_ids: Iterable[str]) -> int:
    """The inbox items (mentions, replies, assignments) that open one of these runs."""
    links = Q()
    for execution_id in execution_ids:
        try:
            url = reverse("visualizer:run", args=[project.slug, execution_id])
        except NoReverseMatch:  # an id no run page can name: no item links to it
            continue
        links |= Q(link=url) | Q(link__startswith=f"{url}#")
    if not links:
        return 0
    return InboxItem.objects.filter(links, project=project).delete()[0]
