"""Turning a body into validated input, within the limits: a whole ``ExecutionTrace``
(``parse_trace``) or a batch of live events (``parse_events``).

Every check here runs before anything is written, so a refused body leaves the database
as it was. Limits are settings; each refusal names the field path and rule.
"""

from __future__ import annotations

import gc
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

import msgspec
from django.conf import settings

from .errors import InputError
from .models import EventType
from .trace import (
    NOT_UTF8,
    NUL_RULE,
    U64_MAX,
    ErrorTrace,
    ExecutionTrace,
    NodeExecution,
    NodeStarted,
    RunFinished,
    RunStarted,
    convert,
    refuse_nul,
    refuse_nul_in,
)

_NULL = msgspec.Raw(b"null")

# Compressed bytes read (and inflated) at a time: the body as sent is never held whole.
_INFLATE_CHUNK = 1024 * 1024

Body = bytes | bytearray


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo ``Content-Encoding: gzip``; the inflated size is held to the body limit too,
    so a small gzip bomb cannot expand past it."""
    limit: int = settings.TRACE_MAX_BODY_BYTES
    if len(body) > limit:
        raise too_large(len(body))
    if _encoding(content_encoding) == "identity":
        return body
    return bytes(_inflate([body], "TRACE_MAX_BODY_BYTES", limit))


def read_stream(
    read: Callable[[int], bytes], content_encoding: str | None, name: str, limit: int
) -> Body:
    """A body read from a stream (``read(n)``) within ``limit`` (the setting ``name``);
    ``Content-Encoding: gzip`` is inflated as it is read, so neither the compressed body
    nor the JSON it inflates to may pass the limit, and only the inflated JSON is held."""
    if _encoding(content_encoding) == "identity":
        body = read(limit + 1)
        if len(body) > limit:
            raise too_large(None, name)
        return body
    return _inflate(iter(lambda: read(_INFLATE_CHUNK), b""), name, limit)


def _encoding(content_encoding: str | None) -> str:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise InputError(
            "Content-Encoding", f"unsupported {encoding!r}; use gzip or none", status=415
        )
    return encoding


def _inflate(chunks: Iterable[bytes], name: str, limit: int) -> bytearray:
    """The gzip stream ``chunks`` inflated, each side within ``limit``."""
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    received = 0
    try:
        for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise too_large(None, name)
            # Never more output than the limit leaves room for: what zlib holds back
            # (unconsumed_tail) then means the JSON would pass it.
            out += inflater.decompress(inflater.unconsumed_tail + chunk, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise too_large(None, name)
    except zlib.error as exc:
        raise InputError("Content-Encoding", f"body is not valid gzip ({exc})") from None
    if not inflater.eof:
        raise InputError("Content-Encoding", "gzip body is truncated")
    return out


def too_large(size: int | None, name: str = "TRACE_MAX_BODY_BYTES") -> InputError:
    """The 413 for a body over the setting ``name`` (``size``: the bytes declared)."""
    limit = getattr(settings, name)
    got = f" (got {size} bytes)" if size is not None else ""
    return InputError("$", f"body is larger than {name}={limit} bytes{got}", status=413)


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"\0')


def json_depth(data: Body) -> int:
    """The deepest nesting of arrays and objects, without building any object (the
    decoder recurses, so depth is checked before decoding)."""
    brackets = _brackets_outside_strings(data)
    if brackets is None:
        brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    # Sibling leaves ("{}{}{}", a list of flat objects) all peak at the depth of one of
    # them, so each run is cut to one before the loop in Python, which then steps over
    # less than half the brackets of a typical trace.
    parens = brackets.translate(_PARENS).replace(b"()", b"x")
    while b"xx" in parens:
        parens = parens.replace(b"xx", b"x")
    steps = (1 if c == 0x28 else -1 for c in parens.replace(b"x", b"()"))
    return max(accumulate(steps))


# Bytes blanked and filtered at a time: the copies that takes stay this small however
# large the body (a 256 MB trace would otherwise be copied twice whole).
_DEPTH_CHUNK = 4 * 1024 * 1024


def _brackets_outside_strings(data: Body) -> bytes | None:
    r"""The brackets that the ``_STRINGS`` regex leaves, found with bytes methods only
    (the regex takes ~0.15 s on a 4.7 MB trace); ``None`` when the document is malformed
    in a way this shortcut could read differently, so the caller takes the regex.

    A bracket is inside a string when an odd number of quotes precede it. Escaped quotes
    are blanked first: inside a string every run of backslashes starts an escape, so
    pairing ``\\`` then ``\"`` left to right is exact there (other escapes cannot end a
    string). That is done a piece at a time, each piece ending before a byte that is not
    a backslash, so no pair is cut. Then only quotes, brackets and blanks are kept, and
    adjacent quote pairs are dropped: that keeps every remaining quote's parity, so the
    pieces at even positions of a split on quotes are the parts outside strings. A blank
    there means an escape outside any string, which the regex reads differently.
    """
    escapes = b"\\" in data
    if escapes:
        text = b"".join(
            bytes(piece)
            .replace(b"\\\\", b"\0\0")
            .replace(b'\\"', b"\0\0")
            .translate(None, _NOT_STRUCTURE)
            for piece in _pieces(data)
        )
    else:
        text = bytes(data.translate(None, _NOT_STRUCTURE))
    pieces = text.replace(b'""', b"").split(b'"')
    if len(pieces) % 2 == 0:  # an unterminated string
        return None
    outside = b"".join(pieces[::2])
    if escapes and b"\0" in outside:
        return None
    return outside.translate(None, _NOT_BRACKETS)


def _pieces(data: Body) -> Iterator[memoryview]:
    """``data`` in pieces of about ``_DEPTH_CHUNK`` bytes, none ending in a backslash."""
    view = memoryview(data)
    start = 0
    while start < len(data):
        end = min(start + _DEPTH_CHUNK, len(data))
        while end < len(data) and data[end - 1] == 0x5C:
            end += 1
        yield view[start:end]
        start = end


def check_depth(data: Body) -> None:
    """Refuse a JSON document nested deeper than ``TRACE_MAX_DEPTH``, before decoding it
    (the decoder and every reader of a state recurse once per level)."""
    max_depth: int = settings.TRACE_MAX_DEPTH
    if json_depth(data) > max_depth:
        raise InputError("$", f"nesting is deeper than TRACE_MAX_DEPTH={max_depth}")


class _LazyNode(NodeExecution, kw_only=True):
    state_before: msgspec.Raw = _NULL
    state_after: msgspec.Raw = _NULL


class _LazyError(ErrorTrace, kw_only=True):
    state_at_error: msgspec.Raw = _NULL


class _LazyTrace(ExecutionTrace, kw_only=True):
    """``ExecutionTrace`` with each state left as a ``msgspec.Raw`` slice of the body."""

    nodes_executed: list[_LazyNode]  # type: ignore[assignment]
    errors: list[_LazyError] = []  # type: ignore[assignment]
    final_state: msgspec.Raw = _NULL


def parse_trace(data: Body) -> ExecutionTrace:
    """Validate a JSON document as an ``ExecutionTrace`` within the limits.

    Its states are validated here (JSON, UTF-8; depth with the whole document) but left
    undecoded: each is a ``msgspec.Raw`` slice of ``data`` (``None`` for null), decoded
    one at a time on its way to storage (``trace.state_value``, called by
    ``store.Snapshots.add``). States decoded to Python objects take several times their
    JSON, so a large trace with all its states decoded at once would take several times
    its body in memory.
    """
    check_depth(data)
    trace = _LazyTrace.from_json(data)
    max_nodes: int = settings.TRACE_MAX_NODES
    if len(trace.nodes_executed) > max_nodes:
        raise InputError(
            "$.nodes_executed",
            f"has {len(trace.nodes_executed)} items, more than TRACE_MAX_NODES={max_nodes}",
        )
    collecting = gc.isenabled()
    gc.disable()  # as in ExecutionTrace.from_json: decoded states hold no cycles
    try:
        for i, node in enumerate(trace.nodes_executed):
            path = f"$.nodes_executed[{i}]"
            node.state_before = _checked_state(f"{path}.state_before", node.state_before)
            node.state_after = _checked_state(f"{path}.state_after", node.state_after)
        for i, error in enumerate(trace.errors):
            path = f"$.errors[{i}].state_at_error"
            error.state_at_error = _checked_state(path, error.state_at_error)
        trace.final_state = _checked_state("$.final_state", trace.final_state)
    finally:
        if collecting:
            gc.enable()
    return trace


def _checked_state(path: str, raw: msgspec.Raw) -> msgspec.Raw | None:
    """A state's slice if it is valid JSON (decoded once, then dropped), None for null."""
    if raw == _NULL:
        return None
    try:
        msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InputError(path, f"malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(path, NOT_UTF8) from None
    return raw


Seq = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class Event(msgspec.Struct, kw_only=True):
    seq: Seq
    type: Literal["run_started", "node_started", "node_finished", "error", "run_finished"]
    data: dict[str, Any] = {}


class EventBatch(msgspec.Struct, kw_only=True):
    events: list[Event]


DATA_TYPES: dict[str, type[msgspec.Struct]] = {
    EventType.RUN_STARTED: RunStarted,
    EventType.NODE_STARTED: NodeStarted,
    EventType.NODE_FINISHED: NodeExecution,
    EventType.ERROR: ErrorTrace,
    EventType.RUN_FINISHED: RunFinished,
}


class ParsedEvent(msgspec.Struct):
    seq: int
    type: str
    data: Any  # one of DATA_TYPES

    def wire(self) -> dict[str, Any]:
        """The event as websocket clients receive it (and as the producer sent it)."""
        return {"seq": self.seq, "type": self.type, "data": msgspec.to_builtins(self.data)}


def parse_events(body: bytes, max_events: int) -> list[ParsedEvent]:
    """Validate ``{"events": [...]}`` with the rules of a whole trace (depth, types,
    u64 ranges, no NUL outside states); errors name the path, such as
    ``$.events[2].data.duration_ms``."""
    check_depth(body)
    try:
        batch = msgspec.json.decode(body, type=EventBatch)
    except msgspec.ValidationError as exc:
        error = InputError.from_validation(exc, body)
        if error.rule.startswith("invalid enum value"):
            allowed = ", ".join(EventType.values)
            got = error.rule.removeprefix("invalid enum value ")
            raise InputError(error.path, f"expected one of {allowed}, got {got}") from None
        raise error from None
    except msgspec.DecodeError as exc:
        raise InputError("$", f"malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InputError("$", NOT_UTF8) from None
    if len(batch.events) > max_events:
        raise InputError(
            "$.events", f"has {len(batch.events)} items, more than TRACE_MAX_EVENTS={max_events}"
        )
    parsed = []
    for i, event in enumerate(batch.events):
        path = f"$.events[{i}].data"
        data = convert(event.data, DATA_TYPES[event.type], path)
        refuse_nul(path, data)
        parsed.append(ParsedEvent(event.seq, event.type, data))
    return parsed


def parse_step_index(raw: str | None, name: str = "step") -> int | None:
    """A step index from a query parameter (DashFlow's ``index``: 0 to 2**64 - 1), or None
    when it is absent; anything else is refused naming ``name``."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > U64_MAX:
        raise InputError(name, f"expected a step index (an unsigned integer), got {raw[:40]!r}")
    return int(raw)


def parse_json(data: bytes) -> Any:
    """Any other JSON body of the API (a comment, a verdict, a member, filters): within
    the depth limit, UTF-8, and with no NUL character in any key or string (PostgreSQL
    text cannot hold one), each refusal naming the JSON path."""
    check_depth(data)
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InputError("$", f"malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InputError("$", NOT_UTF8) from None
    if b"\\u0000" in data:
        refuse_nul_in("$", value, NUL_RULE)
    return value


def check_text(name: str, value: str) -> None:
    """Refuse a NUL character in one text input (a query parameter, a form field, a path
    segment, a tool argument) naming it: PostgreSQL text cannot hold one."""
    if "\x00" in value:
        raise InputError(name, NUL_RULE)


def check_form_encoded(raw: bytes | str, what: str) -> None:
    """Refuse a query string or an ``application/x-www-form-urlencoded`` body whose
    names or values decode to invalid UTF-8 or hold a NUL character, naming the field
    (``what`` when no name can be read); Django itself would replace bad bytes silently
    and pass the NUL on to the database."""
    raw = raw.encode("latin-1") if isinstance(raw, str) else raw
    if b"%" not in raw and b"\0" not in raw and raw.isascii():
        return  # the usual case: nothing to decode
    for part in raw.replace(b";", b"&").split(b"&"):
        name, _, value = part.partition(b"=")
        try:
            name_text = unquote_to_bytes(name.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            raise InputError(what, "a parameter name is not valid UTF-8") from None
        try:
            text = unquote_to_bytes(value.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            raise InputError(name_text or what, "is not valid UTF-8") from None
        check_text(name_text or what, name_text)
        check_text(name_text or what, text)
