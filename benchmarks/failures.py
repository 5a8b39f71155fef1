"""Failure grouping benchmark: what grouping adds to ingestion, and the backfill's speed.

Run from the project root::

    .venv/bin/python benchmarks/failures.py

It drops and recreates its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/h_failures_bench``), migrates it and, in process:

* ``normalize`` throughput over the demo's kinds of failure message;
* ``ingest.ingest_trace`` of generated failing research-agent runs (2 loops, ~8 steps), with
  the time spent in ``failures.record_run`` measured inside each save;
* ``regroup_failures``' backfill (``failures.regroup``) over the same runs after their
  groups are deleted.

The table goes to ``benchmarks/results/failures.md`` and to stdout.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from databases import django_on_fresh_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "failures.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/h_failures_bench"
RUNS = 300


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)
    django_on_fresh_database(url, ROOT)

    from traces import failures, fingerprint
    from traces.demo import research_run
    from traces.ingest import ingest_trace
    from traces.models import FailureGroup, Project, Run

    rng = random.Random(11)
    messages = [
        f"Timeout: GET https://example.org/doc/{rng.randrange(99)} exceeded {rng.choice([30, 45])}s"
        if i % 3 == 0
        else f"RateLimit: 429 from model gpt-4o-mini, retry after {rng.randrange(60)}s"
        if i % 3 == 1
        else f"ValidationError: answer missing field 'citations' at {rng.randrange(99)}"
        for i in range(20_000)
    ]
    start = time.perf_counter()
    for m in messages:
        fingerprint.normalize(m)
    normalize_rate = len(messages) / (time.perf_counter() - start)

    project = Project.objects.create(slug="bench", name="bench")
    now = datetime.now(UTC)
    traces = [
        research_run(rng, started=now - timedelta(minutes=i), loops=2, fail=True)
        for i in range(RUNS)
    ]
    grouping: list[float] = []
    real = failures.record_run

    def timed(run: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(run)
        finally:
            grouping.append(time.perf_counter() - t)

    failures.record_run = timed  # type: ignore[assignment]
    saves: list[float] = []
    for trace in traces:
        t = time.perf_counter()
        ingest_trace(project, trace)
        saves.append(time.perf_counter() - t)
    failures.record_run = real  # type: ignore[assignment]

    groups = FailureGroup.objects.filter(project=project)
    counts = sorted(groups.values_list("count", flat=True), reverse=True)
    pks = list(Run.objects.filter(project=project).values_list("pk", flat=True))
    groups.delete()
    start = time.perf_counter()
    failures.regroup(pks)
    backfill = time.perf_counter() - start
    again_start = time.perf_counter()
    failures.regroup(pks)
    again = time.perf_counter() - again_start

    ms = lambda seconds: f"{seconds * 1000:.2f} ms"  # noqa: E731
    share = sum(grouping) / sum(saves)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Failure grouping benchmark",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, PostgreSQL on 127.0.0.1; load average {load}"
        " (1/5/15 min) when it finished (the machine is shared: read the medians)",
        f"- Input: {RUNS} generated failing research-agent runs (2 loops), one error each, "
        f"{len(counts)} groups (sizes {counts})",
        "- Command: `.venv/bin/python benchmarks/failures.py` (from the project root)",
        "",
        "| Measure | Value |",
        "|---|---|",
        f"| `normalize`, messages/s (20,000 demo messages) | {normalize_rate:,.0f} |",
        f"| `ingest_trace` of a failing run, median | {ms(statistics.median(saves))} |",
        f"| `record_run` inside it, median | {ms(statistics.median(grouping))} |",
        f"|   p95 | {ms(sorted(grouping)[int(0.95 * len(grouping))])} |",
        f"| Share of ingestion time spent grouping | {share:.1%} |",
        f"| Backfill (`regroup_failures`) of {RUNS} runs, groups deleted first | "
        f"{backfill:.2f} s ({RUNS / backfill:,.0f} runs/s) |",
        f"| Backfill again (nothing to change) | {again:.2f} s ({RUNS / again:,.0f} runs/s) |",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
