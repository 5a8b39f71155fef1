"""TEMPORARY stub of the export formats: only ``traces_jsonl`` and ``csv``.

The real module (all six formats) comes from the formats branch; this one exists so the
export machinery can be built and tested beside it, with exactly its interface.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Container, Iterator, Mapping, Sequence

import msgspec

from .trace import ExecutionTrace

FILE_SUFFIX: dict[str, str] = {"traces_jsonl": ".jsonl", "csv": ".csv"}
CONTENT_TYPE: dict[str, str] = {
    "traces_jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}

CSV_COLUMNS = [
    "run",
    "index",
    "node",
    "start",
    "duration_ms",
    "tokens",
    "success",
    "error",
    "tools",
    "changed_keys",
]


def file_header(fmt: str) -> bytes:
    """What the file starts with, before any run."""
    if fmt == "csv":
        return _csv_line(CSV_COLUMNS)
    if fmt == "traces_jsonl":
        return b""
    raise ValueError(f"format {fmt!r} is not available in this build")


def _csv_line(values: Sequence[object]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().encode()


def encode_run(
    fmt: str,
    trace: ExecutionTrace,
    *,
    steps: Container[int] | None = None,
    verdicts: Mapping[int, str] | None = None,
) -> Iterator[tuple[bytes, int]]:
    """One run in ``fmt``: ``(chunk, rows)`` pairs."""
    if fmt == "traces_jsonl":
        if steps is not None:
            trace = msgspec.structs.replace(
                trace,
                nodes_executed=[n for i, n in enumerate(trace.nodes_executed) if i in steps],
            )
        yield trace.to_json() + b"\n", 1
        return
    if fmt == "csv":
        for position, n in enumerate(trace.nodes_executed):
            if steps is not None and position not in steps:
                continue
            row: list[object] = [
                trace.execution_id,
                n.index,
                n.node,
                n.started_at or "",
                n.duration_ms,
                n.tokens_used,
                "true" if n.success else "false",
                n.error_message or "",
                ";".join(n.tools_called),
                ";".join(n.changed_keys()),
            ]
            yield _csv_line(row), 1
        return
    raise ValueError(f"format {fmt!r} is not available in this build")
