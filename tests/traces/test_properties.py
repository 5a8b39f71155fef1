"""Properties over generated input (Hypothesis): the parsers and the state diff.

- Any body, well-formed or not, is either parsed or refused with ``InputError``: never
  another exception (which would be a 500). What parses is canonical (its JSON parses back
  to the same JSON) and every reader of a run can take it: the DashStream export, the
  step panel's diff and summaries.
- ``diff(a, b)``, applied to ``a`` as an RFC 6902 patch, gives ``b`` for any JSON values.

Bounded sizes and a fixed number of examples keep this a few seconds in CI; no deadline,
since a loaded machine makes any one example slow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.traces.test_diffview import assert_rebuilds
from traces import dashstream
from traces.diffview import state_summary, summarize
from traces.errors import InputError
from traces.jsondiff import collapse, diff
from traces.parsing import parse_events, parse_json, parse_trace
from traces.trace import U64_MAX, ExecutionTrace

T = TypeVar("T")
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys with the characters JSON Pointers escape, and text with NUL and non-ASCII. A NUL
# is valid in states only, so the fields outside them get it as a bad value (below).
keys = st.text(alphabet=st.sampled_from("ab/~0 é\x00"), max_size=4)
text = st.text(max_size=12)
plain_text = st.text(st.characters(exclude_characters="\x00"), max_size=12)
plain_keys = st.text(alphabet=st.sampled_from("ab/~0 é"), max_size=4)
# -0.0 is left out: the diff finds it equal to 0.0, as serde_json does (test_diffview).
floats = st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f or 0.0)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, U64_MAX, U64_MAX + 1, -1, 2**63])
    | floats
    | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=24,
)


u64 = st.integers(min_value=0, max_value=U64_MAX)
name = st.text(st.characters(exclude_characters="\x00"), max_size=8) | st.just("n" * 200)
plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | floats | plain_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_keys, inner, max_size=3),
    max_leaves=8,
)
metadata = st.dictionaries(plain_keys, plain_json, max_size=3)
stamp = st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123+02:00", "", "x"])
# What one field may be broken with: any JSON value, or one just past a rule.
bad = json_values | st.sampled_from([U64_MAX + 1, -1, 10**40, 2**63, "x" * 201, "a\x00b", 1.5])

valid_nodes = st.fixed_dictionaries(
    {"node": name, "duration_ms": u64},
    optional={
        "tokens_used": u64,
        "state_before": json_values,
        "state_after": json_values,
        "tools_called": st.lists(plain_text, max_size=3),
        "success": st.booleans(),
        "error_message": st.none() | plain_text,
        "index": u64,
        "started_at": st.none() | stamp,
        "metadata": metadata,
    },
)
valid_errors = st.fixed_dictionaries(
    {"node": name, "message": plain_text},
    optional={
        "error_type": st.none() | name,
        "state_at_error": json_values,
        "timestamp": st.none() | stamp,
        "execution_index": st.none() | u64,
        "recoverable": st.booleans(),
    },
)
valid_traces = st.fixed_dictionaries(
    {"nodes_executed": st.lists(valid_nodes, max_size=4)},
    optional={
        "thread_id": st.none() | name,
        "execution_id": st.none() | st.sampled_from(["run-1", "a/b", ""]) | name,
        "depth": u64,
        "total_duration_ms": u64,
        "total_tokens": u64,
        "errors": st.lists(valid_errors, max_size=3),
        "completed": st.booleans(),
        "started_at": st.none() | stamp,
        "ended_at": st.none() | stamp,
        "final_state": json_values,
        "metadata": metadata,
    },
)
valid_event_data = {
    "run_started": st.fixed_dictionaries(
        {}, optional={"thread_id": name, "depth": u64, "initial_state": json_values}
    ),
    "node_started": st.fixed_dictionaries({"node": name, "index": u64}),
    "node_finished": valid_nodes,
    "error": valid_errors,
    "run_finished": st.fixed_dictionaries(
        {"completed": st.booleans()},
        optional={"total_tokens": u64, "final_state": json_values},
    ),
}
valid_events = st.sampled_from(sorted(valid_event_data)).flatmap(
    lambda kind: st.fixed_dictionaries(
        {
            "seq": st.integers(min_value=1, max_value=2**63 - 1),
            "type": st.just(kind),
            "data": valid_event_data[kind],
        }
    )
)


def fields(doc: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every field of a trace or a batch that is not inside a state."""
    found: list[tuple[Any, Any]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("state_before", "state_after", "state_at_error", "final_state"):
                continue
            found.append((doc, key))
            if key in ("nodes_executed", "errors", "events", "data") or isinstance(value, list):
                found += fields(value)
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            found += [(doc, i), *fields(item)]
    return found


@st.composite
def sometimes_broken(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> Any:
    """A valid document, or (half the time) one with one field set to a bad value."""
    doc = draw(valid)
    targets = fields(doc)
    if targets and draw(st.booleans()):
        container, key = draw(st.sampled_from(targets))
        container[key] = draw(bad)
    return doc


traces = sometimes_broken(valid_traces)
batches = sometimes_broken(st.fixed_dictionaries({"events": st.lists(valid_events, max_size=4)}))


def parsed_or_refused(parse: Callable[[bytes], T], body: bytes) -> T | None:
    """What ``parse`` makes of ``body``, or None when it refuses it with a 400 naming a
    JSON path; any other exception fails the test."""
    refused: InputError | None = None
    try:
        parsed = parse(body)
    except InputError as exc:
        refused = exc
    else:
        event("parsed")
        return parsed
    event(f"refused: {refused.rule.split(',')[0][:40]}")
    assert refused.status == 400, refused
    assert refused.path.startswith("$"), refused
    return None


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def readable(trace: ExecutionTrace) -> None:
    """Every reader of a stored run takes this trace without an exception."""
    assert [chunk for chunk, _ in dashstream.encode_file(trace)]
    assert [line for line, _ in dashstream.encode_jsonl(trace)]
    for node in trace.nodes_executed:
        changes = diff(node.state_before, node.state_after)
        summarize(changes)
        state_summary(node.state_after)
        for change in changes:
            if change.has_after:
                collapse(change.after, 200)


@PROPERTY
@given(traces)
def test_a_generated_trace_is_parsed_canonically_or_refused(document: dict[str, Any]) -> None:
    trace = parsed_or_refused(parse_trace, encode(document))
    if trace is None:
        return
    canonical = trace.to_json()
    assert parse_trace(canonical).to_json() == canonical
    readable(trace)


@PROPERTY
@given(st.binary(max_size=300) | traces.map(encode))
def test_any_bytes_are_parsed_or_refused(body: bytes) -> None:
    parsed_or_refused(parse_trace, body)
    parsed_or_refused(lambda b: parse_events(b, 1000), body)
    parsed_or_refused(parse_json, body)


@PROPERTY
@given(st.binary(min_size=1, max_size=4), traces.map(encode), st.integers(min_value=0))
def test_a_corrupted_trace_is_parsed_or_refused(junk: bytes, body: bytes, at: int) -> None:
    """Bytes (invalid UTF-8, NUL, brackets) spliced into a valid-looking trace."""
    at %= len(body) + 1
    trace = parsed_or_refused(parse_trace, body[:at] + junk + body[at:])
    if trace is not None:
        readable(trace)


@PROPERTY
@given(batches)
def test_generated_live_events_are_parsed_or_refused(batch: dict[str, Any]) -> None:
    parsed = parsed_or_refused(lambda b: parse_events(b, 1000), encode(batch))
    for item in parsed or []:
        assert 1 <= item.seq < 2**63
        # What the websocket sends is plain JSON again.
        json.loads(json.dumps(item.wire()))


@PROPERTY
@given(before=json_values, after=json_values, same=json_values)
def test_a_diff_applied_to_the_state_before_gives_the_state_after(
    before: Any, after: Any, same: Any
) -> None:
    assert_rebuilds(before, after)
    # Inside a structure with an unchanged part, as the states of one step are; and a
    # list that grows at the end, as agent states mostly do.
    assert_rebuilds({"s": before, "k": same}, {"s": after, "k": same})
    assert_rebuilds([same, before], [same, before, after])
    assert diff(after, after) == []
