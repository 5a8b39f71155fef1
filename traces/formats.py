"""Export formats: a run's part of an export file, for each ``ExportFormat``.

``encode_run`` yields the bytes one run contributes, in chunks with their row counts, so
an export streams run after run without holding a file in memory; ``file_header`` is
what goes before the first run (the CSV header line). ``FILE_SUFFIX`` (with its dot) and
``CONTENT_TYPE`` name the file.

- ``training_examples``: DashFlow ``Example`` JSON lines, one per node execution with both
  states: ``{"data": {"input_<key>": ..., "output_<key>": ..., "_node", "_duration_ms",
  "_success"}, "input_keys": [the input_ keys]}``. A state that is not an object is one
  field, ``input_state`` / ``output_state``. With ``verdicts``, a reviewed step also has
  ``"_verdict": "good" | "bad"`` in ``data``.
- ``openai_finetune``: chat JSON lines as DashFlow's BootstrapFinetune writes them: the
  system message ``You are a helpful AI assistant.``, the user message is
  ``state_before`` and the assistant message ``state_after``, each as ``key: value``
  lines (keys sorted, strings bare, other values as compact JSON with sorted keys); a
  state that is not an object is the one value alone (a string bare, else its JSON).
  With ``verdicts``, a reviewed step's assistant message has OpenAI's ``weight``: 1 for
  ``good``, 0 for ``bad`` (kept in the file, not trained on).
- ``dashstream``: length-prefixed DashStream frames (``traces/dashstream.py``);
  ``dashstream_jsonl``: the same messages as JSON lines.
- ``csv``: one row per node execution (see ``CSV_COLUMNS``); lists as JSON arrays.
- ``traces_jsonl``: the canonical trace JSON (as ``/api/v1/runs/<id>/trace`` serves it),
  one run per line; ``steps`` and ``verdicts`` do not apply (a trace is whole).

Node executions without both states (DashFlow's executor persists traces without them)
give no training example and no fine-tuning row.
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Container, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from . import dashstream
from .trace import canonical_json

if TYPE_CHECKING:
    from .trace import ExecutionTrace, NodeExecution

__all__ = [
    "CONTENT_TYPE",
    "CSV_COLUMNS",
    "FILE_SUFFIX",
    "FORMATS",
    "SYSTEM_PROMPT",
    "encode_run",
    "file_header",
    "finetune_row",
    "training_example",
]

FORMATS = (
    "training_examples",
    "openai_finetune",
    "dashstream",
    "dashstream_jsonl",
    "csv",
    "traces_jsonl",
)

FILE_SUFFIX: dict[str, str] = {
    "training_examples": ".jsonl",
    "openai_finetune": ".jsonl",
    "dashstream": ".dashstream",
    "dashstream_jsonl": ".dashstream.jsonl",
    "csv": ".csv",
    "traces_jsonl": ".jsonl",
}

_JSONL = "application/x-ndjson"
CONTENT_TYPE: dict[str, str] = {
    "training_examples": _JSONL,
    "openai_finetune": _JSONL,
    "dashstream": "application/octet-stream",
    "dashstream_jsonl": _JSONL,
    "csv": "text/csv; charset=utf-8",
    "traces_jsonl": _JSONL,
}

CSV_COLUMNS = (
    "execution_id",
    "index",
    "node",
    "started_at",
    "duration_ms",
    "tokens_used",
    "success",
    "error_message",
    "tools_called",
    "changed_keys",
)

# DashFlow's BootstrapFinetune writes this system message on every row.
SYSTEM_PROMPT = "You are a helpful AI assistant."

# Rows gathered per chunk: enough that per-chunk work (a file write, a progress update)
# is negligible, few enough to bound what a chunk holds.
_CHUNK_ROWS = 1000

_encode = msgspec.json.encode


def file_header(fmt: str) -> bytes:
    """What an export file starts with: the CSV header line, else nothing."""
    _check(fmt)
    if fmt == "csv":
        return _csv_line(CSV_COLUMNS)
    return b""


def encode_run(
    fmt: str,
    trace: ExecutionTrace,
    *,
    steps: Container[int] | None = None,
    verdicts: Mapping[int, str] | None = None,
) -> Iterator[tuple[bytes, int]]:
    """One run's part of an export file in ``fmt``: (chunk, rows in it) pairs.

    ``steps`` keeps only these positions in ``nodes_executed`` (``None``: all;
    ``traces_jsonl`` always writes the whole trace); ``verdicts`` maps a position to its
    review verdict, ``"good"`` or ``"bad"``, which ``training_examples`` and
    ``openai_finetune`` carry (the other formats have no place for it). Rows are training
    examples, fine-tuning rows, DashStream messages, CSV rows or traces.
    """
    _check(fmt)
    chunks: Iterator[tuple[bytes, int]]
    if fmt == "training_examples":
        chunks = _lines(trace, steps, verdicts, training_example)
    elif fmt == "openai_finetune":
        chunks = _lines(trace, steps, verdicts, finetune_row)
    elif fmt == "dashstream":
        chunks = dashstream.encode_file(trace, steps)
    elif fmt == "dashstream_jsonl":
        chunks = dashstream.encode_jsonl(trace, steps)
    elif fmt == "csv":
        chunks = _csv_rows(trace, steps)
    else:
        chunks = iter([(trace.to_json() + b"\n", 1)])
    return _collector_paused(chunks)


def _collector_paused(chunks: Iterator[tuple[bytes, int]]) -> Iterator[tuple[bytes, int]]:
    """The chunks, each made with the garbage collector paused (and the caller's setting
    back while it holds one). Encoding allocates many short-lived dicts, lists and
    protobuf messages, none of them in a reference cycle; meanwhile the collector's
    passes walk the trace's tens of thousands of containers and free nothing: measured
    1.5-2x slower with it running (see trace.py's from_json for the same reason)."""
    while True:
        collecting = gc.isenabled()
        gc.disable()
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        finally:
            if collecting:
                gc.enable()
        yield chunk


def training_example(node: NodeExecution, verdict: str | None = None) -> dict[str, Any] | None:
    """DashFlow's ``Example`` for one node execution; ``None`` without both states."""
    before, after = node.state_before, node.state_after
    if before is None or after is None:
        return None
    data: dict[str, Any] = {}
    if type(before) is dict:
        for key, value in before.items():
            data["input_" + key] = value
    else:
        data["input_state"] = before
    input_keys = list(data)
    if type(after) is dict:
        for key, value in after.items():
            data["output_" + key] = value
    else:
        data["output_state"] = after
    data["_node"] = node.node
    data["_duration_ms"] = node.duration_ms
    data["_success"] = node.success
    if verdict is not None:
        data["_verdict"] = verdict
    return {"data": data, "input_keys": input_keys}


def finetune_row(node: NodeExecution, verdict: str | None = None) -> dict[str, Any] | None:
    """One OpenAI fine-tuning chat row; ``None`` without both states."""
    before, after = node.state_before, node.state_after
    if before is None or after is None:
        return None
    assistant: dict[str, Any] = {"role": "assistant", "content": _as_lines(after)}
    if verdict is not None:
        assistant["weight"] = 1 if verdict == "good" else 0
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _as_lines(before)},
            assistant,
        ]
    }


