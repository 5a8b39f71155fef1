"""Stream a LangGraph run to Trace Studio while it executes: ``stream_langgraph``.

Install with the extra, ``pip install "./producer[langgraph]"``; this module imports no
LangGraph or LangChain code itself (it reads what the graph streams), so the package stays
standard-library only without it. Usage::

    from dashflow_producer import RunStreamer
    from dashflow_producer.langgraph import stream_langgraph

    with RunStreamer("http://127.0.0.1:8000", api_key) as client:
        for chunk in stream_langgraph(graph, inputs, {"configurable": {"thread_id": "t1"}},
                                      client=client):
            ...  # LangGraph's own debug chunks, as graph.stream(stream_mode="debug") gives

The graph runs with ``stream_mode=["debug", "values"]``; each step becomes the producer's
live events as it happens:

- ``task`` → ``node_started`` (node, its index in the run, the time), its ``input`` kept
  as the node's ``state_before``;
- ``task_result`` → the node's writes (kept in its metadata as ``writes``: LangGraph
  records only a node's partial update), its error, its interrupts; tokens from the
  written messages' ``usage_metadata``, tools called from the written tool messages (the
  tool calls an AI message requested go to metadata ``tool_calls``);
- the merged state after the superstep (a ``checkpoint`` debug event when the graph has a
  checkpointer, else the ``values`` chunk) → ``node_finished`` for each node of the
  superstep, with that state as ``state_after``. Nodes that ran in one superstep carry
  ``langgraph_step`` and ``parallel_with`` (the others) in their metadata; their
  ``node_started`` events all precede their ``node_finished`` ones, so the run page shows
  them running together.

``astream_langgraph`` is the same for async apps (``async for`` over ``graph.astream``).
The thread id comes from ``config["configurable"]["thread_id"]``. States are sent as JSON:
LangChain messages (pydantic models) as their ``model_dump`` without empty fields, other
objects as ``str``. An exception from the graph finishes the run as failed and is raised
again; an interrupt, or the caller leaving the loop early, finishes it as not completed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any

from dashflow_producer.client import RunStreamer, now_iso

__all__ = ["astream_langgraph", "stream_langgraph", "to_json"]

logger = logging.getLogger("dashflow.producer")


def stream_langgraph(
    graph: Any,
    input: Any,
    config: Mapping[str, Any] | None = None,
    *,
    client: RunStreamer,
    graph_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    **stream_kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Run ``graph`` on ``input`` and stream the run through ``client``; yields LangGraph's
    debug chunks. ``stream_kwargs`` go to ``graph.stream`` (not ``stream_mode``, which
    this sets)."""
    run = _Run.start(client, graph, input, config, graph_name, metadata)
    try:
        for mode, chunk in graph.stream(
            input, config, stream_mode=["debug", "values"], **stream_kwargs
        ):
            if mode == "values":
                run.superstep_done(chunk)
                continue
            run.debug(chunk)
            yield chunk
    except GeneratorExit:
        # The caller stopped reading: the graph stops with it, neither done nor failed.
        run.finished(abandoned=True)
        raise
    except BaseException as exc:
        run.failed(exc)
        raise
    run.finished()


async def astream_langgraph(
    graph: Any,
    input: Any,
    config: Mapping[str, Any] | None = None,
    *,
    client: RunStreamer,
    graph_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    **stream_kwargs: Any,
) -> AsyncIterator[dict[str, Any]]:
    """``stream_langgraph`` for async apps: the same run through ``graph.astream``. The
    client's calls never block, so the event loop is not held up by the streaming."""
    run = _Run.start(client, graph, input, config, graph_name, metadata)
    try:
        async for mode, chunk in graph.astream(
            input, config, stream_mode=["debug", "values"], **stream_kwargs
        ):
            if mode == "values":
                run.superstep_done(chunk)
                continue
            run.debug(chunk)
            yield chunk
    except GeneratorExit:
        run.finished(abandoned=True)
        raise
    except BaseException as exc:
        run.failed(exc)
        raise
    run.finished()


