"""DashStream export: every frame decodes with an independent decoder (protobufjs, built
from DashFlow's own descriptor, run by node), field by field against the raw fixture JSON.

Expected values come from ``json.load`` of the fixtures and ``hashlib``, never from the
code under test; patches are applied with the ``jsonpatch`` library. The decoder lives in
``tests/dashstream_decoder`` (``make decoder`` installs its pinned packages; ``make test``
does it first).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from traces import dashstream
from traces.formats import encode_run
from traces.trace import ExecutionTrace

ROOT = Path(__file__).resolve().parents[2]
DECODER = ROOT / "tests" / "dashstream_decoder"
SCHEMA = ROOT.parent / "shared" / "fixtures" / "dashstream" / "dashstream.schema.json"
FIXTURES = [
    "research_agent_success.json",
    "tool_timeout_failure.json",
    "non_object_states.json",
    "executor_autopersisted.json",
    "subgraph_child.json",
    "long_loop_2000.json",
]


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(value: Any) -> bytes:
    return hashlib.sha256(canonical(value)).digest()


def export_file(trace: ExecutionTrace, **kwargs: Any) -> bytes:
    return b"".join(chunk for chunk, _ in encode_run("dashstream", trace, **kwargs))


def decode_with_node(data: bytes, tmp_path: Path) -> list[dict[str, Any]]:
    """The frames as protobufjs decodes them. Fails (never skips) without node or the
    decoder's packages."""
    node = shutil.which("node")
    assert node is not None, "node is required for the DashStream decoder tests"
    assert (DECODER / "node_modules" / "protobufjs").is_dir(), (
        f"run `make decoder` (npm ci in {DECODER}) first"
    )
    path = tmp_path / "export.dashstream"
    path.write_bytes(data)
    done = subprocess.run(
        [node, str(DECODER / "decode.js"), str(SCHEMA), str(path)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    frames: list[dict[str, Any]] = json.loads(done.stdout)
    return frames


def b64json(text: str) -> Any:
    return json.loads(base64.b64decode(text))


def micros(stamp: str) -> int:
    from datetime import datetime

    moment = datetime.fromisoformat(stamp)
    return round(moment.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each fixture exported and decoded by node once for the module."""
    out = {}
    tmp = tmp_path_factory.mktemp("dashstream")
    for name in FIXTURES:
        raw = (ROOT.parent / "shared" / "fixtures" / "dashflow" / name).read_bytes()
        out[name] = decode_with_node(export_file(ExecutionTrace.from_json(raw)), tmp)
    return out


def raw_fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (ROOT.parent / "shared" / "fixtures" / "dashflow" / name).read_bytes()
    )
    return doc


def kind(frame: dict[str, Any]) -> str:
    message = frame["message"]
    which: str = message["message"]
    if which == "event":
        event_type: str = message["event"]["eventType"]
        return event_type.removeprefix("EVENT_TYPE_")
    return which


def body(frame: dict[str, Any]) -> dict[str, Any]:
    message = frame["message"]
    inner: dict[str, Any] = message[message["message"]]
    return inner


def expected_kinds(doc: dict[str, Any]) -> list[str]:
    """The message sequence the module docstring of traces/dashstream.py promises."""
    kinds = ["GRAPH_START"]
    nodes = doc["nodes_executed"]
    for position, node in enumerate(nodes):
        kinds.append("NODE_START")
        errors = [e for e in doc["errors"] if e.get("execution_index") == position]
        kinds += ["NODE_ERROR"] * len(errors)
        if not node["success"] and not errors:
            kinds.append("NODE_ERROR")
        kinds.append("NODE_END")
        if node["state_after"] is not None:
            kinds.append("stateDiff")
    loose = [
        e
        for e in doc["errors"]
        if e.get("execution_index") is None or e["execution_index"] >= len(nodes)
    ]
    kinds += ["NODE_ERROR"] * len(loose)
    return [*kinds, "GRAPH_END", "executionTrace"]


@pytest.mark.parametrize("name", FIXTURES)
def test_every_frame_decodes_with_the_headers_dashflow_expects(
    name: str, decoded: dict[str, list[dict[str, Any]]]
) -> None:
    frames = decoded[name]
    doc = raw_fixture(name)
    assert [kind(f) for f in frames] == expected_kinds(doc)
    ids = set()
    for position, frame in enumerate(frames, start=1):
        header = body(frame)["header"]
        assert header["sequence"] == str(position)
        assert header["schemaVersion"] == 1
        assert header.get("threadId", "") == (doc["thread_id"] or "")
        message_id = base64.b64decode(header["messageId"])
        assert len(message_id) == 16
        assert uuid.UUID(bytes=message_id).version == 5
        ids.add(message_id)
        expected_type = {
            "event": "MESSAGE_TYPE_EVENT",
            "stateDiff": "MESSAGE_TYPE_STATE_DIFF",
            "executionTrace": "MESSAGE_TYPE_EXECUTION_TRACE",
        }[frame["message"]["message"]]
        assert header["type"] == expected_type
        compressed = frame["marker"] == 1
        assert (header.get("compression") == "COMPRESSION_ZSTD") is compressed
        if compressed:
            assert frame["inflated_size"] > dashstream.COMPRESSION_THRESHOLD
            assert frame["size"] - 1 < frame["inflated_size"]
        else:
            # Uncompressed: small, or compression would not have made it smaller.
            assert frame["inflated_size"] == frame["size"] - 1
    assert len(ids) == len(frames)
    if doc["thread_id"]:
        assert {body(f)["header"]["threadId"] for f in frames} == {doc["thread_id"]}


@pytest.mark.parametrize("name", FIXTURES)
def test_patches_rebuild_every_state_after_and_hashes_match_sha256(
    name: str, decoded: dict[str, list[dict[str, Any]]]
) -> None:
    doc = raw_fixture(name)
    frames = decoded[name]
    start = body(frames[0])
    initial = doc["nodes_executed"][0]["state_before"] if doc["nodes_executed"] else None
    if initial is None:
        assert "initial_state_json" not in start.get("attributes", {})
        state: Any = None
    else:
        text = start["attributes"]["initial_state_json"]["stringValue"]
        state = json.loads(text)
        assert canonical(state) == canonical(initial)
    diffs = [body(f) for f in frames if f["message"]["message"] == "stateDiff"]
    afters = [n["state_after"] for n in doc["nodes_executed"] if n["state_after"] is not None]
    assert len(diffs) == len(afters)
    names = {"OP_TYPE_ADD": "add", "OP_TYPE_REMOVE": "remove", "OP_TYPE_REPLACE": "replace"}
    for message, after in zip(diffs, afters, strict=True):
        assert base64.b64decode(message["stateHash"]) == sha256(after)
        if "fullState" in message:
            assert "operations" not in message
            assert base64.b64decode(message["fullState"]) == canonical(after)
            state = json.loads(base64.b64decode(message["fullState"]))
        else:
            patch = []
            for op in message.get("operations", []):
                assert op.get("encoding", "VALUE_ENCODING_JSON") == "VALUE_ENCODING_JSON"
                entry = {"op": names[op.get("op", "OP_TYPE_ADD")], "path": op.get("path", "")}
                if entry["op"] != "remove":
                    entry["value"] = b64json(op["value"])
                patch.append(entry)
            state = jsonpatch.apply_patch(copy.deepcopy(state), patch)
        assert canonical(state) == canonical(after)
        # The hash is of the state a consumer now holds, not only of the fixture's.
        assert base64.b64decode(message["stateHash"]) == sha256(state)


def test_node_events_carry_durations_timestamps_and_the_node(
    decoded: dict[str, list[dict[str, Any]]],
) -> None:
    doc = raw_fixture("research_agent_success.json")
    frames = decoded["research_agent_success.json"]
    starts = [body(f) for f in frames if kind(f) == "NODE_START"]
    ends = [body(f) for f in frames if kind(f) == "NODE_END"]
    assert len(starts) == len(ends) == len(doc["nodes_executed"])
    for node, start, end in zip(doc["nodes_executed"], starts, ends, strict=True):
        assert start["nodeId"] == end["nodeId"] == node["node"]
        assert start["header"]["timestampUs"] == str(micros(node["started_at"]))
        began = micros(node["started_at"])
        assert end["header"]["timestampUs"] == str(began + node["duration_ms"] * 1000)
        assert end["durationUs"] == str(node["duration_ms"] * 1000)
        assert end["attributes"]["success"]["boolValue"] is True
        assert end["attributes"]["tokens_used"].get("intValue", "0") == str(node["tokens_used"])
        assert end["attributes"]["index"].get("intValue", "0") == str(node["index"])
    graph_start, graph_end = body(frames[0]), body(frames[-2])
    assert graph_start["header"]["timestampUs"] == str(micros(doc["started_at"]))
    assert graph_start["attributes"]["execution_id"]["stringValue"] == doc["execution_id"]
    assert graph_start["attributes"]["graph_name"]["stringValue"] == doc["metadata"]["graph_name"]
    assert graph_end["header"]["timestampUs"] == str(micros(doc["ended_at"]))
    assert graph_end["durationUs"] == str(doc["total_duration_ms"] * 1000)
    assert graph_end["attributes"]["completed"]["boolValue"] is True
    assert graph_end["attributes"]["total_tokens"]["intValue"] == str(doc["total_tokens"])


def test_an_error_trace_gives_node_error_events(
    decoded: dict[str, list[dict[str, Any]]],
) -> None:
    doc = raw_fixture("tool_timeout_failure.json")
    frames = decoded["tool_timeout_failure.json"]
    (error,) = doc["errors"]
    errors = [body(f) for f in frames if kind(f) == "NODE_ERROR"]
    assert len(errors) == 1
    event = errors[0]
    assert event["nodeId"] == error["node"]
    attributes = event["attributes"]
    assert attributes["error"]["stringValue"] == error["message"]
    assert attributes["error_type"]["stringValue"] == error["error_type"]
    assert attributes["retry_attempted"]["boolValue"] is error["retry_attempted"]
    assert attributes["context"]["stringValue"] == error["context"]
    assert event["header"]["timestampUs"] == str(micros(error["timestamp"]))
    # It sits between the failed node's start and end, and the end says it failed.
    kinds = [kind(f) for f in frames]
    at = kinds.index("NODE_ERROR")
    assert kinds[at - 1] == "NODE_START"
    assert kinds[at + 1] == "NODE_END"
    assert body(frames[at + 1])["attributes"]["success"]["boolValue"] is False
    assert body(frames[-2])["attributes"]["completed"] == {"boolValue": False, "value": "boolValue"}


def test_a_failed_node_without_an_error_record_still_gets_node_error() -> None:
    doc = raw_fixture("research_agent_success.json")
    doc["nodes_executed"][2]["success"] = False
    doc["nodes_executed"][2]["error_message"] = "reader crashed"
    messages = list(dashstream.messages(ExecutionTrace.from_obj(doc)))
    errors = [
        m.event for m in messages if m.WhichOneof("message") == "event" and m.event.event_type == 12
    ]
    assert [(e.node_id, e.attributes["error"].string_value) for e in errors] == [
        ("reader", "reader crashed")
    ]


@pytest.mark.parametrize("name", FIXTURES)
def test_the_closing_summary_matches_the_trace(
    name: str, decoded: dict[str, list[dict[str, Any]]]
) -> None:
    doc = raw_fixture(name)
    summary = body(decoded[name][-1])
    assert summary.get("executionId", "") == doc["execution_id"]
    assert summary.get("threadId", "") == (doc["thread_id"] or "")
    assert summary.get("totalDurationMs", "0") == str(doc["total_duration_ms"])
    assert summary.get("totalTokens", "0") == str(doc["total_tokens"])
    assert summary.get("completed", False) is doc["completed"]
    assert summary.get("startedAt", "") == (doc["started_at"] or "")
    assert summary.get("endedAt", "") == (doc["ended_at"] or "")
    if doc["final_state"] is None:
        assert "finalState" not in summary
    else:
        assert b64json(summary["finalState"]) == doc["final_state"]
    metadata = {key: b64json(value) for key, value in summary.get("metadata", {}).items()}
    assert metadata == doc["metadata"]
    records = summary.get("nodesExecuted", [])
    assert len(records) == len(doc["nodes_executed"])
    for record, node in zip(records, doc["nodes_executed"], strict=True):
        assert record["node"] == node["node"]
        assert record.get("durationMs", "0") == str(node["duration_ms"])
        assert record.get("totalTokens", "0") == str(node["tokens_used"])
        assert record.get("succeeded", False) is node["success"]
        assert record.get("startedAt", "") == (node["started_at"] or "")
        for field, state in (("input", node["state_before"]), ("output", node["state_after"])):
            if state is None:
                assert field not in record
            else:
                assert base64.b64decode(record[field]) == canonical(state)
        assert {k: json.loads(v) for k, v in record.get("metadata", {}).items()} == node["metadata"]
    errors = summary.get("errors", [])
    assert [
        (e["node"], e["message"], e.get("errorCode", ""), e.get("stackTrace", "")) for e in errors
    ] == [
        (e["node"], e["message"], e["error_type"] or "", e["context"] or "") for e in doc["errors"]
    ]


def test_small_messages_are_plain_and_large_ones_zstd_framed() -> None:
    doc = raw_fixture("research_agent_success.json")
    trace = ExecutionTrace.from_obj(doc)
    frames = list(dashstream.read_file(export_file(trace)))
    small = [f for f in frames if len(f) - 1 <= dashstream.COMPRESSION_THRESHOLD]
    large = [f for f in frames if f[0] == 1]
    assert small
    assert all(f[0] == 0 for f in small)
    assert large, "the GRAPH_START with the initial state and the summary are over 512 bytes"
    for framed in frames:
        message = dashstream.decode_frame(framed)
        header = getattr(message, message.WhichOneof("message")).header
        assert (header.compression == 1) is (framed[0] == 1)
    # A message over 512 bytes that zstd cannot shrink stays plain.
    noise = hashlib.shake_256(b"incompressible").hexdigest(600)
    doc["metadata"] = {"blob": noise}
    doc["nodes_executed"] = []
    (start, *_rest) = list(dashstream.messages(ExecutionTrace.from_obj(doc)))
    start.event.attributes["noise"].bytes_value = hashlib.shake_256(b"x").digest(900)
    framed = dashstream.frame(start)
    assert framed[0] == 0
    assert len(framed) - 1 > dashstream.COMPRESSION_THRESHOLD
    assert dashstream.decode_frame(framed) == start


def test_a_patch_longer_than_the_state_sends_the_full_state() -> None:
    doc = raw_fixture("research_agent_success.json")
    # Every key changes: the patch would restate everything, with paths on top.
    before = {f"k{i}": i for i in range(50)}
    after = {f"k{i}": -i - 1 for i in range(50)}
    small_change = dict(after, k0=0)
    doc["nodes_executed"] = [
        dict(doc["nodes_executed"][0], state_before=before, state_after=after),
        dict(doc["nodes_executed"][1], state_before=after, state_after=small_change),
    ]
    messages = list(dashstream.messages(ExecutionTrace.from_obj(doc)))
    diffs = [m.state_diff for m in messages if m.WhichOneof("message") == "state_diff"]
    assert len(diffs) == 2
    assert diffs[0].full_state == canonical(after)
    assert len(diffs[0].operations) == 0
    assert diffs[0].state_hash == sha256(after)
    # The next node changes one key: a one-operation patch, no full state.
    assert diffs[1].full_state == b""
    assert [(op.op, op.path, op.value) for op in diffs[1].operations] == [(2, "/k0", b"0")]


def test_non_object_and_unicode_states_round_trip(
    decoded: dict[str, list[dict[str, Any]]],
) -> None:
    frames = decoded["non_object_states.json"]
    doc = raw_fixture("non_object_states.json")
    states = []
    for frame in frames:
        if frame["message"]["message"] == "stateDiff" and "fullState" in body(frame):
            states.append(json.loads(base64.b64decode(body(frame)["fullState"]).decode("utf-8")))
    assert states == [n["state_after"] for n in doc["nodes_executed"]]
    assert states[0] == ["grüße", "東京", "🚀"]


def test_a_trace_without_states_streams_events_only(
    decoded: dict[str, list[dict[str, Any]]],
) -> None:
    frames = decoded["executor_autopersisted.json"]
    assert "stateDiff" not in [kind(f) for f in frames]
    assert "initial_state_json" not in body(frames[0]).get("attributes", {})
    records = body(frames[-1])["nodesExecuted"]
    assert all("input" not in r and "output" not in r for r in records)


def test_reencoding_a_run_gives_identical_bytes() -> None:
    raw = (
        ROOT.parent / "shared" / "fixtures" / "dashflow" / "tool_timeout_failure.json"
    ).read_bytes()
    first = export_file(ExecutionTrace.from_json(raw))
    second = export_file(ExecutionTrace.from_json(raw))
    assert first == second
    frames = list(dashstream.read_file(first))
    ids = [
        getattr(m, m.WhichOneof("message")).header.message_id
        for m in map(dashstream.decode_frame, frames)
    ]
    doc = json.loads(raw)
    namespace = dashstream.NAMESPACE
    assert ids == [
        uuid.uuid5(namespace, f"{doc['execution_id']}:{seq}").bytes
        for seq in range(1, len(ids) + 1)
    ]


def test_steps_limit_the_nodes_and_patches_still_apply(tmp_path: Path) -> None:
    doc = raw_fixture("research_agent_success.json")
    chosen = {1, 4, 9}
    frames = decode_with_node(export_file(ExecutionTrace.from_obj(doc), steps=chosen), tmp_path)
    starts = [body(f)["nodeId"] for f in frames if kind(f) == "NODE_START"]
    assert starts == [doc["nodes_executed"][i]["node"] for i in sorted(chosen)]
    state = json.loads(body(frames[0])["attributes"]["initial_state_json"]["stringValue"])
    assert state == doc["nodes_executed"][1]["state_before"]
    names = {"OP_TYPE_ADD": "add", "OP_TYPE_REMOVE": "remove", "OP_TYPE_REPLACE": "replace"}
    afters = [doc["nodes_executed"][i]["state_after"] for i in sorted(chosen)]
    diffs = [body(f) for f in frames if kind(f) == "stateDiff"]
    for message, after in zip(diffs, afters, strict=True):
        patch = []
        for op in message.get("operations", []):
            entry = {"op": names[op.get("op", "OP_TYPE_ADD")], "path": op["path"]}
            if entry["op"] != "remove":
                entry["value"] = b64json(op["value"])
            patch.append(entry)
        state = jsonpatch.apply_patch(state, patch)
        assert canonical(state) == canonical(after)
    assert len(body(frames[-1])["nodesExecuted"]) == len(chosen)


def test_jsonl_rendering_is_one_readable_line_per_message() -> None:
    doc = raw_fixture("research_agent_success.json")
    trace = ExecutionTrace.from_obj(doc)
    text = b"".join(chunk for chunk, _ in encode_run("dashstream_jsonl", trace))
    rows = sum(rows for _, rows in encode_run("dashstream_jsonl", trace))
    lines = [json.loads(line) for line in text.decode().splitlines()]
    assert len(lines) == rows == len(list(dashstream.messages(trace)))
    first = lines[0]["event"]
    assert first["event_type"] == "EVENT_TYPE_GRAPH_START"
    assert first["header"]["type"] == "MESSAGE_TYPE_EVENT"
    assert str(uuid.UUID(first["header"]["message_id"])) == first["header"]["message_id"]
    diff = next(line["state_diff"] for line in lines if "state_diff" in line)
    assert {op["op"] for op in diff["operations"]} == {"OP_TYPE_ADD"}
    assert (
        diff["state_hash"]
        == hashlib.sha256(canonical(doc["nodes_executed"][0]["state_after"])).hexdigest()
    )
    assert diff["operations"][0]["path"] == "/plan/0"
    assert diff["operations"][0]["value"] == "search background"
    summary = lines[-1]["execution_trace"]
    assert summary["nodes_executed"][0]["input"] == doc["nodes_executed"][0]["state_before"]


def test_decoding_refuses_payloads_over_ten_megabytes() -> None:
    with pytest.raises(ValueError, match="10 MB"):
        dashstream.decode_frame(b"\x00" + b"\x08" * (dashstream.MAX_MESSAGE_BYTES + 1))
    import zstandard

    bomb = b"\x01" + zstandard.ZstdCompressor().compress(b"\x00" * (11 * 1024 * 1024))
    with pytest.raises(ValueError, match="10 MB"):
        dashstream.decode_frame(bomb)


def test_the_summary_leaves_states_out_past_its_budget_and_stays_decodable(
    tmp_path: Path,
) -> None:
    doc = raw_fixture("research_agent_success.json")
    blob = "x" * 400_000  # 11 nodes x 2 states x 400 kB: over the 8 MB budget
    for i, node in enumerate(doc["nodes_executed"]):
        node["state_before"] = {"blob": blob, "i": i}
        node["state_after"] = {"blob": blob, "i": i + 1}
    frames = decode_with_node(export_file(ExecutionTrace.from_obj(doc)), tmp_path)
    summary = body(frames[-1])
    assert kind(frames[-1]) == "executionTrace"
    assert b64json(summary["metadata"]["dashstream_states_omitted"]) is True
    assert all("input" not in r and "output" not in r for r in summary["nodesExecuted"])
    assert frames[-1]["inflated_size"] < dashstream.MAX_MESSAGE_BYTES
    # Each diff is one small replace; the states themselves went out once, at the start.
    diffs = [body(f) for f in frames if kind(f) == "stateDiff"]
    assert [len(d["operations"]) for d in diffs] == [1] * len(doc["nodes_executed"])
    assert all(f["inflated_size"] < 1000 for f in frames if kind(f) == "stateDiff")


def test_our_proto_has_dashflows_numbers_names_and_types() -> None:
    """Every message, field and enum value of DashFlow's descriptor, in ours."""
    from google.protobuf.descriptor import FieldDescriptor

    from traces.proto import dashstream_pb2

    scalar = {
        FieldDescriptor.TYPE_STRING: "string",
        FieldDescriptor.TYPE_BYTES: "bytes",
        FieldDescriptor.TYPE_BOOL: "bool",
        FieldDescriptor.TYPE_INT64: "int64",
        FieldDescriptor.TYPE_UINT64: "uint64",
        FieldDescriptor.TYPE_UINT32: "uint32",
        FieldDescriptor.TYPE_DOUBLE: "double",
        FieldDescriptor.TYPE_FLOAT: "float",
    }
    schema = json.loads(SCHEMA.read_text())["nested"]["dashstream"]["nested"]["v1"]["nested"]
    pool = dashstream_pb2.DESCRIPTOR.pool
    checked = 0

    def check(name: str, spec: dict[str, Any]) -> None:
        nonlocal checked
        if "values" in spec:
            ours = pool.FindEnumTypeByName(f"dashstream.v1.{name}")
            assert {v.name: v.number for v in ours.values} == spec["values"], name
            checked += 1
            return
        message = pool.FindMessageTypeByName(f"dashstream.v1.{name}")
        fields = {f.json_name: f for f in message.fields}
        assert set(fields) == set(spec["fields"]), name
        for json_name, field_spec in spec["fields"].items():
            field = fields[json_name]
            assert field.number == field_spec["id"], f"{name}.{json_name}"
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key, value = field.message_type.fields_by_name.values()
                assert field_spec["keyType"] == scalar[key.type]
                target = value
            else:
                assert field.is_repeated is (field_spec.get("rule") == "repeated")
                target = field
            if target.message_type is not None:
                type_name = target.message_type.name
            elif target.enum_type is not None:
                type_name = target.enum_type.name
            else:
                type_name = scalar[target.type]
            assert type_name == field_spec["type"], f"{name}.{json_name}"
            checked += 1
        for oneof, members in spec.get("oneofs", {}).items():
            ours_oneof = message.oneofs_by_name[oneof]
            assert [f.json_name for f in ours_oneof.fields] == members["oneof"]
        for nested, nested_spec in spec.get("nested", {}).items():
            check(f"{name}.{nested}", nested_spec)

    def count(spec: dict[str, Any]) -> int:
        own = 1 if "values" in spec else len(spec.get("fields", {}))
        return own + sum(count(n) for n in spec.get("nested", {}).values())

    for name, spec in schema.items():
        check(name, spec)
    assert checked == sum(count(spec) for spec in schema.values()) > 100


def test_the_committed_python_is_what_protoc_makes_of_the_proto(tmp_path: Path) -> None:
    """`make proto` was run after the last change to dashstream.proto."""
    proto_dir = tmp_path / "traces" / "proto"
    proto_dir.mkdir(parents=True)
    (proto_dir / "dashstream.proto").write_bytes(
        (ROOT / "traces" / "proto" / "dashstream.proto").read_bytes()
    )
    from grpc_tools import protoc

    assert (
        protoc.main(
            [
                "protoc",
                f"-I{tmp_path}",
                f"--python_out={tmp_path}",
                f"--pyi_out={tmp_path}",
                str(proto_dir / "dashstream.proto"),
            ]
        )
        == 0
    )
    made = (proto_dir / "dashstream_pb2.py").read_bytes()
    assert made == (ROOT / "traces" / "proto" / "dashstream_pb2.py").read_bytes()
    stub = b"# mypy: ignore-errors\n" + (proto_dir / "dashstream_pb2.pyi").read_bytes()
    assert stub == (ROOT / "traces" / "proto" / "dashstream_pb2.pyi").read_bytes()


def test_state_hash_matches_the_dashstream_test_vector() -> None:
    doc = raw_fixture("research_agent_success.json")
    vector = {"b": 2, "a": 1, "nested": {"z": "x", "y": [True, None]}}
    doc["nodes_executed"] = [dict(doc["nodes_executed"][0], state_before={}, state_after=vector)]
    (diff,) = [
        m.state_diff
        for m in list(dashstream.messages(ExecutionTrace.from_obj(doc)))
        if m.WhichOneof("message") == "state_diff"
    ]
    assert diff.state_hash.hex() == (
        "f35279c8aa6b00bc82d43a191596cc3b41b7de7899ee16e36a08efe3afc45103"
    )


def test_a_summary_over_dashflows_limit_is_left_out_and_its_records_let_go(
    fixtures_dir: Path,
) -> None:
    # 2,000 records of ~6 KB of node metadata each: ~12 MB without any state, over the
    # 10 MB a DashFlow decoder accepts, so the stream ends without the summary, and the
    # records stop being gathered once they alone pass the limit.
    doc = ExecutionTrace.from_json((fixtures_dir / "long_loop_2000.json").read_bytes())
    for node in doc.nodes_executed:
        node.metadata = {"note": "x" * 6000}
    stream = dashstream._Stream(doc)
    sent = list(stream.run(None))
    assert sent[-1].WhichOneof("message") != "execution_trace"
    summary = dashstream._Summary()
    for position, node in enumerate(doc.nodes_executed):
        summary.add(position, node, None, None)
    assert summary.too_big
    assert len(summary.summary.nodes_executed) == 0
    assert summary.message(doc, True) is None
