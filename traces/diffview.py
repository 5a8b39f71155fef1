"""What a reader sees of a state diff: counts, collapsed values, one path through a run.

Values are JSON as ``json`` or ``msgspec`` decode it (dict, list, str, int, float, bool,
None). Equality is JSON's, as DashFlow's serde_json sees it: ``1``, ``1.0`` and ``true``
are three different values, ``0`` is not ``false``, and object key order does not matter.

The changes of one diff, applied in order as RFC 6902 operations (``op``, ``path``,
``value=after``), turn ``before`` into ``after`` exactly.

The diff itself and ``collapse`` live in ``traces/jsondiff.py`` (DashStream's ``StateDiff``
and the Markdown of a run use them too); this module adds what a reader sees around them:
the step panel (``visualizer/stepview.py``) and the MCP server's tools (``traces/mcp/``)
both show states through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import msgspec

from .jsondiff import Change, same, unescape

# A state too large to show is summarised by its largest top-level entries.
SUMMARY_ENTRIES = 30


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


def pointer_reader(pointer: str) -> Callable[[bytes], tuple[bool, Any]]:
    """A reader of one RFC 6901 JSON Pointer out of a state's JSON bytes: ``(True,
    value)``, or ``(False, None)`` when nothing is there, as ``value_at`` of the decoded
    state. Raises ``ValueError`` for a malformed pointer.

    Only the pointer's first key is decoded from an object (msgspec skips the others
    without building them): watching a path through a 100,000-step run reads each state
    in a fraction of a whole decode."""
    tokens = _parse_pointer(pointer)
    if not tokens:
        return lambda raw: (True, msgspec.json.decode(raw))
    head, rest = tokens[0], tokens[1:]
    # One field, renamed to the key: any string is a valid JSON key, not a valid name.
    try:
        struct = msgspec.defstruct("Head", [("value", Any, msgspec.UNSET)], rename={"value": head})
    except ValueError:
        # msgspec refuses a field name with a quote, a backslash or a control character:
        # such a key is read from the whole decoded state.
        return lambda raw: _resolve(msgspec.json.decode(raw), tokens)
    decoder = msgspec.json.Decoder(struct)

    def read(raw: bytes) -> tuple[bool, Any]:
        try:
            # getattr: mypy sees a plain Struct, the field is made at run time.
            value = getattr(decoder.decode(raw), "value")  # noqa: B009
        except msgspec.ValidationError:
            # Not an object at the top (a list or a scalar state): the whole of it.
            return _resolve(msgspec.json.decode(raw), tokens)
        if value is msgspec.UNSET:
            return False, None
        return _resolve(value, rest)

    return read


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


def state_summary(value: Any) -> dict[str, Any]:
    """What a state too large to show holds: its type, its size in entries, and its
    largest top-level entries (key or index, JSON type, encoded bytes), largest first."""
    if isinstance(value, dict):
        entries = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        entries = [(str(i), v) for i, v in enumerate(value)]
    else:
        return {"type": json_type(value), "length": None, "entries": []}
    sized = sorted(
        ((key, json_type(v), len(msgspec.json.encode(v))) for key, v in entries),
        key=lambda entry: -entry[2],
    )
    return {
        "type": json_type(value),
        "length": len(entries),
        "entries": [
            {"key": key, "type": kind, "bytes": size} for key, kind, size in sized[:SUMMARY_ENTRIES]
        ],
    }


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