def _as_lines(state: Any) -> str:
    """``key: value`` lines, keys sorted, strings bare, other values as JSON (sorted
    keys, as serde_json writes a ``Value``)."""
    if type(state) is not dict:
        return _text(state)
    return "\n".join(f"{key}: {_text(state[key])}" for key in sorted(state))


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    return canonical_json(value).decode()


def _lines(
    trace: ExecutionTrace,
    steps: Container[int] | None,
    verdicts: Mapping[int, str] | None,
    build: Any,
) -> Iterator[tuple[bytes, int]]:
    rows: list[dict[str, Any]] = []
    for position, node in enumerate(trace.nodes_executed):
        if steps is not None and position not in steps:
            continue
        row = build(node, verdicts.get(position) if verdicts else None)
        if row is None:
            continue
        rows.append(row)
        if len(rows) >= _CHUNK_ROWS:
            yield _jsonl(rows), len(rows)
            rows = []
    if rows:
        yield _jsonl(rows), len(rows)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join([_encode(row) + b"\n" for row in rows])


def _csv_rows(trace: ExecutionTrace, steps: Container[int] | None) -> Iterator[tuple[bytes, int]]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count = 0
    for position, node in enumerate(trace.nodes_executed):
        if steps is not None and position not in steps:
            continue
        writer.writerow(
            (
                trace.execution_id or "",
                node.index,
                node.node,
                node.started_at or "",
                node.duration_ms,
                node.tokens_used,
                "true" if node.success else "false",
                node.error_message or "",
                _encode(node.tools_called).decode(),
                _encode(node.changed_keys()).decode(),
            )
        )
        count += 1
        if count >= _CHUNK_ROWS:
            yield buffer.getvalue().encode(), count
            buffer.seek(0)
            buffer.truncate()
            count = 0
    if count:
        yield buffer.getvalue().encode(), count


def _csv_line(values: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue().encode()


def _check(fmt: str) -> None:
    if fmt not in FILE_SUFFIX:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
