"""Export benchmark: 100,000 node executions (50 copies of ``long_loop_2000``) exported
from PostgreSQL, one format at a time, each in a fresh process standing in for the worker.

Run from the project root::

    .venv/bin/python benchmarks/exports.py [--formats training_examples,dashstream,...]
                                           [--copies 50] [--shared]

It drops and recreates its own database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/dashflow_bench_exports``), migrates it and stores
the copies under new execution ids. By default every copy's states carry the copy's
number (``"bench_copy": i``), so no state is shared between runs and an export decodes and
encodes every run's states afresh, as for unrelated runs; within a run, states are shared
as the fixture shares them (a node's state_after is the next one's state_before).
``--shared`` stores identical copies instead (every state shared by all 50 runs, as when
one graph is re-run on the same input), which the export's reuse of the previous run's
states makes much faster: a best case, not the figure to hold against the target.
Then, for each format, a child process runs exactly what the
Celery task runs (``traces.exports.run_export``) on an export of every run, and reports
its wall time and its peak resident memory (``ru_maxrss``, the whole process: Python,
Django and the export). Targets (issue 6): at least 20,000 node executions per second
for training examples, and a peak under 300 MB.

``--single 100000`` exports one generated run of that many node executions instead
(``generated_trace`` of ``benchmarks/ui.py``: ~0.5 KB states, each step's state_after the
next one's state_before), the case a run's length rather than the number of runs makes
hard; its table goes to ``benchmarks/results/exports_single.md``. An export reads a run's
steps ``EXPORT_WINDOW_STEPS`` at a time, so its peak should not grow with the run.

A format this build does not have (``traces/formats.py`` lacks it) is listed as such.
The table goes to ``benchmarks/results/exports.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from databases import recreate_database

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT.parent / "shared" / "fixtures" / "dashflow" / "long_loop_2000.json"
RESULTS = ROOT / "benchmarks" / "results" / "exports.md"
SINGLE_RESULTS = ROOT / "benchmarks" / "results" / "exports_single.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/dashflow_bench_exports"
COMMAND = ".venv/bin/python benchmarks/exports.py"
DEFAULT_FORMATS = "training_examples,dashstream,openai_finetune,dashstream_jsonl,csv,traces_jsonl"
TARGET_RATE = {"training_examples": 20_000}
TARGET_PEAK_MB = 300

# What the child runs: Django set up as the worker sets it up, then one export.
CHILD = r"""
import json, resource, sys, time
import django
django.setup()
from traces import exports, formats
from traces.models import Export, Project

from dashflow_site.celery import load_urls
load_urls()  # as a worker process does when it starts (worker_process_init)

fmt = sys.argv[1]
if fmt not in formats.FILE_SUFFIX:
    print(json.dumps({"available": False}))
    sys.exit(0)
