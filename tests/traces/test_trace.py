"""The canonical ``ExecutionTrace``: DashFlow's JSON round-trips exactly, the analysis
methods keep DashFlow's semantics, and bad input names the JSON path and the rule.

Expected values are computed here from the raw JSON (``json.load``), never through the
type under test.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from traces.errors import InputError
from traces.trace import ExecutionTrace, canonical_json, state_hash

U64_MAX = 2**64 - 1
ABOVE_2_53 = 2**53 + 1  # the first integer a float64 cannot hold


def load_raw(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(path.read_bytes())
    return raw


def load_pairs(data: bytes | str) -> Any:
    """JSON with every object as a list of (key, value) pairs, so equality checks order."""
    return json.loads(data, object_pairs_hook=list)


def parse(doc: dict[str, Any]) -> ExecutionTrace:
    return ExecutionTrace.from_json(json.dumps(doc))


def python_state_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def raw_states(raw: dict[str, Any]) -> Iterator[Any]:
    for n in raw["nodes_executed"]:
        yield n["state_before"]
        yield n["state_after"]
    for e in raw["errors"]:
        yield e["state_at_error"]
    yield raw["final_state"]


def parsed_states(trace: ExecutionTrace) -> Iterator[Any]:
    """Every state the parsed trace carries, in ``raw_states``' order."""
    for n in trace.nodes_executed:
        yield n.state_before
        yield n.state_after
    for e in trace.errors:
        yield e.state_at_error
    yield trace.final_state


def last_argmax(values: list[int]) -> int:
    """Position of the maximum, the last one on a tie (Rust's ``max_by_key``)."""
    best = 0
    for position, value in enumerate(values):
        if value >= values[best]:
            best = position
    return best


def node(name: str, duration_ms: int = 1, tokens_used: int = 0, **extra: Any) -> dict[str, Any]:
    return {"node": name, "duration_ms": duration_ms, "tokens_used": tokens_used, **extra}


def minimal_trace(nodes: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"nodes_executed": nodes, **fields}


@pytest.fixture(scope="module")
def research_raw(fixtures_dir: Path) -> dict[str, Any]:
    return load_raw(fixtures_dir / "research_agent_success.json")


@pytest.fixture(scope="module")
def timeout_raw(fixtures_dir: Path) -> dict[str, Any]:
    return load_raw(fixtures_dir / "tool_timeout_failure.json")


# -- round trip ----------------------------------------------------------------------


