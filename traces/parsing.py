"""Turning a body into validated input, within the limits: a whole ``ExecutionTrace``
(``parse_trace``) or a batch of live events (``parse_events``).

Every check here runs before anything is written, so a refused body leaves the database
as it was. Limits are settings; each refusal names the field path and rule.
"""

from __future__ import annotations

import re
import zlib
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


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo ``Content-Encoding: gzip``; the inflated size is held to the body limit too,
    so a small gzip bomb cannot expand past it."""
    limit: int = settings.TRACE_MAX_BODY_BYTES
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > limit:
            raise too_large(len(body))
        return body
    if encoding != "gzip":
        raise InputError(
            "Content-Encoding", f"unsupported {encoding!r}; use gzip or none", status=415
        )
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InputError("Content-Encoding", f"body is not valid gzip ({exc})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise too_large(None)
    if not inflater.eof:
        raise InputError("Content-Encoding", "gzip body is truncated")
    return data


def too_large(size: int | None) -> InputError:
    limit = settings.TRACE_MAX_BODY_BYTES
    got = f" (got {size} bytes)" if size is not None else ""
    return InputError(
        "$", f"body is larger than TRACE_MAX_BODY_BYTES={limit} bytes{got}", status=413
    )


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"\0')


def json_depth(data: bytes) -> int:
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


def _brackets_outside_strings(data: bytes) -> bytes | None:
    r"""The brackets that the ``_STRINGS`` regex leaves, found with bytes methods only
    (the regex takes ~0.15 s on a 4.7 MB trace); ``None`` when the document is malformed
    in a way this shortcut could read differently, so the caller takes the regex.

    A bracket is inside a string when an odd number of quotes precede it. Escaped quotes
    are blanked first: inside a string every run of backslashes starts an escape, so
    pairing ``\\`` then ``\"`` left to right is exact there (other escapes cannot end a
    string). Then only quotes, brackets and blanks are kept, and adjacent quote pairs are
    dropped: that keeps every remaining quote's parity, so the pieces at even positions of
    a split on quotes are the parts outside strings. A blank there means an escape outside
    any string, which the regex reads differently.
    """
    escapes = b"\\" in data
    text = data.replace(b"\\\\", b"\0\0").replace(b'\\"', b"\0\0") if escapes else data
    pieces = text.translate(None, _NOT_STRUCTURE).replace(b'""', b"").split(b'"')
    if len(pieces) % 2 == 0:  # an unterminated string
        return None
    outside = b"".join(pieces[::2])
    if escapes and b"\0" in outside:
        return None
    return outside.translate(None, _NOT_BRACKETS)


def check_depth(data: bytes) -> None:
    """Refuse a JSON document nested deeper than ``TRACE_MAX_DEPTH``, before decoding it
    (the decoder and every reader of a state recurse once per level)."""
    max_depth: int = settings.TRACE_MAX_DEPTH
    if json_depth(data) > max_depth:
        raise InputError("$", f"nesting is deeper than TRACE_MAX_DEPTH={max_depth}")


def parse_trace(data: bytes) -> ExecutionTrace:
    """Validate a JSON document as an ``ExecutionTrace`` within the limits."""
    check_depth(data)
    trace = ExecutionTrace.from_json(data)
    max_nodes: int = settings.TRACE_MAX_NODES
    if len(trace.nodes_executed) > max_nodes:
        raise InputError(
            "$.nodes_executed",
            f"has {len(trace.nodes_executed)} items, more than TRACE_MAX_NODES={max_nodes}",
        )
    return trace


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
