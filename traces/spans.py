"""OpenTelemetry spans in: an OTLP ``ExportTraceServiceRequest`` (protobuf or OTLP/JSON)
as validated ``Span``s, within the limits.

``opentelemetry-proto`` parses; this module checks what the mapping relies on and turns each
span into a plain ``Span`` (attributes as Python values), which the span buffer stores and
``traces/span_mapping.py`` reads. A body that cannot be read at all is an ``InputError``
(400, nothing written); a span that breaks a rule is rejected alone and counted, as the
OTLP partial-success answer wants (``Parsed.rejected``).
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from django.conf import settings
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from .errors import InputError
from .parsing import json_depth

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

# A span's name and an attribute key longer than this are cut: they become node names and
# metadata keys, and no instrumentation writes names anywhere near this long.
MAX_NAME = 200


class SpanEvent(msgspec.Struct, array_like=True):
    name: str
    time_ns: int
    attributes: dict[str, Any]


class Span(msgspec.Struct, array_like=True):
    """One finished span, as the mapping reads it (ids in lowercase hex)."""

    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    name: str
    start_ns: int
    end_ns: int
    status: int
    status_message: str
    attributes: dict[str, Any]
    events: list[SpanEvent]


class Parsed(msgspec.Struct):
    spans: list[Span]
    rejected: int
    # The first rejection's reason, naming the span (OTLP's partial_success.error_message).
    error: str


def parse_export(body: bytes, content_type: str) -> Parsed:
    """An ``ExportTraceServiceRequest`` body (already within the size limit, gzip undone)
    as spans. ``content_type`` is ``PROTOBUF`` or ``JSON``; anything else is a 415."""
    if content_type == PROTOBUF:
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except DecodeError as exc:
            raise InputError("$", f"not an OTLP ExportTraceServiceRequest ({exc})") from None
        # protobuf nests without a limit of ours: the attribute values are what can nest.
    elif content_type == JSON:
        request = _from_json(body)
    else:
        raise InputError(
            "Content-Type",
            f"unsupported {content_type or 'none'!r}; use {PROTOBUF} or {JSON}",
            status=415,
        )
    return spans_of(request)


def spans_of(request: ExportTraceServiceRequest) -> Parsed:
    """The request's spans; each span that breaks a rule is left out and counted."""
    spans: list[Span] = []
    rejected = 0
    error = ""
    for r, resource_spans in enumerate(request.resource_spans):
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                path = f"$.resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                try:
                    spans.append(_span(span, path))
                except InputError as exc:
                    rejected += 1
                    error = error or str(exc)
    return Parsed(spans, rejected, error)


def _from_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON: protobuf's JSON mapping, except that trace and span ids are hex (not
    base64) and field names may be camelCase or snake_case."""
    max_depth: int = settings.TRACE_MAX_DEPTH
    if json_depth(body) > max_depth:
        raise InputError("$", f"nesting is deeper than TRACE_MAX_DEPTH={max_depth}")
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InputError("$", f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InputError("$", "expected a JSON object (an ExportTraceServiceRequest)")
    for r, resource_spans in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for i, span in enumerate(_items(scope_spans, "spans", "spans")):
                path = f"$.resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _hex_ids_to_base64(span, path)
                for link in _items(span, "links", "links"):
                    _hex_ids_to_base64(link, f"{path}.links[]")
    try:
        return json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except json_format.ParseError as exc:
        raise InputError("$", f"not an OTLP ExportTraceServiceRequest ({exc})") from None


def _items(parent: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    found = parent.get(camel, parent.get(snake))
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


_ID_FIELDS = (
    ("traceId", "trace_id"),
    ("spanId", "span_id"),
    ("parentSpanId", "parent_span_id"),
)


def _hex_ids_to_base64(span: dict[str, Any], path: str) -> None:
    for camel, snake in _ID_FIELDS:
        for name in (camel, snake):
            value = span.get(name)
            if isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    rule = f"expected hex, got {value[:40]!r}"
                    raise InputError(f"{path}.{camel}", rule) from None
                span[name] = base64.b64encode(raw).decode()


def _span(span: Any, path: str) -> Span:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise InputError(f"{path}.traceId", "expected 16 bytes, not all zero")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise InputError(f"{path}.spanId", "expected 8 bytes, not all zero")
    if len(span.parent_span_id) not in (0, 8):
        raise InputError(f"{path}.parentSpanId", "expected 8 bytes or none")
    if span.end_time_unix_nano < span.start_time_unix_nano:
        raise InputError(f"{path}.endTimeUnixNano", "expected at or after startTimeUnixNano")
    parent = span.parent_span_id.hex() if any(span.parent_span_id) else ""
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=parent,
        name=span.name[:MAX_NAME],
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=int(span.status.code),
        status_message=span.status.message,
        attributes=_attributes(span.attributes),
        events=[
            SpanEvent(e.name[:MAX_NAME], e.time_unix_nano, _attributes(e.attributes))
            for e in span.events
        ],
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key[:MAX_NAME]: _value(kv.value) for kv in pairs}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        items: list[KeyValue] = list(value.kvlist_value.values)
        return {kv.key: _value(kv.value) for kv in items}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)
