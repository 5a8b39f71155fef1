"""Run list benchmark: the page and the API over 100,000 runs in PostgreSQL.

Run from the project root::

    .venv/bin/python benchmarks/runlist.py [--runs 100000] [--keep]

It drops and recreates its own database (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/h_runlist_bench``), migrates it, and bulk-loads (COPY)
one project of realistic runs: ~20% failed and ~2% still running, 8 graph names with a
skewed mix, 20,000 threads, 3-12 steps per run (every run has its steps, ~700k rows, so
the ``node`` filter reads real step rows), one error row per failed run (5 error types,
messages with numbers and URLs), metadata with model, tenant, user and version, and the
``search_text`` column written by the same function ingestion uses. No states: lists
never read them.

Then it times requests through Django's test client (in process: the server's work for a
request, without a socket), each the median of several after one warm-up, for the page
(``/projects/<slug>/runs/``, HTML) and the API (``/api/v1/runs``): first page, page 50 by
following ``next`` cursors, ``status=failed``, a ``node`` filter, ``q`` searches, the
duration sort (first page and page 50) and some combinations. Each list query is also
run under ``EXPLAIN ANALYZE`` and the indexes it uses are reported. The table goes to
``benchmarks/results/runlist.md`` and to stdout.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "runlist.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/h_runlist_bench"
COMMAND = ".venv/bin/python benchmarks/runlist.py"
REPEATS = 7
TARGET_MS = 200

GRAPHS = [
    ("research-agent", 40),
    ("support-triage", 25),
    ("code-review", 12),
    ("sql-agent", 8),
    ("email-drafter", 6),
    ("planner-executor", 5),
    ("rag-qa", 3),
    ("billing-dispute", 1),
]
NODES = {
    "research-agent": ["planner", "retriever", "reader", "critic", "writer"],
    "support-triage": ["classify", "lookup_customer", "retriever", "draft_reply", "guardrail"],
    "code-review": ["fetch_diff", "static_analysis", "reviewer", "summarize"],
    "sql-agent": ["schema_lookup", "write_sql", "run_sql", "explain"],
    "email-drafter": ["outline", "draft", "tone_check"],
    "planner-executor": ["planner", "executor", "tool_router", "reflect"],
    "rag-qa": ["embed_query", "retriever", "rerank", "answer"],
    "billing-dispute": ["lookup_invoice", "policy_check", "escalate"],
}
RARE_NODE = "human_review"  # in ~0.5% of runs
ERRORS = [
    ("Timeout", "Timeout: GET https://api.example.org/v1/docs/{n} exceeded {s}s"),
    ("RateLimit", "RateLimit: 429 from model gpt-4o-mini, retry after {s}s"),
    ("ValidationError", "ValidationError: answer missing field 'citations' at item {n}"),
    ("ToolError", "ToolError: sql tool returned exit code {s} for query #{n}"),
    ("ContextOverflow", "ContextOverflow: {n} tokens exceed the 128000 token window"),
]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b"]
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def admin(url: str, sql: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql)


def setup_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"BENCH_DATABASE_URL={url!r}: database name must be [A-Za-z0-9_]")
    admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(url, f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url, "VAR_DIR": tempfile.mkdtemp()}
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )


def generate(n_runs: int, project_id: int, seed: int = 7) -> tuple[list[Any], list[Any], list[Any]]:
    """Rows for traces_run, traces_step, traces_runerror (ids 1..n)."""
    from traces.filters import _metadata_items, extend_search_text

    rng = random.Random(seed)
    names = [g for g, _ in GRAPHS]
    weights = [w for _, w in GRAPHS]
    now = datetime.now(UTC)
    runs: list[Any] = []
    steps: list[Any] = []
    errors: list[Any] = []
    for pk in range(1, n_runs + 1):
        graph = rng.choices(names, weights)[0]
        started = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        roll = rng.random()
        status = "running" if roll < 0.02 else "failed" if roll < 0.22 else "completed"
        nodes = NODES[graph]
        count = rng.randint(3, 12)
        path = [
            nodes[i % len(nodes)] if i < len(nodes) else rng.choice(nodes) for i in range(count)
        ]
        if rng.random() < 0.005:
            path.insert(rng.randrange(len(path)), RARE_NODE)
        execution_id = f"{rng.getrandbits(128):032x}"
        thread_id = f"session-{rng.randrange(20000)}"
        metadata = {
            "graph_name": graph,
            "model": rng.choice(MODELS),
            "tenant": rng.choice(TENANTS),
            "user_id": f"u-{rng.randrange(5000)}",
            "version": f"1.{rng.randrange(12)}.{rng.randrange(5)}",
        }
        step_ms = [int(rng.lognormvariate(6, 0.9)) for _ in path]
        step_tokens = [int(ms * rng.uniform(0.5, 2.5)) for ms in step_ms]
        if status == "running":
            duration, tokens = 0, 0
        else:
            duration, tokens = sum(step_ms), sum(step_tokens)
        first_error = first_type = first_node = ""
        at = -1
        error_items: list[str] = []
        if status == "failed":
            at = rng.randrange(len(path))
            error_type, template = rng.choice(ERRORS)
            message = template.format(n=rng.randrange(100000), s=rng.randint(2, 60))
            first_error, first_type, first_node = message, error_type, path[at]
            errors.append((pk, 0, path[at], message, error_type, False, False, "{}"))
            error_items = [error_type, message]
        for position, node in enumerate(path):
            failed = status == "failed" and node == first_node and position == at
            steps.append(
                (
                    pk,
                    position,
                    position,
                    node,
                    step_ms[position],
                    step_tokens[position],
                    "[]",
                    not failed,
                    first_error if failed else None,
                    "{}",
                )
            )
        search = extend_search_text(
            "",
            [
                execution_id,
                thread_id,
                *path,
                *error_items[:1],
                *_metadata_items(metadata),
                *error_items[1:],
            ],
        )
        stamp = started.isoformat(timespec="milliseconds")
        ended = None if status == "running" else started + timedelta(milliseconds=duration)
        runs.append(
            (
                pk,
                project_id,
                execution_id,
                thread_id,
                graph,
                status,
                status == "completed",
                started,
                stamp,
                ended,
                ended.isoformat(timespec="milliseconds") if ended else None,
                duration,
                tokens,
                len(path),
                1 if status == "failed" else 0,
                first_error,
                first_type,
                first_node,
                json.dumps(metadata),
                "",
                started,
                ended or started,
                0,
                0,
                search,
            )
        )
    return runs, steps, errors


RUN_COLUMNS = (
    "id, project_id, execution_id, thread_id, graph_name, status, completed, started_at, "
    "started_at_text, ended_at, ended_at_text, duration_ms, total_tokens, node_count, "
    "error_count, first_error, first_error_type, first_error_node, metadata, trace_digest, "
    "created_at, updated_at, last_seq, event_count, search_text"
)
STEP_COLUMNS = (
    "run_id, position, index, node, duration_ms, tokens_used, tools_called, success, "
    "error_message, metadata"
)
ERROR_COLUMNS = (
    "run_id, position, node, message, error_type, recoverable, retry_attempted, metadata"
)


def load(url: str, n_runs: int) -> dict[str, Any]:
    """Bulk-load the project; returns what the timings need (slug, user, counts)."""
    from django.contrib.auth import get_user_model

    from traces.models import Membership, Project, Role

    project = Project.objects.create(slug="bench", name="Bench")
    user = get_user_model().objects.create_user("bench", password="bench-pw-123")
    Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    started = time.perf_counter()
    runs, steps, errors = generate(n_runs, project.pk)
    log(f"generated {len(runs)} runs, {len(steps)} steps, {len(errors)} errors")
    with psycopg.connect(url, autocommit=True) as conn:
        for table, columns, rows in (
            ("traces_run", RUN_COLUMNS, runs),
            ("traces_step", STEP_COLUMNS, steps),
            ("traces_runerror", ERROR_COLUMNS, errors),
        ):
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        for table in ("traces_run", "traces_step", "traces_runerror"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        conn.execute("VACUUM ANALYZE traces_run")
        conn.execute("VACUUM ANALYZE traces_step")
        conn.execute("VACUUM ANALYZE traces_runerror")
    log(f"loaded in {time.perf_counter() - started:.1f} s")
    return {"slug": project.slug, "user": user, "runs": len(runs), "steps": len(steps)}


def reuse() -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from traces.models import Run, Step

    return {
        "slug": "bench",
        "user": get_user_model().objects.get(username="bench"),
        "runs": Run.objects.count(),
        "steps": Step.objects.count(),
    }


SCENARIOS: list[tuple[str, dict[str, str], int]] = [
    # (label, query parameters, page number reached by following `next`)
    ("first page (newest first)", {}, 1),
    ("page 50 via cursor", {}, 50),
    ("status=failed", {"status": "failed"}, 1),
    ("status=failed, page 50", {"status": "failed"}, 50),
    ("node=critic (common)", {"node": "critic"}, 1),
    (f"node={RARE_NODE} (0.5% of runs)", {"node": RARE_NODE}, 1),
    ("error_type=RateLimit", {"error_type": "RateLimit"}, 1),
    ("graph_name=billing-dispute (1%)", {"graph_name": "billing-dispute"}, 1),
    ("last=24h", {"last": "24h"}, 1),
    ("q=ratelimit (common)", {"q": "ratelimit"}, 1),
    ("q=u-4242 (rare: one user)", {"q": "u-4242"}, 1),
    ("q=gpt-4o globex (two terms)", {"q": "gpt-4o globex"}, 1),
    ("sort=-duration_ms", {"sort": "-duration_ms"}, 1),
    ("sort=-duration_ms, page 50", {"sort": "-duration_ms"}, 50),
    ("sort=total_tokens (ascending)", {"sort": "total_tokens"}, 1),
    ("status=failed & sort=-total_tokens", {"status": "failed", "sort": "-total_tokens"}, 1),
]


def page_url(client: Any, base: str, params: dict[str, str], page: int, api: bool) -> str:
    """The URL of page ``page`` (following ``next`` from the first)."""
    from urllib.parse import urlencode

    url = f"{base}?{urlencode(params)}" if params else base
    for _ in range(page - 1):
        if api:
            following = client.get(url).json()["next"]
        else:
            found = re.search(r'href="([^"]+)" rel="next"', client.get(url).content.decode())
            following = base + html.unescape(found[1]) if found else None
        assert following, f"no page after {url}"
        url = following
    return url


def timed(client: Any, url: str) -> tuple[float, float, int]:
    """Median wall time and median CPU time of this process (Django's own work, not
    PostgreSQL's) of REPEATS requests, in ms, after a warm-up; and the status.

    The CPU time is reported beside the wall time because this machine is shared: the
    wall time carries the other work's queueing, the CPU time does not.
    """
    client.get(url)  # warm-up
    wall = []
    cpu = []
    status = 0
    for _ in range(REPEATS):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        status = response.status_code
    return statistics.median(wall), statistics.median(cpu), status


def explain(sql_params: tuple[str, Any]) -> tuple[list[str], float, str]:
    """The indexes a query's plan uses, its execution time, and the plan's first lines."""
    from django.db import connection

    sql, params = sql_params
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}", params)
        text = "\n".join(row[0] for row in cursor.fetchall())
    plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
    indexes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        name = node.get("Index Name")
        if name and name not in indexes:
            indexes.append(name)
        if node.get("Node Type") == "Seq Scan":
            indexes.append(f"Seq Scan on {node.get('Relation Name')}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return indexes, plan["Execution Time"], text


def list_query(slug: str, url: str) -> tuple[str, Any]:
    """The SQL (and parameters) of the page query the list view runs for ``url``."""
    from urllib.parse import parse_qsl

    from traces.filters import parse_run_filter, parse_run_sort
    from traces.models import Project, Run
    from traces.runlist import Cursor, parse_limit

    params = dict(parse_qsl(urlsplit(url).query))
    project = Project.objects.get(slug=slug)
    run_filter = parse_run_filter(params)
    sort = parse_run_sort(params)
    runs = run_filter.apply(Run.objects.filter(project=project).defer("search_text"))
    cursor = Cursor.decode(params["cursor"], sort) if params.get("cursor") else None
    if cursor is not None:
        runs = runs.filter(sort.after(cursor.value, cursor.pk, reverse=cursor.backwards))
    query = runs.order_by(*sort.order_by())[: parse_limit(params) + 1].query
    return query.sql_with_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a database kept by --keep, no reload"
    )
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL)

    if not args.reuse:
        log(f"creating and migrating {urlsplit(url).path.lstrip('/')}")
        setup_database(url)
    os.environ.update(
        DATABASE_URL=url, DEBUG="false", SECRET_KEY="bench-runlist", ALLOWED_HOSTS="testserver"
    )
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("VAR_DIR", tempfile.mkdtemp())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    try:
        info = reuse() if args.reuse else load(url, args.runs)
        client = Client()
        client.force_login(info["user"])
        base_page = f"/projects/{info['slug']}/runs/"
        rows = []
        plans = []
        for label, params, page in SCENARIOS:
            page_target = page_url(client, base_page, params, page, api=False)
            api_params = {"project": info["slug"], **params}
            api_target = page_url(client, "/api/v1/runs", api_params, page, api=True)
            page_ms, page_cpu, page_status = timed(client, page_target)
            api_ms, api_cpu, api_status = timed(client, api_target)
            assert page_status == api_status == 200, (label, page_status, api_status)
            indexes, exec_ms, text = explain(list_query(info["slug"], page_target))
            rows.append((label, page_ms, page_cpu, api_ms, api_cpu, exec_ms, indexes))
            plans.append((label, text))
            log(
                f"{label:40} page {page_ms:7.1f} ({page_cpu:6.1f}) ms  "
                f"api {api_ms:7.1f} ({api_cpu:6.1f}) ms  {', '.join(indexes)}"
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_relation_size('run_search_trgm'))")
            trgm_size = cursor.fetchone()[0]
            cursor.execute("SELECT pg_size_pretty(pg_relation_size('traces_run'))")
            run_size = cursor.fetchone()[0]
        write_results(info, rows, plans, trgm_size, run_size)
    finally:
        connection.close()
        if not args.keep:
            admin(url, f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')


def write_results(
    info: dict[str, Any],
    rows: list[tuple[str, float, float, float, float, float, list[str]]],
    plans: list[tuple[str, str]],
    trgm_size: str,
    run_size: str,
) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    out = io.StringIO()
    out.write("# Run list at 100,000 runs\n\n")
    out.write(f"Measured by `{COMMAND}` on {datetime.now(UTC):%Y-%m-%d} ")
    out.write(f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, ")
    out.write("PostgreSQL, shared with other work).\n\n")
    out.write(
        f"Data: {info['runs']:,} runs of one project, {info['steps']:,} steps (every run has "
        "its steps), ~20% failed with one error row each, ~2% running; 8 graph names, "
        "20,000 threads, metadata with model / tenant / user / version. Bulk-loaded with "
        "COPY, then `VACUUM ANALYZE`.\n\n"
    )
    out.write(
        f"Times are the median of {REPEATS} requests after a warm-up, through Django's test "
        "client (the server's whole work for a request: auth, session, filters, queries, "
        "template or JSON; no socket). *page* is `/projects/bench/runs/` (HTML, which also "
        "runs the capped count; the form's suggestions are cached for a minute), *api* is "
        "`/api/v1/runs`. In brackets: the CPU time Django spent (this process only, so "
        "without queueing behind other work and without PostgreSQL's share). *list query* "
        "is PostgreSQL's execution time for the page query alone under `EXPLAIN ANALYZE`. "
        f"Target: each page well under {TARGET_MS} ms.\n\n"
    )
    out.write(
        "| request | page ms (cpu) | api ms (cpu) | list query ms | indexes the plan uses |\n"
    )
    out.write("|---|---:|---:|---:|---|\n")
    for label, page_ms, page_cpu, api_ms, api_cpu, exec_ms, indexes in rows:
        out.write(
            f"| {label} | {page_ms:.1f} ({page_cpu:.1f}) | {api_ms:.1f} ({api_cpu:.1f}) "
            f"| {exec_ms:.2f} | {', '.join(indexes)} |\n"
        )
    worst = max(max(r[1], r[3]) for r in rows)
    out.write(
        f"\nSlowest median: {worst:.1f} ms (target {TARGET_MS} ms); load average while "
        f"measuring: {load} (2 cores).\n"
    )
    out.write(f"\n`traces_run` heap: {run_size}; trigram index on `search_text`: {trgm_size}.\n")
    out.write("\n## Plans\n\n")
    for label, text in plans:
        out.write(f"### {label}\n\n```\n{text}\n```\n\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(out.getvalue())
    print(out.getvalue())


if __name__ == "__main__":
    main()
