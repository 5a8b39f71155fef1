"""OTLP ingestion benchmark: 50,000 OpenInference spans over OTLP/HTTP, then over OTLP/gRPC,
then (when it is installed) the same spans to Arize Phoenix; spans persisted per second
and the ratio to Phoenix, from one run.

Run from the project root::

    .venv/bin/python benchmarks/otlp.py

The spans are what openinference-instrumentation-langchain writes for a LangGraph app
(tests/traces/test_otlp.py checks the mapping on the real thing): runs of 8 nodes, each
with an LLM child (token counts), three with a tool call, ~1-2 KB JSON states as the
nodes' ``input.value``, and the graph span; 2,500 runs x 20 spans. Runs overlap in time
(one starts every 0.2 s, each lasts 4 s) and spans are sent in the order they end, in
batches of 500, one batch at a time, as one app's ``BatchSpanProcessor`` sends them: so
batches cut runs, and most runs are live across two requests.

Our side: its own PostgreSQL database (``OTLPBENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/dashflow_otlpbench``, dropped and recreated), a private
``redis-server``, one Daphne (``/v1/traces``) and one ``manage.py otlp_grpc``. A phase's
rate is spans sent / seconds from the first batch until every run is stored completed with
its 8 nodes (read from the database); "visible" is when the API shows the last run sent
as completed. Phoenix: ``/work/phoenix-venv/bin/phoenix serve`` (``PHOENIX_BIN``) on its
default SQLite storage in a temporary directory, the same spans (other trace ids) to its
``/v1/traces``, a 503 retried after a pause as the OTLP exporters do; its rate is spans /
seconds until its ``spans`` table holds them all. Results: ``benchmarks/results/otlp.md``.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from databases import recreate_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import psycopg  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status  # noqa: E402

from tests.servers import HOST, free_port, redis_server, server_env, start_daphnes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "otlp.md"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/dashflow_otlpbench"
PHOENIX_BIN = os.environ.get("PHOENIX_BIN", "/work/phoenix-venv/bin/phoenix")
COMMAND = ".venv/bin/python benchmarks/otlp.py"

RUNS = int(os.environ.get("OTLPBENCH_RUNS", "2500"))
NODES = 8
TOOL_NODES = {2, 4, 6}
SPANS_PER_RUN = 1 + 2 * NODES + len(TOOL_NODES)  # graph, nodes, LLM children, tools
BATCH = 500
NODE_NAMES = ["plan", "search", "read", "rank", "draft", "check", "revise", "answer"]
DEADLINE = 1800.0  # seconds a phase may take to persist everything


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _state(run: int, step: int, rng: random.Random) -> dict[str, Any]:
    """A state of ~1-2 KB that grows with the steps, as an agent's does."""
    return {
        "question": f"run {run}: what changed in the quarterly numbers?",
        "plan": [f"step {i}: {NODE_NAMES[i]} the sources" for i in range(min(step, NODES))],
        "notes": [
            {"source": f"doc-{run}-{i}", "text": "x" * rng.randint(40, 120), "score": i / 10}
            for i in range(step + 3)
        ],
        "step": step,
    }


