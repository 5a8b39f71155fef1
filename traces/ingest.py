"""Ingestion as one workflow: write the rows, group the failures, notify after commit.

Both ways a run arrives go through here, as zulip's ``zerver/actions`` do a write:
``ingest_trace`` (a whole ``ExecutionTrace``: ``POST /api/v1/traces``, ``import_traces``,
``seed_demo``) and ``ingest_events`` (a batch of live events:
``POST /api/v1/runs/<id>/events``); ``ingest_dashstream`` (``POST /api/v1/dashstream``)
turns DashStream messages into the same two (``traces/dashstream_ingest.py``);
``ingest_traces`` and ``ingest_many_events`` are the first two for many runs at once
(the OTLP receiver's request, ``traces/otlp.py``). Each
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
    (saved,) = atomic_with_retries(lambda: _write_traces(project, [trace], policy=policy))
    return saved.run, saved.created


def ingest_traces(
    project: Project, traces: list[ExecutionTrace], snapshots: store.Snapshots | None = None
) -> list[store.Saved]:
    """``ingest_trace`` for several runs at once, their rows written together
    (``store.save_traces``, which says what ``snapshots`` is). The caller has applied the
    capture policy already (the OTLP receiver does, to the spans it buffers)."""

    return atomic_with_retries(lambda: _write_traces(project, traces, snapshots))


def _write_traces(
    project: Project,
    traces: list[ExecutionTrace],
    snapshots: store.Snapshots | None = None,
    policy: capture.Capture | None = None,
) -> list[store.Saved]:
    all_saved = store.save_traces(project, traces, snapshots)
    if policy is not None and policy.attachments:
        # One trace's values kept aside belong to its run (several: the first run's).
        store_attachments(project, all_saved[0].run if len(all_saved) == 1 else None, policy)
    changed = [(s, t) for s, t in zip(all_saved, traces, strict=True) if s.changed]
    rollups.record(
        project,
        [saved.removed for saved, _ in changed if saved.removed],
        [
            rollups.RunSteps(
                saved.run.started_at,
                saved.run.graph_name,
                [(n.node, n.duration_ms, n.tokens_used) for n in trace.nodes_executed],
            )
            for saved, trace in changed
        ],
    )
    for saved, _ in changed:
        failures.record_run(saved.run, had_failures=saved.had_failures)
        events.run_changed(saved.run)
    return all_saved


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
    store_attachments(project, applied.run, policy)
    return _after_events(project, applied)


def _after_events(project: Project, applied: live.Applied) -> tuple[Run, list[ParsedEvent]]:
    """The rest of the workflow after a live batch is stored: rollups, failure groups,
    the push after commit."""
    run, new = applied.run, applied.events
    rollups.record_live(project, run, applied.before, applied.steps)
    failures.record_events(run, new)
    if new:
        events.run_events(run, [e.wire() for e in new])
    return run, new


def ingest_many_events(
    project: Project,
    batches: list[tuple[str, list[ParsedEvent]]],
    snapshots: store.Snapshots,
) -> list[tuple[Run, list[ParsedEvent]]]:
    """``ingest_events`` for the batches of several runs at once (``live.apply_many``),
    the capture policy applied by the caller (the OTLP receiver, to its buffered spans)."""

    def write() -> list[tuple[Run, list[ParsedEvent]]]:
        done = []
        for applied in live.apply_many(project, batches, snapshots):
            done.append(_after_events(project, applied))
        return done

    return atomic_with_retries(write)


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
        for trace in intake.traces:  # one at a time: two may be of the same run
            if policy is not None:
                trace = policy.trace(trace)
            _write_traces(project, [trace], policy=policy)
            if policy is not None:
                policy.attachments.clear()  # stored with this run
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
    if transaction.get_connection().in_atomic_block:
        # Inside a caller's transaction (the OTLP receiver writes many runs in one): no
        # savepoint (two round trips a run); a lost race fails the whole transaction, and
        # the caller's own ``atomic_with_retries`` runs it again.
        with transaction.atomic(savepoint=False):
            return write()
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