project = Project.objects.get(slug="bench")
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
export = Export.objects.create(project=project, format=fmt)
start = time.perf_counter()
cpu_start = time.process_time()
outcome = exports.run_export(str(export.pk))
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu_start
export.refresh_from_db()
print(json.dumps({
    "available": True,
    "outcome": outcome,
    "error": export.error,
    "seconds": elapsed,
    "cpu": cpu,
    "runs": export.runs_done,
    "rows": export.row_count,
    "size": export.size_bytes,
    "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "baseline_kb": baseline,
}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def child_env(db_url: str, export_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EXPORT_RUN_DELAY_MS")}
    env.update(
        DJANGO_SETTINGS_MODULE="dashflow_site.settings",
        DATABASE_URL=db_url,
        DEBUG="false",
        SECRET_KEY="bench-exports-not-secret",
        EXPORT_DIR=str(export_dir),
        LOG_LEVEL="WARNING",
    )
    return env


def run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{result.stderr[-4000:]}")
    return result.stdout.strip()


GENERATE = r"""
import json, sys
sys.path.insert(0, "benchmarks")
from ui import generated_trace
with open(sys.argv[1], "wb") as out:
    out.write(json.dumps(generated_trace(int(sys.argv[2]), "bench-0000")).encode())
"""

SEED = r"""
import sys
import django
django.setup()
from traces import ingest
from traces.models import Project
from traces.trace import ExecutionTrace

copies = int(sys.argv[2])
shared = sys.argv[3] == "shared"
raw = open(sys.argv[1], "rb").read()
project, _ = Project.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
nodes = 0
for i in range(copies):
    trace = ExecutionTrace.from_json(raw)
    trace.execution_id = f"bench-{i:04d}"
    if not shared:
        # Objects decoded from one JSON text are distinct, so each state gets the key once.
        for node in trace.nodes_executed:
            for state in (node.state_before, node.state_after):
                if isinstance(state, dict):
                    state["bench_copy"] = i
    ingest.ingest_trace(project, trace)
    nodes += len(trace.nodes_executed)
print(nodes)
"""


def machine(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "nproc": str(os.cpu_count()),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "postgres": str(row[0] if row else "?"),
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formats", default=DEFAULT_FORMATS)
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument(
        "--shared", action="store_true", help="identical copies: every state shared by all runs"
    )
    parser.add_argument(
        "--single",
        type=int,
        default=0,
        metavar="NODES",
        help="one generated run of this many node executions instead of the copies",
    )
    args = parser.parse_args()
    formats_wanted = [f.strip() for f in args.formats.split(",") if f.strip()]

    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
        env = child_env(db_url, Path(tmp))
        log(f"recreating {urlsplit(db_url).path.lstrip('/')} and migrating")
        recreate_database(db_url)
        run(env, "manage.py", "migrate", "--noinput")
        start = time.perf_counter()
        if args.single:
            log(f"storing one generated run of {args.single:,} node executions")
            source = Path(tmp) / "generated.json"
            # Generated in a child: a parent that held it would hand its peak memory
            # on to every export process (Linux keeps ru_maxrss across fork and exec).
            run(env, "-c", GENERATE, str(source), str(args.single))
            # One run, stored as generated ("shared": no copy number added).
            nodes = int(run(env, "-c", SEED, str(source), "1", "shared"))
            source.unlink()
        else:
            log(f"storing {args.copies} copies of {FIXTURE.name}")
            mode = "shared" if args.shared else "distinct"
            nodes = int(run(env, "-c", SEED, str(FIXTURE), str(args.copies), mode))
        log(f"stored {nodes:,} node executions in {time.perf_counter() - start:.1f} s")

        results: list[tuple[str, dict[str, Any]]] = []
        for fmt in formats_wanted:
            log(f"exporting {fmt}")
            result = json.loads(run(env, "-c", CHILD, fmt).splitlines()[-1])
            if result.get("available") and result["outcome"] != "done":
                raise SystemExit(f"{fmt}: export {result['outcome']}: {result['error']}")
            results.append((fmt, result))
            for leftover in Path(tmp).iterdir():
                leftover.unlink()
        if args.single:
            report = render_single(results, nodes, machine(db_url))
        else:
            report = render(results, nodes, args.copies, args.shared, machine(db_url))
    target = SINGLE_RESULTS if args.single else RESULTS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report)
    print(report)


def dated(title: str, host: dict[str, str]) -> list[str]:
    """A results file's title, date and machine lines."""
    return [
        title,
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {host['nproc']} CPUs, {host['platform']}, Python {host['python']}, "
        f"PostgreSQL {host['postgres']}; load average {host['load']} (1/5/15 min) at the end",
    ]


def measured(
    results: list[tuple[str, dict[str, Any]]], lines: list[str], columns: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The formats this build has, with their results; a row in ``lines`` for the others."""
    for fmt, r in results:
        if r.get("available"):
            yield fmt, r
        else:
            cells = " |" * (columns - 2)
            lines.append(f"| `{fmt}` | not in this build's `traces/formats.py` |{cells}")


def render(
    results: list[tuple[str, dict[str, Any]]],
    nodes: int,
    copies: int,
    shared: bool,
    host: dict[str, str],
) -> str:
    sharing = (
        "identical copies (`--shared`): every state is shared by all runs, a best case"
        if shared
        else "each copy's states carry its number, so no state is shared between runs"
        " (within a run, as in the fixture)"
    )
    lines = [
        *dated("# Export benchmark", host),
        f"- Input: {copies} copies of `long_loop_2000.json` under new execution ids: "
        f"{copies} runs, {nodes:,} node executions, in PostgreSQL; {sharing}",
        "- Each export runs `traces.exports.run_export` (what the Celery task runs) in a"
        " fresh process set up as a worker process is (Django, then the URL configuration,"
        " which `worker_process_init` loads in a worker); time is wall time of the export"
        " (selection, reading every run, encoding, writing, fsync, rename); CPU is that"
        " process's user + system time (PostgreSQL's own work is not in it), a fairer figure"
        " than wall time on a loaded machine; peak is the process's `ru_maxrss` (Python +"
        " Django + export)",
        f"- Command: `{COMMAND}{' --shared' if shared else ''}` (from the project root)",
        "",
        "| Format | Node executions / s | Seconds | CPU s (per CPU s) | Rows | File "
        "| Peak memory | Targets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt, r in measured(results, lines, columns=8):
        rate = nodes / r["seconds"]
        peak_mb = r["peak_kb"] / 1024
        start_mb = r["baseline_kb"] / 1024
        checks = []
        if fmt in TARGET_RATE:
            ok = rate >= TARGET_RATE[fmt]
            checks.append(f"≥ {TARGET_RATE[fmt]:,}/s {'PASS' if ok else 'FAIL'}")
        checks.append(f"< {TARGET_PEAK_MB} MB {'PASS' if peak_mb < TARGET_PEAK_MB else 'FAIL'}")
        lines.append(
            f"| `{fmt}` | {rate:,.0f} | {r['seconds']:.2f} | "
            f"{r['cpu']:.2f} ({nodes / r['cpu']:,.0f}/s) | {r['rows']:,} | "
            f"{r['size'] / 1e6:.1f} MB | {peak_mb:.0f} MB (at start {start_mb:.0f} MB)"
            f" | {'; '.join(checks)} |"
        )
    lines.append("")
    return "\n".join(lines)


def render_single(
    results: list[tuple[str, dict[str, Any]]], nodes: int, host: dict[str, str]
) -> str:
    """The ``--single`` table: seconds and peak memory per format for one long run."""
    lines = [
        *dated("# Export benchmark: one long run", host),
        f"- Input: one run of {nodes:,} node executions, `generated_trace({nodes})` of"
        " `benchmarks/ui.py` (~0.5 KB states), in PostgreSQL",
        "- Each export runs `traces.exports.run_export` in a fresh process set up as a"
        " worker's; seconds are wall time, CPU the process's user + system time, peak its"
        " `ru_maxrss` (Python + Django + export); the run is read `EXPORT_WINDOW_STEPS`"
        " (default 2,000) steps at a time",
        f"- Command: `{COMMAND} --single {nodes}` (from the project root)",
        "",
        "| Format | Seconds | CPU s | Rows | File | Peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for fmt, r in measured(results, lines, columns=6):
        lines.append(
            f"| `{fmt}` | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['rows']:,} | "
            f"{r['size'] / 1e6:.1f} MB | {r['peak_kb'] / 1024:.0f} MB"
            f" (at start {r['baseline_kb'] / 1024:.0f} MB) |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
