"""The capture policy as a pure function: validation naming the field and rule, each
action on state paths with wildcards and on metadata, the detectors, and markers that are
valid JSON and never touched twice."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from traces.capture import Capture, luhn, markers_in
from traces.capture_policy import parse_policy, policy_json
from traces.errors import InputError
from traces.trace import ExecutionTrace, NodeExecution

KEY = b"k" * 32
EXAMPLE = {
    "rules": [
        {"path": "/api_key", "action": "redact"},
        {"path": "/messages/*/content", "action": "truncate", "max_bytes": 16},
    ],
    "detectors": ["email", "secret", "card"],
}


def capture(policy: dict[str, Any], key: bytes = KEY) -> Capture:
    return Capture(parse_policy(policy), key)


@pytest.mark.parametrize(
    ("policy", "path", "rule"),
    [
        ([], "$", "expected an object"),
        ({"rule": []}, "$.rule", "unknown field"),
        ({"rules": [{"path": "api_key", "action": "redact"}]}, "$.rules[0].path", "JSON Pointer"),
        ({"rules": [{"path": "/a~2", "action": "redact"}]}, "$.rules[0].path", "bad escape"),
        ({"rules": [{"path": "/a", "action": "hide"}]}, "$.rules[0].action", "unknown action"),
        ({"rules": [{"path": "/a", "action": "truncate"}]}, "$.rules[0].max_bytes", "integer"),
        (
            {"rules": [{"path": "/a", "action": "truncate", "max_bytes": 2}]},
            "$.rules[0].max_bytes",
            "from 16",
        ),
        (
            {"rules": [{"path": "/a", "action": "drop", "max_bytes": 20}]},
            "$.rules[0].max_bytes",
            "only a truncate",
        ),
        ({"rules": [{"action": "drop"}]}, "$.rules[0]", "exactly one of"),
        ({"detectors": ["email", "phone"]}, "$.detectors[1]", "unknown detector"),
        ({"rules": [{"path": "/a\x00", "action": "drop"}]}, "$.rules[0].path", "NUL"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field_and_the_rule(
    policy: Any, path: str, rule: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_policy(policy)
    assert caught.value.path == path
    assert rule in caught.value.rule


def test_the_example_policy_round_trips() -> None:
    assert policy_json(parse_policy(EXAMPLE)) == EXAMPLE


def test_redact_leaves_a_keyed_digest_that_tells_equal_from_changed() -> None:
    cap = capture({"rules": [{"path": "/api_key", "action": "redact"}]})
    a = cap.state({"api_key": "sk-one", "x": 1})
    b = cap.state({"api_key": "sk-one"})
    c = cap.state({"api_key": "sk-two"})
    assert a["x"] == 1
    assert a["api_key"]["$redacted"] == "rules[0]"
    assert a["api_key"] == b["api_key"] != c["api_key"]
    # Another project's key gives another digest: no table of guesses fits every project.
    other = capture({"rules": [{"path": "/api_key", "action": "redact"}]}, b"o" * 32)
    assert other.state({"api_key": "sk-one"})["api_key"] != a["api_key"]
    assert "sk-one" not in json.dumps([a, b, c])


def test_truncate_keeps_a_valid_utf8_head_and_the_size_in_a_marker() -> None:
    cap = capture(
        {"rules": [{"path": "/messages/*/content", "action": "truncate", "max_bytes": 16}]}
    )
    text = "héllo wörld, ça va très bien merci"  # multi-byte characters around byte 16
    state = {"messages": [{"content": text}, {"content": "short"}]}
    out = cap.state(state)
    marker = out["messages"][0]["content"]
    assert marker["$truncated"] == 16
    assert marker["bytes"] == len(text.encode())
    assert text.startswith(marker["head"])
    assert len(marker["head"].encode()) <= 16
    assert out["messages"][1]["content"] == "short"
    assert json.loads(json.dumps(out)) == out  # plain JSON throughout
    assert state["messages"][0]["content"] == text  # the input is not changed


def test_truncate_cuts_a_non_string_in_its_json_text() -> None:
    cap = capture({"rules": [{"path": "/docs", "action": "truncate", "max_bytes": 16}]})
    out = cap.state({"docs": [{"id": i, "body": "x" * 10} for i in range(10)]})
    assert out["docs"]["$truncated"] == 16
    assert isinstance(out["docs"]["head"], str)


def test_drop_removes_keys_and_array_items_matched_by_wildcards() -> None:
    cap = capture({"rules": [{"path": "/messages/*/secret", "action": "drop"}]})
    out = cap.state({"messages": [{"secret": 1, "content": "a"}, {"content": "b"}]})
    assert out == {"messages": [{"content": "a"}, {"content": "b"}]}
    cap = capture({"rules": [{"path": "/items/1", "action": "drop"}]})
    assert cap.state({"items": ["a", "b", "c"]}) == {"items": ["a", "c"]}


def test_attachment_keeps_the_value_aside_under_a_stable_id() -> None:
    cap = capture({"rules": [{"path": "/document", "action": "attachment"}]})
    doc = {"pages": ["p1", "p2"]}
    out = cap.state({"document": doc})
    ident = out["document"]["$attachment"]
    assert json.loads(cap.attachments[ident]) == doc
    assert out["document"]["bytes"] == len(cap.attachments[ident])
    assert cap.state({"document": doc})["document"]["$attachment"] == ident


def test_metadata_rules_apply_to_metadata_only() -> None:
    cap = capture({"rules": [{"metadata": "/user_email", "action": "drop"}]})
    assert cap.metadata({"user_email": "a@b.co", "k": 1}) == {"k": 1}
    assert cap.state({"user_email": "a@b.co"}) == {"user_email": "a@b.co"}


@pytest.mark.parametrize(
    ("detector", "text", "secret"),
    [
        ("email", "write to jane.doe@example.com today", "jane.doe@example.com"),
        ("secret", "Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456", "abcdefghijklmnop"),
        ("secret", "key sk-proj-ABCDEFGHIJKLMNOPQRSTUV", "sk-proj-ABCDEFGHIJKLMNOPQRSTUV"),
        ("card", "card 4111 1111 1111 1111 exp 12/30", "4111 1111 1111 1111"),
    ],
)
def test_each_detector_redacts_inside_strings_anywhere(
    detector: str, text: str, secret: str
) -> None:
    cap = capture({"detectors": [detector]})
    out = cap.state({"deep": [{"note": text}]})
    note = out["deep"][0]["note"]
    assert secret not in note
    assert f"[redacted:{detector}:" in note
    assert markers_in(out) == [
        {"path": "/deep/0/note", "action": "redacted", "rule": f"detector:{detector}"}
    ]
    assert cap.text(text) == note


def test_detectors_take_one_pass_over_long_strings_without_matches() -> None:
    # Each start position of a long run of letters is not a try at an email: the search
    # starts from "@" (a regex tried at every position took 2.6 s per MB of letters here).
    cap = capture({"detectors": ["email", "secret", "card"]})
    long = "a" * 200_000 + " reach me at ops@example.com " + "b.c" * 50_000
    out = cap.text(long)
    assert out is not None
    assert "ops@example.com" not in out
    assert out.startswith("a" * 200_000 + " reach me at [redacted:email:")


def test_the_card_detector_leaves_numbers_that_fail_the_luhn_check() -> None:
    assert luhn("4111111111111111")
    assert not luhn("4111111111111112")
    cap = capture({"detectors": ["card"]})
    assert cap.state("order 4111 1111 1111 1112") == "order 4111 1111 1111 1112"


def test_applying_a_policy_twice_changes_nothing() -> None:
    cap = capture(
        {**EXAMPLE, "rules": [*EXAMPLE["rules"], {"path": "/doc", "action": "attachment"}]}
    )
    state = {
        "api_key": "sk-live-1234567890abcdef",
        "messages": [{"content": "mail me at bob@example.org about the whole thing"}],
        "doc": "a long document",
    }
    once = cap.state(state)
    assert cap.state(once) == once


def test_a_trace_gets_the_policy_on_every_state_metadata_and_error_text() -> None:
    cap = capture({"rules": [{"path": "/api_key", "action": "redact"}], "detectors": ["email"]})
    trace = ExecutionTrace(
        execution_id="e1",
        nodes_executed=[
            NodeExecution(
                node="n",
                duration_ms=1,
                state_before={"api_key": "k1"},
                state_after={"api_key": "k1", "to": "x@y.io"},
                error_message="failed for x@y.io",
                metadata={"who": "x@y.io"},
            )
        ],
        final_state={"api_key": "k1"},
        metadata={"owner": "x@y.io"},
    )
    out = cap.trace(trace).to_json()
    assert b"x@y.io" not in out
    assert b'"k1"' not in out
    assert msgspec.json.decode(out)["final_state"]["api_key"]["$redacted"] == "rules[0]"
