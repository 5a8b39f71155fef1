"""OpenTelemetry traces in: spans from the OTLP receivers (``POST /v1/traces``,
``manage.py otlp_grpc``) become runs through the one ingest workflow.

Spans of a trace arrive in any order, over several requests, and only once they have
ended, so a run's graph span, which ends last, usually comes last. Each trace's spans
wait in its ``SpanBuffer`` row (at most ``OTLP_MAX_TRACE_SPANS`` spans and
``TRACE_MAX_BODY_BYTES`` bytes); each request, in one transaction, adds its spans there
and writes what has become certain. While the graph span is missing the run is live:
each node execution whose ``state_after`` is known (a later step's span arrived) is sent
as a live event. When the graph span arrives the whole run is stored as a trace (which
replaces what the events wrote, so a span that came late or out of order still lands in
its place); a late span for a finished trace stores it again. A request's runs are
written together (``ingest.ingest_many_events``, ``ingest.ingest_traces``): one
statement per table, not one per run, since those round trips were most of its time.
A trace whose graph span never comes ends ``OTLP_IDLE_TIMEOUT`` seconds after its last
span, marked so (``expire_idle``: by each request for its project, at most every few
seconds, and by Celery beat every minute).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import msgspec
from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import capture, events, ingest, rollups, store, zstd
from .errors import InputError
from .models import EventType, Project, SpanBuffer
from .parsing import ParsedEvent
from .span_capture import capture_span
from .span_mapping import Mapped, map_spans, run_metadata, stamp, to_trace
from .spans import Parsed, Span
from .trace import EVENT_STATE_FIELDS, ExecutionTrace, RunStarted

log = logging.getLogger(__name__)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Span]).decode

SWEEP_PER_REQUEST = 20


class Busy(Exception):
    """The project has ``OTLP_MAX_OPEN_TRACES`` unfinished traces: retry later (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"the project has OTLP_MAX_OPEN_TRACES={settings.OTLP_MAX_OPEN_TRACES} unfinished "
            f"traces; retry in {retry_after} s"
        )
        self.retry_after = retry_after


@dataclass
class Exported:
    """What an export request did: OTLP's partial success."""

    accepted: int
    rejected: int
    error: str


