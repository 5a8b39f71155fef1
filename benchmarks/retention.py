"""Retention benchmark: purge 20,000 expired runs while ingestion carries on.

Run from the project root::

    .venv/bin/python benchmarks/retention.py [--runs 20000]

It drops and recreates its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/h_retention_bench``), migrates it and, in process:

* stores 20 generated research-agent runs (about 10 steps each) through ``ingest_trace``,
  then copies them in SQL (runs and steps) up to ``--runs`` expired runs;
* ingests fresh runs in a thread, one after another, first alone (the baseline) and then
  while ``retention.purge`` deletes the expired ones with the default batch sizes;
* times each purge transaction (the longest any lock of it can be held) and each
  ingestion (what a writer waits, locks included).

The table goes to ``benchmarks/results/retention.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from databases import django_on_fresh_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "retention.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/h_retention_bench"
SEEDS = 20
BASELINE_INGESTS = 40


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20_000)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)
    django_on_fresh_database(url, ROOT)
    from django.conf import settings
    from django.db import connection

    from traces import retention
    from traces.demo import research_run
    from traces.ingest import ingest_trace
    from traces.models import Project, Run, StateSnapshot, Step

    rng = random.Random(16)
    project = Project.objects.create(slug="bench", name="bench", retention_days=30)
    old = datetime.now(UTC) - timedelta(days=60)
    for i in range(SEEDS):
        ingest_trace(project, research_run(rng, started=old + timedelta(minutes=i), loops=2))
    copies = (args.runs - SEEDS + SEEDS - 1) // SEEDS
    with connection.cursor() as cursor:
        # Copies of the seeds' runs and steps: the same snapshots, new execution ids.
        run_columns = [
            f.column
            for f in Run._meta.concrete_fields
            if f.column not in ("id", "execution_id", "trace_digest")
        ]
        cols = ", ".join(f'"{c}"' for c in run_columns)
        cursor.execute(
            f'INSERT INTO "traces_run" ({cols}, "execution_id", "trace_digest") '
            f"SELECT {cols}, r.execution_id || '~' || g, '' FROM \"traces_run\" r, "
            "generate_series(1, %s) g WHERE r.project_id = %s",
            [copies, project.pk],
        )
        cursor.execute('ANALYZE "traces_run"')
        step_columns = [
            f.column for f in Step._meta.concrete_fields if f.column not in ("id", "run_id")
        ]
        scols = ", ".join(f's."{c}"' for c in step_columns)
        cursor.execute(
            f'INSERT INTO "traces_step" ("run_id", {scols.replace("s.", "")}) '
            f'SELECT c.id, {scols} FROM "traces_run" c '
            # A copy's id is its seed's, '~', a number: an equality join (hashed).
            'JOIN "traces_run" r ON r.project_id = c.project_id '
            "AND r.execution_id = split_part(c.execution_id, '~', 1) "
            'JOIN "traces_step" s ON s.run_id = r.id '
            "WHERE c.project_id = %s AND c.trace_digest = ''",
            [project.pk],
        )
        Run.objects.filter(project=project).update(updated_at=old)
        cursor.execute("ANALYZE")
    expired = retention.dry_run_count(project)
    steps = Step.objects.filter(run__project=project).count()

    batch_seconds: list[float] = []
    real_batch = retention._purge_batch

    def timed_batch(*a: Any) -> Any:
        # The batch's whole transaction: purge() opens it just around this call.
        start = time.perf_counter()
        try:
            return real_batch(*a)
        finally:
            batch_seconds.append(time.perf_counter() - start)

    retention._purge_batch = timed_batch  # type: ignore[assignment]

    def ingest_loop(stop: threading.Event, out: list[float], limit: int | None) -> None:
        local = random.Random(len(out) + (limit or 0))
        n = 0
        try:
            while not stop.is_set() and (limit is None or n < limit):
                trace = research_run(local, started=datetime.now(UTC), loops=2)
                start = time.perf_counter()
                ingest_trace(project, trace)
                out.append(time.perf_counter() - start)
                n += 1
        finally:
            connection.close()

    baseline: list[float] = []
    ingest_loop(threading.Event(), baseline, BASELINE_INGESTS)

    during: list[float] = []
    stop = threading.Event()
    writer = threading.Thread(target=ingest_loop, args=(stop, during, None))
    writer.start()
    start = time.perf_counter()
    done = retention.purge(project)
    purge_seconds = time.perf_counter() - start
    stop.set()
    writer.join()

    left = Run.objects.filter(project=project).count()
    snapshots_left = StateSnapshot.objects.filter(project=project).count()
    load = os.getloadavg()
    rows = [
        ("Expired runs (dry-run count) / their steps", f"{expired:,} / {steps:,}"),
        ("Runs deleted / batches", f"{done.runs:,} / {done.batches:,}"),
        ("Purge, wall time", f"{purge_seconds:.1f} s ({done.runs / purge_seconds:,.0f} runs/s)"),
        ("Batch transaction, median", f"{statistics.median(batch_seconds) * 1000:.0f} ms"),
        ("Batch transaction, p95", f"{percentile(batch_seconds, 0.95) * 1000:.0f} ms"),
        ("Batch transaction, longest", f"{max(batch_seconds) * 1000:.0f} ms"),
        ("Ingest of a run alone, median", f"{statistics.median(baseline) * 1000:.0f} ms"),
        ("Ingest alone, longest", f"{max(baseline) * 1000:.0f} ms"),
        (
            f"Ingest during the purge ({len(during)} runs), median",
            f"{statistics.median(during) * 1000:.0f} ms",
        ),
        ("Ingest during the purge, p95", f"{percentile(during, 0.95) * 1000:.0f} ms"),
        ("Ingest during the purge, longest", f"{max(during) * 1000:.0f} ms"),
        ("Runs left (the fresh ones)", f"{left:,} (ingested {len(baseline) + len(during)})"),
        ("Snapshots left (the fresh runs' only)", f"{snapshots_left:,}"),
    ]
    text = "\n".join(
        [
            "# Retention benchmark",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, PostgreSQL on 127.0.0.1; load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} when it finished (the machine "
            "is shared: read the medians)",
            f"- Input: {args.runs:,} expired research-agent runs (~10 steps each, copies of "
            f"{SEEDS} generated runs sharing their snapshots), batches of "
            f"{settings.RETENTION_BATCH_RUNS} runs / {settings.RETENTION_BATCH_STEPS:,} steps; "
            "a thread ingests fresh runs one after another throughout",
            f"- Command: `.venv/bin/python benchmarks/retention.py --runs {args.runs}` "
            "(from the project root)",
            "",
            "| Measure | Value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in rows],
            "",
        ]
    )
    RESULTS.write_text(text)
    print(text)
    assert left == len(baseline) + len(during), "the purge deleted a fresh run"


if __name__ == "__main__":
    main()
