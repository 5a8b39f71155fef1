"""traces/jsondiff.py's ``apply_patch``: RFC 6902 as the ``jsonpatch`` library applies it,
without touching the value it patches (DashStream's held state is shared with the node
executions that recorded it)."""

from __future__ import annotations

import copy
import random
from typing import Any

import jsonpatch
import pytest

from traces.jsondiff import PatchError, apply_patch, diff


def ops(patch: list[dict[str, Any]]) -> list[tuple[str, str, Any, str]]:
    return [(p["op"], p["path"], p.get("value"), p.get("from", "")) for p in patch]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 3 else 3)
    if kind == 0:
        return rng.randrange(5)
    if kind == 1:
        return rng.choice(["a", "b", "~/", None, True])
    if kind == 2:
        return rng.random()
    if kind in (3, 4):
        return {rng.choice("abcd/~"): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_every_op_applies_as_jsonpatch_applies_it() -> None:
    doc = {"a": [1, 2, 3], "b": {"c": "x", "d~/e": 1}, "f": None}
    patch = [
        {"op": "add", "path": "/a/1", "value": 9},
        {"op": "add", "path": "/a/-", "value": 4},
        {"op": "remove", "path": "/a/0"},
        {"op": "replace", "path": "/b/c", "value": {"deep": [1]}},
        {"op": "move", "from": "/b/d~0~1e", "path": "/g"},
        {"op": "copy", "from": "/a", "path": "/b/copied"},
        {"op": "test", "path": "/g", "value": 1},
        {"op": "add", "path": "", "value": {"whole": True}},
        {"op": "add", "path": "/z", "value": 0},
    ]
    original = copy.deepcopy(doc)
    assert apply_patch(doc, ops(patch)) == jsonpatch.apply_patch(doc, patch)
    assert doc == original  # untouched


def test_a_diff_applied_gives_the_new_value_on_random_documents() -> None:
    rng = random.Random(12)
    for _ in range(300):
        before, after = random_value(rng), random_value(rng)
        changes = diff(before, after)
        assert apply_patch(before, [(c.op, c.path, c.after, "") for c in changes]) == after


@pytest.mark.parametrize(
    ("doc", "op"),
    [
        ({"a": 1}, ("replace", "/b", 2, "")),
        ({"a": 1}, ("remove", "/b", None, "")),
        ({"a": [1]}, ("add", "/a/2", 2, "")),
        ({"a": [1]}, ("replace", "/a/1", 2, "")),
        ({"a": [1]}, ("add", "/a/01", 2, "")),
        ({"a": 1}, ("add", "/a/b", 2, "")),
        ({"a": 1}, ("test", "/a", 2, "")),
        ({"a": 1}, ("add", "a", 2, "")),
        ({"a": 1}, ("frobnicate", "/a", 2, "")),
    ],
)
def test_an_op_that_cannot_apply_is_a_patch_error(doc: Any, op: tuple[str, str, Any, str]) -> None:
    with pytest.raises(PatchError):
        apply_patch(doc, [op])
