"""Large-trace benchmark: 81 MB and ~256 MB traces posted to a real Daphne, plain and gzip.

Run from the project root::

    .venv/bin/python benchmarks/large_ingest.py

It drops and recreates its own database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/dashflow_large_bench``), migrates it and, for each
case, starts a fresh Daphne (so one case's freed heap does not hide the next one's
growth) and measures, against issue 16's first point:

* the body posted (and, for gzip, the JSON it inflates to);
* the server's peak RSS growth while it takes, parses and stores the trace: ``VmHWM``
  read from ``/proc/<pid>/status`` after the answer, minus ``VmRSS`` just before the post
  (the process is idle and warm: one small trace was ingested first);
* that growth over the body size (target: under 3x), and the seconds until the answer
  (the trace is committed by then: the answer names what was stored).

The table goes to ``benchmarks/results/large_ingest.md`` and to stdout.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from databases import recreate_database
from ingest import free_port, manage, server_env, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "large_ingest.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/dashflow_large_bench"
COMMAND = ".venv/bin/python benchmarks/large_ingest.py"
MB = 1024 * 1024
APP = "dashflow_site.asgi:application"
TARGET_RATIO = 3.0
NODES = 10_000
# (label, target body size): the 81 MB trace, and one near the default limit.
SIZES = [("81 MB", 81 * MB), ("256 MB", 250 * MB)]

# A vocabulary of made-up words: text from it compresses about as prose does (~3x with
# gzip), where a handful of repeated words would compress twenty times over.
_VOCABULARY = [
    "".join(random.Random(n).choices("abcdefghijklmnopqrstuvwxyz", k=3 + n % 8))
    for n in range(5000)
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def text(rng: random.Random, size: int) -> str:
    """About ``size`` bytes of words (gzip takes it to a realistic third or so)."""
    words = rng.choices(_VOCABULARY, k=max(1, size // 7))
    return " ".join(words)[:size]


def large_trace(nodes: int, target_bytes: int, execution_id: str) -> bytes:
    """A chat research loop of ``nodes`` steps whose body is about ``target_bytes`` of
    DashFlow JSON. Each state holds a rolling window of chat messages (small objects, as
    an agent's state mostly is: decoded, they take several times their JSON) and a draft
    rewritten at every step, sized so that the states (two a step) fill the body."""
    rng = random.Random(16)
    per_state = max(400, target_bytes // (2 * nodes) - 10)
    window = max(1, int(per_state * 0.6) // 230)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    cursor = start
    loop = ["retriever", "reader", "critic"]
    state: dict[str, Any] = {"question": "A long research loop", "iteration": 0, "messages": []}
    steps = []
    for i in range(nodes):
        node = "planner" if i == 0 else "writer" if i == nodes - 1 else loop[(i - 1) % 3]
        message = {"role": "assistant", "name": node, "content": text(rng, 150), "tokens": i}
        after = {
            **state,
            "iteration": i,
            "messages": [*state["messages"][1 - window :], message],
            "draft": text(rng, int(per_state * 0.4)),
        }
        steps.append(
            {
                "node": node,
                "duration_ms": 40 + (i * 37) % 400,
                "tokens_used": 200 + i % 300,
                "state_before": state,
                "state_after": after,
                "tools_called": ["web_search"] if node == "retriever" else [],
                "success": True,
                "error_message": None,
                "index": i,
                "started_at": cursor.isoformat(timespec="milliseconds"),
                "metadata": {},
            }
        )
        state = after
        cursor += timedelta(milliseconds=50)
    trace = {
        "thread_id": "large-thread",
        "execution_id": execution_id,
        "nodes_executed": steps,
        "total_duration_ms": int((cursor - start).total_seconds() * 1000),
        "total_tokens": sum(s["tokens_used"] for s in steps),
        "errors": [],
        "completed": True,
        "started_at": start.isoformat(timespec="milliseconds"),
        "ended_at": cursor.isoformat(timespec="milliseconds"),
        "final_state": state,
        "metadata": {"graph_name": "large-loop"},
    }
    return json.dumps(trace).encode()


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def post(
    port: int, key: str, body: bytes, gzipped: bool, timeout: float = 900.0
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/api/v1/traces", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Case:
    label: str
    encoding: str
    body_bytes: int
    json_bytes: int
    rss_before: int
    peak_growth: int
    seconds: float
    status: int

    @property
    def ratio(self) -> float:
        return self.peak_growth / self.body_bytes

    @property
    def json_ratio(self) -> float:
        return self.peak_growth / self.json_bytes


def run_case(
    env: dict[str, str], key: str, label: str, body: bytes, json_bytes: int, gzipped: bool
) -> Case:
    """One post to a fresh Daphne, warmed up by a small trace first."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", prefix="daphne-", suffix=".log") as server_log:
        proc = start_daphne(env, port, server_log)
        try:
            wait_until_up(proc, port)
            small = large_trace(20, 100_000, str(uuid.uuid4()))
            status, answer = post(port, key, small, gzipped=False)
            if status != 201:
                raise RuntimeError(f"warm-up answered {status}: {answer[:300]!r}")
            rss_before = proc_status(proc.pid, "VmRSS")
            # Reset the high-water mark to the current RSS (Linux: clear_refs 5).
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            started = time.perf_counter()
            status, answer = post(port, key, body, gzipped)
            seconds = time.perf_counter() - started
            peak = proc_status(proc.pid, "VmHWM")
        except Exception:
            server_log.seek(0)
            log(f"--- daphne log (tail) ---\n{server_log.read()[-4000:]}")
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if status != 201:
        raise RuntimeError(f"{label}: answered {status}: {answer[:500]!r}")
    case = Case(
        label,
        "gzip" if gzipped else "identity",
        len(body),
        json_bytes,
        rss_before,
        peak - rss_before,
        seconds,
        status,
    )
    log(
        f"{label} {case.encoding}: {mb(case.body_bytes)} posted, peak growth"
        f" {mb(case.peak_growth)} ({case.ratio:.2f}x body), {seconds:.1f} s"
    )
    return case


