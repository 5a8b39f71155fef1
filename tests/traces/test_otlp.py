"""OpenTelemetry in: ``POST /v1/traces`` with the spans real instrumentations write for a
real LangGraph app (tests/langgraph_app.py), encoded by the OTLP exporters' own
encoder, and each dialect's run as the README's mapping table says."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import random
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.langgraph_app import EXPECTED, GRAPH_NAME, PLAN_NOTE, QUESTION
from tests.servers import ROOT
from traces import otlp
from traces.models import ApiKey, KeyScope, Project, Run, SpanBuffer

PROTOBUF = "application/x-protobuf"


def capture(library: str, city: str = "Paris") -> list[ProtoSpan]:
    """The spans of one run of the app under ``library``'s instrumentation, as the OTLP
    exporters encode them (the app runs in a process of its own: tests/langgraph_app.py)."""
    with tempfile.TemporaryDirectory() as folder:
        dump = Path(folder) / "spans.pb"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.langgraph_app",
                "--instrument",
                library,
                "--city",
                city,
                "--dump",
                str(dump),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        request = ExportTraceServiceRequest.FromString(dump.read_bytes())
    spans = [
        span
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert spans
    return spans


def encode_spans(spans: list[ProtoSpan]) -> ExportTraceServiceRequest:
    """One export request with ``spans`` (as an exporter sends a batch)."""
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend(spans)
    return request


@pytest.fixture(scope="module")
def openinference() -> list[ProtoSpan]:
    return capture("openinference")


@pytest.fixture(scope="module")
def openllmetry() -> list[ProtoSpan]:
    return capture("openllmetry")


@pytest.fixture(autouse=True)
def _one_writer(settings: Any) -> None:
    # The export's worker threads have connections of their own, which cannot see this
    # test's uncommitted rows; tests/traces/test_otlp_live.py runs them against Daphne.
    settings.OTLP_WORKERS = 1


@pytest.fixture
def otlp_client(api_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


def post(
    client: Client,
    request: ExportTraceServiceRequest,
    as_json: bool = False,
    gzipped: bool = False,
) -> Any:
    if as_json:
        body = otlp_json(request)
        content_type = "application/json"
    else:
        body = request.SerializeToString()
        content_type = PROTOBUF
    headers = {}
    if gzipped:
        body = gzip.compress(body)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    return client.post("/v1/traces", body, content_type=content_type, **headers)


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the specification writes it: protobuf's JSON mapping (camelCase,
    int64 as strings) with trace and span ids in hex."""
    document = json_format.MessageToDict(request)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return json.dumps(document).encode()


def trace_id(spans: list[ProtoSpan]) -> str:
    return spans[0].trace_id.hex()


