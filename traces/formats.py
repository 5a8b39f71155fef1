"""Export formats: a run's part of an export file, for each ``ExportFormat``.

``encode_run`` yields the bytes one run contributes, in chunks with their row counts, so
an export streams run after run without holding a file in memory; a ``RunEncoder`` does
the same for the runs of one export in turn, encoding each state once however many
steps and runs share it. ``file_header`` is what goes before the first run (the CSV
header line). ``FILE_SUFFIX`` (with its dot) and ``CONTENT_TYPE`` name the file.

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
- ``csv``: one row per node execution (see ``CSV_COLUMNS``); lists as JSON arrays; a
  text cell a spreadsheet would take for a formula starts with ``'`` (``csvcells.py``).
- ``traces_jsonl``: the canonical trace JSON (as ``/api/v1/runs/<id>/trace`` serves it),
  one run per line; ``steps`` and ``verdicts`` do not apply (a trace is whole).

Node executions without both states (DashFlow's executor persists traces without them)
give no training example and no fine-tuning row.

One module past ~400 lines on purpose: each fast row encoder (``RunEncoder``) stands next
to the definition it must match byte for byte (``training_example``, ``finetune_row``,
``changed_keys``), so a change to one is read against the other.
"""

from __future__ import annotations

import gc
import io
from collections.abc import Callable, Container, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import msgspec

from . import csvcells, dashstream
from .jsondiff import same
from .trace import canonical_json

if TYPE_CHECKING:
    from .trace import ExecutionTrace, NodeExecution

