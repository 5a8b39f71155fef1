"""Export formats, field by field against the raw fixture JSON: DashFlow training
examples, OpenAI fine-tuning rows, CSV of node executions, canonical traces as JSONL.

Expected values are computed here from ``json.load`` of the fixtures, never through the
code under test. (DashStream has its own module, test_dashstream.py.)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from traces.formats import (
    CONTENT_TYPE,
    FILE_SUFFIX,
    FORMATS,
    encode_run,
    file_header,
)
from traces.models import ExportFormat
from traces.trace import ExecutionTrace

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
    assert load("research_agent_success.json").to_training_examples() == examples


def test_examples_skip_steps_without_both_states_and_keep_failed_ones() -> None:
    doc = raw("tool_timeout_failure.json")
    examples = load("tool_timeout_failure.json").to_training_examples()
    with_both = [
        n for n in doc["nodes_executed"] if n["state_before"] is not None and n["state_after"]
    ]
    assert [e["data"]["_node"] for e in examples] == [n["node"] for n in with_both]
    assert [e["data"]["_success"] for e in examples] == [n["success"] for n in with_both]


def test_a_trace_without_per_node_states_gives_no_examples() -> None:
    trace = load("executor_autopersisted.json")
    assert trace.to_training_examples() == []
    assert trace.to_openai_finetune() == []
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
    rows_ = load("non_object_states.json").to_openai_finetune()
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
