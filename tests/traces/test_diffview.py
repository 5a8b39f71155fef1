"""The state diff: JSON Pointer paths, JSON's (not Python's) equality, list-aware changes,
and changes that, read as an RFC 6902 patch, rebuild ``after`` exactly.

Patches are applied with the ``jsonpatch`` library and results compared as canonical JSON
text (``json.dumps(sort_keys=True)``), which keeps ``1``, ``1.0`` and ``true`` apart where
Python's ``==`` would not. Expected values come from the raw fixture JSON.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import msgspec
import pytest

from traces.diffview import (
    path_history,
    summarize,
    value_at,
)
from traces.jsondiff import UNSET, Change, collapse, diff

PATCH_FIXTURES = [
    "research_agent_success.json",
    "tool_timeout_failure.json",
    "non_object_states.json",
    "long_loop_2000.json",
]


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def as_patch(changes: list[Change]) -> list[dict[str, Any]]:
    """Change -> RFC 6902 operation: the path as is, ``after`` as the value."""
    ops: list[dict[str, Any]] = []
    for change in changes:
        op: dict[str, Any] = {"op": change.op, "path": change.path}
        if change.op != "remove":
            op["value"] = change.after
        ops.append(op)
    return ops


def apply_checked(before: Any, changes: list[Change]) -> Any:
    """Apply the changes one by one with jsonpatch, checking first that each change's
    ``before`` is exactly what the document holds at its path at that moment."""
    doc = copy.deepcopy(before)
    for change, op in zip(changes, as_patch(changes), strict=True):
        if change.has_before:
            held = jsonpointer.resolve_pointer(doc, change.path)
            assert canonical(held) == canonical(change.before), change
        doc = jsonpatch.apply_patch(doc, [op], in_place=True)
    return doc


def assert_rebuilds(before: Any, after: Any) -> list[Change]:
    changes = diff(before, after)
    assert canonical(apply_checked(before, changes)) == canonical(after)
    return changes


def consecutive_pairs(trace: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Each node's (before, after), and each after with the next node's before."""
    nodes = trace["nodes_executed"]
    pairs = [(n["state_before"], n["state_after"]) for n in nodes]
    pairs += [(a["state_after"], b["state_before"]) for a, b in itertools.pairwise(nodes)]
    return pairs


def load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    trace: dict[str, Any] = json.loads((fixtures_dir / name).read_bytes())
    return trace


@pytest.mark.parametrize("name", PATCH_FIXTURES)
def test_changes_applied_as_json_patch_rebuild_every_fixture_state(
    fixtures_dir: Path, name: str
) -> None:
    pairs = consecutive_pairs(load(fixtures_dir, name))
    changed_pairs = 0
    for before, after in pairs:
        changes = assert_rebuilds(before, after)
        differs = canonical(before) != canonical(after)
        assert bool(changes) == differs
        changed_pairs += differs
    assert changed_pairs > 0


def test_appended_message_is_one_add_at_its_index() -> None:
    message = {"role": "assistant", "content": "Plan: 3 steps."}
    before: dict[str, Any] = {"messages": [{"role": "user", "content": f"q{i}"} for i in range(3)]}
    after = copy.deepcopy(before)
    after["messages"].append(message)

    assert diff(before, after) == [Change("add", "/messages/3", after=message)]


def test_appended_message_in_fixture_is_one_add(fixtures_dir: Path) -> None:
    planner = load(fixtures_dir, "research_agent_success.json")["nodes_executed"][0]
    changes = diff(planner["state_before"], planner["state_after"])

    adds = [c for c in changes if c.path.startswith("/messages")]
    assert adds == [Change("add", "/messages/1", after=planner["state_after"]["messages"][1])]


def test_removed_last_message_is_one_remove() -> None:
    before = {"messages": ["a", "b", "c"]}

    assert diff(before, {"messages": ["a", "b"]}) == [Change("remove", "/messages/2", before="c")]


def test_truncated_list_removes_highest_index_first() -> None:
    before = {"messages": ["a", "b", "c", "d", "e"]}
    after = {"messages": ["a", "b"]}

    changes = assert_rebuilds(before, after)

    assert [(c.op, c.path, c.before) for c in changes] == [
        ("remove", "/messages/4", "e"),
        ("remove", "/messages/3", "d"),
        ("remove", "/messages/2", "c"),
    ]


def test_insertion_in_the_middle_of_a_long_list_is_one_add() -> None:
    before = [{"id": i} for i in range(2000)]
    after = [*before[:700], {"id": "new"}, *copy.deepcopy(before[700:])]

    assert assert_rebuilds(before, after) == [Change("add", "/700", after={"id": "new"})]


def test_deletion_in_the_middle_is_one_remove() -> None:
    assert assert_rebuilds([1, 2, 3, 4], [1, 3, 4]) == [Change("remove", "/1", before=2)]