__all__ = [
    "CONTENT_TYPE",
    "CSV_COLUMNS",
    "FILE_SUFFIX",
    "FORMATS",
    "SYSTEM_PROMPT",
    "RunEncoder",
    "changed_keys",
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
_CHUNK_BYTES = 1024 * 1024  # a whole trace's line is written in pieces of about this

_encode = msgspec.json.encode

# States whose encoded parts a RunEncoder keeps (two generations of this many at most).
_CACHED_STATES = 4096


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
    return RunEncoder(fmt).encode(trace, steps=steps, verdicts=verdicts)


class RunEncoder:
    """``encode_run`` for the runs of one export, one after another.

    Training examples and fine-tuning rows are mostly the two states of a step, and
    steps share states: a step's ``state_after`` is the next one's ``state_before``, one
    object when the trace comes from the database, and ``store.load_trace(reuse=...)``
    hands the states a run shares with the previous one over as the same objects. So
    each state object's part of a row is encoded once and kept, keyed by the object's
    identity (the entry holds the object, so its id cannot be reused meanwhile), while
    its run is encoded and the next one too; the previous run's parts are let go when
    a run is done, so the encoder holds at most one run's worth between runs. The rows
    are byte-identical to encoding ``training_example`` / ``finetune_row`` whole
    (tested over every fixture), which stay the definition; states must not change
    while their runs are encoded.
    """

    def __init__(self, fmt: str) -> None:
        _check(fmt)
        self.fmt = fmt
        self._parts: dict[int, tuple[Any, Any]] = {}
        self._previous: dict[int, tuple[Any, Any]] = {}

    def encode(
        self,
        trace: ExecutionTrace,
        *,
        steps: Container[int] | None = None,
        verdicts: Mapping[int, str] | None = None,
    ) -> Iterator[tuple[bytes, int]]:
        """The next run's part of the file: as ``encode_run``."""
        fmt = self.fmt
        self._previous, self._parts = self._parts, {}
        chunks: Iterator[tuple[bytes, int]]
        if fmt == "training_examples":
            chunks = self._rows(self._example_lines(trace, steps, verdicts))
        elif fmt == "openai_finetune":
            chunks = self._rows(self._finetune_lines(trace, steps, verdicts))
        elif fmt == "dashstream":
            chunks = dashstream.encode_file(trace, steps)
        elif fmt == "dashstream_jsonl":
            chunks = dashstream.encode_jsonl(trace, steps)
        elif fmt == "csv":
            chunks = _csv_rows(trace, steps)
        else:
            chunks = _trace_line(trace)
        return _collector_paused(chunks)

    def _rows(self, lines: Iterator[bytes]) -> Iterator[tuple[bytes, int]]:
        yield from _chunked(lines)
        # The run is done: the previous one's parts it did not share are not needed.
        self._previous = {}

    def _state(self, state: Any, encode: Callable[[Any], Any]) -> Any:
        """``encode(state)``, once per state object."""
        key = id(state)
        entry = self._parts.get(key)
        if entry is None:
            entry = self._previous.get(key)
            if entry is None:
                entry = (state, encode(state))
            self._parts[key] = entry
            if len(self._parts) >= _CACHED_STATES:
                # A long run read in windows (``step_windows``): the parts of states
                # steps no longer share go, a generation at a time, so the cache stays
                # bounded however long the run.
                self._previous, self._parts = self._parts, {}
        return entry[1]

    def _example_lines(
        self,
        trace: ExecutionTrace,
        steps: Container[int] | None,
        verdicts: Mapping[int, str] | None,
    ) -> Iterator[bytes]:
        """``training_example`` lines, put together from each state's encoded part."""
        names: dict[str, bytes] = {}
        for position, node in _selected(trace, steps):
            before, after = node.state_before, node.state_after
            if before is None or after is None:
                continue
            verdict = verdicts.get(position) if verdicts else None
            name, duration, success = node.node, node.duration_ms, node.success
            if type(name) is not str or type(duration) is not int or type(success) is not bool:
                # Not what the type declares (built by hand): the definition, as is.
                yield _encode(training_example(node, verdict)) + b"\n"
                continue
            inputs, input_keys, _ = self._state(before, _example_parts)
            outputs = self._state(after, _example_parts)[2]
            name_json = names.get(name)
            if name_json is None:
                name_json = names[name] = _encode(name)
            yield _EXAMPLE % (
                inputs,
                outputs,
                name_json,
                duration,
                b"true" if success else b"false",
                b"" if verdict is None else b',"_verdict":' + _encode(verdict),
                input_keys,
            )

    def _finetune_lines(
        self,
        trace: ExecutionTrace,
        steps: Container[int] | None,
        verdicts: Mapping[int, str] | None,
    ) -> Iterator[bytes]:
        """``finetune_row`` lines, each state's message content encoded once."""
        for position, node in _selected(trace, steps):
            before, after = node.state_before, node.state_after
            if before is None or after is None:
                continue
            verdict = verdicts.get(position) if verdicts else None
            weight = (
                b"" if verdict is None else b',"weight":1' if verdict == "good" else b',"weight":0'
            )
            yield _FINETUNE % (
                self._state(before, _content_json),
                self._state(after, _content_json),
                weight,
            )


# A training example line with its parts left out: the data's input and output fields
# (each ending in a comma), then _node, _duration_ms, _success, the verdict field and
# input_keys, in training_example's order.
_EXAMPLE = b'{"data":{%b%b"_node":%b,"_duration_ms":%d,"_success":%b%b},"input_keys":%b}\n'


def _example_parts(state: Any) -> tuple[bytes, bytes, bytes]:
    """A state's parts of a training example line: as the input, its fields
    (``"input_<key>":<value>,`` for each key, or ``"input_state":<state>,``) and the JSON
    list of their names; as the output, its fields (``"output_<key>":<value>,`` ...)."""
    if type(state) is msgspec.Raw:
        return _raw_example_parts(state)
    if type(state) is not dict:
        return _whole_state_parts(_encode(state))
    if not state:
        return b"", b"[]", b""
    # One encoding of the renamed object, less its braces, plus the comma that follows.
    inputs = _encode({"input_" + key: value for key, value in state.items()})
    # The output fields are the same text with each top-level key's "input_ made
    # "output_. Inside the JSON every other '"input_' is part of a nested key or a string
    # value, so when there are exactly as many as top-level keys, a replace is exact;
    # otherwise the renamed object is encoded again.
    if inputs.count(b'"input_') == len(state):
        outputs = inputs.replace(b'"input_', b'"output_')
    else:
        outputs = _encode({"output_" + key: value for key, value in state.items()})
    return inputs[1:-1] + b",", _input_list(tuple(state)), outputs[1:-1] + b","


def _whole_state_parts(value: bytes) -> tuple[bytes, bytes, bytes]:
    """The parts of a state that is not an object (its JSON ``value``): one field each."""
    return b'"input_state":' + value + b",", b'["input_state"]', b'"output_state":' + value + b","


# Cached by key set and by key: runs of one graph repeat the same few across thousands of
# states (bounded, for exports whose keys keep changing).
@lru_cache(maxsize=1024)
def _input_list(keys: tuple[str, ...]) -> bytes:
    """The JSON list of the input_ names of a state's keys."""
    return _encode(["input_" + key for key in keys])


@lru_cache(maxsize=4096)
def _field_names(key: str) -> tuple[bytes, bytes]:
    """'"input_<key>":' and '"output_<key>":'."""
    return _encode("input_" + key) + b":", _encode("output_" + key) + b":"


# A JSON object's fields with their values left as text.
_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _raw_example_parts(state: msgspec.Raw) -> tuple[bytes, bytes, bytes]:
    """``_example_parts`` of a state still in its stored JSON text
    (``exports._loader``): the fields are cut from the text, not decoded and encoded again.
    The text is msgspec's encoding of the state, so each value's text is what encoding
    the value gives, and the parts are the same bytes."""
    text = bytes(state)
    if not text.startswith(b"{"):
        return _whole_state_parts(text)
    fields = _raw_fields.decode(text)
    if not fields:
        return b"", b"[]", b""
    inputs: list[bytes] = []
    outputs: list[bytes] = []
    for key, value in fields.items():
        names = _field_names(key)
        raw = bytes(value)
        inputs.append(names[0] + raw)
        outputs.append(names[1] + raw)
    return b",".join(inputs) + b",", _input_list(tuple(fields)), b",".join(outputs) + b","


def _content_json(state: Any) -> bytes:
    """A state as a fine-tuning message's ``content`` value (a JSON string)."""
    return _encode(_as_lines(state))


_FINETUNE = (
    b'{"messages":[{"role":"system","content":'
    + _encode(SYSTEM_PROMPT).replace(b"%", b"%%")
    + b'},{"role":"user","content":%b},{"role":"assistant","content":%b%b}]}\n'
)


def _selected(
    trace: ExecutionTrace, steps: Container[int] | None
) -> Iterator[tuple[int, NodeExecution]]:
    """(position, node) of the steps kept."""
    if steps is None:
        return enumerate(trace.nodes_executed)
    return ((p, n) for p, n in enumerate(trace.nodes_executed) if p in steps)


def _trace_line(trace: ExecutionTrace) -> Iterator[tuple[bytes, int]]:
    """A ``traces_jsonl`` line: ``trace.to_json()`` and a newline. A trace whose steps
    are read in windows (``step_windows``) is written in pieces of about
    ``_CHUNK_BYTES`` (``ExecutionTrace.to_json_pieces``)."""
    nodes = trace.nodes_executed
    if type(nodes) is list:
        yield trace.to_json() + b"\n", 1
        return
    parts: list[bytes] = []
    size = 0
    for piece in trace.to_json_pieces():
        parts.append(piece)
        size += len(piece)
        if size >= _CHUNK_BYTES:
            yield b"".join(parts), 0
            parts, size = [], 0
    parts.append(b"\n")
    yield b"".join(parts), 1


def _chunked(lines: Iterator[bytes]) -> Iterator[tuple[bytes, int]]:
    """Lines gathered ``_CHUNK_ROWS`` at a time."""
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _CHUNK_ROWS:
            yield b"".join(batch), len(batch)
            batch = []
    if batch:
        yield b"".join(batch), len(batch)


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


def _csv_rows(trace: ExecutionTrace, steps: Container[int] | None) -> Iterator[tuple[bytes, int]]:
    buffer = io.StringIO()
    writer = csvcells.Writer(buffer)
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
                _encode(changed_keys(node)).decode(),
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


def changed_keys(node: NodeExecution) -> list[str]:
    """The CSV's ``changed_keys``: the top-level keys ``node`` added or modified (in
    ``state_after``'s order), then those it removed; empty unless both states are objects.
    Equality is JSON's (``jsondiff.same``): ``0`` is not ``false``, ``1`` is not ``1.0``."""
    before, after = node.state_before, node.state_after
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    changed = [k for k, v in after.items() if k not in before or not same(before[k], v)]
    changed.extend(k for k in before if k not in after)
    return changed


def _csv_line(values: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    csvcells.Writer(buffer).writerow(values)
    return buffer.getvalue().encode()


def _check(fmt: str) -> None:
    if fmt not in FILE_SUFFIX:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