def generate(phase: int, seed: int = 7) -> list[list[Span]]:
    """Batches of spans (each a list of at most BATCH), in the order the spans end."""
    rng = random.Random(seed)
    base = 1_800_000_000_000_000_000
    spans: list[Span] = []
    for run in range(RUNS):
        trace_id = bytes([phase]) + run.to_bytes(15, "big")
        start = base + run * 200_000_000
        ids = iter(bytes([phase, 1]) + (run * 64 + n).to_bytes(6, "big") for n in range(1, 64))
        span_id = ids.__next__
        root_id = span_id()
        thread = f"thread-{run % 50}"
        states = [_state(run, step, rng) for step in range(NODES + 1)]
        for k in range(NODES):
            node_start = start + k * 500_000_000
            node_end = node_start + 499_000_000
            node_id = span_id()
            meta = json.dumps(
                {
                    "thread_id": thread,
                    "langgraph_step": k + 1,
                    "langgraph_node": NODE_NAMES[k],
                    "langgraph_checkpoint_ns": f"{NODE_NAMES[k]}:{run}-{k}",
                }
            )
            common = [_kv("session.id", thread), _kv("metadata", meta)]
            llm = Span(
                trace_id=trace_id,
                span_id=span_id(),
                parent_span_id=node_id,
                name="ChatOpenAI",
                start_time_unix_nano=node_start + 10_000_000,
                end_time_unix_nano=node_start + 300_000_000,
                attributes=[
                    _kv("openinference.span.kind", "LLM"),
                    _kv("llm.token_count.prompt", 100 + k),
                    _kv("llm.token_count.completion", 20 + k),
                    _kv("llm.token_count.total", 120 + 2 * k),
                    *common,
                ],
            )
            spans.append(llm)
            if k in TOOL_NODES:
                spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=span_id(),
                        parent_span_id=node_id,
                        name="search_docs",
                        start_time_unix_nano=node_start + 310_000_000,
                        end_time_unix_nano=node_start + 400_000_000,
                        attributes=[
                            _kv("openinference.span.kind", "TOOL"),
                            _kv("tool.name", "search_docs"),
                            _kv("input.value", "quarterly numbers"),
                            *common,
                        ],
                    )
                )
            update = {"notes": states[k + 1]["notes"][-1:], "step": k + 1}
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=node_id,
                    parent_span_id=root_id,
                    name=NODE_NAMES[k],
                    start_time_unix_nano=node_start,
                    end_time_unix_nano=node_end,
                    attributes=[
                        _kv("openinference.span.kind", "CHAIN"),
                        _kv("input.value", json.dumps(states[k])),
                        _kv("input.mime_type", "application/json"),
                        _kv("output.value", json.dumps(update)),
                        _kv("output.mime_type", "application/json"),
                        *common,
                    ],
                    status=Status(code=Status.STATUS_CODE_OK),
                )
            )
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=root_id,
                name="LangGraph",
                start_time_unix_nano=start,
                end_time_unix_nano=start + NODES * 500_000_000 + 1_000_000,
                attributes=[
                    _kv("openinference.span.kind", "CHAIN"),
                    _kv("input.value", json.dumps(states[0])),
                    _kv("output.value", json.dumps(states[NODES])),
                    _kv("session.id", thread),
                    _kv("metadata", json.dumps({"thread_id": thread})),
                ],
                status=Status(code=Status.STATUS_CODE_OK),
            )
        )
    spans.sort(key=lambda s: s.end_time_unix_nano)
    return [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]


def request_of(batch: list[Span]) -> bytes:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    scope.scope.name = "openinference.instrumentation.langchain"
    scope.spans.extend(batch)
    return request.SerializeToString()


@dataclass
class Phase:
    name: str
    spans: int
    send_seconds: float
    persisted_seconds: float
    visible_seconds: float | None
    retried: int
    rejected: int
    persisted: int  # runs (ours) or spans (Phoenix) stored at the end

    @property
    def rate(self) -> float:
        return self.spans / self.persisted_seconds


def post_batches(
    port: int, path: str, bodies: list[bytes], headers: dict[str, str]
) -> tuple[float, int, int]:
    """POST each body in turn (retrying 429/503 after Retry-After, as the exporters do);
    the seconds it took, the retries and the spans the answers said were rejected."""
    retried = rejected = 0
    began = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    for body in bodies:
        while True:
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=120)
                retried += 1
                time.sleep(0.5)
                continue
            if response.status in (429, 502, 503, 504):
                retried += 1
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            if response.status != 200:
                raise RuntimeError(f"{path}: {response.status} {data[:300]!r}")
            answer = ExportTraceServiceResponse.FromString(data)
            rejected += answer.partial_success.rejected_spans
            break
    conn.close()
    return time.monotonic() - began, retried, rejected


