"""DashStream in (``POST /api/v1/dashstream``): frames from a DashFlow producer become live
runs through the one ingest workflow.

The frames are real ones: our own ``dashstream`` export of the shared DashFlow fixtures
(checked field by field against DashFlow's descriptor in ``test_dashstream.py``), sent
whole, one frame per request, out of order, twice, or broken on purpose. Expected node
sequences and states come from ``json.load`` of the fixtures.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import zstandard
from django.test import Client
from rest_framework.test import APIClient

from traces import dashstream, store
from traces.models import ApiKey, DashStreamCursor, Project, Run, RunStatus
from traces.proto import dashstream_pb2 as pb
from traces.trace import ExecutionTrace

pytestmark = pytest.mark.django_db

URL = "/api/v1/dashstream"
FRAMES = "application/x-dashstream-frames"
ONE = "application/x-protobuf"


def fixture_doc(fixtures_dir: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((fixtures_dir / name).read_text())
    return doc


def frames_of(doc: dict[str, Any]) -> list[bytes]:
    trace = ExecutionTrace.from_json(json.dumps(doc))
    return [dashstream.frame(m) for m in dashstream.messages(trace)]


def body_of(frames: list[bytes]) -> bytes:
    return b"".join(len(f).to_bytes(4, "big") + f for f in frames)


def post(api: APIClient, body: bytes, content_type: str = FRAMES) -> Any:
    return api.generic("POST", URL, body, content_type=content_type)


@pytest.fixture
def other_api(other_project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    return client


@pytest.mark.parametrize(
    "name",
    [
        "research_agent_success.json",
        "tool_timeout_failure.json",
        "non_object_states.json",
        "executor_autopersisted.json",
        "subgraph_child.json",
        "long_loop_2000.json",
    ],
)
def test_an_exported_run_ingested_into_another_project_has_the_same_nodes_and_states(
    fixtures_dir: Path, other_api: APIClient, other_project: Project, name: str
) -> None:
    doc = fixture_doc(fixtures_dir, name)
    response = post(other_api, body_of(frames_of(doc)))
    assert response.status_code == 200, response.content
    assert response.json()["duplicates"] == 0
    run = Run.objects.get(project=other_project, execution_id=doc["execution_id"])
    got = store.load_trace(run)
    want = doc["nodes_executed"]
    assert [n.node for n in got.nodes_executed] == [n["node"] for n in want]
    assert [n.state_before for n in got.nodes_executed] == [n["state_before"] for n in want]
    assert [n.state_after for n in got.nodes_executed] == [n["state_after"] for n in want]
    assert [n.success for n in got.nodes_executed] == [n.get("success", True) for n in want]
    assert [e.message for e in got.errors] == [e["message"] for e in doc["errors"]]
    assert run.completed == doc["completed"]
    assert run.thread_id == doc["thread_id"]
    assert run.dashstream.health()["needs_resync"] is False


def test_a_run_streamed_one_frame_per_request_is_live_until_graph_end(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    kinds = [dashstream.decode_frame(f).WhichOneof("message") for f in frames]
    first_diff = kinds.index("state_diff")

    for frame in frames[:first_diff]:  # GRAPH_START, NODE_START, NODE_END
        assert post(api, frame, ONE).status_code == 200
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    assert run.status == RunStatus.RUNNING
    assert run.node_count == 0  # ended, but its state_after comes with the diff
    assert [e.type for e in run.events.all()] == ["run_started", "node_started"]

    assert post(api, frames[first_diff], ONE).status_code == 200
    run.refresh_from_db()
    assert run.node_count == 1
    step = store.load_step(run, 0)
    assert step is not None
    assert step.state_after == doc["nodes_executed"][0]["state_after"]

    end = kinds.index("execution_trace") - 1  # GRAPH_END
    for frame in frames[first_diff + 1 : end]:
        assert post(api, frame, ONE).status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert post(api, frames[end], ONE).status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.node_count == len(doc["nodes_executed"])
    assert store.load_trace(run).final_state == doc["nodes_executed"][-1]["state_after"]


def test_frames_sent_again_are_dropped_as_duplicates(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    body = body_of(frames_of(doc))
    assert post(api, body).status_code == 200
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    events = run.event_count

    again = post(api, body)
    assert again.status_code == 200
    answer = again.json()
    assert answer["accepted"] == 0
    assert answer["duplicates"] == len(frames_of(doc))
    run.refresh_from_db()
    assert run.event_count == events
    assert run.node_count == len(doc["nodes_executed"])


def test_a_duplicate_by_thread_and_sequence_is_dropped_whatever_its_message_id(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    assert post(api, body_of(frames[:4])).status_code == 200
    resent = dashstream.decode_frame(frames[3])
    resent.state_diff.header.message_id = b"\x01" * 16  # a new id, the same sequence
    answer = post(api, dashstream.frame(resent), ONE).json()
    assert (answer["accepted"], answer["duplicates"]) == (0, 1)
    assert answer["runs"][0]["duplicates"] == 1


def test_gaps_and_reorders_are_counted_and_shown_on_the_run(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    # Sequences 5 and 6 (the second node's NODE_START and NODE_END) arrive after 7.
    answer = post(api, body_of([*frames[:4], frames[6]])).json()
    assert answer["runs"][0]["gaps"] == 2
    answer = post(api, body_of(frames[4:6] + frames[7:])).json()
    health = answer["runs"][0]
    assert (health["gaps"], health["reorders"], health["duplicates"]) == (2, 2, 0)

    body = api.get(f"/api/v1/runs/{doc['execution_id']}").json()
    assert body["dashstream"]["gaps"] == 2
    assert body["dashstream"]["reorders"] == 2


def test_a_state_hash_mismatch_marks_the_run_as_needing_resync(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    kinds = [dashstream.decode_frame(f).WhichOneof("message") for f in frames]
    at = kinds.index("state_diff")
    broken = dashstream.decode_frame(frames[at])
    broken.state_diff.state_hash = hashlib.sha256(b"something else").digest()
    frames[at] = dashstream.frame(broken)

    answer = post(api, body_of(frames[: at + 1])).json()
    assert answer["runs"][0]["needs_resync"] is True
    assert "hash mismatch" in answer["runs"][0]["resync_reason"]
    cursor = DashStreamCursor.objects.get(run__execution_id=doc["execution_id"])
    assert cursor.needs_resync


def test_a_patch_that_does_not_apply_needs_resync_and_a_verified_full_state_clears_it(
    api: APIClient, project: Project
) -> None:
    doc = {
        "thread_id": "t-resync",
        "execution_id": "resync-run",
        "nodes_executed": [
            {"node": "a", "duration_ms": 1, "state_before": {"n": 0}, "state_after": {"n": 1}},
            {"node": "b", "duration_ms": 1, "state_before": {"n": 1}, "state_after": {"n": 2}},
        ],
        "completed": True,
    }
    frames = frames_of(doc)
    kinds = [dashstream.decode_frame(f).WhichOneof("message") for f in frames]
    diffs = [i for i, k in enumerate(kinds) if k == "state_diff"]
    bad = dashstream.decode_frame(frames[diffs[0]])
    bad.state_diff.ClearField("full_state")
    bad.state_diff.operations.add(op=pb.DiffOperation.OP_TYPE_REPLACE, path="/missing", value=b"1")
    frames[diffs[0]] = dashstream.frame(bad)
    answer = post(api, body_of(frames[: diffs[0] + 1])).json()
    assert answer["runs"][0]["needs_resync"] is True
    assert "does not apply" in answer["runs"][0]["resync_reason"]

    good = dashstream.decode_frame(frames[diffs[1]])
    good.state_diff.ClearField("operations")
    good.state_diff.full_state = b'{"n":2}'
    frames[diffs[1]] = dashstream.frame(good)
    answer = post(api, body_of(frames[diffs[0] + 1 :])).json()
    assert answer["runs"][0]["needs_resync"] is False
    run = Run.objects.get(project=project, execution_id="resync-run")
    assert [s.state_after for s in store.load_trace(run).nodes_executed] == [None, {"n": 2}]


def test_an_undecodable_frame_is_a_400_naming_it_and_the_good_frames_are_kept(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    frames.insert(2, b"\x00\xff\xff\xff garbage")
    response = post(api, body_of(frames))
    assert response.status_code == 400
    error = response.json()
    assert error["path"] == "$.frames[2]"
    assert "not a DashStreamMessage" in error["rule"]
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    assert run.status == RunStatus.COMPLETED
    assert run.node_count == len(doc["nodes_executed"])


def test_a_frame_over_ten_megabytes_after_decompression_is_a_413(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    bomb = b"\x01" + zstandard.ZstdCompressor().compress(b"\x0a" * (11 * 1024 * 1024))
    response = post(api, body_of([*frames[:3], bomb]))
    assert response.status_code == 413
    assert response.json()["path"] == "$.frames[3]"
    assert "10 MB" in response.json()["rule"]
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    assert [e.type for e in run.events.all()] == ["run_started", "node_started"]


def test_a_frame_announced_over_ten_megabytes_is_a_413_before_it_is_read(
    api: APIClient,
) -> None:
    body = (11 * 1024 * 1024).to_bytes(4, "big") + b"\x00" * 64
    response = post(api, body)
    assert response.status_code == 413
    assert response.json()["path"] == "$.frames[0]"


def test_another_content_type_is_a_415(api: APIClient) -> None:
    response = post(api, b"{}", "application/json")
    assert response.status_code == 415
    assert response.json()["path"] == "Content-Type"


def test_legacy_unframed_and_zstd_framed_messages_are_read(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    trace = ExecutionTrace.from_json(json.dumps(doc))
    raw = [m.SerializeToString() for m in dashstream.messages(trace)]
    assert post(api, raw[0], ONE).status_code == 200  # legacy: no framing byte
    zipped = b"\x01" + zstandard.ZstdCompressor().compress(raw[1])
    assert post(api, zipped, ONE).status_code == 200
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    assert [e.type for e in run.events.all()] == ["run_started", "node_started"]


def test_an_execution_trace_message_alone_creates_the_run(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "tool_timeout_failure.json")
    summary = frames_of(doc)[-1]
    assert dashstream.decode_frame(summary).WhichOneof("message") == "execution_trace"
    assert post(api, summary, ONE).status_code == 200
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    got = store.load_trace(run)
    assert [n.node for n in got.nodes_executed] == [n["node"] for n in doc["nodes_executed"]]
    assert [n.state_after for n in got.nodes_executed] == [
        n["state_after"] for n in doc["nodes_executed"]
    ]
    assert run.status == RunStatus.FAILED


def test_messages_of_a_thread_with_no_open_run_are_counted_unmatched(api: APIClient) -> None:
    message = pb.DashStreamMessage()
    message.event.header.thread_id = "nobody"
    message.event.header.sequence = 3
    message.event.event_type = pb.EVENT_TYPE_NODE_START
    answer = post(api, dashstream.frame(message), ONE).json()
    assert (answer["accepted"], answer["unmatched"]) == (0, 1)
    assert not Run.objects.exists()


def test_graph_schema_from_graph_start_reaches_the_run_metadata(
    api: APIClient, project: Project
) -> None:
    schema = {"nodes": [{"name": "a"}], "edges": [], "entry_point": "a"}
    message = pb.DashStreamMessage()
    event = message.event
    event.header.thread_id = "t-schema"
    event.header.sequence = 1
    event.header.message_id = b"\x02" * 16
    event.event_type = pb.EVENT_TYPE_GRAPH_START
    event.attributes["graph_name"].string_value = "planner"
    event.attributes["graph_schema_json"].string_value = json.dumps(schema)
    answer = post(api, dashstream.frame(message), ONE).json()
    run = Run.objects.get(project=project, execution_id=answer["runs"][0]["execution_id"])
    assert run.graph_name == "planner"
    assert json.loads(run.metadata["graph_schema_json"]) == schema
    assert run.thread_id == "t-schema"


def test_the_run_page_shows_gaps_and_a_lost_sync(
    fixtures_dir: Path, api: APIClient, project: Project, member: Any
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    frames = frames_of(doc)
    kinds = [dashstream.decode_frame(f).WhichOneof("message") for f in frames]
    at = kinds.index("state_diff")
    broken = dashstream.decode_frame(frames[at])
    broken.state_diff.state_hash = b"\x00" * 32
    frames[at] = dashstream.frame(broken)
    del frames[at + 1]  # a gap of one
    assert post(api, body_of(frames)).status_code == 200

    browser = Client()
    assert browser.login(username="alice", password="pw-alice-123")
    html = browser.get(f"/projects/acme/runs/{doc['execution_id']}/").content.decode()
    assert 'id="run-stream"' in html
    assert "1 missing" in html
    assert "needs resync" in html
    assert "state hash mismatch" in html


class Stream:
    """DashStream messages of one thread, numbered as a DashFlow producer numbers them."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.seq = 0

    def header(self, header: pb.Header, kind: int) -> None:
        self.seq += 1
        header.thread_id = self.thread_id
        header.sequence = self.seq
        header.message_id = self.seq.to_bytes(16, "big")
        header.timestamp_us = 1_767_000_000_000_000 + self.seq * 1000
        header.type = kind  # type: ignore[assignment]

    def event(self, kind: int, node: str = "", **attributes: Any) -> pb.DashStreamMessage:
        message = pb.DashStreamMessage()
        self.header(message.event.header, pb.MESSAGE_TYPE_EVENT)
        message.event.event_type = kind  # type: ignore[assignment]
        message.event.node_id = node
        for name, value in attributes.items():
            target = message.event.attributes[name]
            if isinstance(value, bool):
                target.bool_value = value
            elif isinstance(value, int):
                target.int_value = value
            else:
                target.string_value = value
        return message

    def full_state(self, state: Any) -> pb.DashStreamMessage:
        message = pb.DashStreamMessage()
        self.header(message.state_diff.header, pb.MESSAGE_TYPE_STATE_DIFF)
        text = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
        message.state_diff.full_state = text
        message.state_diff.state_hash = hashlib.sha256(text).digest()
        return message