class _Task:
    """One node execution between its ``task`` and the state after its superstep."""

    def __init__(self, name: str, index: int, step: int, started: str, before: Any) -> None:
        self.name = name
        self.index = index
        self.step = step
        self.started = started
        self.clock = time.monotonic()
        self.before = before
        self.duration_ms: int | None = None
        self.writes: Any = None
        self.error: str | None = None
        self.tokens = 0
        self.tools: list[str] = []
        self.metadata: dict[str, Any] = {}


class _Run:
    @classmethod
    def start(
        cls,
        client: RunStreamer,
        graph: Any,
        input: Any,
        config: Mapping[str, Any] | None,
        graph_name: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> _Run:
        """Send ``run_started``: the thread id from the config, the graph's name and
        declared nodes and edges, the input as the initial state."""
        thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
        meta: dict[str, Any] = {"source": "langgraph", **(metadata or {})}
        meta["graph_name"] = graph_name or getattr(graph, "name", None) or "LangGraph"
        schema = _schema(graph)
        if schema is not None:
            meta["graph_schema"] = schema
        client.run_started(
            thread_id=None if thread_id is None else str(thread_id),
            metadata=meta,
            initial_state=to_json(input),
        )
        return cls(client)

    def __init__(self, client: RunStreamer) -> None:
        self.client = client
        self.next_index = 0
        self.tasks: dict[str, _Task] = {}  # by LangGraph task id, in start order
        self.state: Any = None
        self.tokens = 0
        self.error: str | None = None
        self.interrupted = False
        self.requested: dict[str, str] = {}  # tool call id -> tool name

    def debug(self, chunk: Mapping[str, Any]) -> None:
        kind, payload = chunk.get("type"), chunk.get("payload") or {}
        if kind == "task":
            task = _Task(
                str(payload.get("name")),
                self.next_index,
                int(chunk.get("step") or 0),
                _stamp(chunk.get("timestamp")),
                to_json(payload.get("input")),
            )
            self.next_index += 1
            self.tasks[str(payload.get("id"))] = task
            self.client.node_started(task.name, task.index, started_at=task.started)
        elif kind == "task_result":
            ended = self.tasks.get(str(payload.get("id")))
            if ended is not None:
                self._result(ended, payload, chunk.get("timestamp"))
        elif kind == "checkpoint":
            self.superstep_done(payload.get("values"))

    def _result(self, task: _Task, payload: Mapping[str, Any], stamp: Any) -> None:
        task.duration_ms = _elapsed_ms(task.started, stamp, task.clock)
        writes = payload.get("result")
        if isinstance(writes, list):  # older LangGraph: [(channel, value), ...]
            writes = {str(c): v for c, v in writes if isinstance(c, str)}
        task.writes = to_json(writes)
        calls: list[dict[str, Any]] = []
        for message in _messages(writes):
            usage = getattr(message, "usage_metadata", None)
            if isinstance(usage, Mapping):
                total = usage.get("total_tokens")
                if not isinstance(total, int):
                    total = int(usage.get("input_tokens") or 0) + int(
                        usage.get("output_tokens") or 0
                    )
                task.tokens += total
            for call in getattr(message, "tool_calls", None) or []:
                if isinstance(call, Mapping) and call.get("name"):
                    self.requested[str(call.get("id"))] = str(call["name"])
                    calls.append(to_json(call))
            if getattr(message, "type", None) == "tool":
                name = getattr(message, "name", None) or self.requested.get(
                    str(getattr(message, "tool_call_id", None))
                )
                if name:
                    task.tools.append(str(name))
        if calls:
            task.metadata["tool_calls"] = calls
        error = payload.get("error")
        if error is not None:
            task.error = str(error) or type(error).__name__
        interrupts = payload.get("interrupts") or []
        if interrupts:
            self.interrupted = True
            task.metadata["interrupts"] = to_json(list(interrupts))

    def superstep_done(self, values: Any) -> None:
        """The merged state after a superstep: the ended tasks are finished with it."""
        self.state = to_json(values)
        done = [t for t in self.tasks.values() if t.duration_ms is not None]
        self._finish(done, self.state)

    def _finish(self, tasks: list[_Task], state_after: Any) -> None:
        steps: dict[int, list[str]] = {}
        for task in tasks:
            steps.setdefault(task.step, []).append(task.name)
        for task_id, task in list(self.tasks.items()):
            if task not in tasks:
                continue
            del self.tasks[task_id]
            together = [n for n in steps[task.step] if n != task.name] if task.step else []
            metadata: dict[str, Any] = {"langgraph_step": task.step, **task.metadata}
            if len(steps[task.step]) > 1:
                metadata["parallel_with"] = together
            metadata["writes"] = task.writes
            self.tokens += task.tokens
            if task.error is not None:
                self.error = self.error or task.error
                self.client.error(
                    {
                        "node": task.name,
                        "message": task.error,
                        "error_type": "NodeError",
                        "execution_index": task.index,
                        "timestamp": now_iso(),
                    }
                )
            self.client.node_finished(
                {
                    "node": task.name,
                    "index": task.index,
                    "duration_ms": task.duration_ms or 0,
                    "tokens_used": task.tokens,
                    "state_before": task.before,
                    "state_after": state_after,
                    "tools_called": task.tools,
                    "success": task.error is None,
                    "error_message": task.error,
                    "started_at": task.started,
                    "metadata": metadata,
                }
            )

    def failed(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        for task in self.tasks.values():
            if task.duration_ms is None:
                task.duration_ms = round((time.monotonic() - task.clock) * 1000)
            task.error = task.error or message
        self._finish(list(self.tasks.values()), None)
        if self.error is None:
            self.client.error({"node": "graph", "message": message, "error_type": "GraphError"})
        self.client.run_finished(completed=False, final_state=self.state, total_tokens=self.tokens)

    def finished(self, abandoned: bool = False) -> None:
        # Tasks still open (an interrupt stops a superstep midway, or the caller stopped
        # reading) end without a new state.
        for task in self.tasks.values():
            if task.duration_ms is None:
                task.duration_ms = round((time.monotonic() - task.clock) * 1000)
        self._finish(list(self.tasks.values()), None)
        self.client.run_finished(
            completed=self.error is None and not self.interrupted and not abandoned,
            final_state=self.state,
            total_tokens=self.tokens,
        )


def to_json(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data: pydantic models (LangChain messages) by
    ``model_dump`` without empty fields, dataclasses as dicts, anything else unknown as
    ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > 64:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v, depth + 1) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            dumped = dump(mode="json", exclude_none=True)
        except (TypeError, ValueError):
            return str(value)
        if isinstance(dumped, Mapping):
            return {k: to_json(v, depth + 1) for k, v in dumped.items() if v not in ({}, [], "")}
        return to_json(dumped, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value), depth + 1)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _messages(writes: Any) -> Iterator[Any]:
    """The message-like objects among a node's writes (any channel, lists included)."""
    values = writes.values() if isinstance(writes, Mapping) else [writes]
    for value in values:
        for item in value if isinstance(value, list | tuple) else [value]:
            if hasattr(item, "usage_metadata") or hasattr(item, "tool_call_id"):
                yield item


def _schema(graph: Any) -> dict[str, Any] | None:
    """The compiled graph's nodes and edges in the graph schema form the run page draws."""
    get_graph = getattr(graph, "get_graph", None)
    if not callable(get_graph):
        return None
    try:
        drawn = get_graph()
        return {
            "nodes": [str(n) for n in drawn.nodes],
            "edges": [
                {"from": e.source, "to": e.target, "conditional": bool(e.conditional)}
                for e in drawn.edges
            ],
        }
    except Exception as exc:
        # Broad on purpose, and logged: the schema is a nicety, and an observer must never
        # stop the run it observes over one.
        logger.warning("no graph schema for this run: %s: %s", type(exc).__name__, exc)
        return None


def _stamp(value: Any) -> str:
    return value if isinstance(value, str) and len(value) <= 64 else now_iso()


def _elapsed_ms(started: str, ended: Any, clock: float) -> int:
    try:
        delta = datetime.fromisoformat(str(ended)) - datetime.fromisoformat(started)
    except ValueError:
        return round((time.monotonic() - clock) * 1000)
    return max(0, round(delta.total_seconds() * 1000))