def run_json(api: Any, execution_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/runs/{execution_id}/trace")
    assert response.status_code == 200, response.content
    result: dict[str, Any] = json.loads(response.content)
    return result


def assert_is_the_app_run(trace: dict[str, Any], dialect: str) -> None:
    nodes = trace["nodes_executed"]
    assert [n["node"] for n in nodes] == EXPECTED["nodes"]
    assert [n["tokens_used"] for n in nodes] == EXPECTED["tokens"]
    assert [n["tools_called"] for n in nodes] == EXPECTED["tools"]
    assert trace["total_tokens"] == EXPECTED["total_tokens"]
    assert trace["thread_id"] == "thread-1"
    assert trace["completed"] is True
    assert trace["errors"] == []
    assert trace["metadata"]["otlp"]["dialect"] == dialect
    assert trace["metadata"]["graph_name"] == GRAPH_NAME
    # state_before: the node's input; state_after: what the next node received.
    assert nodes[0]["state_before"]["question"] == QUESTION
    assert nodes[0]["state_before"]["notes"] == []
    for node, following in itertools.pairwise(nodes):
        assert node["state_after"] == following["state_before"]
    assert nodes[1]["state_before"]["notes"] == [PLAN_NOTE]
    assert len(nodes[2]["state_before"]["messages"]) == 2  # the question, the tool call
    assert len(nodes[3]["state_before"]["messages"]) == 3  # and the tool's answer
    # The last node's state_after is the graph's output, with the answer in it.
    assert nodes[-1]["state_after"] == trace["final_state"]
    assert EXPECTED["final_answer"] in json.dumps(trace["final_state"])
    # The node's own output (a partial update) is kept beside the states.
    assert "notes" in nodes[0]["metadata"]["update"]
    assert "notes" not in nodes[1]["metadata"]["update"]


@pytest.mark.django_db
def test_openinference_spans_make_the_run_with_nodes_states_tokens_and_the_tool(
    otlp_client: Client, api: Any, openinference: list[ProtoSpan]
) -> None:
    response = post(otlp_client, encode_spans(openinference))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == PROTOBUF
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")

    trace = run_json(api, trace_id(openinference))
    assert_is_the_app_run(trace, "openinference")
    # route (the conditional edge) ran twice and is no node; the model and tool spans
    # inside the nodes are not nodes either.
    assert "route" not in [n["node"] for n in trace["nodes_executed"]]
    listed = api.get("/api/v1/runs").json()["results"]
    assert [r["execution_id"] for r in listed] == [trace_id(openinference)]
    assert listed[0]["status"] == "completed"


@pytest.mark.django_db
def test_openllmetry_spans_as_gzipped_json_make_the_same_run(
    otlp_client: Client, api: Any, openllmetry: list[ProtoSpan]
) -> None:
    response = post(otlp_client, encode_spans(openllmetry), as_json=True, gzipped=True)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}  # no partial_success: all taken

    assert_is_the_app_run(run_json(api, trace_id(openllmetry)), "openllmetry")


@pytest.mark.django_db
def test_genai_convention_spans_without_langgraph_metadata_map_to_the_graphs_children(
    otlp_client: Client, api: Any, openllmetry: list[ProtoSpan]
) -> None:
    # OpenLLMetry's spans with its own traceloop.* attributes taken out: what remains is
    # the OpenTelemetry GenAI conventions alone (invoke_agent, execute_task,
    # execute_tool, chat with gen_ai.usage.*), with no LangGraph node metadata.
    request = encode_spans(openllmetry)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                kept = [a for a in span.attributes if not a.key.startswith("traceloop.")]
                del span.attributes[:]
                span.attributes.extend(kept)
    assert post(otlp_client, request).status_code == 200

    trace = run_json(api, trace_id(openllmetry))
    nodes = trace["nodes_executed"]
    assert trace["metadata"]["otlp"]["dialect"] == "genai"
    assert [n["node"] for n in nodes] == EXPECTED["nodes"]
    assert [n["tokens_used"] for n in nodes] == EXPECTED["tokens"]
    assert [n["tools_called"] for n in nodes] == EXPECTED["tools"]
    assert nodes[0]["state_after"] == nodes[1]["state_before"]
    assert trace["thread_id"] == "thread-1"


def split_shuffled(
    spans: list[ProtoSpan], parts: int, seed: int
) -> list[ExportTraceServiceRequest]:
    shuffled = list(spans)
    random.Random(seed).shuffle(shuffled)
    return [encode_spans(shuffled[i::parts]) for i in range(parts)]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spans_in_any_order_over_several_requests_make_the_same_run(
    otlp_client: Client, api: Any, openinference: list[ProtoSpan], seed: int
) -> None:
    for i, request in enumerate(split_shuffled(openinference, 3, seed)):
        response = post(otlp_client, request, as_json=i == 1, gzipped=i == 2)
        assert response.status_code == 200, response.content
    # The same spans again (an exporter's retry) change nothing.
    assert post(otlp_client, encode_spans(openinference)).status_code == 200

    trace = run_json(api, trace_id(openinference))
    assert_is_the_app_run(trace, "openinference")
    assert trace["metadata"]["otlp"]["spans"] == len(openinference)