def test_every_fixture_round_trips_to_equal_json(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        trace = ExecutionTrace.from_json(path.read_bytes())
        assert json.loads(trace.to_json()) == json.loads(path.read_bytes()), path.name


def test_every_fixture_round_trips_with_key_order_kept_at_every_level(
    fixture_files: list[Path],
) -> None:
    for path in fixture_files:
        trace = ExecutionTrace.from_json(path.read_bytes())
        assert load_pairs(trace.to_json()) == load_pairs(path.read_bytes()), path.name


def test_top_level_and_node_key_order_match_each_fixture(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        out = json.loads(ExecutionTrace.from_json(path.read_bytes()).to_json())
        assert list(out) == list(raw), path.name
        for written, original in zip(out["nodes_executed"], raw["nodes_executed"], strict=True):
            assert list(written) == list(original), path.name
        for written, original in zip(out["errors"], raw["errors"], strict=True):
            assert list(written) == list(original), path.name


def test_optional_fields_stay_omitted_when_absent(fixtures_dir: Path) -> None:
    path = fixtures_dir / "research_agent_success.json"
    out = json.loads(ExecutionTrace.from_json(path.read_bytes()).to_json())
    for absent in (
        "parent_execution_id",
        "root_execution_id",
        "depth",
        "execution_metrics",
        "performance_metrics",
    ):
        assert absent not in out


def test_optional_fields_are_written_when_present(fixtures_dir: Path) -> None:
    executor = json.loads(
        ExecutionTrace.from_json(
            (fixtures_dir / "executor_autopersisted.json").read_bytes()
        ).to_json()
    )
    assert executor["depth"] == 0
    assert executor["execution_metrics"]["total_duration"] == {"secs": 3, "nanos": 742000000}
    child = json.loads(
        ExecutionTrace.from_json((fixtures_dir / "subgraph_child.json").read_bytes()).to_json()
    )
    child_raw = load_raw(fixtures_dir / "subgraph_child.json")
    for key in ("parent_execution_id", "root_execution_id", "depth"):
        assert child[key] == child_raw[key]


def test_nulls_stay_null(fixtures_dir: Path) -> None:
    raw = load_raw(fixtures_dir / "executor_autopersisted.json")
    assert raw["nodes_executed"][0]["state_before"] is None  # the fixture's premise
    out = json.loads(ExecutionTrace.from_json(json.dumps(raw)).to_json())
    assert out["execution_metrics"]["state_size_bytes"] is None
    for n in out["nodes_executed"]:
        assert "state_before" in n
        assert n["state_before"] is None
        assert n["state_after"] is None
        assert n["error_message"] is None
    non_object = json.loads(
        ExecutionTrace.from_json((fixtures_dir / "non_object_states.json").read_bytes()).to_json()
    )
    assert "thread_id" in non_object
    assert non_object["thread_id"] is None


def test_huge_integers_round_trip_exactly() -> None:
    doc = minimal_trace(
        [
            node("a", duration_ms=U64_MAX, tokens_used=ABOVE_2_53, index=U64_MAX),
            node(
                "b",
                duration_ms=ABOVE_2_53,
                tokens_used=U64_MAX,
                state_before={"counter": U64_MAX, "nested": [ABOVE_2_53, {"deep": U64_MAX}]},
                state_after=U64_MAX,
            ),
        ],
        depth=U64_MAX,
        total_duration_ms=U64_MAX,
        total_tokens=ABOVE_2_53,
        errors=[{"node": "b", "message": "boom", "execution_index": U64_MAX}],
        final_state=[ABOVE_2_53, U64_MAX],
    )
    trace = parse(doc)
    assert trace.total_duration_ms == U64_MAX
    assert trace.total_tokens == ABOVE_2_53
    assert trace.nodes_executed[0].duration_ms == U64_MAX
    assert trace.nodes_executed[1].state_before["counter"] == U64_MAX
    out = trace.to_json()
    assert b'"total_duration_ms":18446744073709551615' in out
    assert b'"total_tokens":9007199254740993' in out
    again = json.loads(out)
    assert again["total_duration_ms"] == U64_MAX
    assert again["total_tokens"] == ABOVE_2_53
    assert again["depth"] == U64_MAX
    assert again["nodes_executed"][0]["duration_ms"] == U64_MAX
    assert again["nodes_executed"][0]["index"] == U64_MAX
    assert again["nodes_executed"][1]["tokens_used"] == U64_MAX
    assert again["nodes_executed"][1]["state_before"] == doc["nodes_executed"][1]["state_before"]
    assert again["nodes_executed"][1]["state_after"] == U64_MAX
    assert again["errors"][0]["execution_index"] == U64_MAX
    assert again["final_state"] == [ABOVE_2_53, U64_MAX]


def test_u64_max_in_execution_metrics_round_trips(fixtures_dir: Path) -> None:
    raw = load_raw(fixtures_dir / "executor_autopersisted.json")
    raw["execution_metrics"]["total_tokens"] = U64_MAX
    raw["execution_metrics"]["total_duration"] = {"secs": U64_MAX, "nanos": 999_999_999}
    out = json.loads(parse(raw).to_json())
    assert out["execution_metrics"]["total_tokens"] == U64_MAX
    assert out["execution_metrics"]["total_duration"] == {"secs": U64_MAX, "nanos": 999_999_999}


def _set_total_tokens(d: dict[str, Any]) -> None:
    d["total_tokens"] = 2**64


def _set_total_duration(d: dict[str, Any]) -> None:
    d["total_duration_ms"] = 2**64


def _set_depth(d: dict[str, Any]) -> None:
    d["depth"] = 2**64


def _set_node_duration(d: dict[str, Any]) -> None:
    d["nodes_executed"][1]["duration_ms"] = 2**64


def _set_node_tokens(d: dict[str, Any]) -> None:
    d["nodes_executed"][0]["tokens_used"] = 2**64


def _set_error_index(d: dict[str, Any]) -> None:
    d["errors"] = [{"node": "writer", "message": "m", "execution_index": 2**64}]


def _set_duration_secs(d: dict[str, Any]) -> None:
    d["execution_metrics"]["total_duration"]["secs"] = 2**64


def _set_metrics_total_tokens(d: dict[str, Any]) -> None:
    d["execution_metrics"]["total_tokens"] = 2**64


def _set_performance_sample_count(d: dict[str, Any]) -> None:
    d["performance_metrics"] = {"sample_count": 2**64}


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (_set_total_tokens, "$.total_tokens"),
        (_set_total_duration, "$.total_duration_ms"),
        (_set_depth, "$.depth"),
        (_set_node_duration, "$.nodes_executed[1].duration_ms"),
        (_set_node_tokens, "$.nodes_executed[0].tokens_used"),
        (_set_error_index, "$.errors[0].execution_index"),
        (_set_duration_secs, "$.execution_metrics.total_duration.secs"),
        (_set_metrics_total_tokens, "$.execution_metrics.total_tokens"),
        (_set_performance_sample_count, "$.performance_metrics.sample_count"),
    ],
)
def test_two_to_the_64_is_refused_naming_the_path(
    fixtures_dir: Path, mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    doc = load_raw(fixtures_dir / "executor_autopersisted.json")
    mutate(doc)
    with pytest.raises(InputError) as caught:
        parse(doc)
    assert caught.value.path == path
    assert caught.value.rule == "expected an unsigned 64-bit integer, got 18446744073709551616"
    assert str(caught.value) == f"{path}: {caught.value.rule}"


def test_unicode_states_survive_the_round_trip(fixtures_dir: Path) -> None:
    path = fixtures_dir / "non_object_states.json"
    trace = ExecutionTrace.from_json(path.read_bytes())
    assert trace.nodes_executed[0].state_before == ["Grüße", "東京"]
    assert trace.nodes_executed[0].state_after == ["grüße", "東京", "🚀"]
    out = trace.to_json()
    # Written as UTF-8, not as \u escapes, as serde_json does.
    assert "東京".encode() in out
    assert "🚀".encode() in out
    assert json.loads(out) == json.loads(path.read_bytes())


def test_non_object_states_are_kept_as_lists_and_ints(fixtures_dir: Path) -> None:
    trace = ExecutionTrace.from_json((fixtures_dir / "non_object_states.json").read_bytes())
    first, second = trace.nodes_executed
    assert isinstance(first.state_before, list)
    assert second.state_after == 3
    assert type(second.state_after) is int
    assert trace.final_state == 3


def test_missing_index_defaults_to_the_position() -> None:
    trace = parse(minimal_trace([node("a"), node("b", index=7), node("c")]))
    assert [n.index for n in trace.nodes_executed] == [0, 7, 2]


def test_unknown_fields_are_ignored(research_raw: dict[str, Any]) -> None:
    doc = copy.deepcopy(research_raw)
    doc["from_the_future"] = {"x": 1}
    doc["nodes_executed"][0]["also_new"] = True
    out = json.loads(parse(doc).to_json())
    assert out == research_raw


# -- analysis ------------------------------------------------------------------------


def test_node_and_error_counts_match_the_raw_json(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        assert trace.node_count == len(raw["nodes_executed"]), path.name
        assert trace.error_count == len(raw["errors"]), path.name
        assert trace.has_errors() is bool(raw["errors"]), path.name


def test_is_successful_means_completed_and_no_errors(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        expected = raw["completed"] is True and not raw["errors"]
        assert ExecutionTrace.from_json(path.read_bytes()).is_successful() is expected, path.name


def test_is_successful_is_false_for_completed_run_with_errors() -> None:
    trace = parse(
        minimal_trace([node("a")], completed=True, errors=[{"node": "a", "message": "oops"}])
    )
    assert trace.is_successful() is False
    assert trace.has_errors() is True


def test_is_successful_is_false_for_incomplete_run_without_errors() -> None:
    trace = parse(minimal_trace([node("a")], completed=False))
    assert trace.is_successful() is False
    assert trace.has_errors() is False


def test_timeout_fixture_is_not_successful(timeout_raw: dict[str, Any]) -> None:
    trace = parse(timeout_raw)
    assert trace.has_errors() is True
    assert trace.is_successful() is False


def test_slowest_node_is_the_longest_and_the_last_on_a_tie(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        position = last_argmax([n["duration_ms"] for n in raw["nodes_executed"]])
        assert trace.slowest_node() is trace.nodes_executed[position], path.name


def test_most_expensive_node_is_the_last_on_a_tie(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        position = last_argmax([n["tokens_used"] for n in raw["nodes_executed"]])
        assert trace.most_expensive_node() is trace.nodes_executed[position], path.name


def test_research_fixture_has_a_token_tie_won_by_the_last_reader(
    research_raw: dict[str, Any],
) -> None:
    tokens = [n["tokens_used"] for n in research_raw["nodes_executed"]]
    top = max(tokens)
    tied = [p for p, t in enumerate(tokens) if t == top]
    assert len(tied) > 1  # the fixture's premise: a tie to break
    trace = parse(research_raw)
    assert trace.most_expensive_node() is trace.nodes_executed[tied[-1]]
    assert trace.most_expensive_node() is not trace.nodes_executed[tied[0]]


def test_slowest_node_tie_goes_to_the_last_execution() -> None:
    trace = parse(
        minimal_trace(
            [node("a", duration_ms=9), node("b", duration_ms=3), node("c", duration_ms=9)]
        )
    )
    slowest = trace.slowest_node()
    assert slowest is not None
    assert slowest.node == "c"


def test_most_expensive_node_tie_goes_to_the_last_execution() -> None:
    trace = parse(minimal_trace([node("x", tokens_used=5), node("y", tokens_used=5)]))
    expensive = trace.most_expensive_node()
    assert expensive is not None
    assert expensive.node == "y"


def test_empty_trace_has_no_slowest_or_most_expensive_node() -> None:
    trace = parse(minimal_trace([]))
    assert trace.slowest_node() is None
    assert trace.most_expensive_node() is None
    assert trace.average_node_duration_ms() == 0.0
    assert trace.unique_nodes() == []
    assert trace.time_breakdown() == {}
    assert trace.token_breakdown() == {}


def test_per_node_counts_and_totals_match_the_raw_json(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        counts = Counter(n["node"] for n in raw["nodes_executed"])
        durations: Counter[str] = Counter()
        tokens: Counter[str] = Counter()
        for n in raw["nodes_executed"]:
            durations[n["node"]] += n["duration_ms"]
            tokens[n["node"]] += n["tokens_used"]
        for name in [*counts, "no-such-node"]:
            assert trace.node_execution_count(name) == counts[name], (path.name, name)
            assert trace.total_time_in_node(name) == durations[name], (path.name, name)
            assert trace.total_tokens_in_node(name) == tokens[name], (path.name, name)


def test_get_node_execution_returns_the_first_execution(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        names = [n["node"] for n in raw["nodes_executed"]]
        for name in set(names):
            assert trace.get_node_execution(name) is trace.nodes_executed[names.index(name)]
        assert trace.get_node_execution("no-such-node") is None


def test_get_all_node_executions_returns_every_visit_in_order(
    fixture_files: list[Path],
) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        trace = ExecutionTrace.from_json(path.read_bytes())
        names = [n["node"] for n in raw["nodes_executed"]]
        for name in set(names):
            positions = [p for p, n in enumerate(names) if n == name]
            got = trace.get_all_node_executions(name)
            assert [id(n) for n in got] == [id(trace.nodes_executed[p]) for p in positions]
        assert trace.get_all_node_executions("no-such-node") == []


def test_retriever_repeats_in_research_fixture(research_raw: dict[str, Any]) -> None:
    trace = parse(research_raw)
    visits = trace.get_all_node_executions("retriever")
    assert len(visits) == 3
    assert trace.get_node_execution("retriever") is visits[0]
    assert [v.index for v in visits] == [1, 4, 7]


def test_errors_for_node_matches_the_raw_json(timeout_raw: dict[str, Any]) -> None:
    trace = parse(timeout_raw)
    for name in {e["node"] for e in timeout_raw["errors"]} | {"planner"}:
        expected = [e["message"] for e in timeout_raw["errors"] if e["node"] == name]
        assert [e.message for e in trace.errors_for_node(name)] == expected
    assert len(trace.errors_for_node("retriever")) == 1
    assert trace.errors_for_node("planner") == []


def test_unique_nodes_are_in_first_seen_order(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        expected: list[str] = []
        for n in raw["nodes_executed"]:
            if n["node"] not in expected:
                expected.append(n["node"])
        assert ExecutionTrace.from_json(path.read_bytes()).unique_nodes() == expected, path.name


def test_unique_nodes_keeps_first_seen_order_not_alphabetical() -> None:
    trace = parse(minimal_trace([node("zeta"), node("alpha"), node("zeta"), node("mid")]))
    assert trace.unique_nodes() == ["zeta", "alpha", "mid"]


def test_average_node_duration_matches_the_raw_json(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        durations = [n["duration_ms"] for n in load_raw(path)["nodes_executed"]]
        average = ExecutionTrace.from_json(path.read_bytes()).average_node_duration_ms()
        assert average == pytest.approx(sum(durations) / len(durations)), path.name


def _expected_breakdown(raw: dict[str, Any], field: str, total_field: str) -> dict[str, float]:
    total = raw[total_field]
    if total == 0:
        return {}
    sums: Counter[str] = Counter()
    for n in raw["nodes_executed"]:
        sums[n["node"]] += n[field]
    return {name: value * 100.0 / total for name, value in sums.items()}


def test_time_breakdown_is_percent_of_total_duration(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        got = ExecutionTrace.from_json(path.read_bytes()).time_breakdown()
        expected = _expected_breakdown(raw, "duration_ms", "total_duration_ms")
        assert got == pytest.approx(expected), path.name


def test_token_breakdown_is_percent_of_total_tokens(fixture_files: list[Path]) -> None:
    for path in fixture_files:
        raw = load_raw(path)
        got = ExecutionTrace.from_json(path.read_bytes()).token_breakdown()
        expected = _expected_breakdown(raw, "tokens_used", "total_tokens")
        assert got == pytest.approx(expected), path.name


def test_token_breakdown_is_empty_when_total_tokens_is_zero(fixtures_dir: Path) -> None:
    raw = load_raw(fixtures_dir / "non_object_states.json")
    assert raw["total_tokens"] == 0  # the fixture's premise
    trace = parse(raw)
    assert trace.token_breakdown() == {}
    assert trace.time_breakdown() != {}


def test_breakdown_uses_trace_total_not_sum_of_nodes() -> None:
    # total_duration_ms includes time between nodes, so percents need not add up to 100.
    trace = parse(
        minimal_trace(
            [node("a", duration_ms=10, tokens_used=1), node("b", duration_ms=30, tokens_used=3)],
            total_duration_ms=80,
            total_tokens=8,
        )
    )
    assert trace.time_breakdown() == pytest.approx({"a": 12.5, "b": 37.5})
    assert trace.token_breakdown() == pytest.approx({"a": 12.5, "b": 37.5})


def test_time_breakdown_is_empty_when_total_duration_is_zero() -> None:
    trace = parse(minimal_trace([node("a", duration_ms=5)], total_duration_ms=0))
    assert trace.time_breakdown() == {}


# -- state hash ----------------------------------------------------------------------


def test_state_hash_matches_sorted_compact_json_sha256(fixture_files: list[Path]) -> None:
    checked = 0
    for path in fixture_files:
        trace = ExecutionTrace.from_json(path.read_bytes())
        raw_values = list(raw_states(load_raw(path)))
        assert len(raw_values) == len(list(parsed_states(trace))), path.name
        for parsed, raw in zip(parsed_states(trace), raw_values, strict=True):
            assert state_hash(parsed) == python_state_hash(raw), path.name
            checked += 1
    assert checked > 4000


def test_state_hash_of_unicode_state_hashes_utf8_not_escapes(fixtures_dir: Path) -> None:
    trace = ExecutionTrace.from_json((fixtures_dir / "non_object_states.json").read_bytes())
    state = trace.nodes_executed[0].state_after
    assert canonical_json(state) == '["grüße","東京","🚀"]'.encode()
    escaped = json.dumps(state, separators=(",", ":"))  # ensure_ascii=True: \u escapes
    assert state_hash(state) != hashlib.sha256(escaped.encode()).hexdigest()
    assert state_hash(state) == python_state_hash(["grüße", "東京", "🚀"])


def test_state_hash_ignores_key_order_at_every_level() -> None:
    a = {"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": None}}
    b = {"a": {"x": None, "y": [1, {"p": 3, "q": 2}]}, "b": 1}
    assert state_hash(a) == state_hash(b)
    assert canonical_json(a) == b'{"a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1}'
    assert state_hash(a) != state_hash({**a, "b": 2})


def test_state_hash_of_huge_integer_is_exact() -> None:
    assert state_hash({"n": U64_MAX}) == python_state_hash({"n": U64_MAX})
    assert state_hash({"n": U64_MAX}) != state_hash({"n": U64_MAX - 1})


# -- bad input -----------------------------------------------------------------------


def _duration_as_string(d: dict[str, Any]) -> None:
    d["nodes_executed"][3]["duration_ms"] = "12"


def _node_name_missing(d: dict[str, Any]) -> None:
    del d["nodes_executed"][0]["node"]


def _negative_tokens(d: dict[str, Any]) -> None:
    d["nodes_executed"][1]["tokens_used"] = -1


def _float_total(d: dict[str, Any]) -> None:
    d["total_tokens"] = 1.5


def _error_recoverable_string(d: dict[str, Any]) -> None:
    d["errors"][0]["recoverable"] = "no"


def _error_message_number(d: dict[str, Any]) -> None:
    d["errors"][0]["message"] = 5


def _error_message_missing(d: dict[str, Any]) -> None:
    del d["errors"][0]["message"]


def _error_index_string(d: dict[str, Any]) -> None:
    d["errors"][0]["execution_index"] = "4"


def _completed_string(d: dict[str, Any]) -> None:
    d["completed"] = "yes"


def _thread_id_number(d: dict[str, Any]) -> None:
    d["thread_id"] = 5


def _tool_name_number(d: dict[str, Any]) -> None:
    d["nodes_executed"][2]["tools_called"] = ["search", 1]


def _metadata_list(d: dict[str, Any]) -> None:
    d["metadata"] = []


def _nodes_missing(d: dict[str, Any]) -> None:
    del d["nodes_executed"]


def _nodes_object(d: dict[str, Any]) -> None:
    d["nodes_executed"] = {"node": "a"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            _duration_as_string,
            '$.nodes_executed[3].duration_ms: expected an unsigned integer, got "12"',
        ),
        (_node_name_missing, "$.nodes_executed[0].node: required field is missing"),
        (_negative_tokens, "$.nodes_executed[1].tokens_used: expected an unsigned integer, got -1"),
        (_float_total, "$.total_tokens: expected an unsigned integer, got 1.5"),
        (_error_recoverable_string, '$.errors[0].recoverable: expected a boolean, got "no"'),
        (_error_message_number, "$.errors[0].message: expected a string, got 5"),
        (_error_message_missing, "$.errors[0].message: required field is missing"),
        (
            _error_index_string,
            '$.errors[0].execution_index: expected an unsigned integer or null, got "4"',
        ),
        (_completed_string, '$.completed: expected a boolean, got "yes"'),
        (_thread_id_number, "$.thread_id: expected a string or null, got 5"),
        (_tool_name_number, "$.nodes_executed[2].tools_called[1]: expected a string, got 1"),
        (_metadata_list, "$.metadata: expected an object, got []"),
        (_nodes_missing, "$.nodes_executed: required field is missing"),
        (_nodes_object, '$.nodes_executed: expected an array, got {"node":"a"}'),
    ],
)
def test_bad_value_is_refused_with_path_and_rule(
    timeout_raw: dict[str, Any], mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = copy.deepcopy(timeout_raw)
    mutate(doc)
    with pytest.raises(InputError) as caught:
        parse(doc)
    assert str(caught.value) == message
    path, rule = message.split(": ", 1)
    assert caught.value.path == path
    assert caught.value.rule == rule


def test_bad_value_in_already_decoded_json_gets_the_caller_prefix(
    timeout_raw: dict[str, Any],
) -> None:
    doc = copy.deepcopy(timeout_raw)
    doc["nodes_executed"][3]["duration_ms"] = "12"
    with pytest.raises(InputError) as caught:
        ExecutionTrace.from_obj(doc, "$.trace")
    assert str(caught.value) == (
        '$.trace.nodes_executed[3].duration_ms: expected an unsigned integer, got "12"'
    )


@pytest.mark.parametrize(
    "text", ['{"nodes_executed": [}', '{"nodes_executed": []', "", "{'single': 1}", "nul"]
)
def test_malformed_json_is_refused_at_the_root(text: str) -> None:
    with pytest.raises(InputError) as caught:
        ExecutionTrace.from_json(text)
    assert caught.value.path == "$"
    assert caught.value.rule.startswith("malformed JSON: ")


@pytest.mark.parametrize(
    ("text", "shown"),
    [("[1,2]", "[1,2]"), ('"trace"', '"trace"'), ("null", "null"), ("42", "42")],
)
def test_top_level_non_object_is_refused(text: str, shown: str) -> None:
    with pytest.raises(InputError) as caught:
        ExecutionTrace.from_json(text)
    assert str(caught.value) == f"$: expected an object, got {shown}"


def test_trace_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^\$: expected an object"):
        ExecutionTrace.from_json("[]")