def start_daphne(env: dict[str, str], port: int, log_file: IO[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port), APP],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )


def mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


def render(cases: list[Case], limit: int) -> str:
    worst = max(c.ratio for c in cases if c.encoding == "identity")
    lines = [
        "# Large traces through the API",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `{COMMAND}` on"
        f" {platform.machine()}, {os.cpu_count()} CPUs (shared with other work),"
        f" Python {platform.python_version()}, PostgreSQL.",
        "",
        f"Generated {NODES:,}-step traces (a chat loop: each step's state after is the next"
        f" one's state before, {NODES + 1:,} distinct states, mostly small objects) posted to"
        f" `POST /api/v1/traces` of a fresh Daphne with `TRACE_UPLOAD_MAX_BYTES={limit}`."
        " Peak growth is the server process's `VmHWM` after the answer minus its `VmRSS`"
        " before the post (warm: one small trace stored first). Seconds are until the"
        " answer, which comes after the commit.",
        "",
        "| trace | encoding | body | JSON | peak RSS growth | growth / body |"
        " growth / JSON | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        lines.append(
            f"| {c.label} | {c.encoding} | {mb(c.body_bytes)} | {mb(c.json_bytes)} |"
            f" {mb(c.peak_growth)} | {c.ratio:.2f}x | {c.json_ratio:.2f}x | {c.seconds:.1f} |"
        )
    ok = worst < TARGET_RATIO
    lines += [
        "",
        f"Target (issue 16): peak growth under {TARGET_RATIO:.0f}x the body for a plain"
        f" body: worst {worst:.2f}x, {'met' if ok else 'NOT met'}. A gzip body is held to"
        " the limit twice (compressed and inflated); its growth is compared with both.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    base_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)
    log(f"recreating database {urlsplit(base_url).path.lstrip('/')}")
    recreate_database(base_url)
    env = server_env(base_url)
    limit = int(env.get("TRACE_UPLOAD_MAX_BYTES", 256 * MB))
    env["TRACE_UPLOAD_MAX_BYTES"] = str(limit)
    manage(env, "migrate", "--noinput")
    key = manage(env, "create_api_key", "--project", "large")
    cases = []
    for label, size in SIZES:
        log(f"generating the {label} trace")
        body = large_trace(NODES, size, str(uuid.uuid4()))
        cases.append(run_case(env, key, label, body, len(body), gzipped=False))
        # The same trace again, gzipped, under a new execution id (so it is stored anew).
        body = large_trace(NODES, size, str(uuid.uuid4()))
        packed = gzip.compress(body, compresslevel=6)
        cases.append(run_case(env, key, label, packed, len(body), gzipped=True))
        del body, packed
    report = render(cases, limit)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