def test_tool_executions_token_chunks_metrics_errors_and_event_batches_land_on_the_node(
    api: APIClient, project: Project
) -> None:
    s = Stream("t-kinds")
    start = s.event(pb.EVENT_TYPE_GRAPH_START, graph_name="kinds", initial_state_json='{"q":1}')
    node_start = s.event(pb.EVENT_TYPE_NODE_START, "search")
    tool = pb.DashStreamMessage()
    s.header(tool.tool_execution.header, pb.MESSAGE_TYPE_TOOL_EXECUTION)
    tool.tool_execution.call_id = "c1"
    tool.tool_execution.tool_name = "web_search"
    tool.tool_execution.stage = pb.ToolExecution.EXECUTION_STAGE_COMPLETED
    failed_tool = pb.DashStreamMessage()
    s.header(failed_tool.tool_execution.header, pb.MESSAGE_TYPE_TOOL_EXECUTION)
    failed_tool.tool_execution.call_id = "c2"
    failed_tool.tool_execution.tool_name = "fetch"
    failed_tool.tool_execution.stage = pb.ToolExecution.EXECUTION_STAGE_FAILED
    failed_tool.tool_execution.error = "fetch timed out"
    chunk = pb.DashStreamMessage()
    s.header(chunk.token_chunk.header, pb.MESSAGE_TYPE_TOKEN_CHUNK)
    chunk.token_chunk.is_final = True
    chunk.token_chunk.stats.total_tokens = 321
    metrics = pb.DashStreamMessage()
    s.header(metrics.metrics.header, pb.MESSAGE_TYPE_METRICS)
    metrics.metrics.scope = "node"
    metrics.metrics.metrics["latency_ms"].float_value = 12.5
    # NODE_END travels in an EventBatch whose events leave their thread to the batch.
    batch = pb.DashStreamMessage()
    s.header(batch.event_batch.header, pb.MESSAGE_TYPE_EVENT_BATCH)
    inner = batch.event_batch.events.add()
    inner.header.sequence = 0
    inner.event_type = pb.EVENT_TYPE_NODE_END
    inner.node_id = "search"
    inner.duration_us = 40_000
    diff = s.full_state({"q": 1, "hits": 3})
    error = pb.DashStreamMessage()
    s.header(error.error.header, pb.MESSAGE_TYPE_ERROR)
    error.error.message = "quota almost used"
    error.error.exception_type = "QuotaWarning"
    end = s.event(pb.EVENT_TYPE_GRAPH_END, completed=True)

    messages = [start, node_start, tool, failed_tool, chunk, metrics, batch, diff, error, end]
    answer = post(api, body_of([dashstream.frame(m) for m in messages])).json()
    assert answer["accepted"] == len(messages)
    run = Run.objects.get(project=project, execution_id=answer["runs"][0]["execution_id"])
    got = store.load_trace(run)
    (node,) = got.nodes_executed
    assert node.node == "search"
    assert node.tools_called == ["web_search", "fetch"]
    assert node.tokens_used == 321
    assert node.duration_ms == 40
    assert node.metadata["metrics"] == {"latency_ms": 12.5}
    assert (node.state_before, node.state_after) == ({"q": 1}, {"q": 1, "hits": 3})
    assert [(e.node, e.message, e.error_type) for e in got.errors] == [
        ("search", "fetch timed out", "ToolError"),
        ("graph", "quota almost used", "QuotaWarning"),
    ]
    assert got.final_state == {"q": 1, "hits": 3}
    assert run.graph_name == "kinds"


