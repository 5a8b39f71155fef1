"""Ingestion as one workflow: write the rows, group the failures, notify after commit.

Both ways a run arrives go through here, as zulip's ``zerver/actions`` do a write:
``ingest_trace`` (a whole ``ExecutionTrace``: ``POST /api/v1/traces``, ``import_traces``,
``seed_demo``) and ``ingest_events`` (a batch of live events:
``POST /api/v1/runs/<id>/events``); ``ingest_dashstream`` (``POST /api/v1/dashstream``)
turns DashStream messages into the same two (``traces/dashstream_ingest.py``). Each
opens one transaction, lets the storage write the rows (``traces/store.py`` maps a
trace, ``traces/live.py`` applies events; both hold the run's row locked), brings the
dashboard's duration rollups in line with the steps written and removed
(``traces/rollups.py``), brings the run's failure groups in line
(``traces/failures.py``) and queues the websocket pushes, which ``traces/events.py``
sends only after commit. Storage imports neither failures nor events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, transaction

from . import capture, events, failures, live, rollups, store, zstd
from .dashstream_ingest import Intake, StreamRun
from .models import CaptureAttachment, Project, Run
from .parsing import ParsedEvent
from .proto import dashstream_pb2 as pb
from .trace import ExecutionTrace

T = TypeVar("T")

# A write that lost a race (a run or a shared state snapshot stored by a concurrent
# request) starts over and then finds those rows; each pass can only lose to a writer that
# committed meanwhile, so a few passes see it through even when many runs share states.
WRITE_ATTEMPTS = 4


def ingest_trace(project: Project, trace: ExecutionTrace) -> tuple[Run, bool]:
    """Store ``trace`` as the whole truth about its run; returns ``(run, created)``.

    Idempotent on ``(project, execution_id)``: an identical trace writes nothing and
    notifies nobody (``store.save_trace`` says what else it does). The project's capture
    policy is applied first (``traces/capture.py``): nothing it removes is stored.
    """
    policy = capture.for_project(project)
    if policy is not None:
        trace = policy.trace(trace)
    return atomic_with_retries(lambda: _write_trace(project, trace, policy))


def _write_trace(
    project: Project, trace: ExecutionTrace, policy: capture.Capture | None
) -> tuple[Run, bool]:
    saved = store.save_trace(project, trace)
    store_attachments(project, saved.run, policy)
    if saved.changed:
        run = saved.run
        rollups.record(
            project,
            [saved.removed] if saved.removed else [],
            [
                rollups.RunSteps(
                    run.started_at,
                    run.graph_name,
                    [(n.node, n.duration_ms, n.tokens_used) for n in trace.nodes_executed],
                )
            ],
        )
        failures.record_run(saved.run)
        events.run_changed(saved.run)
    return saved.run, saved.created


def ingest_events(
    project: Project, execution_id: str, batch: list[ParsedEvent]
) -> tuple[Run, list[ParsedEvent]]:
    """Store and apply the events of ``batch`` not stored yet; returns the run and the new
    events, which the run's viewers get after commit. A repeated seq is a no-op, so a
    retried batch is harmless (``live.apply_events``). The project's capture policy is
    applied to each event first."""
    policy = capture.for_project(project)
    batch = capture.apply_to(policy, batch, capture.Capture.event)
    return atomic_with_retries(lambda: _write_events(project, execution_id, batch, policy))


def _write_events(
    project: Project,
    execution_id: str,
    batch: list[ParsedEvent],
    policy: capture.Capture | None,
) -> tuple[Run, list[ParsedEvent]]:
    applied = live.apply_events(project, execution_id, batch)
    run, new = applied.run, applied.events
    store_attachments(project, run, policy)
    rollups.record_live(project, run, applied.before, applied.steps)
    failures.record_events(run, new)
    if new:
        events.run_events(run, [e.wire() for e in new])
    return run, new


def ingest_dashstream(
    project: Project, messages: list[tuple[int, pb.DashStreamMessage]]
) -> tuple[Intake, list[tuple[Run, StreamRun]]]:
    """Apply decoded DashStream messages (``(frame index, DashStreamMessage)``): each run
    they touch gets its live events and its cursor in one transaction, a summary of a run
    never seen is stored as a trace. Returns the intake (counts, the first refused
    message) and the runs touched. The capture policy is applied to the events, the
    summaries and the state each cursor holds (``StreamRun.save``)."""

    def write() -> tuple[Intake, list[tuple[Run, StreamRun]]]:
        policy = capture.for_project(project)
        intake = Intake(project)
        for index, message in messages:
            intake.feed(index, message)
        touched = []
        for stream in intake.runs():
            if stream.events:
                batch = capture.apply_to(policy, stream.events, capture.Capture.event)
                run, _ = _write_events(project, stream.execution_id, batch, policy)
            else:
                run = stream.cursor.run
            stream.save(run, policy)
            store_attachments(project, run, policy)
            if policy is not None:
                policy.attachments.clear()  # stored with this run; the next run's are its own
            touched.append((run, stream))
        for trace in intake.traces:
            if policy is not None:
                trace = policy.trace(trace)
            _write_trace(project, trace, policy)
        return intake, touched

    return atomic_with_retries(write)


def store_attachments(project: Project, run: Run | None, policy: capture.Capture | None) -> None:
    """The values the policy kept aside, one row per distinct value (a stored one stays)."""
    if policy is None or not policy.attachments:
        return
    CaptureAttachment.objects.bulk_create(
        [
            CaptureAttachment(
                project=project, ident=ident, run=run, size=len(data), data=zstd.compress(data)
            )
            for ident, data in policy.attachments.items()
        ],
        ignore_conflicts=True,
    )


def atomic_with_retries(write: Callable[[], T]) -> T:
    """``write()`` in a transaction, run again when it loses a race on a unique row.

    Also the transaction of ``traces/otlp.py``, whose span buffer row races the same way.
    A rolled-back pass leaves nothing behind: Django drops the ``on_commit`` callbacks
    queued inside it, so only the pass that commits notifies anyone.
    """
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return write()
        except IntegrityError:
            # Another request stored the same run (or a shared snapshot) between our read
            # and our insert; the next pass finds its rows and takes the update path.
            if attempt == WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