def test_several_insertions_in_the_middle_are_adds_in_ascending_order() -> None:
    changes = assert_rebuilds(["a", "d"], ["a", "b", "c", "d"])

    assert changes == [Change("add", "/1", after="b"), Change("add", "/2", after="c")]


def test_equal_length_middle_is_paired_element_by_element() -> None:
    before = {"docs": [{"url": "u0", "score": 0.1}, {"url": "u1", "score": 0.2}, "tail"]}
    after = {"docs": [{"url": "u0", "score": 0.1}, {"url": "u1", "score": 0.9}, "tail"]}

    assert diff(before, after) == [Change("replace", "/docs/1/score", 0.2, 0.9)]


def test_reordered_list_still_rebuilds_exactly() -> None:
    # Not minimal (no LCS), but always a correct patch.
    assert_rebuilds([1, 2, 3, 4, 5], [5, 1, 2, 3, 4])
    assert_rebuilds([{"a": 1}, {"b": 2}], [{"b": 2}, {"a": 1}, {"c": 3}])


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [{"role": "user", "content": "hi"}], "n": 1, "x": None, "f": 1.5},
        [1, 1.0, True, False, None, "s", [], {}],
        "text",
        3,
        None,
        {},
        [],
    ],
)
def test_equal_states_give_no_changes(value: Any) -> None:
    # Decoded twice: equal, but no subtree shared by identity.
    twin = json.loads(json.dumps(value))
    assert diff(value, twin) == []


def test_object_key_order_is_ignored() -> None:
    before = {"a": 1, "b": {"x": [1, {"p": 1, "q": 2}], "y": 2}}
    after = {"b": {"y": 2, "x": [1, {"q": 2, "p": 1}]}, "a": 1}

    assert diff(before, after) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (1, 1.0),
        (1, True),
        (1.0, True),
        (0, False),
        (0.0, False),
        ({}, []),
        ({"a": 1}, [1]),
        ("1", 1),
        (None, 0),
        (None, False),
        (None, ""),
        ([], None),
    ],
)
def test_type_change_is_one_replace(old: Any, new: Any) -> None:
    for before, after in ((old, new), (new, old)):
        changes = assert_rebuilds({"v": before, "k": 1}, {"v": after, "k": 1})
        assert len(changes) == 1
        change = changes[0]
        assert (change.op, change.path) == ("replace", "/v")
        assert type(change.before) is type(before)
        assert type(change.after) is type(after)


def test_type_change_hidden_inside_lists_python_calls_equal_is_found() -> None:
    # Python says these 200-element lists are equal; JSON does not, at two elements.
    before: dict[str, Any] = {"m": [{"n": i} for i in range(200)]}
    after = copy.deepcopy(before)
    after["m"][150]["n"] = 150.0
    after["m"][0]["n"] = False

    changes = assert_rebuilds(before, after)

    assert changes == [
        Change("replace", "/m/0/n", 0, False),
        Change("replace", "/m/150/n", 150, 150.0),
    ]


def test_type_change_in_common_suffix_uses_after_indices() -> None:
    # Python's == puts 1 and True in the common suffix [3, 1] ~ [3, True].
    before = [1, 2, 3, 1]
    after = [1, 2, "new", 3, True]

    changes = assert_rebuilds(before, after)

    assert changes == [Change("add", "/2", after="new"), Change("replace", "/4", 1, True)]


def test_null_value_and_absent_key_differ() -> None:
    changes = diff({"a": None, "b": 1}, {"b": 1})

    assert changes == [Change("remove", "/a", before=None)]
    assert changes[0].has_before
    assert not changes[0].has_after
    assert changes[0].after is UNSET


def test_key_added_with_null_value_is_an_add_of_null() -> None:
    (change,) = assert_rebuilds({}, {"answer": None})

    assert (change.op, change.path, change.after, change.has_before) == (
        "add",
        "/answer",
        None,
        False,
    )


def test_null_replaced_by_a_value() -> None:
    assert diff({"answer": None}, {"answer": "42"}) == [Change("replace", "/answer", None, "42")]


def test_change_encodes_absent_side_as_missing_and_null_as_null() -> None:
    removed = msgspec.json.decode(msgspec.json.encode(Change("remove", "/a", before=None)))
    added = msgspec.json.decode(msgspec.json.encode(Change("add", "/a", after=0)))

    assert removed == {"op": "remove", "path": "/a", "before": None}
    assert added == {"op": "add", "path": "/a", "after": 0}


def test_nested_object_change_is_reported_at_the_deepest_path() -> None:
    before = {"config": {"retrieval": {"top_k": 5, "filters": {"lang": "en"}}, "model": "m"}}
    after = {"config": {"retrieval": {"top_k": 8, "filters": {"lang": "en"}}, "model": "m"}}

    assert diff(before, after) == [Change("replace", "/config/retrieval/top_k", 5, 8)]