def test_a_new_graph_start_on_a_thread_closes_its_open_run_for_matching(
    api: APIClient, project: Project
) -> None:
    s = Stream("t-restart")
    first = s.event(pb.EVENT_TYPE_GRAPH_START, execution_id="run-a")
    second = s.event(pb.EVENT_TYPE_GRAPH_START, execution_id="run-b")
    node = s.event(pb.EVENT_TYPE_NODE_START, "n")
    post(api, body_of([dashstream.frame(first)]))
    post(api, body_of([dashstream.frame(second), dashstream.frame(node)]))
    assert Run.objects.get(execution_id="run-a").events.count() == 1
    assert [e.type for e in Run.objects.get(execution_id="run-b").events.all()] == [
        "run_started",
        "node_started",
    ]
    assert not DashStreamCursor.objects.get(run__execution_id="run-a").open


def test_only_a_key_that_writes_may_send_frames(fixtures_dir: Path, project: Project) -> None:
    frame = frames_of(fixture_doc(fixtures_dir, "research_agent_success.json"))[0]
    anonymous = APIClient()
    assert post(anonymous, frame, ONE).status_code in (401, 403)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, scope='read')[1]}")
    refused = post(reader, frame, ONE)
    assert refused.status_code == 403
    assert not Run.objects.exists()


