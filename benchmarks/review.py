"""Review benchmark: the export of reviews, verdicts and comments, and comment rendering.

Run from the project root::

    .venv/bin/python benchmarks/review.py

It drops and recreates its own PostgreSQL database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/dashflow_review_bench``), migrates it, stores
``RUNS`` copies of the shared timeout-failure trace, gives each a review, a verdict per
step and ``COMMENTS_PER_RUN`` markdown comments, then measures in-process:

* rows per second of the JSON and the CSV export (the streamed generators, consumed
  whole), and the peak Python memory while streaming (tracemalloc): flat in the number of
  rows, because rows are read in keyset batches;
* comments rendered per second (markdown-it-py + nh3, with mentions);
* the comment list of one run through the API (``GET /runs/<id>/comments``).

The table goes to ``benchmarks/results/review.md`` and to stdout.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from databases import recreate_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dashflow_review_bench"
)
RUNS = 400
COMMENTS_PER_RUN = 25
BODY = (
    "The retriever **timed out** on `GET https://example.org/doc/4` after 30 s; "
    "@alice @bob see the [runbook](https://runbook.test/timeouts).\n\n- retry?\n- cache?"
)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(chunks: Callable[[], Iterator[bytes]]) -> tuple[int, int]:
    """(bytes streamed, peak traced Python memory) while consuming ``chunks``."""
    tracemalloc.start()
    size = sum(len(c) for c in chunks())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return size, peak


def main() -> None:
    recreate_database(BENCH_URL)
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from traces import markdown, review_export, review_json
    from traces.ingest import ingest_trace
    from traces.models import Comment, Membership, Project, Role, RunReview, StepVerdict
    from traces.parsing import parse_trace

    call_command("migrate", verbosity=0)
    project = Project.objects.create(slug="bench", name="Bench")
    users = []
    for name in ("alice", "bob"):
        user = get_user_model().objects.create_user(name)
        Membership.objects.create(project=project, user=user, role=Role.MEMBER)
        users.append(user)
    fixture = json.loads(
        (ROOT.parent / "shared/fixtures/dashflow/tool_timeout_failure.json").read_bytes()
    )
    start = time.perf_counter()
    runs = []
    for i in range(RUNS):
        fixture["execution_id"] = f"bench-{i:05d}"
        run, _ = ingest_trace(project, parse_trace(json.dumps(fixture).encode()))
        runs.append(run)
    RunReview.objects.bulk_create(
        RunReview(run=r, status="reviewed", assignee=users[i % 2], labels=["timeout", "net"])
        for i, r in enumerate(runs)
    )
    StepVerdict.objects.bulk_create(
        StepVerdict(run=r, step_position=p, verdict="bad" if p == 4 else "good", user=users[0])
        for r in runs
        for p in range(5)
    )
    Comment.objects.bulk_create(
        Comment(run=r, step_position=c % 5, path="/documents", author=users[c % 2],
                body=f"{BODY} ({r.pk}.{c})", mentions=["alice", "bob"])
        for r in runs
        for c in range(COMMENTS_PER_RUN)
    )  # fmt: skip
    seeded = time.perf_counter() - start
    rows = RUNS * (1 + 5 + COMMENTS_PER_RUN)

    json_s = timed(lambda: sum(1 for _ in review_export.json_chunks(project)))
    csv_s = timed(lambda: sum(1 for _ in review_export.csv_chunks(project)))
    json_size, json_peak = peak_memory(lambda: review_export.json_chunks(project))
    csv_size, csv_peak = peak_memory(lambda: review_export.csv_chunks(project))

    n_render = 2000
    bodies = iter(range(10**9))  # a new body each time: no cache hit

    def render_new() -> None:
        for _ in range(n_render):
            markdown.render(f"{BODY} {next(bodies)}", ["alice", "bob"])

    render_s = timed(render_new)

    client = APIClient()
    client.force_authenticate(users[0])
    url = f"/api/v1/runs/{runs[0].execution_id}/comments?project=bench"
    assert client.get(url).status_code == 200
    list_s = timed(lambda: client.get(url), repeat=5)
    many = runs[1]
    Comment.objects.bulk_create(
        Comment(run=many, author=users[0], body=f"{BODY} [{i}]", mentions=["alice"])
        for i in range(475)
    )
    url500 = f"/api/v1/runs/{many.execution_id}/comments?project=bench"
    list500_cold = timed(lambda: client.get(url500), repeat=1)
    list500_s = timed(lambda: client.get(url500), repeat=3)
    assert len(review_json.list_comments(many, review_json.CommentFilter())) == 500

    lines = [
        "# Review benchmark",
        "",
        f"`.venv/bin/python benchmarks/review.py` on {platform.machine()}, "
        f"Python {platform.python_version()}, PostgreSQL; {RUNS} runs, each with a review, "
        f"5 step verdicts and {COMMENTS_PER_RUN} comments: {rows:,} export rows "
        f"(seeded in {seeded:.1f} s). Medians of 3. Load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a shared machine: absolute "
        "times are pessimistic).",
        "",
        "| measure | result |",
        "|---|---|",
        f"| JSON export, whole | {json_s:.2f} s ({rows / json_s:,.0f} rows/s, "
        f"{json_size / 1e6:.1f} MB) |",
        f"| CSV export, whole | {csv_s:.2f} s ({rows / csv_s:,.0f} rows/s, "
        f"{csv_size / 1e6:.1f} MB) |",
        f"| peak Python memory while streaming JSON / CSV | {json_peak / 1e6:.1f} MB / "
        f"{csv_peak / 1e6:.1f} MB (vs {json_size / 1e6:.1f} / {csv_size / 1e6:.1f} MB output) |",
        f"| comment markdown rendered (markdown-it-py + nh3) | "
        f"{n_render / render_s:,.0f} comments/s |",
        f"| GET /runs/<id>/comments, 25 comments (rendered before) | {list_s * 1000:.0f} ms |",
        f"| GET /runs/<id>/comments, 500 comments, first read (renders all) | "
        f"{list500_cold * 1000:.0f} ms |",
        f"| GET /runs/<id>/comments, 500 comments, again | {list500_s * 1000:.0f} ms |",
        "",
        "Comments are rendered when read, each (body, mentions) once per process "
        "(`functools.lru_cache`, 4,096 entries): the first viewer of a run pays for "
        "rendering, the next ones do not.",
        "",
    ]
    text = "\n".join(lines)
    out = ROOT / "benchmarks" / "results" / "review.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