def test_changes_come_in_document_order() -> None:
    before = {"a": 1, "b": 2, "c": 3, "z": 0}
    after = {"a": 0, "c": 0, "z": 0, "d": 1}

    changes = assert_rebuilds(before, after)

    assert [(c.op, c.path) for c in changes] == [
        ("replace", "/a"),
        ("remove", "/b"),
        ("replace", "/c"),
        ("add", "/d"),
    ]


def test_keys_with_slash_and_tilde_are_escaped_in_paths() -> None:
    before = {"a/b": 1, "m~n": 1, "~1": 1, "": 1, "x": {"": {"/": 1}}}
    after = {"a/b": 2, "m~n": 2, "~1": 2, "": 2, "x": {"": {"/": 2}}}

    changes = assert_rebuilds(before, after)

    paths = [c.path for c in changes]
    assert paths == ["/a~1b", "/m~0n", "/~01", "/", "/x//~1"]
    for path in paths:
        assert value_at(after, path) == (True, 2)


def test_unicode_keys_are_kept_as_is_in_paths() -> None:
    before = {"Grüße": 1, "東京": {"🚀": [1]}}
    after = {"Grüße": 1, "東京": {"🚀": [1, 2]}, "café": None}

    changes = assert_rebuilds(before, after)

    assert [(c.op, c.path) for c in changes] == [("add", "/東京/🚀/1"), ("add", "/café")]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (["a"], ["a", "b"], [Change("add", "/1", after="b")]),
        (["Grüße", "東京"], 3, [Change("replace", "", ["Grüße", "東京"], 3)]),
        (3, 4, [Change("replace", "", 3, 4)]),
        ("a", "b", [Change("replace", "", "a", "b")]),
        (None, {"a": 1}, [Change("replace", "", None, {"a": 1})]),
        ({"a": 1}, None, [Change("replace", "", {"a": 1}, None)]),
        (True, 1, [Change("replace", "", True, 1)]),
    ],
)
def test_non_object_states_diff_at_the_root(before: Any, after: Any, expected: Any) -> None:
    assert assert_rebuilds(before, after) == expected


def test_random_edits_always_rebuild_after_exactly() -> None:
    rng = random.Random(6901)
    scalars: list[Any] = [0, 1, 1.0, -2.5, True, False, None, "", "a", "é/~"]

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(scalars)
        if roll < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 5))]
        return {rng.choice(["k", "a/b", "~", "", "ü", "n"]): value(depth + 1) for _ in range(4)}

    def mutate(v: Any) -> Any:
        roll = rng.random()
        if roll < 0.15:
            return value(2)
        if isinstance(v, list) and v:
            v = list(v)
            i = rng.randrange(len(v))
            action = rng.choice(["insert", "delete", "edit", "append"])
            if action == "insert":
                v.insert(i, value(3))
            elif action == "delete":
                del v[i]
            elif action == "edit":
                v[i] = mutate(v[i])
            else:
                v.append(value(3))
            return v
        if isinstance(v, dict) and v:
            v = dict(v)
            key = rng.choice(list(v))
            if rng.random() < 0.3:
                del v[key]
            else:
                v[key] = mutate(v[key])
            v[rng.choice(["new", "k"])] = value(3)
            return v
        return value(3)

    for _ in range(500):
        before = value(0)
        after = mutate(json.loads(json.dumps(before)))
        changes = assert_rebuilds(before, after)
        assert bool(changes) == (canonical(before) != canonical(after))


def test_summarize_counts_ops_and_lists_top_level_keys() -> None:
    before = {"messages": [1], "a/b": 1, "gone": 1, "plan": []}
    after = {"messages": [1, 2, 3], "a/b": 2, "plan": [], "new": {"x": 1}}

    summary = summarize(diff(before, after))

    assert summary == {
        "total": 5,
        "add": 3,
        "remove": 1,
        "replace": 1,
        "keys": ["messages", "a/b", "gone", "new"],
        "root": False,
    }


def test_summarize_marks_a_replaced_root() -> None:
    summary = summarize(diff(["a"], 3))

    assert (summary["root"], summary["replace"], summary["keys"]) == (True, 1, [])


def test_summarize_of_no_changes_is_all_zero() -> None:
    assert summarize([]) == {
        "total": 0,
        "add": 0,
        "remove": 0,
        "replace": 0,
        "keys": [],
        "root": False,
    }


def test_collapse_keeps_short_values_whole() -> None:
    assert collapse({"a": [1, 1.0, True, None]}, 100) == {
        "text": '{"a":[1,1.0,true,null]}',
        "truncated": False,
        "length": 23,
    }