def copies(spans: list[ProtoSpan], count: int, first: int) -> list[list[ProtoSpan]]:
    """``count`` runs of the app: its spans under other trace ids."""
    runs = []
    for number in range(first, first + count):
        run = []
        for span in spans:
            copy = ProtoSpan()
            copy.CopyFrom(span)
            copy.trace_id = bytes([0xAB, number]) + span.trace_id[2:]
            run.append(copy)
        runs.append(run)
    return runs


@pytest.mark.django_db
def test_a_request_writes_its_runs_in_statements_per_table_not_per_run(
    otlp_client: Client, api: Any, openinference: list[ProtoSpan]
) -> None:
    # A request's runs are written together: the statements a request takes do not grow
    # with its runs, whether they go out live (no root yet) or are completed by it.
    counts = []
    # The first pair is a warm-up: a project's first requests do some things once (the
    # key's last use, the first rollup rows).
    for first, count in ((20, 1), (0, 2), (10, 7)):
        runs = copies(openinference, count, first)
        ended = [sorted(run, key=lambda s: s.end_time_unix_nano) for run in runs]
        roots = [spans.pop() for spans in ended]
        statements = []
        for batch in ([s for spans in ended for s in spans], roots):
            otlp._last_sweep.clear()  # each request runs the idle sweep
            with CaptureQueriesContext(connection) as queries:
                assert post(otlp_client, encode_spans(batch)).status_code == 200
            statements.append(len(queries))
        counts.append(statements)
        for run in runs:
            assert_is_the_app_run(run_json(api, trace_id(run)), "openinference")
    assert counts[1] == counts[2], counts


@pytest.mark.django_db
def test_a_run_is_live_until_its_root_span_arrives(
    otlp_client: Client, api: Any, openinference: list[ProtoSpan]
) -> None:
    # The exporters send spans as they end: everything but the root, in end order.
    ended = sorted(openinference, key=lambda s: s.end_time_unix_nano)
    root = ended.pop()
    assert root.name == GRAPH_NAME
    middle = next(i for i, s in enumerate(ended) if s.name == "tools") + 1
    execution_id = trace_id(openinference)

    assert post(otlp_client, encode_spans(ended[:middle])).status_code == 200
    run = api.get(f"/api/v1/runs/{execution_id}").json()
    assert run["status"] == "running"
    # plan and agent are settled (the next step's input is their state_after); tools is
    # not until the next agent span says what it received.
    assert [n["node"] for n in run["nodes"]] == ["plan", "agent"]
    first = api.get(f"/api/v1/runs/{execution_id}/steps/1").json()
    assert first["tokens_used"] == EXPECTED["tokens"][1]

    assert post(otlp_client, encode_spans(ended[middle:])).status_code == 200
    run = api.get(f"/api/v1/runs/{execution_id}").json()
    assert [n["node"] for n in run["nodes"]] == ["plan", "agent", "tools"]
    assert run["status"] == "running"

    assert post(otlp_client, encode_spans([root])).status_code == 200
    assert_is_the_app_run(run_json(api, execution_id), "openinference")
    assert api.get(f"/api/v1/runs/{execution_id}").json()["status"] == "completed"


@pytest.mark.django_db
def test_a_trace_whose_root_never_comes_ends_after_the_idle_timeout_marked_so(
    otlp_client: Client, api: Any, project: Project, openinference: list[ProtoSpan]
) -> None:
    without_root = [s for s in openinference if s.name != GRAPH_NAME]
    assert post(otlp_client, encode_spans(without_root)).status_code == 200
    execution_id = trace_id(openinference)
    assert otlp.expire_idle() == 0  # not idle yet
    assert api.get(f"/api/v1/runs/{execution_id}").json()["status"] == "running"

    # As if OTLP_IDLE_TIMEOUT (300 s) had passed since its last span.
    SpanBuffer.objects.filter(trace_id=execution_id).update(
        last_span_at=timezone.now() - timedelta(seconds=301)
    )
    assert otlp.expire_idle() == 1
    trace = run_json(api, execution_id)
    assert trace["completed"] is False
    assert trace["metadata"]["otlp"]["ended_by"] == "idle timeout"
    assert [n["node"] for n in trace["nodes_executed"]] == EXPECTED["nodes"]
    assert trace["errors"][-1]["error_type"] == "IdleTimeout"
    assert "OTLP_IDLE_TIMEOUT=300" in trace["errors"][-1]["message"]
    assert api.get(f"/api/v1/runs/{execution_id}").json()["status"] == "failed"

    # A finished trace's buffer is forgotten after the same time.
    SpanBuffer.objects.filter(trace_id=execution_id).update(
        last_span_at=timezone.now() - timedelta(seconds=301)
    )
    otlp.expire_idle()
    assert not SpanBuffer.objects.exists()
    assert Run.objects.filter(execution_id=execution_id).exists()


