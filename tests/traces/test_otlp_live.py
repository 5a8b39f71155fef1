"""The real LangGraph app, instrumented by openinference-instrumentation-langchain or by
opentelemetry-instrumentation-langchain, exporting with the real OTLP exporters (HTTP to
Daphne's ``/v1/traces``, gRPC to ``manage.py otlp_grpc``) as the README's recipe sets
them up: the run appears in the API and the run list with its nodes, states, tokens and
the tool call. No code of ours runs inside the app."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from django.db import connection
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.langgraph_app import EXPECTED, PLAN_NOTE, QUESTION
from tests.servers import ROOT, Daphne, daphne, database_url, free_port, server_env, wait_for
from tests.traces.test_otlp import capture, encode_spans

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def env(django_db_setup: None) -> dict[str, str]:
    return server_env(database_url(connection.settings_dict))


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[Daphne]:
    with daphne(env) as live:
        yield live


def start_otlp_grpc(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``manage.py otlp_grpc`` on a free port, as ``make run`` starts it; waits until it
    listens (a port lost to a race is tried again)."""
    for _ in range(3):
        port = free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "otlp_grpc", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda p=proc: "listening" in log_path.read_text() or p.poll() is not None,
            30,
            "the OTLP/gRPC receiver to listen",
        )
        if proc.poll() is None:
            return proc, port
    raise RuntimeError(f"otlp_grpc exited:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def grpc_port(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    log_path = tmp_path_factory.mktemp("otlp_grpc") / "otlp_grpc.log"
    proc, port = start_otlp_grpc(env, log_path)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        print(f"--- otlp_grpc ---\n{log_path.read_text()[-3000:]}")


def run_app(library: str, thread: str, otel: dict[str, str]) -> None:
    """The instrumented app in its own process, configured by OpenTelemetry's standard
    variables only (the README's recipe)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(otel)
    args = ["--instrument", library, "--thread", thread]
    done = subprocess.run(
        [sys.executable, "-m", "tests.langgraph_app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    # The exporter logs a refused or failed export; a clean run logs none.
    assert b"Failed to export" not in done.stderr, done.stderr.decode()[-3000:]


def otel_env(transport: str, server: Daphne, grpc_port: int, key: str) -> dict[str, str]:
    headers = f"authorization=Bearer%20{key}"
    if transport == "http":
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": server.origin,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": headers,
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        }
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_EXPORTER_OTLP_HEADERS": headers,
    }


def fetch(server: Daphne, key: str, path: str) -> Any:
    response = server.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    return response.json() if response.status == 200 else None


@pytest.mark.parametrize("library", ["openinference", "openllmetry"])
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_an_instrumented_langgraph_app_exporting_otlp_shows_up_as_a_run(
    server: Daphne, grpc_port: int, api_key: str, library: str, transport: str
) -> None:
    thread = f"thread-{library}-{transport}"
    run_app(library, thread, otel_env(transport, server, grpc_port, api_key))

    def completed() -> Any:
        listed = fetch(server, api_key, f"/api/v1/runs?thread_id={thread}")
        runs = listed["results"] if listed else []
        return runs[0] if runs and runs[0]["status"] == "completed" else None

    listed_run = wait_for(completed, 30, f"the run of {thread} to complete")
    execution_id = listed_run["execution_id"]
    run = fetch(server, api_key, f"/api/v1/runs/{execution_id}")
    assert [n["node"] for n in run["nodes"]] == EXPECTED["nodes"]
    assert run["total_tokens"] == EXPECTED["total_tokens"]
    trace = fetch(server, api_key, f"/api/v1/runs/{execution_id}/trace")
    nodes = trace["nodes_executed"]
    assert [n["tokens_used"] for n in nodes] == EXPECTED["tokens"]
    assert [n["tools_called"] for n in nodes] == EXPECTED["tools"]
    assert nodes[0]["state_before"]["question"] == QUESTION
    assert nodes[0]["state_after"] == nodes[1]["state_before"]
    assert nodes[0]["state_after"]["notes"] == [PLAN_NOTE]
    assert EXPECTED["final_answer"] in str(nodes[-1]["state_after"])
    assert trace["metadata"]["otlp"]["dialect"] == library


def test_the_grpc_receiver_refuses_a_bad_key_and_takes_a_good_one(
    grpc_port: int, api_key: str
) -> None:
    request = encode_spans(capture("openinference"))
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer dfk_wrong"),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(request, metadata=metadata, timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "Authorization" in refused.value.details()
        answer = stub.Export(
            request, metadata=(("authorization", f"Bearer {api_key}"),), timeout=30
        )
        assert not answer.HasField("partial_success")


def test_one_request_with_many_traces_stores_them_all(server: Daphne, api_key: str) -> None:
    # On PostgreSQL the export writes a request's traces from OTLP_WORKERS threads.
    spans = capture("openinference")
    copies = []
    for n in range(6):
        for span in spans:
            copy = type(span)()
            copy.CopyFrom(span)
            copy.trace_id = bytes([n]) + span.trace_id[1:]
            copies.append(copy)
    body = encode_spans(copies).SerializeToString()
    response = server.request(
        "POST",
        "/v1/traces",
        body,
        {"Authorization": f"Bearer {api_key}", "Content-Type": "application/x-protobuf"},
    )
    assert response.status == 200, response.body
    for n in range(6):
        execution_id = (bytes([n]) + spans[0].trace_id[1:]).hex()
        run = fetch(server, api_key, f"/api/v1/runs/{execution_id}")
        assert run is not None, execution_id
        assert run["status"] == "completed"
        assert [s["node"] for s in run["nodes"]] == EXPECTED["nodes"]
