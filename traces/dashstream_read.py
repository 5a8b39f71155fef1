"""DashStream in, the reading side: a body's frames (``read_frames``), and the values
messages carry (attributes, metrics, JSON bytes, times, ids) as plain Python, for
``traces/dashstream_ingest.py``. A summary message that is a whole run becomes the
canonical trace here too (``trace_of``, DASHSTREAM.md's mapping).

``read_frames`` splits a body into decoded messages (one frame, or many each preceded by
its 4-byte big-endian length, the form ``traces/dashstream.py`` exports), keeping the
good ones and the first refusal: 413 for a frame over DashFlow's 10 MB (before or after
zstd, and a length prefix announcing more is refused before the frame is sliced out), 400
naming the frame for bytes that are not a message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard

import msgspec
from django.conf import settings

from .dashstream import MAX_MESSAGE_BYTES, FrameTooLarge, decode_frame
from .errors import InputError
from .parsing import json_depth
from .proto import dashstream_pb2 as pb
from .trace import ExecutionTrace

__all__ = [
    "FRAMES",
    "ONE_FRAME",
    "Frames",
    "attributes",
    "derived_id",
    "is_count",
    "iso",
    "json_value",
    "metric",
    "read_frames",
    "trace_of",
]

ONE_FRAME = "application/x-protobuf"
FRAMES = "application/x-dashstream-frames"


class Frames(NamedTuple):
    """The decoded messages of a body, each with its frame's index, and the first frame
    refused (``None`` when every frame decoded)."""

    messages: list[tuple[int, pb.DashStreamMessage]]
    error: InputError | None


def read_frames(body: bytes, content_type: str) -> Frames:
    """Decode a body of one frame (``application/x-protobuf``) or of length-prefixed
    frames (``application/x-dashstream-frames``); a refused frame does not stop the
    others."""
    kind = content_type.split(";")[0].strip().lower()
    error: InputError | None = None
    if kind == ONE_FRAME:
        raw = [body]
    elif kind == FRAMES:
        raw, error = _split(body)
    else:
        raise InputError(
            "Content-Type", f"expected {ONE_FRAME} or {FRAMES}, got {kind or 'none'!r}", 415
        )
    messages = []
    for index, data in enumerate(raw):
        path = f"$.frames[{index}]"
        try:
            message = decode_frame(data)
        except FrameTooLarge as exc:
            problem = InputError(path, str(exc), status=413)
        except ValueError as exc:
            problem = InputError(path, str(exc))
        else:
            if message.WhichOneof("message") is not None:
                messages.append((index, message))
                continue
            problem = InputError(path, "holds no DashStreamMessage (empty, or unknown fields)")
        error = error or problem
    return Frames(messages, error)


def _split(body: bytes) -> tuple[list[bytes], InputError | None]:
    frames: list[bytes] = []
    offset = 0
    while offset < len(body):
        path = f"$.frames[{len(frames)}]"
        if offset + 4 > len(body):
            return frames, InputError(path, f"truncated length prefix at byte {offset}")
        size = int.from_bytes(body[offset : offset + 4], "big")
        if size > MAX_MESSAGE_BYTES:
            # Refused before slicing it out: a frame past the limit is not held twice.
            return frames, InputError(
                path, f"frame of {size} bytes is over the 10 MB limit", status=413
            )
        offset += 4
        if offset + size > len(body):
            return frames, InputError(
                path, f"truncated frame at byte {offset}: {size} bytes announced"
            )
        frames.append(body[offset : offset + size])
        offset += size
    return frames, None


def trace_of(summary: pb.ExecutionTrace, path: str) -> ExecutionTrace:
    """A summary that is the whole run, as the canonical trace (DASHSTREAM.md's mapping)."""

    def state(raw: bytes, where: str) -> Any:
        return json_value(raw, where) if raw else None

    nodes = [
        {
            "node": record.node,
            "duration_ms": record.duration_ms,
            "tokens_used": record.total_tokens,
            "state_before": state(record.input, f"{path}.nodes_executed[{i}].input"),
            "state_after": state(record.output, f"{path}.nodes_executed[{i}].output"),
            "success": record.succeeded,
            "started_at": record.started_at or None,
            "metadata": {k: json_or_text(v) for k, v in record.metadata.items()},
        }
        for i, record in enumerate(summary.nodes_executed)
    ]
    errors = [
        {
            "node": error.node,
            "message": error.message,
            "error_type": error.error_code or None,
            "timestamp": error.timestamp or None,
            "recoverable": error.recovered,
            "context": error.stack_trace or None,
        }
        for error in summary.errors
    ]
    trace = {
        "thread_id": summary.thread_id or None,
        "execution_id": summary.execution_id or None,
        "nodes_executed": nodes,
        "total_duration_ms": summary.total_duration_ms,
        "total_tokens": summary.total_tokens,
        "errors": errors,
        "completed": summary.completed,
        "started_at": summary.started_at or None,
        "ended_at": summary.ended_at or None,
        "final_state": state(summary.final_state, f"{path}.final_state"),
        "metadata": {k: json_or_text(v) for k, v in summary.metadata.items()},
    }
    return ExecutionTrace.from_obj(trace, path)


def attributes(values: Any) -> dict[str, Any]:
    return {name: _attribute(value) for name, value in values.items()}


def _attribute(value: pb.AttributeValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_attribute(v) for v in value.array_value.values]
    if which == "map_value":
        return {k: _attribute(v) for k, v in value.map_value.values.items()}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def metric(value: pb.MetricValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    got = getattr(value, which)
    return got.hex() if isinstance(got, bytes) else got


def is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def json_value(raw: bytes | str, path: str) -> Any:
    """JSON text decoded, within the nesting every input path allows (the step panel, the
    exports and the decoder recurse once per level)."""
    max_depth: int = settings.TRACE_MAX_DEPTH
    if json_depth(raw.encode() if isinstance(raw, str) else raw) > max_depth:
        raise InputError(path, f"nesting is deeper than TRACE_MAX_DEPTH={max_depth}")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InputError(path, f"expected JSON: {exc}") from None
    except RecursionError:
        raise InputError(path, "nesting is too deep") from None


def json_or_text(raw: bytes | str) -> Any:
    data = raw.encode() if isinstance(raw, str) else raw
    if json_depth(data) > settings.TRACE_MAX_DEPTH:  # kept as text, never decoded
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def iso(micros: int) -> str | None:
    """Microseconds since the epoch as RFC 3339 (``None`` for 0, DashStream's "unset")."""
    if micros <= 0:
        return None
    try:
        moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def derived_id(header: pb.Header) -> str:
    """A run id for a GRAPH_START without ``execution_id``: its message id as a UUID (the
    same again for the same message re-sent), else one from its thread and sequence."""
    if len(header.message_id) == 16:
        return str(uuid.UUID(bytes=header.message_id))
    name = f"{header.thread_id}:{header.sequence}:{header.timestamp_us}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