def export_grpc(port: int, bodies: list[bytes], key: str) -> tuple[float, int, int]:
    retried = rejected = 0
    began = time.monotonic()
    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            while True:
                try:
                    answer = stub.Export(
                        request, metadata=(("authorization", f"Bearer {key}"),), timeout=120
                    )
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    retried += 1
                    time.sleep(1)
                    continue
                rejected += answer.partial_success.rejected_spans
                break
    return time.monotonic() - began, retried, rejected


def wait_until(condition: Any, what: str, began: float) -> float:
    while not condition():
        if time.monotonic() - began > DEADLINE:
            raise TimeoutError(f"{what}: not done after {DEADLINE:g} s")
        time.sleep(0.05)
    return time.monotonic() - began


def our_phase(name: str, phase: int, send: Any, db_url: str, project_id: int, api: Any) -> Phase:
    log(f"{name}: generating {RUNS * SPANS_PER_RUN} spans")
    bodies = [request_of(batch) for batch in generate(phase)]
    last_trace = (bytes([phase]) + (RUNS - 1).to_bytes(15, "big")).hex()
    prefix = f"{phase:02x}%"
    with psycopg.connect(db_url, autocommit=True) as conn:

        def stored() -> int:
            row = conn.execute(
                "SELECT count(*) FROM traces_run WHERE project_id = %s AND status = 'completed'"
                " AND node_count = %s AND execution_id LIKE %s",
                [project_id, NODES, prefix],
            ).fetchone()
            return int(row[0]) if row else 0

        log(f"{name}: sending {len(bodies)} batches")
        began = time.monotonic()
        send_seconds, retried, rejected = send(bodies)
        visible = wait_until(lambda: api(last_trace), f"{name}: the last run", began)
        persisted = wait_until(lambda: stored() == RUNS, f"{name}: all runs", began)
        count = stored()
    log(f"{name}: {RUNS * SPANS_PER_RUN / persisted:,.0f} spans/s")
    return Phase(
        name, RUNS * SPANS_PER_RUN, send_seconds, persisted, visible, retried, rejected, count
    )


def phoenix_phase() -> Phase | str:
    """The same spans to Phoenix, or why it did not run."""
    if not Path(PHOENIX_BIN).exists():
        return f"Phoenix is not installed ({PHOENIX_BIN} is missing): our figures only"
    bodies = [request_of(batch) for batch in generate(3)]
    with tempfile.TemporaryDirectory(prefix="phoenix-") as workdir:
        port, grpc_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))},
            "PHOENIX_WORKING_DIR": workdir,
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_HOST": HOST,
        }
        log_path = Path(workdir) / "phoenix.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [PHOENIX_BIN, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            began = time.monotonic()
            while True:
                try:
                    conn = http.client.HTTPConnection(HOST, port, timeout=5)
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() - began > 180:
                    return f"Phoenix did not start:\n{log_path.read_text()[-2000:]}"
                time.sleep(0.5)
            database = Path(workdir) / "phoenix.db"
            log(f"Phoenix {phoenix_version()}: sending {len(bodies)} batches")

            def stored() -> int:
                try:
                    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                        return int(db.execute("SELECT count(*) FROM spans").fetchone()[0])
                except sqlite3.Error:
                    return 0

            began = time.monotonic()
            send_seconds, retried, rejected = post_batches(
                port, "/v1/traces", bodies, {"Content-Type": "application/x-protobuf"}
            )
            total = RUNS * SPANS_PER_RUN
            persisted = wait_until(lambda: stored() >= total, "Phoenix: all spans", began)
            count = stored()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log(f"Phoenix: {total / persisted:,.0f} spans/s, {retried} retried batches")
    return Phase(
        "Arize Phoenix, OTLP/HTTP", total, send_seconds, persisted, None, retried, rejected, count
    )


def phoenix_version() -> str:
    python = Path(PHOENIX_BIN).parent / "python"
    done = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib.metadata import version; print(version('arize-phoenix'))",
        ],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "?"


