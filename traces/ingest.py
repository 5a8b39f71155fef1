"""Turning an HTTP body into a validated ``ExecutionTrace``, within the limits.

Every check here runs before anything is written, so a refused body leaves the database
as it was. Limits are settings (DESIGN.md §7); each refusal names the field path and rule.
"""

from __future__ import annotations

import re
import zlib
from itertools import accumulate

from django.conf import settings

from .trace import ExecutionTrace, TraceError


class IngestError(Exception):
    """A refused body: ``status`` is the HTTP status, ``path`` and ``rule`` say why."""

    def __init__(self, status: int, path: str, rule: str) -> None:
        super().__init__(f"{path}: {rule}")
        self.status = status
        self.path = path
        self.rule = rule


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
        raise IngestError(415, "Content-Encoding", f"unsupported {encoding!r}; use gzip or none")
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise IngestError(400, "Content-Encoding", f"body is not valid gzip ({exc})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise too_large(None)
    if not inflater.eof:
        raise IngestError(400, "Content-Encoding", "gzip body is truncated")
    return data


def too_large(size: int | None) -> IngestError:
    limit = settings.TRACE_MAX_BODY_BYTES
    got = f" (got {size} bytes)" if size is not None else ""
    return IngestError(413, "$", f"body is larger than TRACE_MAX_BODY_BYTES={limit} bytes{got}")


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects, without building any object (the
    decoder recurses, so depth is checked before decoding)."""
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = (1 if c in (0x5B, 0x7B) else -1 for c in brackets)
    return max(accumulate(steps))


def parse_trace(data: bytes) -> ExecutionTrace:
    """Validate a JSON document as an ``ExecutionTrace`` within the limits."""
    max_depth: int = settings.TRACE_MAX_DEPTH
    if json_depth(data) > max_depth:
        raise IngestError(400, "$", f"nesting is deeper than TRACE_MAX_DEPTH={max_depth}")
    try:
        trace = ExecutionTrace.from_json(data)
    except TraceError as exc:
        raise IngestError(400, exc.path, exc.rule) from None
    max_nodes: int = settings.TRACE_MAX_NODES
    if len(trace.nodes_executed) > max_nodes:
        raise IngestError(
            400,
            "$.nodes_executed",
            f"has {len(trace.nodes_executed)} items, more than TRACE_MAX_NODES={max_nodes}",
        )
    return trace
