"""OpenTelemetry traces in: spans from the OTLP receivers (``POST /v1/traces``,
``manage.py otlp_grpc``) become runs through the one ingest workflow.

Spans of a trace arrive in any order, over several requests, and only once they have
ended, so a run's root span, which ends last, usually comes last. Each trace's spans wait
in its ``SpanBuffer`` row; each request adds its spans there and then writes what has
become certain: while the root is missing, the run is live and each node execution
whose ``state_after`` is known (a later step's span arrived) is sent as a live event
(``ingest.ingest_events``); when the root arrives the whole run is stored as a trace
(``ingest.ingest_trace``, which replaces what the events wrote, so a span that came late or
out of order still lands in its place). A late span for a finished trace stores it again.
A trace whose root never comes ends after ``OTLP_IDLE_TIMEOUT`` seconds without a new
span, marked so (``expire_idle``: on each request for its project, and by Celery beat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import msgspec
from django.conf import settings
from django.utils import timezone

from . import ingest, zstd
from .models import EventType, Project, SpanBuffer
from .parsing import ParsedEvent
from .span_mapping import map_spans, run_metadata, stamp, to_trace
from .spans import Parsed, Span
from .trace import RunStarted

log = logging.getLogger(__name__)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Span]).decode

# The idle sweep a request runs for its project ends at most this many traces, so one
# request never pays for a backlog (Celery beat sweeps everything every minute).
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
    counted as rejected, with the first reason."""
    expire_idle(project, limit=SWEEP_PER_REQUEST)
    by_trace: dict[str, list[Span]] = {}
    for span in parsed.spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    _check_open_traces(project, list(by_trace))
    rejected, error = parsed.rejected, parsed.error
    for trace_id, spans in by_trace.items():
        refused = ingest.atomic_with_retries(partial(_add_spans, project, trace_id, spans))
        if refused:
            rejected += refused
            error = error or (
                f"trace {trace_id}: more than OTLP_MAX_TRACE_SPANS="
                f"{settings.OTLP_MAX_TRACE_SPANS} spans; {refused} left out"
            )
    return Exported(len(parsed.spans) - (rejected - parsed.rejected), rejected, error)


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


def _add_spans(project: Project, trace_id: str, spans: list[Span]) -> int:
    """Add a trace's spans to its buffer and write what they make certain; returns how
    many spans the trace's limit left out. Runs in a transaction."""
    buffer = SpanBuffer.objects.select_for_update().filter(project=project, trace_id=trace_id)
    row = buffer.first()
    known: list[Span] = _decode(zstd.decompress(bytes(row.spans))) if row else []
    ids = {s.span_id for s in known}
    room = settings.OTLP_MAX_TRACE_SPANS - len(known)
    fresh = []
    for span in spans:
        if span.span_id not in ids:  # a span sent again (an exporter's retry) counts once
            ids.add(span.span_id)
            fresh.append(span)
    refused = max(len(fresh) - max(room, 0), 0)
    fresh = fresh[: max(room, 0)]
    if row is None:
        row = SpanBuffer(project=project, trace_id=trace_id)
    elif not fresh:
        return refused
    all_spans = known + fresh
    mapped = map_spans(all_spans)
    if mapped.root is not None or row.finished:
        trace = to_trace(mapped, trace_id, None if mapped.root else settings.OTLP_IDLE_TIMEOUT)
        ingest.ingest_trace(project, trace)
        row.finished = True
    else:
        events = []
        if not known:
            events.append(
                ParsedEvent(
                    1,
                    EventType.RUN_STARTED,
                    RunStarted(
                        thread_id=mapped.thread_id,
                        started_at=stamp(mapped.started_ns),
                        metadata=run_metadata(mapped, trace_id),
                        initial_state=mapped.initial_state,
                    ),
                )
            )
        settled = 0
        while settled < len(mapped.nodes) and mapped.settled[settled]:
            settled += 1
        for position in range(row.emitted, settled):
            # Seqs follow positions, so sending a node again is a no-op.
            events.append(
                ParsedEvent(position + 2, EventType.NODE_FINISHED, mapped.nodes[position])
            )
        if events:
            ingest.ingest_events(project, trace_id, events)
        row.emitted = max(row.emitted, settled)
    row.spans = zstd.compress(_encode(all_spans))
    row.span_count = len(all_spans)
    row.last_span_at = timezone.now()
    row.save()
    return refused


def _end_idle(pk: int, cutoff: datetime) -> bool:
    row = (
        SpanBuffer.objects.select_for_update()
        .select_related("project")
        .filter(pk=pk, finished=False, last_span_at__lt=cutoff)
        .first()
    )
    if row is None:  # a span arrived meanwhile, or another sweep ended it
        return False
    mapped = map_spans(_decode(zstd.decompress(bytes(row.spans))))
    trace = to_trace(mapped, row.trace_id, settings.OTLP_IDLE_TIMEOUT)
    ingest.ingest_trace(row.project, trace)
    row.finished = True
    row.save(update_fields=["finished"])
    log.info("otlp trace %s ended by the idle timeout", row.trace_id)
    return True