def test_collapse_truncates_long_values_to_max_chars_with_full_length() -> None:
    value = {"content": "x" * 5000}
    full = len(json.dumps(value, separators=(",", ":")))

    result = collapse(value, 80)

    assert result["truncated"] is True
    assert result["length"] == full
    assert len(result["text"]) == 80
    assert result["text"] == '{"content":"' + "x" * 67 + "…"


def test_collapse_counts_characters_not_bytes() -> None:
    result = collapse("東京🚀", 5)

    assert result == {"text": '"東京🚀"', "truncated": False, "length": 5}


def test_collapse_refuses_a_max_below_one() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        collapse("x", 0)


STATE = {"messages": [{"role": "user"}, {"role": "assistant"}], "a/b": {"~": 0}, "n": None}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", (True, STATE)),
        ("/messages/1/role", (True, "assistant")),
        ("/a~1b/~0", (True, 0)),
        ("/n", (True, None)),
        ("/missing", (False, None)),
        ("/messages/2", (False, None)),
        ("/messages/-", (False, None)),
        ("/messages/01", (False, None)),
        ("/messages/x", (False, None)),
        ("/n/0", (False, None)),
        ("/messages/0/role/0", (False, None)),
    ],
)
def test_value_at_resolves_json_pointers(pointer: str, expected: tuple[bool, Any]) -> None:
    assert value_at(STATE, pointer) == expected


@pytest.mark.parametrize("pointer", ["messages", "/a~2", "/~"])
def test_value_at_refuses_malformed_pointers(pointer: str) -> None:
    with pytest.raises(ValueError, match="JSON Pointer"):
        value_at(STATE, pointer)


def test_value_at_on_non_object_states() -> None:
    assert value_at(["grüße", "東京"], "/1") == (True, "東京")
    assert value_at(3, "") == (True, 3)
    assert value_at(3, "/0") == (False, None)


def step_states(trace: dict[str, Any]) -> list[tuple[int, Any, Any]]:
    return [(n["index"], n["state_before"], n["state_after"]) for n in trace["nodes_executed"]]


def test_path_history_names_the_steps_that_wrote_a_path(fixtures_dir: Path) -> None:
    trace = load(fixtures_dir, "research_agent_success.json")
    nodes = trace["nodes_executed"]
    wrote = [
        n["index"]
        for n in nodes
        if canonical(n["state_before"]["iteration"]) != canonical(n["state_after"]["iteration"])
    ]
    assert len(wrote) >= 2

    history = path_history(step_states(trace), "/iteration")

    assert [s["index"] for s in history["steps"] if s["changed"]] == wrote
    assert history["first_changed"] == wrote[0]
    assert history["last_changed"] == wrote[-1]
    assert [s["value"] for s in history["steps"]] == [n["state_after"]["iteration"] for n in nodes]
    assert all(s["found"] for s in history["steps"])


def test_path_history_of_a_value_that_appears_late(fixtures_dir: Path) -> None:
    trace = load(fixtures_dir, "research_agent_success.json")
    nodes = trace["nodes_executed"]
    writer = nodes[-1]
    assert writer["state_before"]["answer"] is None

    history = path_history(step_states(trace), "/answer")

    assert history["first_changed"] == history["last_changed"] == writer["index"]
    assert history["steps"][-1]["value"] == writer["state_after"]["answer"]
    # null before the writer ran: found, and null.
    assert history["steps"][0]["found"] is True
    assert history["steps"][0]["value"] is None


def test_path_history_of_a_path_no_step_touched(fixtures_dir: Path) -> None:
    trace = load(fixtures_dir, "research_agent_success.json")

    history = path_history(step_states(trace), "/question")

    assert history["first_changed"] is None
    assert history["last_changed"] is None
    assert not any(s["changed"] for s in history["steps"])
    assert len(history["steps"]) == len(trace["nodes_executed"])


def test_path_history_counts_appearing_and_vanishing_as_changes(fixtures_dir: Path) -> None:
    # The failing retriever's state_after is null: /documents vanishes at that step.
    trace = load(fixtures_dir, "tool_timeout_failure.json")
    failed = trace["nodes_executed"][-1]
    assert failed["state_after"] is None

    history = path_history(step_states(trace), "/documents/0")

    last = history["steps"][-1]
    assert (last["found"], last["value"], last["changed"]) == (False, None, True)
    assert history["last_changed"] == failed["index"]
    assert history["first_changed"] == 1  # the first retriever found a document


def test_path_history_tells_1_from_1_0() -> None:
    history = path_history([(0, {"n": 1}, {"n": 1.0}), (1, {"n": 1.0}, {"n": 1.0})], "/n")

    assert [s["changed"] for s in history["steps"]] == [True, False]
