"""Thread page benchmark: a thread of 1,000 runs costs what a thread of 50 does.

Run from the project root::

    .venv/bin/python benchmarks/threads.py

It drops and recreates its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/dashflow_threads_bench``), migrates it and stores a
thread of ``RUNS`` runs as a chat app writes them: each run's state holds the whole
conversation so far (two messages more per run, so the last state holds 2,000), then a
thread of 50 such runs. Measured in-process through the Django test client: the thread
page (the latest 50 runs and their new messages), an older page, and the SQL queries each
makes (``CaptureQueriesContext``). The table goes to ``benchmarks/results/threads.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from databases import recreate_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dashflow_threads_bench"
)
RUNS = 1000


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def chat_trace(execution_id: str, thread_id: str, i: int, messages: list[Any]) -> bytes:
    started = f"2026-03-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00.000+00:00"
    state = {"messages": messages, "turn": i}
    node = {
        "node": "chat", "duration_ms": 900, "tokens_used": 350,
        "state_before": {"messages": messages[:-1], "turn": i}, "state_after": state,
        "tools_called": [], "success": True, "index": 0, "started_at": started,
    }  # fmt: skip
    return json.dumps(
        {
            "execution_id": execution_id,
            "thread_id": thread_id,
            "nodes_executed": [node],
            "total_duration_ms": 900,
            "total_tokens": 350,
            "errors": [],
            "completed": True,
            "started_at": started,
            "final_state": state,
            "metadata": {"graph_name": "chat"},
        }
    ).encode()


def main() -> None:
    recreate_database(BENCH_URL)
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from traces import threads
    from traces.ingest import ingest_trace
    from traces.models import Membership, Project, Role
    from traces.parsing import parse_trace

    call_command("migrate", verbosity=0)
    project = Project.objects.create(slug="bench", name="Bench")
    user = get_user_model().objects.create_user("alice")
    Membership.objects.create(project=project, user=user, role=Role.MEMBER)

    def seed(thread_id: str, runs: int) -> float:
        start = time.perf_counter()
        messages: list[Any] = []
        for i in range(runs):
            messages = [
                *messages,
                {"role": "user", "content": f"Question {i}: where is order {1000 + i}?"},
                {"role": "assistant", "content": f"Order {1000 + i} left the warehouse."},
            ]
            trace = chat_trace(f"{thread_id}-{i:05d}", thread_id, i, messages)
            ingest_trace(project, parse_trace(trace))
        return time.perf_counter() - start

    seeded = seed("long", RUNS)
    seed("short", 50)
    client = Client()
    client.force_login(user)

    decoded: list[int] = []
    load_states = vars(threads)["load_states"]

    def counting(project_id: int, ids: Any) -> dict[int, Any]:
        states: dict[int, Any] = load_states(project_id, ids)
        decoded.append(len(states))
        return states

    vars(threads)["load_states"] = counting  # counts the states a page decodes

    def page(thread_id: str, **query: str) -> tuple[float, int, int]:
        url = reverse("visualizer:thread", args=["bench", thread_id])
        decoded.clear()
        response = client.get(url, query)
        assert response.status_code == 200, response.status_code
        return timed(lambda: client.get(url, query)), decoded[0], len(response.content)

    rows = [
        ("thread of 50 runs, the page", page("short")),
        (f"thread of {RUNS:,} runs, the latest 50", page("long")),
        (f"thread of {RUNS:,} runs, an older page", page("long", before="long-00500")),
        (f"thread of {RUNS:,} runs, the oldest page", page("long", before="long-00050")),
    ]
    lines = [
        "# Thread page benchmark",
        "",
        f"`.venv/bin/python benchmarks/threads.py` on {platform.machine()}, "
        f"Python {platform.python_version()}, PostgreSQL; a thread of {RUNS:,} runs whose "
        f"states hold the whole conversation so far (2 messages more per run; seeded in "
        f"{seeded:.0f} s) and one of 50. GET through the Django test client, medians of 5. "
        f"Load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a "
        "shared machine: absolute times are pessimistic).",
        "",
        "| page | time | states decoded | HTML |",
        "|---|---|---|---|",
        *(
            f"| {what} | {seconds * 1000:.0f} ms | {n} | {size / 1000:.0f} kB |"
            for what, (seconds, n, size) in rows
        ),
        "",
        "A page reads the final states of its 50 runs and of the run before them, never "
        "the thread's other states: the page of a 1,000-run thread costs what the page "
        "of a 50-run one does, apart from the states being longer there.",
        "",
    ]
    text = "\n".join(lines)
    (ROOT / "benchmarks" / "results" / "threads.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
