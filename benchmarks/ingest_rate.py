"""One API key flooding ingestion, another key reading and ingesting: what the per-key
rate limit (``INGEST_RATE``, ``INGEST_BURST``; traces/throttle.py) leaves the other key.

Run from the project root::

    .venv/bin/python benchmarks/ingest_rate.py [--flooders 4] [--rate 20]

One Daphne on a fresh SQLite database (the embedded mode), two projects with a key each.
Key B reads the run list 40 times, 0.1 s apart (well within its own rate), first on an
idle server, then while key A posts a 60 kB trace from ``--flooders`` threads as fast as
the server answers; B also ingests during the flood. Twice: with ``INGEST_RATE=--rate``
(A's excess answered 429 by Daphne from the headers, before Django and before its
body is read: dashflow_site/bodylimit.py) and with ``INGEST_RATE=0`` (no
limit: every one of A's posts is ingested). The table (B's latency, A's answers) goes to
``benchmarks/results/ingest_rate.md`` and to stdout. Wall-clock latency: the machine's
other work shows in it, so compare the two rows of one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median, quantiles

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")

from tests.servers import Daphne, daphne, server_env  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "dashflow" / "research_agent_success.json"
RESULTS = ROOT / "benchmarks" / "results" / "ingest_rate.md"
READS = 40


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def reads(server: Daphne, key: str) -> list[float]:
    """B's run-list latencies in ms, one request every 0.1 s."""
    latencies = []
    for _ in range(READS):
        started = time.perf_counter()
        response = server.request("GET", "/api/v1/runs", headers={"Authorization": f"Bearer {key}"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.status
        time.sleep(0.1)
    return latencies


@dataclass
class Phase:
    rate: int
    quiet: list[float]  # B's read latencies, idle server (ms)
    loud: list[float]  # the same during A's flood
    a: Counter[int]  # A's answers by status
    b_ingests: Counter[int]


def phase(rate: int, flooders: int) -> Phase:
    directory = tempfile.mkdtemp(prefix="ingest-rate-")
    env = server_env(
        f"sqlite:///{directory}/db.sqlite3",
        DEBUG="false",
        SECRET_KEY=secrets.token_hex(32),
        LOG_LEVEL="ERROR",
        VAR_DIR=directory,
        INGEST_RATE=str(rate),
        INGEST_BURST=str(max(rate, 1)),
    )
    manage(env, "migrate", "--noinput")
    key_a = manage(env, "create_api_key", "--project", "a")
    key_b = manage(env, "create_api_key", "--project", "b")
    body = FIXTURE.read_bytes()
    with daphne(env) as server:
        b_auth = {"Authorization": f"Bearer {key_b}"}
        assert server.request("POST", "/api/v1/traces", body, b_auth).status == 201
        quiet = reads(server, key_b)
        stop = threading.Event()
        answers: Counter[int] = Counter()

        def flood() -> None:
            auth = {"Authorization": f"Bearer {key_a}"}
            while not stop.is_set():
                answers[server.request("POST", "/api/v1/traces", body, auth).status] += 1

        threads = [threading.Thread(target=flood) for _ in range(flooders)]
        for thread in threads:
            thread.start()
        try:
            b_ingests = Counter(
                server.request("POST", "/api/v1/traces", body, b_auth).status for _ in range(5)
            )
            loud = reads(server, key_b)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    return Phase(rate, quiet, loud, answers, b_ingests)


def p95(values: list[float]) -> float:
    return quantiles(values, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--rate", type=int, default=20)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = [phase(args.rate, args.flooders), phase(0, args.flooders)]
    load_after = os.getloadavg()
    lines = [
        "# One key flooding ingestion: the other key's latency",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"`benchmarks/ingest_rate.py --flooders {args.flooders} --rate {args.rate}`: "
        f"key A posts a 60 kB trace from {args.flooders} threads as fast as answered; key B "
        f"reads the run list {READS} times, 0.1 s apart, and ingests 5 traces meanwhile. "
        f"Load average (1, 5, 15 min) {', '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.2f}' for x in load_after)} after.",
        "",
        "| INGEST_RATE (burst) | B read p50 idle | B read p50 flood | B read p95 idle "
        "| B read p95 flood | B's 5 ingests | A's answers |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        limit = f"{row.rate} ({row.rate})" if row.rate else "0 (no limit)"
        lines.append(
            f"| {limit} | {median(row.quiet):.1f} ms | {median(row.loud):.1f} ms "
            f"| {p95(row.quiet):.1f} ms | {p95(row.loud):.1f} ms "
            f"| {dict(sorted(row.b_ingests.items()))} | {dict(sorted(row.a.items()))} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