def export(project: Project, parsed: Parsed) -> Exported:
    """Store the spans of one export request; spans the parser or a limit refused are
    counted as rejected, with the first reason.

    A request's traces are split into up to ``OTLP_WORKERS`` groups (PostgreSQL; SQLite
    has one writer, so one group), each written by a thread of its own in one
    transaction: most of a request's time is spent waiting on the database, and the
    groups wait side by side. Within a group the buffer rows are created (if new) and
    locked in one statement each way, in trace id order, so two requests sharing traces
    queue instead of deadlocking, and written back in one.
    """
    _sweep(project)
    # The capture policy first: a buffered span is stored bytes too.
    policy = capture.for_project(project)
    spans = capture.apply_to(policy, parsed.spans, capture_span)
    if policy is not None and policy.attachments:
        ingest.atomic_with_retries(lambda: ingest.store_attachments(project, None, policy))
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    outcome = Exported(len(parsed.spans), parsed.rejected, parsed.error)
    if not by_trace:
        return outcome
    trace_ids = sorted(by_trace)
    _check_open_traces(project, trace_ids)
    workers = settings.OTLP_WORKERS if connection.vendor == "postgresql" else 1
    groups = [trace_ids[i::workers] for i in range(min(workers, len(trace_ids)))]
    # What the groups' transactions publish is sent once they are all done, in one hop
    # from this thread (events.Outbox).
    outbox = events.Outbox()
    if len(groups) == 1:
        try:
            with events.collecting(outbox):
                write = partial(_add_all, project, trace_ids, by_trace)
                results = [ingest.atomic_with_retries(write)]
        finally:
            outbox.publish()
    else:
        # Every group ends before the answer, a failed one too (its error is raised once
        # the others are done), and what the committed ones push is sent.
        pending = [_writers().submit(_add_group, project, by_trace, outbox, g) for g in groups]
        futures.wait(pending)
        outbox.publish()
        results = [future.result() for future in pending]
    for refused, reason in results:
        outcome.accepted -= refused
        outcome.rejected += refused
        outcome.error = outcome.error or reason
    return outcome


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _writers() -> ThreadPoolExecutor:
    """The process's writer threads, kept between requests (a thread's zstd contexts are
    reused; its database connection goes back to the pool after each group)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(settings.OTLP_WORKERS, thread_name_prefix="otlp")
        return _pool


def _add_group(
    project: Project, by_trace: dict[str, list[Span]], outbox: events.Outbox, trace_ids: list[str]
) -> tuple[int, str]:
    """``_add_all`` in a writer thread, which has a connection of its own to give back."""
    try:
        with events.collecting(outbox):
            return ingest.atomic_with_retries(partial(_add_all, project, trace_ids, by_trace))
    finally:
        connection.close()


def _add_all(
    project: Project, trace_ids: list[str], by_trace: dict[str, list[Span]]
) -> tuple[int, str]:
    """Add the spans of these traces (sorted ids) in the current transaction; returns how
    many spans were refused and the first reason."""
    SpanBuffer.objects.bulk_create(
        [SpanBuffer(project=project, trace_id=t, spans=b"") for t in trace_ids],
        ignore_conflicts=True,
    )
    rows = (
        SpanBuffer.objects.select_for_update()
        .filter(project=project, trace_id__in=trace_ids)
        .order_by("trace_id")
    )
    changed = []
    writes: list[Write] = []
    refused_total, first_reason = 0, ""
    for row in rows:
        refused, reason, write = _add_spans(project, row, by_trace[row.trace_id])
        refused_total += refused
        first_reason = first_reason or reason
        if write is not None:
            changed.append(row)
            writes.append(write)
    _write_runs(project, writes)
    # One INSERT ... ON CONFLICT DO UPDATE: bulk_update's CASE per column and row cost
    # ~0.25 s for 40 rows on a loaded machine.
    SpanBuffer.objects.bulk_create(
        changed,
        update_conflicts=True,
        unique_fields=["project", "trace_id"],
        update_fields=["spans", "span_count", "emitted", "finished", "last_span_at"],
    )
    return refused_total, first_reason


# The idle sweep a request runs for its project: at most every this many seconds per
# process, and at most SWEEP_PER_REQUEST traces (Celery beat sweeps everything).
_SWEEP_EVERY = 5.0
_last_sweep: dict[int, float] = {}


def _sweep(project: Project) -> None:
    now = time.monotonic()
    if now - _last_sweep.get(project.pk, -_SWEEP_EVERY) >= _SWEEP_EVERY:
        _last_sweep[project.pk] = now
        expire_idle(project, limit=SWEEP_PER_REQUEST)


def expire_idle(project: Project | None = None, limit: int | None = None) -> int:
    """End the traces idle for ``OTLP_IDLE_TIMEOUT`` seconds: an unfinished one is stored
    as an incomplete run (marked ended by the idle timeout), a finished one is forgotten.
    Returns how many traces it ended."""
    cutoff = timezone.now() - timedelta(seconds=settings.OTLP_IDLE_TIMEOUT)
    rows = SpanBuffer.objects.filter(last_span_at__lt=cutoff)
    if project is not None:
        rows = rows.filter(project=project)
    rows.filter(finished=True).delete()
    idle = rows.filter(finished=False).order_by("last_span_at").values_list("pk", flat=True)
    ended = 0
    for pk in list(idle[:limit] if limit else idle):
        if ingest.atomic_with_retries(partial(_end_idle, pk, cutoff)):
            ended += 1
    return ended


def _check_open_traces(project: Project, trace_ids: list[str]) -> None:
    limit: int = settings.OTLP_MAX_OPEN_TRACES
    open_rows = SpanBuffer.objects.filter(project=project, finished=False)
    count = open_rows.count()
    if count + len(trace_ids) <= limit:
        return
    known = set(
        SpanBuffer.objects.filter(project=project, trace_id__in=trace_ids).values_list(
            "trace_id", flat=True
        )
    )
    if count + len(set(trace_ids) - known) > limit:
        raise Busy(retry_after=min(settings.OTLP_IDLE_TIMEOUT, 30))


@dataclass
class Write:
    """What a trace's new spans make certain: its whole run, or live events."""

    trace_id: str
    trace: ExecutionTrace | None
    events: list[ParsedEvent]

    def states(self) -> list[Any]:
        if self.trace is not None:
            return store.trace_states(self.trace)
        return [getattr(e.data, f) for e in self.events for f in EVENT_STATE_FIELDS.get(e.type, ())]