def test_a_graph_start_with_an_unusable_run_id_is_a_400_and_opens_nothing(
    api: APIClient, project: Project
) -> None:
    s = Stream("t-bad-id")
    bad = s.event(pb.EVENT_TYPE_GRAPH_START, execution_id="a/b")
    node = s.event(pb.EVENT_TYPE_NODE_START, "n")
    response = post(api, body_of([dashstream.frame(bad), dashstream.frame(node)]))
    assert response.status_code == 400
    assert response.json()["path"] == "$.frames[0].attributes.execution_id"
    assert not Run.objects.exists()
    assert not DashStreamCursor.objects.exists()


def test_a_gzip_body_of_frames_is_read(
    fixtures_dir: Path, api: APIClient, project: Project
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    body = gzip.compress(body_of(frames_of(doc)))
    response = api.generic(
        "POST", URL, body, content_type=f"{FRAMES}; v=1", HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 200, response.content
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    assert run.node_count == len(doc["nodes_executed"])


@pytest.mark.parametrize("what", ["deep state", "NUL in a node name"])
def test_a_frame_past_the_rules_of_every_input_is_a_400_and_the_rest_is_kept(
    fixtures_dir: Path, api: APIClient, project: Project, settings: Any, what: str
) -> None:
    doc = fixture_doc(fixtures_dir, "research_agent_success.json")
    if what == "deep state":
        deep: Any = "bottom"
        for _ in range(settings.TRACE_MAX_DEPTH + 5):
            deep = {"d": deep}
        doc["nodes_executed"][2]["state_after"] = {"deep": deep}
    trace = ExecutionTrace.from_json(json.dumps(doc))
    messages = list(dashstream.messages(trace))
    if what != "deep state":
        # A producer's node name with a NUL (the canonical type refuses one, so it is
        # written into the message itself).
        for message in messages:
            if message.WhichOneof("message") == "event" and message.event.node_id:
                message.event.node_id = "writ\x00er"
    response = post(api, body_of([dashstream.frame(m) for m in messages]))

    assert response.status_code == 400, response.content
    error = response.json()
    assert error["path"].startswith("$.frames[")
    assert ("TRACE_MAX_DEPTH" in error["rule"]) or ("NUL" in error["rule"])
    run = Run.objects.get(project=project, execution_id=doc["execution_id"])
    # What was stored can be read back: every step of the run answers 200.
    for index in range(run.node_count):
        step = api.get(f"/api/v1/runs/{doc['execution_id']}/steps/{index}")
        assert step.status_code == 200, step.content
