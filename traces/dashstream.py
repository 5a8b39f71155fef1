"""A run as DashStream messages, DashFlow's streaming protocol (``../shared/DASHSTREAM.md``).

One run becomes, in order (every message with a header: a 16-byte message id, the time in
microseconds, the thread id, a sequence counting from 1, the message type, schema
version 1):

- ``Event`` GRAPH_START: attributes ``execution_id`` (and the hierarchy ids when present),
  ``graph_name`` (from the trace's metadata), ``initial_state_json`` (the first node's
  ``state_before``, when captured);
- per node execution: ``Event`` NODE_START; ``Event`` NODE_ERROR for each error recorded
  at that execution (attribute ``error`` = the message, plus ``error_type``,
  ``recoverable``, ``retry_attempted``, ``context``), or one built from ``error_message``
  for a failed node without a recorded error; ``Event`` NODE_END with ``duration_us``
  and attributes ``success``, ``tokens_used``, ``index``; then a ``StateDiff`` when the
  node's ``state_after`` was captured;
- ``Event`` NODE_ERROR for errors not tied to a node execution;
- ``Event`` GRAPH_END (``duration_us``, ``completed``, totals);
- the closing ``ExecutionTrace`` summary (node states left out, and metadata
  ``dashstream_states_omitted`` = ``true``, past 8 MB; no summary at all in the rare run
  whose summary would still be over DashFlow's 10 MB message limit).

A ``StateDiff`` is the RFC 6902 patch (``traces/jsondiff.py``) from the state a consumer
holds (the initial state, then each diff's result) to the node's ``state_after``, values
as JSON; ``state_hash`` is the raw SHA-256 of the new state's canonical JSON. When the
patch's JSON text would be longer than 1.1x the state's, or the consumer holds no state
yet, ``full_state`` carries the canonical JSON of the whole state and ``operations`` is
empty (so a receiver can check ``full_state`` against ``state_hash`` byte for byte).

Everything is derived from the trace, so encoding a run twice gives identical bytes:
message ids are UUIDv5 of the execution id and the sequence; timestamps come from the
trace's own ``started_at`` values (plus durations), 0 when it has none.

A message is framed as DashFlow frames it: ``0x00`` + protobuf, or ``0x01`` + zstd of
the protobuf when the message is over 512 bytes and compression makes it smaller (then
``header.compression`` is ZSTD). An export file is those frames, each preceded by its
length as 4 bytes big-endian.

One module past ~400 lines on purpose: it is one protocol, the messages and the framing
that writes and reads them back, and the order above is kept in one place.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Container, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import zstandard
from google.protobuf.message import DecodeError, Message

from . import zstd
from .jsondiff import diff
from .proto import dashstream_pb2 as pb
from .trace import canonical_json

if TYPE_CHECKING:
    from .trace import ErrorTrace, ExecutionTrace, NodeExecution

__all__ = [
    "COMPRESSION_THRESHOLD",
    "MAX_MESSAGE_BYTES",
    "FrameTooLarge",
    "decode_frame",
    "encode_file",
    "encode_jsonl",
    "frame",
    "message_to_json",
    "messages",
    "read_file",
]

SCHEMA_VERSION = 1
# DashFlow compresses messages over 512 bytes, and its decoders refuse payloads over
# 10 MB, compressed or not (decompression bombs).
COMPRESSION_THRESHOLD = 512
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
FULL_STATE_RATIO = 1.1
# The closing summary repeats every node's states; past this size it leaves them out (they
# are all in the StateDiffs) so that it stays under MAX_MESSAGE_BYTES.
SUMMARY_BUDGET = 8 * 1024 * 1024
SUMMARY_STATES_OMITTED = "dashstream_states_omitted"

# Message ids are UUIDv5 in this namespace of "<execution id>:<sequence>".
NAMESPACE = uuid.UUID("6c1f0d5e-2b4a-5e53-9a51-64617368666c")

_INT64_MAX = 2**63 - 1
_EVENT = pb.MESSAGE_TYPE_EVENT
_STATE_DIFF = pb.MESSAGE_TYPE_STATE_DIFF
_EXECUTION_TRACE = pb.MESSAGE_TYPE_EXECUTION_TRACE
_OPS = {
    "add": pb.DiffOperation.OP_TYPE_ADD,
    "remove": pb.DiffOperation.OP_TYPE_REMOVE,
    "replace": pb.DiffOperation.OP_TYPE_REPLACE,
}
# The length of an operation's JSON text besides its path and value:
# {"op":"<op>","path":<path>,"value":<value>}, (the comma separating it from the next).
_OP_TEXT = {"add": 27 + 3, "replace": 27 + 7}
_encode = msgspec.json.encode


def messages(
    trace: ExecutionTrace, steps: Container[int] | None = None
) -> Iterator[pb.DashStreamMessage]:
    """The run's ``DashStreamMessage``s, in order. ``steps`` limits the node executions
    to these positions in ``nodes_executed`` (diffs then run from one selected node to the
    next); errors not tied to a node are kept only when every node is."""
    return _Stream(trace).run(steps)


class _Stream:
    """The per-run counters: sequence, clock, and the state the consumer holds."""

    def __init__(self, trace: ExecutionTrace) -> None:
        self.trace = trace
        self.thread_id = trace.thread_id or ""
        key = trace.execution_id
        if key is None:
            # No id to derive message ids from: the trace's own bytes stand in for one.
            key = uuid.uuid5(NAMESPACE, trace.to_json().decode()).hex
        # UUIDv5 of "<key>:<seq>": SHA-1 over the namespace and the name, the common
        # prefix hashed once.
        self.id_hash = hashlib.sha1(NAMESPACE.bytes + f"{key}:".encode(), usedforsecurity=False)
        self.seq = 0
        self.clock = _micros(trace.started_at) or 0
        # The state a consumer of the stream holds, with its canonical JSON.
        self.state: Any = None
        self.state_json: bytes | None = None

    def fill(self, header: pb.Header, kind: pb.MessageType, at: int) -> None:
        # Fields are set in place: building a Header and copying it into its message
        # costs twice as much, and a run has three messages per node execution.
        self.seq += 1
        seq = self.seq
        digest = self.id_hash.copy()
        digest.update(str(seq).encode())
        header.message_id = _uuid5_bytes(digest.digest())
        header.timestamp_us = min(at, _INT64_MAX)
        header.thread_id = self.thread_id
        header.sequence = seq
        header.type = kind
        header.schema_version = SCHEMA_VERSION

    def event(
        self,
        kind: pb.EventType,
        at: int,
        node: str = "",
        duration_us: int = 0,
        attributes: dict[str, Any] | None = None,
    ) -> pb.DashStreamMessage:
        message = pb.DashStreamMessage()
        event = message.event
        self.fill(event.header, _EVENT, at)
        event.event_type = kind
        if node:
            event.node_id = node
        if duration_us:
            event.duration_us = min(duration_us, _INT64_MAX)
        if attributes:
            target = event.attributes
            for name, value in attributes.items():
                if value is not None:
                    _set_attribute(target[name], value)
        return message

    def run(self, steps: Container[int] | None) -> Iterator[pb.DashStreamMessage]:
        trace = self.trace
        nodes = trace.nodes_executed
        chosen = [i for i in range(len(nodes)) if steps is None or i in steps]
        errors_at: dict[int, list[ErrorTrace]] = {}
        loose: list[ErrorTrace] = []
        for error in trace.errors:
            at = error.execution_index
            if at is not None and at < len(nodes):
                errors_at.setdefault(at, []).append(error)
            else:
                loose.append(error)

        start: dict[str, Any] = {"execution_id": trace.execution_id}
        if isinstance(trace.parent_execution_id, str):
            start["parent_execution_id"] = trace.parent_execution_id
        if isinstance(trace.root_execution_id, str):
            start["root_execution_id"] = trace.root_execution_id
        if isinstance(trace.depth, int):
            start["depth"] = trace.depth
        graph_name = trace.metadata.get("graph_name")
        if isinstance(graph_name, str):
            start["graph_name"] = graph_name
        if chosen and nodes[chosen[0]].state_before is not None:
            self.state = nodes[chosen[0]].state_before
            self.state_json = canonical_json(self.state)
            start["initial_state_json"] = self.state_json.decode()
        start["started_at"] = trace.started_at
        yield self.event(pb.EVENT_TYPE_GRAPH_START, self.clock, attributes=start)

        summary = _Summary()
        for position in chosen:
            node = nodes[position]
            began = _micros(node.started_at) or self.clock
            yield self.event(
                pb.EVENT_TYPE_NODE_START, began, node.node, attributes={"index": node.index}
            )
            node_errors = errors_at.get(position, [])
            for error in node_errors:
                yield self.error(error, began)
            if not node.success and not node_errors:
                yield self.event(
                    pb.EVENT_TYPE_NODE_ERROR,
                    began,
                    node.node,
                    attributes={"error": node.error_message or "node failed"},
                )
            ended = began + node.duration_ms * 1000
            self.clock = ended
            yield self.event(
                pb.EVENT_TYPE_NODE_END,
                ended,
                node.node,
                duration_us=node.duration_ms * 1000,
                attributes={
                    "success": node.success,
                    "tokens_used": node.tokens_used,
                    "index": node.index,
                },
            )
            before_json = self.state_json if node.state_before is self.state else None
            if node.state_after is not None:
                yield self.state_diff(node.state_after, ended)
                after_json = self.state_json
            else:
                after_json = None
            summary.add(position, node, before_json, after_json)

        if steps is None:
            for error in loose:
                yield self.error(error, self.clock)
        ended = _micros(trace.ended_at) or self.clock
        yield self.event(
            pb.EVENT_TYPE_GRAPH_END,
            ended,
            duration_us=trace.total_duration_ms * 1000,
            attributes={
                "completed": trace.completed,
                "total_duration_ms": trace.total_duration_ms,
                "total_tokens": trace.total_tokens,
                "ended_at": trace.ended_at,
            },
        )
        summary_message = summary.message(trace, steps is None)
        if summary_message is not None:
            self.fill(summary_message.execution_trace.header, _EXECUTION_TRACE, ended)
            yield summary_message

    def error(self, error: ErrorTrace, at: int) -> pb.DashStreamMessage:
        return self.event(
            pb.EVENT_TYPE_NODE_ERROR,
            _micros(error.timestamp) or at,
            error.node,
            attributes={
                "error": error.message,
                "error_type": error.error_type,
                "recoverable": error.recoverable,
                "retry_attempted": error.retry_attempted,
                "context": error.context,
            },
        )

    def state_diff(self, after: Any, at: int) -> pb.DashStreamMessage:
        after_json = canonical_json(after)
        message = pb.DashStreamMessage()
        state_diff = message.state_diff
        self.fill(state_diff.header, _STATE_DIFF, at)
        state_diff.state_hash = hashlib.sha256(after_json).digest()
        if self.state_json is None:
            state_diff.full_state = after_json
        elif after_json != self.state_json:
            limit = len(after_json) * FULL_STATE_RATIO
            operations = state_diff.operations
            # The patch's length as JSON text: [{"op":"add","path":"/a","value":1},...]
            size = 1
            for change in diff(self.state, after):
                path_json = _encode(change.path)
                if change.op == "remove":
                    size += 24 + len(path_json)  # {"op":"remove","path":<path>},
                    value = b""
                else:
                    value = _encode(change.after)
                    size += _OP_TEXT[change.op] + len(path_json) + len(value)
                if size > limit:
                    state_diff.ClearField("operations")
                    state_diff.full_state = after_json
                    break
                operations.add(op=_OPS[change.op], path=change.path, value=value)
        self.state = after
        self.state_json = after_json
        return message


class _Summary:
    """The closing ``ExecutionTrace`` message, gathered while the nodes stream.

    Each node's record is added to the message itself as it comes, not kept as a Python
    object of its own: the message's storage is compact, a record object per node was
    most of a 100,000-node run's DashStream export memory (``benchmarks/exports.py
    --single``)."""

    def __init__(self) -> None:
        self.whole = pb.DashStreamMessage()
        self.summary = self.whole.execution_trace
        self.positions: set[int] = set()
        self.size = 0
        self.with_states = True
        # The records' size without states: the summary is at least this big, so past
        # DashFlow's limit it will not be sent, and no more records are kept.
        self.floor = 0
        self.too_big = False

    def add(
        self, position: int, node: NodeExecution, before: bytes | None, after: bytes | None
    ) -> None:
        self.positions.add(position)
        if self.too_big:
            return
        record = self.summary.nodes_executed.add(
            node=node.node,
            duration_ms=node.duration_ms,
            total_tokens=node.tokens_used,
            succeeded=node.success,
            started_at=node.started_at or "",
            metadata={key: _encode(value).decode() for key, value in node.metadata.items()},
        )
        bare = record.ByteSize()
        self.size += bare + 8
        self.floor += bare + 2  # + its field tag and length
        if self.floor > MAX_MESSAGE_BYTES:
            self.too_big = True
            del self.summary.nodes_executed[:]
            return
        if self.with_states:
            if before is None and node.state_before is not None:
                before = canonical_json(node.state_before)
            if after is None and node.state_after is not None:
                after = canonical_json(node.state_after)
            self.size += len(before or b"") + len(after or b"") + 16
            if self.size > SUMMARY_BUDGET:
                self.with_states = False
                for earlier in self.summary.nodes_executed:
                    earlier.ClearField("input")
                    earlier.ClearField("output")
            else:
                record.input = before or b""
                record.output = after or b""

    def message(self, trace: ExecutionTrace, all_errors: bool) -> pb.DashStreamMessage | None:
        """The summary, or ``None`` when even without node states it would be over the
        10 MB DashFlow's decoders accept (the stream has said everything already)."""
        if self.too_big:
            return None
        summary = self.summary
        summary.thread_id = trace.thread_id or ""
        summary.execution_id = trace.execution_id or ""
        summary.total_duration_ms = trace.total_duration_ms
        summary.total_tokens = trace.total_tokens
        summary.errors.extend(
            pb.ErrorRecord(
                node=e.node,
                message=e.message,
                error_code=e.error_type or "",
                timestamp=e.timestamp or "",
                recovered=e.recoverable,
                stack_trace=e.context or "",
            )
            for e in trace.errors
            if all_errors or e.execution_index in self.positions
        )
        summary.completed = trace.completed
        summary.started_at = trace.started_at or ""
        summary.ended_at = trace.ended_at or ""
        summary.final_state = (
            b"" if trace.final_state is None else canonical_json(trace.final_state)
        )
        for key, value in trace.metadata.items():
            summary.metadata[key] = _encode(value)
        if not self.with_states:
            summary.metadata[SUMMARY_STATES_OMITTED] = b"true"
        if summary.ByteSize() > MAX_MESSAGE_BYTES - 1024:  # room for the header
            return None
        return self.whole


