"""Optimizer exports: starting, running, cancelling and expiring them.

Which runs an export reads is ``traces/selection.py``. ``run_export`` is what the Celery
task runs: it reads one run at a time, writes ``<id>.part`` under ``EXPORT_DIR`` and
renames it to the final name only when complete, so a rerun (a worker died, the broker
redelivered) starts over and there is never a second or a partial file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from . import events, formats, step_windows, store
from .fields import iso
from .models import Export, ExportStatus, Project, Run, StepVerdict
from .selection import Selection, parse_format, parse_selection
from .trace import ExecutionTrace

log = logging.getLogger(__name__)

RUN_BATCH = 100  # runs read per query
PROGRESS_SECONDS = 0.5
ACTIVE = (ExportStatus.QUEUED, ExportStatus.RUNNING)


# --- Rows and files ------------------------------------------------------------------


def export_dir() -> Path:
    return Path(settings.EXPORT_DIR)


def final_path(export: Export) -> Path:
    return export_dir() / f"{export.pk}{formats.FILE_SUFFIX.get(export.format, '')}"


def part_path(export_id: Any) -> Path:
    return export_dir() / f"{export_id}.part"


def download_name(export: Export) -> str:
    suffix = formats.FILE_SUFFIX.get(export.format, "")
    return f"{export.project.slug}-{export.format}-{export.created_at:%Y%m%d-%H%M%S}{suffix}"


def expires_at(export: Export) -> datetime:
    return export.created_at + timedelta(days=settings.EXPORT_RETENTION_DAYS)


def export_summary(export: Export) -> dict[str, Any]:
    """An export as the API, the page and the websocket show it (JSON types only)."""
    if export.status == ExportStatus.DONE:
        progress = 100.0
    elif export.runs_total:
        progress = round(100.0 * export.runs_done / export.runs_total, 1)
    else:
        progress = 0.0
    done = export.status == ExportStatus.DONE
    return {
        "id": str(export.pk),
        "format": export.format,
        "filters": export.filters,
        "status": export.status,
        "progress": progress,
        "runs_done": export.runs_done,
        "runs_total": export.runs_total,
        "row_count": export.row_count,
        "size": export.size_bytes,
        "error": export.error or None,
        "created_by": export.created_by.get_username() if export.created_by else None,
        "created_at": iso(export.created_at),
        "started_at": iso(export.started_at),
        "finished_at": iso(export.finished_at),
        "expires_at": iso(expires_at(export)),
        "file_name": download_name(export) if done else None,
        "download_url": reverse("api:export-download", args=[export.pk]) if done else None,
    }


def _publish(export_id: Any) -> None:
    """After commit: the export as it now is, to the project's exports page."""
    export = Export.objects.select_related("project", "created_by").filter(pk=export_id).first()
    if export is not None:
        events.export_changed(export.project_id, export_summary(export))


def start_export(project: Project, user: Any, fmt: Any, filters: Any) -> Export:
    """Validate and store a queued export; the caller queues its task
    (``tasks.queue_export``)."""
    fmt = parse_format(fmt)
    _, stored = parse_selection(project, filters)
    sweep_expired()
    with transaction.atomic():
        export = Export.objects.create(
            project=project,
            created_by=user if getattr(user, "pk", None) is not None else None,
            format=fmt,
            filters=stored,
        )
        events.export_changed(project.pk, export_summary(export))
    return export


def not_queued(export_id: str, reason: str) -> None:
    """The export's task could not be sent: the export says so rather than waiting in
    "queued" for a task that was never sent."""
    Export.objects.filter(pk=export_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.FAILED,
        error=f"could not queue the task: {reason}"[:2000],
        finished_at=timezone.now(),
    )
    _publish(export_id)


def cancel_or_delete(export: Export) -> str:
    """Cancel a queued or running export (the worker stops at its next progress check
    and removes its partial file); delete a finished one with its file. Returns
    ``"cancelled"`` or ``"deleted"``."""
    cancelled = Export.objects.filter(pk=export.pk, status__in=ACTIVE).update(
        status=ExportStatus.CANCELLED, finished_at=timezone.now()
    )
    if cancelled:
        _publish(export.pk)
        return "cancelled"
    delete_export(export)
    return "deleted"


def delete_export(export: Export) -> None:
    """The row and every file of it."""
    project_id, export_id = export.project_id, str(export.pk)
    export.delete()
    _remove_files(export_id)
    events.export_deleted(project_id, export_id)


