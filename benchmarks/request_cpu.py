"""CPU per ingestion request, in-process, for this tree and (optionally) another revision.

Run from the project root::

    .venv/bin/python benchmarks/request_cpu.py [--against REV] [--events 400] [--rounds 2]

Measures the process CPU time (``time.process_time``: what the machine's other work does
not inflate, unlike wall time) of the two ingestion paths through Django's full request
handling (test client, the API key's auth, parsing, the one ingest workflow, PostgreSQL,
the in-memory channel layer):

- one live event per ``POST /api/v1/runs/<id>/events`` (a ``node_finished`` with ~1 KB
  states), ``--events`` of them in a row, CPU per request;
- a whole 2,000-node trace (``long_loop_2000``) per ``POST /api/v1/traces``, six copies
  with fresh states, the best CPU of the six.

With ``--against REV`` the same child runs in a temporary ``git worktree`` of REV (with
this virtualenv), alternating with this tree ``--rounds`` times, and the table gives the
ratio this tree / REV: a refactor of the ingest path should hold it near 1.0. Each side
uses its own database (``BENCH_DATABASE_URL`` with ``_a`` / ``_b`` appended), dropped and
recreated. The table goes to ``benchmarks/results/request_cpu.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from databases import recreate_database

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT.parent / "shared" / "fixtures" / "dashflow" / "long_loop_2000.json"
RESULTS = ROOT / "benchmarks" / "results" / "request_cpu.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/dashflow_bench_cpu"

# What each side runs: its own code (the cwd is its tree), Django set up as Daphne does.
CHILD = r"""
import json, sys, time, uuid
import django
django.setup()
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
from traces.models import ApiKey, Project
project, _ = Project.objects.get_or_create(slug="bench", defaults={"name": "bench"})
_, raw = ApiKey.issue(project, name="bench")
auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
client = Client()
events, fixture = int(sys.argv[1]), sys.argv[2]

def post(path, body):
    answer = client.post(path, body, content_type="application/json", **auth)
    assert answer.status_code in (200, 201), answer.content[:300]

state = {"question": "q" * 200, "notes": ["n" * 100] * 5}
node = {"duration_ms": 10, "tokens_used": 5, "tools_called": [], "success": True,
        "error_message": None, "started_at": None, "metadata": {}}
def one(eid, seq, type_, data):
    post(f"/api/v1/runs/{eid}/events",
         json.dumps({"events": [{"seq": seq, "type": type_, "data": data}]}))

for warm_up in (True, False):
    eid = str(uuid.uuid4())
    one(eid, 1, "run_started", {"thread_id": "t", "initial_state": state})
    start = time.process_time()
    for i in range(events):
        data = dict(node, node=f"n{i % 5}", index=i, state_before=state,
                    state_after=dict(state, step=i))
        one(eid, i + 2, "node_finished", data)
    event_cpu = (time.process_time() - start) / events

doc = json.load(open(fixture))
best = None
for copy in range(6):
    doc["execution_id"] = str(uuid.uuid4())
    for n in doc["nodes_executed"]:
        if isinstance(n.get("state_after"), dict):
            n["state_after"]["bench_copy"] = copy
    body = json.dumps(doc)
    start = time.process_time()
    post("/api/v1/traces", body)
    spent = time.process_time() - start
    best = spent if best is None or spent < best else best
print(json.dumps({"event_ms": event_cpu * 1000, "trace_ms": best * 1000}))
"""


def measure(tree: Path, db_url: str, events: int) -> dict[str, float]:
    recreate_database(db_url)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "dashflow_site.settings",
        "PYTHONPATH": str(tree),
        "VAR_DIR": tempfile.mkdtemp(),
    }
    env.pop("REDIS_URL", None)  # the in-memory layer: the request's own cost only
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(events), str(FIXTURE)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a git revision to compare with, in one run")
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    db_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)
    here: list[dict[str, float]] = []
    there: list[dict[str, float]] = []
    other: Path | None = None
    if args.against:
        other = Path(tempfile.mkdtemp()) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(other), args.against],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    try:
        for _ in range(args.rounds):
            here.append(measure(ROOT, db_url + "_a", args.events))
            if other is not None:
                there.append(measure(other, db_url + "_b", args.events))
    finally:
        if other is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False
            )
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# CPU per ingestion request",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; this tree: {rev}"
        + (f"; compared with: {args.against}" if args.against else ""),
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}; load average {load}",
        "- Command: `.venv/bin/python benchmarks/request_cpu.py"
        + (f" --against {args.against}" if args.against else "")
        + f" --events {args.events} --rounds {args.rounds}`",
        "- Process CPU time in-process (Django test client, PostgreSQL, in-memory layer); "
        f"median of {args.rounds} alternating rounds.",
        "",
        "| Measure | this tree | " + (f"{args.against} | ratio |" if args.against else ""),
        "|---|---|" + ("---|---|" if args.against else ""),
    ]
    for key, label in (
        ("event_ms", "one live event per POST: CPU per request"),
        ("trace_ms", "2,000-node trace per POST: CPU (best of 6)"),
    ):
        mine = median(r[key] for r in here)
        row = f"| {label} | {mine:.2f} ms |"
        if there:
            theirs = median(r[key] for r in there)
            row += f" {theirs:.2f} ms | {mine / theirs:.2f} |"
        lines.append(row)
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