def frame(message: pb.DashStreamMessage) -> bytes:
    """One framed message: ``0x00`` + protobuf, or ``0x01`` + zstd(protobuf) when the
    message is over 512 bytes and compression makes it smaller."""
    # Deterministic: map entries (attributes, metadata) in key order, not in the hash
    # table's, which differs from one process to the next.
    raw: bytes = message.SerializeToString(deterministic=True)
    if len(raw) <= COMPRESSION_THRESHOLD:
        return b"\x00" + raw
    header = _header_of(message)
    header.compression = pb.COMPRESSION_ZSTD
    marked: bytes = message.SerializeToString(deterministic=True)
    packed = zstd.compress(marked)
    if len(packed) < len(raw):
        return b"\x01" + packed
    header.ClearField("compression")
    return b"\x00" + raw


class FrameTooLarge(ValueError):
    """A DashStream payload over DashFlow's 10 MB limit, compressed or decompressed."""


def decode_frame(data: bytes) -> pb.DashStreamMessage:
    """A framed message back to a ``DashStreamMessage``, with DashFlow's 10 MB limit
    (``FrameTooLarge`` past it; ``ValueError`` for bytes that are not a message). A
    payload without a framing byte is parsed whole (legacy)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise FrameTooLarge(f"DashStream payload of {len(data)} bytes is over the 10 MB limit")
    marker, body = data[:1], data[1:]
    if marker == b"\x01":
        try:
            body = zstd.decompress_bounded(body, MAX_MESSAGE_BYTES)
        except zstd.TooLarge:
            raise FrameTooLarge("decompressed DashStream payload is over the 10 MB limit") from None
        except zstandard.ZstdError as exc:
            raise ValueError(f"not valid zstd ({exc})") from None
    elif marker != b"\x00":
        body = data
    message = pb.DashStreamMessage()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"not a DashStreamMessage ({exc or 'undecodable protobuf'})") from None
    return message


def read_file(data: bytes) -> Iterator[bytes]:
    """The frames of an export file (each preceded by its 4-byte big-endian length)."""
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError(f"truncated length prefix at byte {offset}")
        size = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if offset + size > len(data):
            raise ValueError(f"truncated frame at byte {offset}: {size} bytes announced")
        yield data[offset : offset + size]
        offset += size


# A run's frames are written this many at a time: big enough to keep per-chunk overhead
# (database progress, file writes) negligible, small enough to bound the memory held.
_CHUNK_ROWS = 1000
_CHUNK_BYTES = 1024 * 1024


def encode_file(
    trace: ExecutionTrace, steps: Container[int] | None = None
) -> Iterator[tuple[bytes, int]]:
    """The run's part of a ``dashstream`` export: (chunk of length-prefixed frames,
    messages in it)."""
    parts: list[bytes] = []
    size = 0
    for message in messages(trace, steps):
        framed = frame(message)
        parts.append(len(framed).to_bytes(4, "big"))
        parts.append(framed)
        size += len(framed) + 4
        if len(parts) >= 2 * _CHUNK_ROWS or size >= _CHUNK_BYTES:
            yield b"".join(parts), len(parts) // 2
            parts, size = [], 0
    if parts:
        yield b"".join(parts), len(parts) // 2


def encode_jsonl(
    trace: ExecutionTrace, steps: Container[int] | None = None
) -> Iterator[tuple[bytes, int]]:
    """The run's part of a ``dashstream_jsonl`` export: one message per line, for people
    to read (see ``message_to_json``)."""
    lines: list[bytes] = []
    for message in messages(trace, steps):
        lines.append(_encode(message_to_json(message)) + b"\n")
        if len(lines) >= _CHUNK_ROWS:
            yield b"".join(lines), len(lines)
            lines = []
    if lines:
        yield b"".join(lines), len(lines)


# Bytes fields that hold JSON text, shown decoded; ids as UUIDs; hashes as hex.
_JSON_BYTES = {"value", "full_state", "input", "output", "final_state", "metadata"}
_UUID_BYTES = {"message_id", "parent_id"}


def message_to_json(message: Message) -> dict[str, Any]:
    """A message as plain JSON for reading: proto field names, enum names, message ids as
    UUID strings, ``state_hash`` as hex, JSON-carrying bytes (patch values, states,
    metadata) decoded; fields at their default value are left out, as protobuf does."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.name] = _field_json(field, value)
    if isinstance(message, pb.DiffOperation) and "op" not in out:
        # OP_TYPE_ADD is the enum's zero, which protobuf leaves out; a reader needs it.
        out = {"op": "OP_TYPE_ADD", **out}
    return out


