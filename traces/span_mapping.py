"""The spans of one trace as one run: OpenInference, the OpenTelemetry GenAI conventions,
OpenLLMetry, and DashFlow's own ``graph.*`` / ``node.execute`` spans (the README's table).

One run per trace. Its node executions are the graph's node spans in start order: with
LangGraph's node metadata (``langgraph_node`` / ``langgraph_step`` in OpenInference's
``metadata``, OpenLLMetry's ``traceloop.association.properties.*``), a node span is the
outermost span of a (node, step) whose own name is the node's, so a conditional-edge
function (``route``) and the LLM and tool spans inside a node are not taken for nodes;
DashFlow's are its ``node.execute`` spans; otherwise they are the children of the graph's
span. A node's tokens are its outermost LLM descendants' usage, its tools its tool
descendants, its errors the exception events in it and its error status.

These dialects record a node's partial update as its output, not the state after it, so
``state_before`` is the node's input, ``state_after`` the input of the next node of a later
step (or the graph's output for the last), and the update is kept in the step's metadata.
Pure functions of the spans: ``traces/otlp.py`` buffers spans and calls ``map_spans``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from django.conf import settings

from .parsing import json_depth
from .spans import STATUS_ERROR, Span
from .trace import ErrorTrace, ExecutionTrace, NodeExecution

OPENINFERENCE = "openinference"
OPENLLMETRY = "openllmetry"
GENAI = "genai"
DASHFLOW = "dashflow"

NAME_MAX = 200
_ABSENT: Any = msgspec.UNSET  # a span that says nothing about a state
_TRACELOOP = "traceloop.association.properties."
_LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "embeddings"}
_DASHFLOW_NODE = "node.execute"
_DASHFLOW_GRAPH = {"graph.stream", "graph.invoke"}


@dataclass
class Mapped:
    """What the spans of a trace say about its run so far."""

    dialect: str
    root: Span | None  # the graph's root span: absent while the run is live
    thread_id: str | None
    graph_name: str
    nodes: list[NodeExecution]
    # Per node: whether its state_after is known (the next step's input, or the end).
    settled: list[bool]
    errors: list[ErrorTrace]
    initial_state: Any
    final_state: Any
    started_ns: int
    ended_ns: int
    span_count: int
    metadata: dict[str, Any] = field(default_factory=dict)


def map_spans(spans: list[Span]) -> Mapped:
    """The run the spans of one trace describe (in any order, possibly incomplete)."""
    by_id = {s.span_id: s for s in spans}
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.end_ns))
    dialect = _dialect(ordered)
    # LangGraph's metadata of every span, read once (it is JSON text in OpenInference).
    marks = {s.span_id: _langgraph(s) for s in spans}
    node_spans = _marked_node_spans(ordered, by_id, dialect, marks)
    # The graph's span: the parent of its node spans where they say which they are (the
    # graph may run inside a larger trace, under a web request's span), else the root.
    graph = by_id.get(node_spans[0].parent_id) if node_spans else None
    root = graph or next((s for s in ordered if not s.parent_id), None)
    body = _graph_body(root, ordered)
    if not node_spans and body is not None:
        node_spans = [s for s in ordered if s.parent_id == body.span_id]
    owner = _owners(ordered, by_id, {s.span_id for s in node_spans})

    steps = [marks[s.span_id][1] for s in node_spans]
    inputs = [_input(s) for s in node_spans]
    initial = _input(body) if body is not None else _ABSENT
    if initial is _ABSENT:
        initial = inputs[0] if inputs else None
    final = _output(body) if body is not None else _ABSENT

    tokens: dict[str, int] = {}
    tools: dict[str, list[str]] = {}
    for span in ordered:
        node_id = owner.get(span.span_id)
        if node_id is None:
            continue
        kind = _kind(span)
        if kind == "llm" and not _inside_llm(span, by_id, node_id):
            tokens[node_id] = tokens.get(node_id, 0) + _tokens(span)
        elif kind == "tool":
            tools.setdefault(node_id, []).append(_tool_name(span))

    errors, node_errors = _errors(ordered, owner, node_spans, inputs, root)

    nodes: list[NodeExecution] = []
    settled: list[bool] = []
    for i, span in enumerate(node_spans):
        after = _ABSENT
        for j in range(i + 1, len(node_spans)):
            step, later = steps[i], steps[j]
            if step is None or later is None or later > step:
                after = inputs[j]
                settled.append(True)
                break
        else:
            settled.append(root is not None)
            after = final
        update = _output(span)
        meta: dict[str, Any] = {"span_id": span.span_id}
        if steps[i] is not None:
            meta["langgraph_step"] = steps[i]
        if update is not _ABSENT:
            meta["update"] = update
        failure = node_errors.get(span.span_id)
        nodes.append(
            NodeExecution(
                node=_node_name(span, marks[span.span_id][0]),
                duration_ms=(span.end_ns - span.start_ns) // 1_000_000,
                tokens_used=tokens.get(span.span_id, 0),
                state_before=None if inputs[i] is _ABSENT else inputs[i],
                state_after=None if after is _ABSENT else after,
                tools_called=tools.get(span.span_id, []),
                success=failure is None,
                error_message=failure,
                index=i,
                started_at=stamp(span.start_ns),
                metadata=meta,
            )
        )
    if final is _ABSENT:
        final = nodes[-1].state_after if nodes and root is not None else None
    return Mapped(
        dialect=dialect,
        root=root,
        thread_id=_thread_id(ordered),
        graph_name=_graph_name(root, body, dialect),
        nodes=nodes,
        settled=settled,
        errors=errors,
        initial_state=None if initial is _ABSENT else initial,
        final_state=final,
        started_ns=root.start_ns if root else (ordered[0].start_ns if ordered else 0),
        ended_ns=root.end_ns if root else max((s.end_ns for s in ordered), default=0),
        span_count=len(spans),
    )


def to_trace(mapped: Mapped, trace_id: str, idle_timeout: int | None) -> ExecutionTrace:
    """The whole run as a canonical trace: complete when its root span ended; with
    ``idle_timeout`` (seconds) the root never came and the run ended by that timeout. The
    execution id is the trace id, so the run is the same whichever way its spans came."""
    errors = list(mapped.errors)
    ended_by = "root span" if mapped.root is not None else "idle timeout"
    if mapped.root is None:
        errors.append(
            ErrorTrace(
                node=mapped.nodes[-1].node if mapped.nodes else mapped.graph_name or "graph",
                message=(
                    f"the trace's root span did not arrive within OTLP_IDLE_TIMEOUT="
                    f"{idle_timeout} s of its last span; the run ends incomplete"
                ),
                error_type="IdleTimeout",
                timestamp=stamp(mapped.ended_ns),
            )
        )
    return ExecutionTrace(
        thread_id=mapped.thread_id,
        execution_id=trace_id,
        nodes_executed=mapped.nodes,
        total_duration_ms=max(mapped.ended_ns - mapped.started_ns, 0) // 1_000_000,
        total_tokens=sum(n.tokens_used for n in mapped.nodes),
        errors=errors,
        completed=mapped.root is not None,
        started_at=stamp(mapped.started_ns),
        ended_at=stamp(mapped.ended_ns),
        final_state=mapped.final_state,
        metadata=run_metadata(mapped, trace_id, ended_by),
    )


def run_metadata(mapped: Mapped, trace_id: str, ended_by: str | None = None) -> dict[str, Any]:
    """The run's metadata: the graph name and where the run came from."""
    source: dict[str, Any] = {
        "dialect": mapped.dialect,
        "trace_id": trace_id,
        "spans": mapped.span_count,
    }
    if ended_by is not None:
        source["ended_by"] = ended_by
    metadata: dict[str, Any] = {"source": "otlp", "otlp": source}
    if mapped.graph_name:
        metadata["graph_name"] = mapped.graph_name
    return metadata


