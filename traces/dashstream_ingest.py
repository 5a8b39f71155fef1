"""DashStream in: a DashFlow app's frames (``POST /api/v1/dashstream``) become the live
events of the one ingest workflow (``traces/ingest.py`` ``ingest_dashstream``).

``Intake`` turns the messages of a body (``traces/dashstream_read.py`` reads the frames)
into ``run_started`` / ``node_started`` / ``node_finished`` / ``error`` / ``run_finished``
events, validated as the events API validates them, per run:

- GRAPH_START opens a run: its ``execution_id`` attribute (our export writes it), else
  one derived from the message id; the thread's other open run is closed. Attributes
  ``graph_name`` and ``graph_schema_json`` go to the run's metadata,
  ``initial_state_json`` is the state the receiver holds.
- Any other message belongs to the open run of its header's ``thread_id`` (unmatched,
  and counted, when there is none).
- NODE_START starts a node execution (``node_started``); NODE_END ends it; the
  ``StateDiff`` after it gives its ``state_after`` (the patch applied to the held state,
  or ``full_state``), and then it is stored (``node_finished``) with the held state at
  its start as ``state_before``. A node ended with no diff after it has no
  ``state_after``. NODE_ERROR, GRAPH_ERROR, ``Error`` and a failed ``ToolExecution``
  are errors; a ``ToolExecution`` names a tool the open node called; a final
  ``TokenChunk``'s total counts in the open node's tokens; node-scoped ``Metrics`` go to
  its metadata; a JSON ``Checkpoint`` replaces the held state.
- GRAPH_END (or the ``ExecutionTrace`` summary, for a run still open) finishes the run
  with the held state as its final state. A summary for a run we have never seen is the
  whole run: it is stored as a trace.

Every state change is checked against ``state_hash`` (SHA-256 of the canonical JSON); a
mismatch, or a patch that does not apply, marks the run as needing resync (the run page
and API show it) until a ``full_state`` that verifies arrives. Duplicates, by message id
or by sequence, are dropped; sequence gaps and late arrivals (reorders) are counted.
Messages are applied in arrival order: a late one is applied late, and its diff, if any,
checked like the others.

One module past ~400 lines on purpose: it is one state machine, whose handlers share a
run's held state, open nodes and counters; split, each part would reach into the others.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from django.conf import settings

from . import zstd
from .capture import Capture
from .dashstream_read import (
    attributes,
    derived_id,
    is_count,
    iso,
    json_value,
    metric,
    trace_of,
)
from .errors import InputError
from .jsondiff import PatchError, apply_patch
from .models import DashStreamCursor, EventType, Project, Run
from .parsing import DATA_TYPES, ParsedEvent, json_depth
from .proto import dashstream_pb2 as pb
from .trace import ExecutionTrace, canonical_json, convert, refuse_nul

__all__ = ["Intake", "StreamRun"]

# Bounds on what a cursor carries between requests: message ids seen lately (duplicates
# come back soon after the original: a retried request) and sequences still missing.
RECENT_IDS = 512
MISSING_KEPT = 1000

_OP_NAMES = {
    pb.DiffOperation.OP_TYPE_ADD: "add",
    pb.DiffOperation.OP_TYPE_REMOVE: "remove",
    pb.DiffOperation.OP_TYPE_REPLACE: "replace",
    pb.DiffOperation.OP_TYPE_MOVE: "move",
    pb.DiffOperation.OP_TYPE_COPY: "copy",
    pb.DiffOperation.OP_TYPE_TEST: "test",
}
_CALLED = {
    pb.ToolExecution.EXECUTION_STAGE_REQUESTED,
    pb.ToolExecution.EXECUTION_STAGE_STARTED,
    pb.ToolExecution.EXECUTION_STAGE_COMPLETED,
}


class _Node(msgspec.Struct, kw_only=True):
    """A node execution between its NODE_START and the StateDiff after its NODE_END."""

    node: str
    index: int
    started_at: str | None
    started_us: int
    before: Any = None
    ended: bool = False
    duration_us: int = 0
    success: bool = True
    error_message: str | None = None
    tokens: int = 0
    tools: list[str] = []
    calls: list[str] = []
    metadata: dict[str, Any] = {}


class _Work(msgspec.Struct, kw_only=True):
    """A cursor's ``work``: what a run's next messages are read against."""

    state: Any = None
    has_state: bool = False
    # The capture policy changed the held state (``StreamRun.save``): a producer's
    # ``state_hash`` is of its own state, so it cannot be checked against this one.
    captured: bool = False
    next_index: int = 0
    nodes: list[_Node] = []
    recent_ids: list[str] = []
    missing: list[int] = []


_work_decoder = msgspec.json.Decoder(_Work)


class StreamRun:
    """One run this request touches: its cursor, its work and the events to store."""

    def __init__(self, cursor: DashStreamCursor, execution_id: str, work: _Work) -> None:
        self.cursor = cursor
        self.execution_id = execution_id
        self.work = work
        self.events: list[ParsedEvent] = []
        # The recent message ids as an ordered set while the request runs (a look-up per
        # message), written back to ``work`` as a list.
        self.recent = dict.fromkeys(work.recent_ids)

    @classmethod
    def load(cls, cursor: DashStreamCursor) -> StreamRun:
        blob = bytes(cursor.work)
        work = _work_decoder.decode(zstd.decompress(blob)) if blob else _Work()
        return cls(cursor, cursor.run.execution_id, work)

    def save(self, run: Run, policy: Capture | None = None) -> None:
        """Store the cursor (its run created by now), with the capture policy applied to
        the state and open nodes it holds: they are stored bytes too."""
        if policy is not None:
            work = self.work
            held = policy.state(work.state, "$.cursor.state")
            work.captured = work.captured or held is not work.state
            work.state = held
            for node in work.nodes:
                node.before = policy.state(node.before, "$.cursor.nodes.before")
                node.metadata = policy.metadata(node.metadata, "$.cursor.nodes.metadata")
                node.error_message = policy.text(node.error_message, "$.cursor.nodes.error")
        self.cursor.run = run
        self.work.recent_ids = list(self.recent)
        self.cursor.work = zstd.compress(msgspec.json.encode(self.work))
        self.cursor.save()

    def emit(self, type_: str, data: dict[str, Any], path: str) -> None:
        """Queue one live event, validated as ``POST .../events`` validates one."""
        parsed = convert(data, DATA_TYPES[type_], path)
        refuse_nul(path, parsed)  # text columns cannot hold one (states can)
        self.events.append(ParsedEvent(self.cursor.next_seq, type_, parsed))
        self.cursor.next_seq += 1

    def resync(self, reason: str) -> None:
        self.cursor.needs_resync = True
        self.cursor.resync_reason = reason[:500]


class Intake:
    """Turns one request's messages into live events per run (see the module
    docstring). Call it inside the ingest transaction: it locks the cursors it reads."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.by_id: dict[str, StreamRun] = {}
        self.by_thread: dict[str, StreamRun] = {}
        self.traces: list[ExecutionTrace] = []
        self.accepted = 0
        self.duplicates = 0
        self.unmatched = 0
        self.error: InputError | None = None

    def runs(self) -> list[StreamRun]:
        return list(self.by_id.values())

    def feed(self, index: int, message: pb.DashStreamMessage) -> None:
        """Apply one decoded message; a refusal is kept (the first) and the rest go on."""
        path = f"$.frames[{index}]"
        try:
            which = message.WhichOneof("message")
            if which == "event_batch":
                batch = message.event_batch
                for event in batch.events:
                    if not event.header.thread_id:  # the batch's header speaks for it
                        event.header.thread_id = batch.header.thread_id
                    self._event(event, path)
            elif which == "execution_trace":
                self._summary(message.execution_trace, path)
            elif which == "event":
                self._event(message.event, path)
            else:
                self._other(which, getattr(message, which), path)
        except InputError as exc:
            self.error = self.error or exc

    # -- finding the run ---------------------------------------------------------------

    def _cursor_of(self, execution_id: str) -> StreamRun | None:
        found = self.by_id.get(execution_id)
        if found is None:
            cursor = (
                DashStreamCursor.objects.select_for_update()
                .select_related("run")
                .filter(project=self.project, run__execution_id=execution_id)
                .first()
            )
            if cursor is not None:
                found = self._remember(StreamRun.load(cursor))
        return found

    def _thread_run(self, thread_id: str) -> StreamRun | None:
        found = self.by_thread.get(thread_id)
        if found is None:
            cursor = (
                DashStreamCursor.objects.select_for_update()
                .select_related("run")
                .filter(project=self.project, thread_id=thread_id, open=True)
                .order_by("-run_id")
                .first()
            )
            if cursor is not None:
                found = self._remember(StreamRun.load(cursor))
        return found

    def _remember(self, stream: StreamRun) -> StreamRun:
        self.by_id[stream.execution_id] = stream
        if stream.cursor.open:
            self.by_thread[stream.cursor.thread_id] = stream
        return stream

    def _latest_of_thread(self, thread_id: str) -> StreamRun | None:
        """The thread's newest run, open or not (for telling a late duplicate)."""
        known = [s for s in self.by_id.values() if s.cursor.thread_id == thread_id]
        if known:
            return known[-1]
        cursor = (
            DashStreamCursor.objects.select_for_update()
            .select_related("run")
            .filter(project=self.project, thread_id=thread_id)
            .order_by("-run_id")
            .first()
        )
        return None if cursor is None else self._remember(StreamRun.load(cursor))

    @staticmethod
    def _seen(stream: StreamRun, header: pb.Header) -> bool:
        message_id = header.message_id.hex()
        if message_id and message_id in stream.recent:
            return True
        seq = header.sequence
        return bool(seq) and seq <= stream.cursor.last_sequence and seq not in stream.work.missing

    def _fresh(self, stream: StreamRun, header: pb.Header) -> bool:
        """False for a duplicate (its message id seen lately, or its sequence seen);
        counts gaps and late arrivals."""
        cursor, work = stream.cursor, stream.work
        if self._seen(stream, header):
            cursor.duplicates += 1
            self.duplicates += 1
            return False
        seq = header.sequence
        if seq:
            if seq <= cursor.last_sequence:
                work.missing.remove(seq)
                cursor.reorders += 1
            else:
                if seq > cursor.last_sequence + 1:
                    cursor.gaps += seq - cursor.last_sequence - 1
                    first = max(cursor.last_sequence + 1, seq - MISSING_KEPT)
                    work.missing = [*work.missing, *range(first, seq)][-MISSING_KEPT:]
                cursor.last_sequence = seq
        message_id = header.message_id.hex()
        if message_id:
            stream.recent[message_id] = None
            if len(stream.recent) > RECENT_IDS:
                del stream.recent[next(iter(stream.recent))]
        self.accepted += 1
        return True

    def _matched(self, header: pb.Header) -> StreamRun | None:
        stream = self._thread_run(header.thread_id)
        if stream is None:
            # No open run: a sequence the thread's last run is missing belongs to it, one
            # it has seen is a duplicate; anything else has nowhere to go.
            latest = self._latest_of_thread(header.thread_id)
            if latest is not None and header.sequence in latest.work.missing:
                self._fresh(latest, header)  # late, but it is that run's: a reorder
                return latest
            if latest is not None and self._seen(latest, header):
                latest.cursor.duplicates += 1
                self.duplicates += 1
            else:
                self.unmatched += 1
            return None
        return stream if self._fresh(stream, header) else None

    # -- messages ----------------------------------------------------------------------

    def _event(self, event: pb.Event, path: str) -> None:
        header = event.header
        if event.event_type == pb.EVENT_TYPE_GRAPH_START:
            self._graph_start(event, path)
            return
        stream = self._matched(header)
        if stream is None:
            return
        kind = event.event_type
        attrs = attributes(event.attributes)
        at = header.timestamp_us
        if kind == pb.EVENT_TYPE_NODE_START:
            self._finish_ended(stream, None, path)
            self._start_node(stream, event.node_id or "node", attrs, at, path)
        elif kind == pb.EVENT_TYPE_NODE_END:
            node = self._open_node(stream, event.node_id, at, path)
            node.ended = True
            node.duration_us = event.duration_us or max(at - node.started_us, 0)
            if isinstance(attrs.get("success"), bool):
                node.success = attrs["success"]
            if is_count(attrs.get("tokens_used")):
                node.tokens = attrs["tokens_used"]
        elif kind in (pb.EVENT_TYPE_NODE_ERROR, pb.EVENT_TYPE_GRAPH_ERROR):
            self._error_event(stream, event, attrs, path)
        elif kind == pb.EVENT_TYPE_TOOL_START:
            name = attrs.get("tool_name") or attrs.get("tool")
            running = _last_open(stream.work)
            if running is not None and isinstance(name, str):
                running.tools.append(name)
        elif kind == pb.EVENT_TYPE_GRAPH_END:
            self._finish_run(stream, event, attrs, path)

    def _graph_start(self, event: pb.Event, path: str) -> None:
        header = event.header
        attrs = attributes(event.attributes)
        execution_id = attrs.get("execution_id")
        if not isinstance(execution_id, str) or not execution_id:
            execution_id = derived_id(header)
        elif len(execution_id) > 200 or "/" in execution_id:
            # It becomes a URL path segment (/api/v1/runs/<execution_id>) and a column.
            raise InputError(
                f"{path}.attributes.execution_id", "expected at most 200 characters, no '/'"
            )
        existing = self._cursor_of(execution_id)
        if existing is not None:
            # A GRAPH_START again for a run we have: the same message re-sent, or a
            # producer restarting; either way the run is already open.
            if self._fresh(existing, header):
                self.accepted -= 1
                existing.cursor.duplicates += 1
                self.duplicates += 1
            return
        thread_id = header.thread_id
        run = Run.objects.filter(project=self.project, execution_id=execution_id).first()
        cursor = DashStreamCursor(
            project=self.project,
            thread_id=thread_id,
            last_sequence=max(header.sequence - 1, 0),
            next_seq=1 if run is None else run.last_seq + 1,
        )
        stream = StreamRun(cursor, execution_id, _Work())
        metadata: dict[str, Any] = {}
        for name in ("graph_name", "graph_schema_json", "graph_manifest"):
            if isinstance(attrs.get(name), str):
                metadata[name] = attrs[name]
        initial = attrs.get("initial_state_json")
        data: dict[str, Any] = {
            "thread_id": thread_id or None,
            "started_at": attrs.get("started_at") or iso(header.timestamp_us),
            "metadata": metadata,
        }
        for name in ("parent_execution_id", "root_execution_id", "depth"):
            if attrs.get(name) is not None:
                data[name] = attrs[name]
        if isinstance(initial, str):
            state = json_value(initial, f"{path}.attributes.initial_state_json")
            data["initial_state"] = state
            stream.work.state, stream.work.has_state = state, True
        # Validated before the run is known to this request: a refused GRAPH_START opens
        # nothing and closes nothing.
        stream.emit(EventType.RUN_STARTED, data, path)
        self._close_thread(thread_id, execution_id)
        self.by_id[execution_id] = stream
        self.by_thread[thread_id] = stream
        self._fresh(stream, header)

    def _close_thread(self, thread_id: str, keep: str) -> None:
        """A new run on a thread ends the thread's open one as far as matching goes (the
        old run stays as it is: running, and stale once silent long enough)."""
        self.by_thread.pop(thread_id, None)
        for other in self.by_id.values():
            if other.cursor.thread_id == thread_id and other.execution_id != keep:
                other.cursor.open = False
        others = DashStreamCursor.objects.filter(
            project=self.project, thread_id=thread_id, open=True
        ).exclude(run__execution_id=keep)
        others.update(open=False)

    def _start_node(
        self, stream: StreamRun, name: str, attrs: dict[str, Any], at: int, path: str
    ) -> _Node:
        work = stream.work
        given = attrs.get("index")
        index: int = given if is_count(given) else work.next_index
        work.next_index = max(work.next_index, index + 1)
        started_at = iso(at)
        node = _Node(
            node=name,
            index=index,
            started_at=started_at,
            started_us=at,
            before=work.state if work.has_state else None,
        )
        work.nodes.append(node)
        stream.emit(
            EventType.NODE_STARTED, {"node": name, "index": index, "started_at": started_at}, path
        )
        return node

    def _open_node(self, stream: StreamRun, name: str, at: int, path: str) -> _Node:
        """The open execution of node ``name`` (started, not ended), or one started now
        for a NODE_END whose NODE_START never came."""
        for node in stream.work.nodes:
            if not node.ended and (node.node == name or not name):
                return node
        return self._start_node(stream, name or "node", {}, at, path)

    def _finish_ended(self, stream: StreamRun, state_after: Any, path: str) -> None:
        """Store the nodes that have ended, with ``state_after`` (None: not captured)."""
        work = stream.work
        for node in [n for n in work.nodes if n.ended]:
            self._store_node(stream, node, state_after, path)
        work.nodes = [n for n in work.nodes if not n.ended]

    def _store_node(self, stream: StreamRun, node: _Node, state_after: Any, path: str) -> None:
        data = {
            "node": node.node,
            "index": node.index,
            "duration_ms": node.duration_us // 1000,
            "tokens_used": node.tokens,
            "state_before": node.before,
            "state_after": state_after,
            "tools_called": node.tools,
            "success": node.success,
            "error_message": node.error_message,
            "started_at": node.started_at,
            "metadata": node.metadata,
        }
        stream.emit(EventType.NODE_FINISHED, data, path)

    def _error_event(
        self, stream: StreamRun, event: pb.Event, attrs: dict[str, Any], path: str
    ) -> None:
        node = None
        for candidate in stream.work.nodes:
            if candidate.node == event.node_id:
                node = candidate
        message = attrs.get("error")
        message = message if isinstance(message, str) and message else "failed"
        if node is not None:
            node.success = False
            node.error_message = node.error_message or message
        self._emit_error(
            stream,
            node,
            event.node_id or ("graph" if node is None else node.node),
            message,
            attrs.get("error_type") if isinstance(attrs.get("error_type"), str) else None,
            attrs.get("context") if isinstance(attrs.get("context"), str) else None,
            event.header.timestamp_us,
            path,
            recoverable=attrs.get("recoverable") is True,
            retry_attempted=attrs.get("retry_attempted") is True,
        )

    def _emit_error(
        self,
        stream: StreamRun,
        node: _Node | None,
        name: str,
        message: str,
        error_type: str | None,
        context: str | None,
        at: int,
        path: str,
        recoverable: bool = False,
        retry_attempted: bool = False,
    ) -> None:
        data = {
            "node": name,
            "message": message,
            "error_type": error_type or None,
            "timestamp": iso(at),
            "execution_index": None if node is None else node.index,
            "recoverable": recoverable,
            "retry_attempted": retry_attempted,
            "context": context or None,
        }
        stream.emit(EventType.ERROR, data, path)

    def _finish_run(
        self, stream: StreamRun, event: pb.Event | None, attrs: dict[str, Any], path: str
    ) -> None:
        work = stream.work
        for node in work.nodes:
            node.ended = True
        self._finish_ended(stream, None, path)
        duration = attrs.get("total_duration_ms")
        if not is_count(duration) and event is not None and event.duration_us:
            duration = event.duration_us // 1000
        completed = attrs.get("completed")
        at = 0 if event is None else event.header.timestamp_us
        data = {
            "completed": completed if isinstance(completed, bool) else True,
            "ended_at": attrs.get("ended_at") or iso(at),
            "final_state": work.state if work.has_state else None,
            "total_duration_ms": duration if is_count(duration) else None,
            "total_tokens": attrs["total_tokens"] if is_count(attrs.get("total_tokens")) else None,
        }
        stream.emit(EventType.RUN_FINISHED, data, path)
        stream.cursor.open = False
        self.by_thread.pop(stream.cursor.thread_id, None)

    def _other(self, which: str, message: Any, path: str) -> None:
        stream = self._matched(message.header)
        if stream is None:
            return
        work = stream.work
        if which == "state_diff":
            self._state_diff(stream, message, path)
        elif which == "tool_execution":
            node = _last_open(work)
            failed = message.stage == pb.ToolExecution.EXECUTION_STAGE_FAILED
            if node is not None and message.tool_name and (failed or message.stage in _CALLED):
                call = message.call_id or f"{message.tool_name}#{len(node.calls)}"
                if call not in node.calls:
                    node.calls.append(call)
                    node.tools.append(message.tool_name)
            if failed:
                details = message.error_details
                self._emit_error(
                    stream,
                    node,
                    "tool" if node is None else node.node,
                    message.error or details.message or f"tool {message.tool_name} failed",
                    details.exception_type or details.error_code or "ToolError",
                    details.stack_trace,
                    message.header.timestamp_us,
                    path,
                )
        elif which == "token_chunk":
            node = _last_open(work)
            if node is not None and message.is_final and message.HasField("stats"):
                node.tokens += message.stats.total_tokens
        elif which == "metrics":
            node = _last_open(work)
            if node is not None and message.scope in ("node", ""):
                node.metadata = {
                    **node.metadata,
                    "metrics": {k: metric(v) for k, v in sorted(message.metrics.items())},
                }
        elif which == "error":
            node = _last_open(work)
            self._emit_error(
                stream,
                node,
                "graph" if node is None else node.node,
                message.message or message.error_code or "error",
                message.exception_type or message.error_code,
                message.stack_trace,
                message.header.timestamp_us,
                path,
            )
        elif which == "checkpoint" and message.state:
            if json_depth(message.state) > settings.TRACE_MAX_DEPTH:
                raise InputError(path, "state nesting is deeper than TRACE_MAX_DEPTH")
            try:
                work.state = msgspec.json.decode(message.state)
            except (msgspec.DecodeError, RecursionError):
                return  # a checkpoint in a binary form: not a state we can show
            work.has_state = True

    def _state_diff(self, stream: StreamRun, diff: pb.StateDiff, path: str) -> None:
        work = stream.work
        seq = diff.header.sequence
        new: Any
        if diff.full_state:
            new = json_value(diff.full_state, f"{path}.full_state")
        elif not work.has_state:
            stream.resync(f"a patch (sequence {seq}) arrived with no state to apply it to")
            self._finish_ended(stream, None, path)
            return
        else:
            operations = []
            for i, op in enumerate(diff.operations):
                if op.encoding != pb.DiffOperation.VALUE_ENCODING_JSON:
                    raise InputError(f"{path}.operations[{i}].encoding", "expected JSON values")
                name = _OP_NAMES.get(op.op, str(op.op))
                value = (
                    json_value(op.value, f"{path}.operations[{i}].value")
                    if name in ("add", "replace", "test")
                    else None
                )
                operations.append((name, op.path, value, getattr(op, "from")))
            try:
                new = apply_patch(work.state, operations)
            except PatchError as exc:
                stream.resync(f"the patch of sequence {seq} does not apply: {exc}")
                self._finish_ended(stream, None, path)
                return
        if diff.state_hash and not (work.captured and not diff.full_state):
            verified = hashlib.sha256(canonical_json(new)).digest() == diff.state_hash
            if not verified:
                stream.resync(f"state hash mismatch after sequence {seq}")
            elif diff.full_state:
                # A whole state that verifies is a fresh start: the run is in sync again.
                stream.cursor.needs_resync = False
                stream.cursor.resync_reason = ""
        work.state, work.has_state = new, True
        if diff.full_state:
            work.captured = False  # the producer's own state again, until the cursor is saved
        self._finish_ended(stream, new, path)

    def _summary(self, summary: pb.ExecutionTrace, path: str) -> None:
        execution_id = summary.execution_id
        stream = self._cursor_of(execution_id) if execution_id else None
        if stream is None and not execution_id:
            stream = self.by_thread.get(summary.header.thread_id or summary.thread_id)
        if stream is not None:
            if not self._fresh(stream, summary.header) or not stream.cursor.open:
                return
            attrs: dict[str, Any] = {
                "completed": summary.completed,
                "ended_at": summary.ended_at or None,
                "total_duration_ms": summary.total_duration_ms,
                "total_tokens": summary.total_tokens,
            }
            if summary.final_state:
                stream.work.state = json_value(summary.final_state, f"{path}.final_state")
                stream.work.has_state = True
            self._finish_run(stream, None, attrs, path)
            return
        if (
            execution_id
            and Run.objects.filter(project=self.project, execution_id=execution_id).exists()
        ):
            self.duplicates += 1  # stored by another way in: that copy stands
            return
        self.accepted += 1
        trace = trace_of(summary, path)
        trace.refuse_nul(path)
        self.traces.append(trace)


def _last_open(work: _Work) -> _Node | None:
    return work.nodes[-1] if work.nodes else None