def _field_json(field: Any, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {key: _scalar_json(field.name, value_field, value[key]) for key in sorted(value)}
    if field.is_repeated:
        return [_scalar_json(field.name, field, item) for item in value]
    return _scalar_json(field.name, field, value)


def _scalar_json(name: str, field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return message_to_json(value)
    if field.enum_type is not None:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if isinstance(value, bytes):
        if name in _UUID_BYTES and len(value) == 16:
            return str(uuid.UUID(bytes=value))
        if name == "state_hash":
            return value.hex()
        if name in _JSON_BYTES and value:
            try:
                return msgspec.json.decode(value)
            except msgspec.DecodeError:
                pass
        return value.hex()
    return value


def _header_of(message: pb.DashStreamMessage) -> pb.Header:
    which = message.WhichOneof("message")
    assert which is not None, "a DashStreamMessage without a message"
    header: pb.Header = getattr(message, which).header
    return header


def _set_attribute(target: pb.AttributeValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        # AttributeValue has int64; DashFlow's u64 counters can be larger.
        if value > _INT64_MAX:
            target.string_value = str(value)
        else:
            target.int_value = value
    elif isinstance(value, float):
        target.float_value = value
    else:
        target.string_value = str(value)


def _uuid5_bytes(sha1: bytes) -> bytes:
    """The 16 bytes of the UUIDv5 whose SHA-1 is ``sha1`` (as ``uuid.uuid5`` builds it)."""
    raw = bytearray(sha1[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


_parsed: dict[str, int | None] = {}


def _micros(stamp: str | None) -> int | None:
    """Microseconds since the epoch of an ISO 8601 time (UTC when it names no zone);
    ``None`` when absent or unreadable."""
    if stamp is None:
        return None
    if stamp in _parsed:
        return _parsed[stamp]
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        result = None
    else:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        result = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if len(_parsed) > 100_000:
        _parsed.clear()
    _parsed[stamp] = result
    return result