@pytest.mark.django_db
def test_an_exception_in_a_node_is_an_error_of_that_node(otlp_client: Client, api: Any) -> None:
    spans = capture("openinference", city="Atlantis")
    assert post(otlp_client, encode_spans(spans)).status_code == 200

    trace = run_json(api, trace_id(spans))
    nodes = trace["nodes_executed"]
    assert [n["node"] for n in nodes] == ["plan", "agent", "tools"]
    assert nodes[2]["success"] is False
    assert "no weather station in Atlantis" in nodes[2]["error_message"]
    # Recorded on the tool, the node and the graph spans: one error, the node's.
    assert len(trace["errors"]) == 1
    error = trace["errors"][0]
    assert error["node"] == "tools"
    assert error["error_type"] == "LookupError"
    assert error["execution_index"] == 2
    assert error["state_at_error"] == nodes[2]["state_before"]
    assert api.get(f"/api/v1/runs/{trace_id(spans)}").json()["status"] == "failed"


@pytest.mark.django_db
def test_bad_spans_are_rejected_alone_with_a_partial_success(
    otlp_client: Client, api: Any, openinference: list[ProtoSpan]
) -> None:
    request = encode_spans(openinference)
    spans = request.resource_spans[0].scope_spans[0].spans
    bad = ExportTraceServiceRequest()
    bad.CopyFrom(request)
    broken = bad.resource_spans[0].scope_spans[0].spans[len(spans) - 1]
    broken.trace_id = b"\0" * 16
    response = post(otlp_client, bad, as_json=True)
    assert response.status_code == 200, response.content
    answer = json.loads(response.content)["partialSuccess"]
    assert answer["rejectedSpans"] == "1"
    assert f"spans[{len(spans) - 1}].traceId" in answer["errorMessage"]
    assert "16 bytes" in answer["errorMessage"]


@pytest.mark.django_db
def test_a_trace_over_its_span_limit_keeps_the_first_spans_and_says_how_many_it_left(
    otlp_client: Client, openinference: list[ProtoSpan], settings: Any
) -> None:
    settings.OTLP_MAX_TRACE_SPANS = 5
    response = post(otlp_client, encode_spans(openinference))
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == len(openinference) - 5
    assert "OTLP_MAX_TRACE_SPANS=5" in answer.partial_success.error_message
    assert SpanBuffer.objects.get().span_count == 5


@pytest.mark.django_db
def test_a_trace_whose_spans_would_pass_the_body_limit_refuses_the_request_that_passes_it(
    otlp_client: Client, openinference: list[ProtoSpan], settings: Any
) -> None:
    half = len(openinference) // 2
    first, second = encode_spans(openinference[:half]), encode_spans(openinference[half:])
    sizes = [len(r.SerializeToString()) for r in (first, second)]
    settings.TRACE_MAX_BODY_BYTES = int(max(sizes) * 1.3)
    assert post(otlp_client, first).status_code == 200
    response = post(otlp_client, second)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == len(openinference) - half
    assert "TRACE_MAX_BODY_BYTES" in answer.partial_success.error_message
    assert SpanBuffer.objects.get().span_count == half