def _write_runs(project: Project, writes: list[Write]) -> None:
    """Write the runs of a group in the current transaction: the states of all of them
    looked up and inserted in one round trip each way, and the dashboard's rollups in one
    upsert, instead of once a run (most of a request's time was those round trips)."""
    snapshots = store.Snapshots(project)
    for write in writes:
        snapshots.add_all(write.states())
    snapshots.resolve()
    with rollups.batched(project):
        traces = [write.trace for write in writes if write.trace is not None]
        if traces:
            ingest.ingest_traces(project, traces, snapshots)
        batches = [(write.trace_id, write.events) for write in writes if write.events]
        if batches:
            ingest.ingest_many_events(project, batches, snapshots)


def _add_spans(
    project: Project, row: SpanBuffer, spans: list[Span]
) -> tuple[int, str, Write | None]:
    """Add a trace's spans to its (locked) buffer row and say what to write of its run;
    returns how many spans were refused, why, and the write (None: the row is
    unchanged)."""
    known: list[Span] = _decode(zstd.decompress(bytes(row.spans))) if row.spans else []
    ids = {s.span_id for s in known}
    fresh = []
    for span in spans:
        if span.span_id not in ids:  # a span sent again (an exporter's retry) counts once
            ids.add(span.span_id)
            fresh.append(span)
    room = max(settings.OTLP_MAX_TRACE_SPANS - len(known), 0)
    refused = max(len(fresh) - room, 0)
    reason = (
        f"trace {row.trace_id}: more than OTLP_MAX_TRACE_SPANS="
        f"{settings.OTLP_MAX_TRACE_SPANS} spans; {refused} left out"
        if refused
        else ""
    )
    fresh = fresh[:room]
    if not fresh:
        return refused, reason, None
    all_spans = known + fresh
    encoded = _encode(all_spans)
    limit: int = settings.TRACE_MAX_BODY_BYTES
    if len(encoded) > limit:
        # The span count bounds a trace's rows; this bounds their bytes: a trace's spans
        # never hold more than one trace body may.
        return (
            refused + len(fresh),
            f"trace {row.trace_id}: its spans would pass TRACE_MAX_BODY_BYTES={limit} bytes; "
            f"{len(fresh)} left out",
            None,
        )
    mapped = map_spans(all_spans)
    ended = mapped.root is not None or row.finished
    trace = to_trace(mapped, row.trace_id, None if mapped.root else settings.OTLP_IDLE_TIMEOUT)
    try:
        trace.refuse_nul()
    except InputError as exc:
        # Nothing of this trace is written; the request's other traces still are.
        return refused + len(fresh), f"trace {row.trace_id}: {exc}", None
    if ended:
        write = Write(row.trace_id, trace, [])
        row.finished = True
    else:
        write = Write(row.trace_id, None, _live_events(row, mapped, first=not known))
    row.spans = zstd.compress(encoded)
    row.span_count = len(all_spans)
    row.last_span_at = timezone.now()
    return refused, reason, write


def _live_events(row: SpanBuffer, mapped: Mapped, first: bool) -> list[ParsedEvent]:
    """The run so far as live events: ``run_started`` with the first spans, then each node
    execution whose ``state_after`` is known, in order (``row.emitted`` moves past them).
    Seqs follow positions, so sending a node again is a no-op."""
    events = []
    if first:
        started = RunStarted(
            thread_id=mapped.thread_id,
            started_at=stamp(mapped.started_ns),
            metadata=run_metadata(mapped, row.trace_id),
            initial_state=mapped.initial_state,
        )
        events.append(ParsedEvent(1, EventType.RUN_STARTED, started))
    settled = 0
    while settled < len(mapped.nodes) and mapped.settled[settled]:
        settled += 1
    for position in range(row.emitted, settled):
        node = mapped.nodes[position]
        events.append(ParsedEvent(position + 2, EventType.NODE_FINISHED, node))
    row.emitted = max(row.emitted, settled)
    return events


def _end_idle(pk: int, cutoff: datetime) -> bool:
    row = (
        SpanBuffer.objects.select_for_update()
        .select_related("project")
        .filter(pk=pk, finished=False, last_span_at__lt=cutoff)
        .first()
    )
    if row is None:  # a span arrived meanwhile, or another sweep ended it
        return False
    if not row.spans:  # created for spans that were all refused: nothing to end
        row.delete()
        return False
    mapped = map_spans(_decode(zstd.decompress(bytes(row.spans))))
    trace = to_trace(mapped, row.trace_id, settings.OTLP_IDLE_TIMEOUT)
    ingest.ingest_trace(row.project, trace)
    row.finished = True
    row.save(update_fields=["finished"])
    log.info("otlp trace %s ended by the idle timeout", row.trace_id)
    return True