def _remove_files(export_id: str) -> None:
    directory = export_dir()
    if directory.is_dir():
        for path in directory.glob(f"{export_id}.*"):
            path.unlink(missing_ok=True)
        (directory / "locks" / f"{export_id}.lock").unlink(missing_ok=True)


# --- Retention -----------------------------------------------------------------------

_last_sweep = 0.0
SWEEP_EVERY = 60.0  # seconds between lazy sweeps in one process


def delete_expired(now: datetime | None = None) -> int:
    """Delete exports (rows and files) created more than EXPORT_RETENTION_DAYS ago, and
    files under EXPORT_DIR that no export owns any more; how many exports went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EXPORT_RETENTION_DAYS)
    deleted = 0
    for export in Export.objects.filter(created_at__lt=cutoff).select_related("project"):
        delete_export(export)
        deleted += 1
    directory = export_dir()
    if directory.is_dir():
        owned = {str(pk) for pk in Export.objects.values_list("pk", flat=True)}
        for path in directory.iterdir():
            stem = path.name.split(".", 1)[0]
            if stem in owned or not path.is_file():
                continue
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=cutoff.tzinfo)
            if modified < cutoff:
                path.unlink(missing_ok=True)
    if deleted:
        log.info("retention: deleted %d exports created before %s", deleted, cutoff)
    return deleted


def sweep_expired() -> None:
    """``delete_expired`` at most once a minute per process: run where exports are
    created and listed, so retention holds even where no Celery beat runs."""
    global _last_sweep
    if time.monotonic() - _last_sweep < SWEEP_EVERY:
        return
    _last_sweep = time.monotonic()
    delete_expired()


# --- Running an export -----------------------------------------------------------------


class ExportBusy(Exception):
    """Another worker is running this export right now (a duplicate delivery)."""


@contextmanager
def _exclusive(export_id: str) -> Iterator[None]:
    """Hold a lock on the export while it runs: a second delivery of the task (the
    broker's visibility timeout passed) must not write beside the first. PostgreSQL: an
    advisory lock, which goes with the connection, so a worker that dies frees it (on any
    machine). SQLite (one machine): ``flock`` on a file, freed by the kernel likewise."""
    if connection.vendor != "postgresql":
        locks = export_dir() / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{export_id}.lock").open("wb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ExportBusy(export_id) from None
            yield
        return
    key = int(export_id.replace("-", "")[:15], 16)  # 60 bits: fits a signed bigint
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        (locked,) = cursor.fetchone() or (False,)
    if not locked:
        raise ExportBusy(export_id)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def run_export(export_id: str) -> str:
    """Run one export from the start; what happened: ``done``, ``failed``, ``cancelled`` or
    ``skipped`` (no such export, or already finished: a duplicate delivery).

    Raises ``ExportBusy`` when another worker holds the export.
    """
    with _exclusive(export_id):
        # Claim it: queued, or running when a worker died with it (start over).
        claimed = Export.objects.filter(pk=export_id, status__in=ACTIVE).update(
            status=ExportStatus.RUNNING,
            started_at=timezone.now(),
            finished_at=None,
            runs_done=0,
            runs_total=0,
            row_count=0,
            size_bytes=0,
            error="",
        )
        if not claimed:
            log.info("export %s: nothing to do (finished, cancelled or deleted)", export_id)
            return "skipped"
        export = Export.objects.select_related("project").get(pk=export_id)
        part = part_path(export_id)
        try:
            outcome = _write(export, part)
        except Exception as exc:  # any failure: the export is marked failed, and logged
            log.exception("export %s (%s) failed", export_id, export.format)
            part.unlink(missing_ok=True)
            Export.objects.filter(pk=export_id, status=ExportStatus.RUNNING).update(
                status=ExportStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:2000],
                finished_at=timezone.now(),
            )
            outcome = "failed"
        _publish(export_id)
        return outcome


def _write(export: Export, part: Path) -> str:
    export_id = str(export.pk)
    selection, _ = parse_selection(export.project, export.filters, strict=False)
    ids = list(selection.runs(export.project).values_list("pk", flat=True))
    Export.objects.filter(pk=export_id).update(runs_total=len(ids))
    _publish(export_id)

    fmt = export.format
    delay = settings.EXPORT_RUN_DELAY_MS / 1000
    every: int = settings.EXPORT_PROGRESS_EVERY
    part.parent.mkdir(parents=True, exist_ok=True)
    runs_done = rows = saved_at_run = 0
    saved_at = time.monotonic()
    loaded = _load(ids, _loader(fmt))
    encoder = formats.RunEncoder(fmt)
    with part.open("wb") as out, closing(loaded):  # "wb": a rerun starts the file over
        out.write(formats.file_header(fmt))
        for trace, verdicts in loaded:
            if trace is not None:  # None: deleted since the selection was taken
                rows += _write_run(out, encoder, selection, trace, verdicts)
            runs_done += 1
            if delay:
                time.sleep(delay)
            now = time.monotonic()
            if runs_done - saved_at_run >= every or now - saved_at >= PROGRESS_SECONDS:
                saved_at, saved_at_run = now, runs_done
                if not _progress(export_id, runs_done, rows, out.tell()):
                    out.close()
                    part.unlink(missing_ok=True)
                    return "cancelled"
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()

    final = final_path(export)
    # Atomic: the final name only ever names a complete file; renaming again on a rerun
    # replaces it, so there is never a second one.
    os.replace(part, final)
    finished = Export.objects.filter(pk=export_id, status=ExportStatus.RUNNING).update(
        status=ExportStatus.DONE,
        runs_done=runs_done,
        row_count=rows,
        size_bytes=size,
        file_name=final.name,
        finished_at=timezone.now(),
    )
    if not finished:  # cancelled (or deleted) while the last runs were written
        final.unlink(missing_ok=True)
        return "cancelled"
    log.info("export %s: %d runs, %d rows, %d bytes", export_id, runs_done, rows, size)
    return "done"


def _verdicts(run_ids: list[int]) -> dict[int, dict[int, str]]:
    by_run: dict[int, dict[int, str]] = {}
    for run_id, position, verdict in StepVerdict.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "step_position", "verdict"
    ):
        by_run.setdefault(run_id, {})[position] = verdict
    return by_run


# Formats that copy each state's stored text out as is, as ``msgspec.Raw``, which msgspec
# encodes verbatim: the text is what encoding the decoded state gives (every snapshot is
# written by msgspec), so the output is the same without decoding each state. The others
# need the states decoded (CSV compares them, fine-tuning rows and DashStream rewrite them).
_COPY_STATES = frozenset({"training_examples", "traces_jsonl"})


def _loader(fmt: str) -> Callable[[Run], ExecutionTrace]:
    """How ``fmt`` reads a run: its steps a window at a time (``step_windows``), so an
    export holds one window of a run, however long the run."""
    read_state: Callable[[bytes], Any] = msgspec.Raw if fmt in _COPY_STATES else msgspec.json.decode

    def load(run: Run) -> ExecutionTrace:
        if run.execution_id is None and fmt.startswith("dashstream"):
            # DashStream derives such a run's message ids from its whole JSON.
            return store.load_trace(run)
        return step_windows.windowed_trace(run, read_state)

    return load


def _load(
    ids: list[int], load: Callable[[Run], ExecutionTrace]
) -> Generator[tuple[ExecutionTrace | None, dict[int, str]]]:
    """Each run's trace (None if it is gone) and its verdicts, in order, one at a time."""
    for start in range(0, len(ids), RUN_BATCH):
        batch = ids[start : start + RUN_BATCH]
        runs = Run.objects.in_bulk(batch)
        verdicts = _verdicts(batch)
        for pk in batch:
            run = runs.get(pk)
            yield (load(run) if run is not None else None), verdicts.get(pk, {})


def _write_run(
    out: Any,
    encoder: formats.RunEncoder,
    selection: Selection,
    trace: ExecutionTrace,
    verdicts: dict[int, str],
) -> int:
    steps = selection.steps_of(trace, verdicts)
    if steps is not None and not steps:
        return 0
    rows = 0
    for chunk, count in encoder.encode(trace, steps=steps, verdicts=verdicts or None):
        out.write(chunk)
        rows += count
    return rows


def _progress(export_id: str, runs_done: int, rows: int, size: int) -> bool:
    """Save and push progress; False when the export was cancelled or deleted."""
    still_running = Export.objects.filter(pk=export_id, status=ExportStatus.RUNNING).update(
        runs_done=runs_done, row_count=rows, size_bytes=size
    )
    if still_running:
        _publish(export_id)
    return bool(still_running)


def recent_exports(project: Project, limit: int = 100) -> list[dict[str, Any]]:
    exports = Export.objects.filter(project=project).select_related("project", "created_by")
    return [export_summary(e) for e in exports.order_by("-created_at")[:limit]]