@pytest.mark.django_db
def test_too_many_unfinished_traces_is_a_429_with_retry_after(
    otlp_client: Client, openinference: list[ProtoSpan], settings: Any
) -> None:
    settings.OTLP_MAX_OPEN_TRACES = 0
    response = post(otlp_client, encode_spans(openinference))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "OTLP_MAX_OPEN_TRACES=0" in Status.FromString(response.content).message
    assert not Run.objects.exists()


@pytest.fixture
def read_key(project: Project) -> str:
    return ApiKey.issue(project, scope=KeyScope.READ)[1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "status", "says"),
    [
        (None, 401, "expected 'Bearer <API key>'"),
        ("Bearer dfk_nope", 401, "unknown API key"),
        ("read", 403, "needs write"),
    ],
)
def test_a_request_without_a_writing_key_is_refused(
    read_key: str,
    openinference: list[ProtoSpan],
    authorization: str | None,
    status: int,
    says: str,
) -> None:
    headers = {}
    if authorization == "read":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {read_key}"
    elif authorization:
        headers["HTTP_AUTHORIZATION"] = authorization
    response = Client(**headers).post(
        "/v1/traces", encode_spans(openinference).SerializeToString(), content_type=PROTOBUF
    )
    assert response.status_code == status
    assert says in Status.FromString(response.content).message
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_bad_bodies_get_the_otlp_status_codes(otlp_client: Client, settings: Any) -> None:
    response = otlp_client.post("/v1/traces", b"\xff\xff\xff", content_type=PROTOBUF)
    assert response.status_code == 400
    assert "ExportTraceServiceRequest" in Status.FromString(response.content).message

    response = otlp_client.post("/v1/traces", b"{", content_type="application/json")
    assert response.status_code == 400
    assert "malformed JSON" in json.loads(response.content)["message"]

    response = otlp_client.post("/v1/traces", b"x", content_type="text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf" in Status.FromString(response.content).message

    settings.TRACE_MAX_BODY_BYTES = 1024
    response = otlp_client.post("/v1/traces", b"\0" * 2048, content_type=PROTOBUF)
    assert response.status_code == 413
    bomb = gzip.compress(b"\0" * 4096)
    response = otlp_client.post(
        "/v1/traces", bomb, content_type=PROTOBUF, HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 413

    assert otlp_client.get("/v1/traces").status_code == 405
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_dashflow_graph_and_node_spans_make_a_run_of_timings_and_errors(
    otlp_client: Client, api: Any
) -> None:
    # DashFlow's own spans, made by the OpenTelemetry SDK as DashFlow's tracing layer
    # names them: graph.stream with graph.name, node.execute with node.name, no state.
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
        encode_spans as sdk_encode,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status as SpanStatus
    from opentelemetry.trace import StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("dashflow")
    with tracer.start_as_current_span(
        "graph.stream", attributes={"graph.name": "research-agent", "thread_id": "t-9"}
    ):
        for node in ("planner", "retriever"):
            with tracer.start_as_current_span("node.execute", attributes={"node.name": node}):
                pass
        with tracer.start_as_current_span(
            "node.execute", attributes={"node.name": "writer"}, record_exception=False
        ) as failing:
            failing.record_exception(TimeoutError("model timed out after 30s"))
            failing.set_status(SpanStatus(StatusCode.ERROR, "model timed out after 30s"))
    spans = memory.get_finished_spans()
    assert post(otlp_client, sdk_encode(spans)).status_code == 200

    trace = run_json(api, f"{spans[0].context.trace_id:032x}")
    assert trace["metadata"]["otlp"]["dialect"] == "dashflow"
    assert trace["metadata"]["graph_name"] == "research-agent"
    assert trace["thread_id"] == "t-9"
    nodes = trace["nodes_executed"]
    assert [n["node"] for n in nodes] == ["planner", "retriever", "writer"]
    assert [n["success"] for n in nodes] == [True, True, False]
    assert [n["state_before"] for n in nodes] == [None, None, None]
    assert [e["error_type"] for e in trace["errors"]] == ["TimeoutError"]
    assert trace["errors"][0]["node"] == "writer"
    assert trace["completed"] is True
