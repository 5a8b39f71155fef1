"""Helpers shared by the export tests: runs from the shared fixtures, the file an export
should produce (built independently of traces/exports.py, from the stored traces), and
Celery in-process (the embedded default) for tests that are not about the worker."""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from pathlib import Path

import pytest
from django.conf import LazySettings

from dashflow_site.celery import app as celery_app
from traces import formats, ingest, store
from traces.models import Project, Run
from traces.trace import ExecutionTrace

SMALL = ["research_agent_success", "tool_timeout_failure", "subgraph_child", "non_object_states"]


def trace_of(fixtures_dir: Path, name: str, execution_id: str | None = None) -> ExecutionTrace:
    trace = ExecutionTrace.from_json((fixtures_dir / f"{name}.json").read_bytes())
    if execution_id is not None:
        trace.execution_id = execution_id
    return trace


def store_runs(
    project: Project, fixtures_dir: Path, names: Iterable[str] = SMALL
) -> dict[str, Run]:
    """The named fixtures stored in ``project``: name -> run."""
    return {name: ingest.ingest_trace(project, trace_of(fixtures_dir, name))[0] for name in names}


def store_copies(project: Project, fixtures_dir: Path, name: str, count: int) -> list[Run]:
    """``count`` copies of one fixture under new execution ids, oldest first."""
    runs = []
    for i in range(count):
        trace = trace_of(fixtures_dir, name, f"{name}-copy-{i:04d}")
        trace.started_at = f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z"
        runs.append(ingest.ingest_trace(project, trace)[0])
    return runs


def expected_file(
    fmt: str,
    runs: Iterable[Run],
    steps: Callable[[ExecutionTrace], Container[int] | None] = lambda t: None,
    verdicts: Mapping[str, Mapping[int, str]] | None = None,
) -> tuple[bytes, int]:
    """What an export of ``runs`` (in this order) must contain, and its row count."""
    body = formats.file_header(fmt)
    rows = 0
    for run in runs:
        trace = store.load_trace(run)
        for chunk, count in formats.encode_run(
            fmt,
            trace,
            steps=steps(trace),
            verdicts=(verdicts or {}).get(run.execution_id) or None,
        ):
            body += chunk
            rows += count
    return body, rows


def files(directory: Path) -> list[str]:
    """The names of the files in an export directory (not its ``locks/``), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def jsonl_ids(body: bytes) -> list[str]:
    return [json.loads(line)["execution_id"] for line in body.splitlines()]


@pytest.fixture
def export_dir(settings: LazySettings, tmp_path: Path) -> Path:
    settings.EXPORT_DIR = tmp_path / "exports"
    return Path(settings.EXPORT_DIR)


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks run in-process as they are queued (the embedded default), whatever REDIS_URL
    says: these tests are about the API and the export, not the worker."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before


__all__ = [
    "SMALL",
    "eager",
    "expected_file",
    "export_dir",
    "files",
    "jsonl_ids",
    "store_copies",
    "store_runs",
    "trace_of",
]