def stamp(ns: int) -> str:
    """RFC 3339 in UTC, microseconds, as DashFlow writes its timestamps."""
    moment = datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


# -- reading one span --------------------------------------------------------------------


def _dialect(spans: list[Span]) -> str:
    seen = set()
    for span in spans:
        attrs = span.attributes
        if any(key.startswith("traceloop.") for key in attrs):
            return OPENLLMETRY
        if "openinference.span.kind" in attrs:
            seen.add(OPENINFERENCE)
        elif span.name == _DASHFLOW_NODE or span.name in _DASHFLOW_GRAPH:
            seen.add(DASHFLOW)
        elif "gen_ai.operation.name" in attrs:
            seen.add(GENAI)
    for dialect in (OPENINFERENCE, DASHFLOW, GENAI):
        if dialect in seen:
            return dialect
    return GENAI


def _langgraph(span: Span) -> tuple[str | None, int | None, str]:
    """LangGraph's node metadata on a span: (node, step, checkpoint namespace)."""
    attrs = span.attributes
    node = attrs.get(_TRACELOOP + "langgraph_node")
    if node is not None:
        step = attrs.get(_TRACELOOP + "langgraph_step")
        namespace = attrs.get(_TRACELOOP + "langgraph_checkpoint_ns", "")
    else:
        meta = _metadata(span)
        node = meta.get("langgraph_node")
        step = meta.get("langgraph_step")
        namespace = meta.get("langgraph_checkpoint_ns", "")
    if not isinstance(node, str):
        return None, None, ""
    try:
        number = int(step) if step is not None else None
    except (TypeError, ValueError):
        number = None
    return node, number, namespace if isinstance(namespace, str) else ""