def setup(db_url: str) -> tuple[int, str]:
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="dashflow_site.settings",
        DATABASE_URL=db_url,
        DEBUG="false",
        SECRET_KEY="otlpbench",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    from traces.models import ApiKey, Project

    call_command("migrate", "--noinput", verbosity=0)
    project = Project.objects.create(slug="otlpbench", name="OTLP benchmark")
    return project.pk, ApiKey.issue(project, name="otlpbench")[1]


def render(phases: list[Phase], phoenix: Phase | str, machine: str) -> str:
    lines = [
        "# OTLP ingestion: spans persisted per second, and Arize Phoenix",
        "",
        f"`{COMMAND}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine}).",
        "",
        f"{RUNS:,} OpenInference runs x {SPANS_PER_RUN} spans = {RUNS * SPANS_PER_RUN:,} spans "
        f"(8 nodes with an LLM child each, 3 tool calls, ~1-2 KB JSON states), sent in end "
        f"order in batches of {BATCH}, one batch at a time. Rate: spans / seconds from the "
        "first batch until everything is stored (ours: every run completed with its 8 nodes, "
        "read from the database; Phoenix: its spans table holds every span).",
        "",
        "| receiver | spans | sending (s) | until persisted (s) | spans/s persisted "
        "| last run in the API (s) | retried batches | rejected spans | stored |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = phases + ([phoenix] if isinstance(phoenix, Phase) else [])
    for p in rows:
        visible = f"{p.visible_seconds:.1f}" if p.visible_seconds is not None else "-"
        unit = "spans" if "Phoenix" in p.name else "runs"
        lines.append(
            f"| {p.name} | {p.spans:,} | {p.send_seconds:.1f} | {p.persisted_seconds:.1f} | "
            f"{p.rate:,.0f} | {visible} | {p.retried} | {p.rejected} | {p.persisted:,} {unit} |"
        )
    lines.append("")
    if isinstance(phoenix, Phase):
        for p in phases:
            lines.append(
                f"- {p.name}: **{p.rate / phoenix.rate:.1f}x** Phoenix's rate "
                f"(target: at least 20x, nothing lost)."
            )
    else:
        lines.append(f"- {phoenix}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    db_url = os.environ.get("OTLPBENCH_DATABASE_URL", DEFAULT_DB_URL)
    log(f"recreating database {urlsplit(db_url).path.lstrip('/')}")
    recreate_database(db_url)
    project_id, key = setup(db_url)
    load = os.getloadavg()
    machine = (
        f"{platform.system()} {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"load average {load[0]:.2f} at the start"
    )
    with redis_server() as redis_proc:
        env = server_env(
            db_url, redis_proc.url, DEBUG="false", SECRET_KEY="otlpbench", LOG_LEVEL="WARNING"
        )
        (daphne,) = start_daphnes(env)
        grpc_port = free_port()
        grpc_proc = subprocess.Popen(
            [sys.executable, "manage.py", "otlp_grpc", "--port", str(grpc_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"}

            def api(execution_id: str) -> bool:
                response = daphne.request(
                    "GET",
                    f"/api/v1/runs/{execution_id}",
                    headers={"Authorization": f"Bearer {key}"},
                )
                return response.status == 200 and response.json()["status"] == "completed"

            phases = [
                our_phase(
                    "DashFlow Trace Studio, OTLP/HTTP",
                    1,
                    lambda bodies: post_batches(daphne.port, "/v1/traces", bodies, headers),
                    db_url,
                    project_id,
                    api,
                ),
                our_phase(
                    "DashFlow Trace Studio, OTLP/gRPC",
                    2,
                    lambda bodies: export_grpc(grpc_port, bodies, key),
                    db_url,
                    project_id,
                    api,
                ),
            ]
        finally:
            grpc_proc.terminate()
            grpc_proc.wait(timeout=30)
            daphne.stop()
    phoenix = phoenix_phase()
    report = render(phases, phoenix, machine)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
