"""Structural diff of two JSON states: what one node changed, as the step panel shows it.

Values are JSON as ``json`` or ``msgspec`` decode it (dict, list, str, int, float, bool,
None). Equality is JSON's, as DashFlow's serde_json sees it: ``1``, ``1.0`` and ``true``
are three different values, ``0`` is not ``false``, and object key order does not matter.

The changes of one diff, applied in order as RFC 6902 operations (``op``, ``path``,
``value=after``), turn ``before`` into ``after`` exactly.

The diff itself and ``collapse`` live in ``traces/jsondiff.py`` (DashStream's ``StateDiff``
and the Markdown of a run use them too); this module adds what the step panel shows
around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from traces.jsondiff import UNSET, Change, Collapsed, collapse, diff, same, unescape

__all__ = [
    "UNSET",
    "Change",
    "Collapsed",
    "PathHistory",
    "PathStep",
    "Summary",
    "collapse",
    "diff",
    "path_history",
    "summarize",
    "value_at",
]


class Summary(TypedDict):
    """``summarize``'s result; this and the dicts below are plain JSON for the page."""

    total: int
    add: int
    remove: int
    replace: int
    keys: list[str]
    root: bool


class PathStep(TypedDict):
    """One step of a ``path_history``: the value after the step (``None`` if absent)."""

    index: int
    found: bool
    value: Any
    changed: bool


class PathHistory(TypedDict):
    pointer: str
    steps: list[PathStep]
    first_changed: int | None
    last_changed: int | None


def summarize(changes: Sequence[Change]) -> Summary:
    """Counts by op and the top-level keys touched, for the step panel's header.

    ``keys`` are unescaped, in order of first appearance (list indices as strings when
    the state is a list); ``root`` is true when the whole state was replaced.
    """
    counts = {"add": 0, "remove": 0, "replace": 0}
    keys: dict[str, None] = {}
    root = False
    for change in changes:
        counts[change.op] += 1
        if change.path == "":
            root = True
        else:
            keys[unescape(change.path.split("/", 2)[1])] = None
    return {
        "total": len(changes),
        "add": counts["add"],
        "remove": counts["remove"],
        "replace": counts["replace"],
        "keys": list(keys),
        "root": root,
    }


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON Pointer {pointer!r} must be empty or start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise ValueError(f"JSON Pointer {pointer!r}: '~' must be followed by 0 or 1")
    return [unescape(t) for t in tokens]


def _resolve(state: Any, tokens: list[str]) -> tuple[bool, Any]:
    value = state
    for token in tokens:
        if type(value) is dict:
            if token not in value:
                return False, None
            value = value[token]
        elif type(value) is list:
            # RFC 6901 indices are ASCII digits without leading zeros; "-" (one past
            # the end) names nothing that exists.
            if not (token.isascii() and token.isdigit()) or (token[0] == "0" and token != "0"):
                return False, None
            index = int(token)
            if index >= len(value):
                return False, None
            value = value[index]
        else:
            return False, None
    return True, value


def value_at(state: Any, pointer: str) -> tuple[bool, Any]:
    """Resolve an RFC 6901 JSON Pointer: ``(True, value)``, or ``(False, None)`` when
    nothing is there. Raises ``ValueError`` for a malformed pointer."""
    return _resolve(state, _parse_pointer(pointer))


def path_history(states: Sequence[tuple[int, Any, Any]], pointer: str) -> PathHistory:
    """Watch one path through a run: which node wrote this value?

    ``states`` holds ``(step index, state_before, state_after)`` in execution order. Each
    step gives the value at ``pointer`` after it (``found`` false when absent) and
    whether that step changed it (appeared, vanished, or a different JSON value);
    ``first_changed`` / ``last_changed`` are the indices of the first and last such
    step, ``None`` if no step touched it. Raises ``ValueError`` for a malformed pointer.
    """
    tokens = _parse_pointer(pointer)
    steps: list[PathStep] = []
    first: int | None = None
    last: int | None = None
    for index, before, after in states:
        had, old = _resolve(before, tokens)
        has, new = _resolve(after, tokens)
        changed = had != has or (has and not same(old, new))
        if changed:
            if first is None:
                first = index
            last = index
        steps.append({"index": index, "found": has, "value": new, "changed": changed})
    return {"pointer": pointer, "steps": steps, "first_changed": first, "last_changed": last}