def _metadata(span: Span) -> dict[str, Any]:
    """OpenInference's ``metadata`` attribute (a JSON object in a string)."""
    raw = span.attributes.get("metadata")
    value = _json(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


def _kind(span: Span) -> str:
    attrs = span.attributes
    kind = attrs.get("openinference.span.kind")
    if kind == "LLM":
        return "llm"
    if kind == "TOOL":
        return "tool"
    operation = attrs.get("gen_ai.operation.name")
    if operation in _LLM_OPERATIONS or "llm.request.type" in attrs:
        return "llm"
    if operation == "execute_tool" or attrs.get("traceloop.span.kind") == "tool":
        return "tool"
    return "other"


def _tokens(span: Span) -> int:
    attrs = span.attributes
    for total, parts in (
        ("llm.token_count.total", ("llm.token_count.prompt", "llm.token_count.completion")),
        ("", ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")),
        ("", ("gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens")),
        ("llm.usage.total_tokens", ()),
    ):
        if total and _count(attrs.get(total)) is not None:
            return _count(attrs.get(total)) or 0
        counts = [_count(attrs.get(name)) for name in parts]
        if any(c is not None for c in counts):
            return sum(c or 0 for c in counts)
    return 0


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _tool_name(span: Span) -> str:
    attrs = span.attributes
    for key in ("tool.name", "gen_ai.tool.name", "traceloop.entity.name"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value[:NAME_MAX]
    return span.name.removeprefix("execute_tool ")[:NAME_MAX]


def _own_name(span: Span) -> str:
    attrs = span.attributes
    for key in ("gen_ai.task.name", "traceloop.entity.name", "node.name", "gen_ai.agent.name"):
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return span.name


def _node_name(span: Span, node: str | None = None) -> str:
    """A node span's node: LangGraph's ``node`` (read by the caller, else here), else the
    dialects' names for it."""
    if node is None:
        node = _langgraph(span)[0]
    if node is None:
        attrs = span.attributes
        for key in ("node.name", "gen_ai.task.name", "gen_ai.agent.name", "gen_ai.tool.name"):
            value = attrs.get(key)
            if isinstance(value, str) and value:
                node = value
                break
    return (node or span.name or "span")[:NAME_MAX]


def _input(span: Span) -> Any:
    return _io(span, "input", "inputs")


def _output(span: Span) -> Any:
    return _io(span, "output", "outputs")


def _io(span: Span, side: str, wrapped: str) -> Any:
    """A span's ``side`` ("input" or "output") in whichever dialect carries it:
    OpenInference's ``<side>.value``, OpenLLMetry's entity or task value (unwrapped from
    its ``<wrapped>`` key), the GenAI conventions' messages."""
    attrs = span.attributes
    if f"{side}.value" in attrs:
        return _state(attrs[f"{side}.value"])
    for key in (f"traceloop.entity.{side}", f"gen_ai.task.{side}"):
        if key in attrs:
            value = _state(attrs[key])
            return value[wrapped] if isinstance(value, dict) and wrapped in value else value
    if f"gen_ai.{side}.messages" in attrs:
        return {"messages": _state(attrs[f"gen_ai.{side}.messages"])}
    return _ABSENT


def _state(value: Any) -> Any:
    """An attribute holding a state: JSON text decoded, anything else kept as it is."""
    if isinstance(value, str):
        decoded = _json(value)
        return value if decoded is _ABSENT else decoded
    return value


def _json(text: str) -> Any:
    """JSON text decoded, or ``_ABSENT`` when it is not a JSON object or array (within the
    depth limit: the decoder recurses)."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return _ABSENT
    data = text.encode()
    limit: int = settings.TRACE_MAX_DEPTH
    # The depth is at most the count of opening brackets: counting them is ~20x cheaper
    # than measuring it, and most attributes (metadata, a step's state) are well within.
    if data.count(b"{") + data.count(b"[") > limit and json_depth(data) > limit:
        return _ABSENT
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return _ABSENT


def _thread_id(spans: list[Span]) -> str | None:
    for span in spans:
        attrs = span.attributes
        for key in (
            "session.id",
            "gen_ai.conversation.id",
            _TRACELOOP + "thread_id",
            "thread_id",
            "thread.id",
        ):
            value = attrs.get(key)
            if isinstance(value, str) and value:
                return value[:NAME_MAX]
        meta_thread = _metadata(span).get("thread_id")
        if isinstance(meta_thread, str) and meta_thread:
            return meta_thread[:NAME_MAX]
    return None


def _graph_name(root: Span | None, body: Span | None, dialect: str) -> str:
    for span in (body, root):
        if span is None:
            continue
        attrs = span.attributes
        for key in ("graph.name", "traceloop.workflow.name", "gen_ai.agent.name"):
            value = attrs.get(key)
            if isinstance(value, str) and value:
                return value[:NAME_MAX]
    if root is None:
        return ""
    name = root.name.removeprefix("invoke_agent ").removeprefix("invoke_workflow ")
    return name[:NAME_MAX]


# -- the trace's structure ------------------------------------------------------------


def _graph_body(root: Span | None, spans: list[Span]) -> Span | None:
    """The span that stands for the graph: the root, or the one span it wraps when it has
    no input itself (OpenLLMetry's ``invoke_agent`` around ``<graph>.workflow``)."""
    if root is None:
        return None
    body = root
    while _input(body) is _ABSENT:
        children = [s for s in spans if s.parent_id == body.span_id]
        if len(children) != 1 or _kind(children[0]) != "other" or _langgraph(children[0])[0]:
            break
        body = children[0]
    return body


def _marked_node_spans(
    spans: list[Span],
    by_id: dict[str, Span],
    dialect: str,
    marks: dict[str, tuple[str | None, int | None, str]],
) -> list[Span]:
    """The node spans that say they are nodes (LangGraph's metadata, ``marks``, DashFlow's
    span name); empty when the dialect does not mark them (then the graph span's
    children)."""
    if any(mark[0] is not None for mark in marks.values()):
        found = []
        for span in spans:
            node, step, namespace = marks[span.span_id]
            if node is None or "|" in namespace or _kind(span) != "other":
                continue  # a subgraph's node (its namespace nests), an LLM or a tool call
            if node not in (span.name, _own_name(span), span.name.removeprefix("execute_task ")):
                continue  # a conditional edge's function, or a chain inside the node
            parent = by_id.get(span.parent_id)
            if parent is not None and marks[parent.span_id] == (node, step, namespace):
                continue
            found.append(span)
        return found
    if dialect == DASHFLOW:
        return [s for s in spans if s.name == _DASHFLOW_NODE]
    return []


def _owners(spans: list[Span], by_id: dict[str, Span], nodes: set[str]) -> dict[str, str]:
    """Each span's node span (itself or its nearest node ancestor), where it has one."""
    owner: dict[str, str] = {}
    for span in spans:
        path: list[str] = []
        current: Span | None = span
        found: str | None = None
        while current is not None and len(path) < 1000:
            if current.span_id in owner:
                found = owner[current.span_id]
                break
            path.append(current.span_id)
            if current.span_id in nodes:
                found = current.span_id
                break
            current = by_id.get(current.parent_id) if current.parent_id else None
        if found is not None:
            for span_id in path:
                owner[span_id] = found
    return owner


def _inside_llm(span: Span, by_id: dict[str, Span], node_id: str) -> bool:
    """Whether an LLM span sits inside another LLM span of its node (counted there)."""
    current = by_id.get(span.parent_id)
    while current is not None and current.span_id != node_id:
        if _kind(current) == "llm":
            return True
        current = by_id.get(current.parent_id)
    return False


def _errors(
    spans: list[Span],
    owner: dict[str, str],
    node_spans: list[Span],
    inputs: list[Any],
    root: Span | None,
) -> tuple[list[ErrorTrace], dict[str, str]]:
    """The run's errors (exception events, error statuses) and each failed node's
    message. An exception recorded on a node and again on the spans around it (LangChain's
    instrumentations do) is one error, attributed to the innermost node."""
    position = {s.span_id: i for i, s in enumerate(node_spans)}
    errors: list[ErrorTrace] = []
    failed: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    # Spans inside nodes first, innermost (latest start) first within them.
    ordered = sorted(spans, key=lambda s: (s.span_id not in owner, -s.start_ns))
    for span in ordered:
        node_id = owner.get(span.span_id)
        index = position.get(node_id) if node_id else None
        node = node_spans[index] if index is not None else None
        reports = [
            (
                str(e.attributes.get("exception.type") or ""),
                str(e.attributes.get("exception.message") or ""),
                e.time_ns,
                e.attributes.get("exception.stacktrace"),
            )
            for e in span.events
            if e.name == "exception"
        ]
        if span.status == STATUS_ERROR and not reports and (span is root or span is node):
            reports.append(("", span.status_message or "span status ERROR", span.end_ns, None))
        for error_type, message, time_ns, stacktrace in reports:
            if (error_type, message) in seen or (
                not error_type and any(m == message for _, m in seen)
            ):
                continue
            seen.add((error_type, message))
            if node is not None and node_id is not None:
                failed.setdefault(node_id, f"{error_type}: {message}" if error_type else message)
            state = inputs[index] if index is not None else None
            errors.append(
                ErrorTrace(
                    node=_node_name(node) if node is not None else _root_node(root),
                    message=message or error_type or "error",
                    error_type=error_type[:NAME_MAX] or None,
                    state_at_error=None if state is _ABSENT else state,
                    timestamp=stamp(time_ns),
                    execution_index=index,
                    context=stacktrace if isinstance(stacktrace, str) else None,
                )
            )
    errors.sort(key=lambda e: (e.execution_index is None, e.execution_index or 0))
    return errors, failed


def _root_node(root: Span | None) -> str:
    return (root.name if root is not None else "graph")[:NAME_MAX] or "graph"
