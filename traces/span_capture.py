"""The capture policy applied to OpenTelemetry spans before they wait in a span buffer.

A ``SpanBuffer`` row holds the spans of a trace until its run is complete, so a secret in
a span's attributes would be stored bytes long before the run is. Each attribute that
``traces/span_mapping.py`` reads as a state gets the policy's state rules in the shape the
mapping gives it (``input.value`` whole, ``traceloop.entity.input``'s ``inputs``,
``gen_ai.input.messages`` as ``{"messages": ...}``), the ``metadata`` attribute the
metadata rules, and every other string (attributes, the status message, span events)
the detectors. A JSON attribute is written back as JSON text, so the mapping reads the
markers in place; the run's own ingestion applies the policy again, which changes nothing
already captured.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .capture import Capture
from .spans import Span, SpanEvent

# attribute → the key of the state inside it (None: the attribute is the state; "" : a
# list wrapped as {"messages": [...]}), as span_mapping._io reads them.
_STATE_ATTRS: dict[str, str | None] = {
    "input.value": None,
    "output.value": None,
    "traceloop.entity.input": "inputs",
    "traceloop.entity.output": "outputs",
    "gen_ai.task.input": "inputs",
    "gen_ai.task.output": "outputs",
    "gen_ai.input.messages": "",
    "gen_ai.output.messages": "",
}


def capture_span(policy: Capture, span: Span) -> Span:
    """``span`` with the policy applied to its attributes, status message and events."""
    where = f"$.span[{span.span_id}]"
    attributes = {
        key: _attribute(policy, key, value, f"{where}.{key}")
        for key, value in span.attributes.items()
    }
    events = [
        SpanEvent(e.name, e.time_ns, {k: _text(policy, v, where) for k, v in e.attributes.items()})
        for e in span.events
    ]
    return msgspec.structs.replace(
        span,
        attributes=attributes,
        status_message=policy.text(span.status_message, where) or "",
        events=events,
    )


def _attribute(policy: Capture, key: str, value: Any, where: str) -> Any:
    decoded, was_text = _decoded(value)
    if key == "metadata" and isinstance(decoded, dict):
        return _back(policy.metadata(decoded, where), was_text)
    if key not in _STATE_ATTRS or decoded is None:
        return _text(policy, value, where)
    inner = _STATE_ATTRS[key]
    if inner == "":
        done = policy.state({"messages": decoded}, where)
        return _back(done.get("messages") if isinstance(done, dict) else None, was_text)
    if inner is not None and isinstance(decoded, dict) and inner in decoded:
        return _back({**decoded, inner: policy.state(decoded[inner], where)}, was_text)
    return _back(policy.state(decoded, where), was_text)


def _decoded(value: Any) -> tuple[Any, bool]:
    """A JSON object or array held as text, decoded (True: it was text); else None."""
    if isinstance(value, (dict, list)):
        return value, False
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            return msgspec.json.decode(value), True
        except (msgspec.DecodeError, RecursionError):
            return None, False
    return None, False


def _back(value: Any, as_text: bool) -> Any:
    return msgspec.json.encode(value).decode() if as_text else value


def _text(policy: Capture, value: Any, where: str) -> Any:
    return policy.detect(value, where)
