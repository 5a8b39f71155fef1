"""Structural diff of two JSON states: what one node changed, as the step panel shows it.

Values are JSON as ``json`` or ``msgspec`` decode it (dict, list, str, int, float, bool,
None). Equality is JSON's, as DashFlow's serde_json sees it: ``1``, ``1.0`` and ``true``
are three different values, ``0`` is not ``false``, and object key order does not matter.

The changes of one diff, applied in order as RFC 6902 operations (``op``, ``path``,
``value=after``), turn ``before`` into ``after`` exactly.

Lists are compared by trimming the common prefix and suffix and pairing up what is left
(see ``_diff_list``), not by a longest common subsequence: an LCS is O(n·m) on the 2,000
messages of a long run, while agent states almost only grow at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypedDict

import msgspec
from msgspec import UNSET, UnsetType

from traces.trace import canonical_json

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

Op = Literal["add", "remove", "replace"]


class Change(msgspec.Struct, frozen=True):
    """One change at ``path`` (an RFC 6901 JSON Pointer, ``""`` for the whole state).

    ``before`` is ``UNSET`` for an ``add`` and ``after`` is ``UNSET`` for a ``remove``, so
    a JSON ``null`` stays distinguishable from "not there"; encoded with msgspec, an unset
    side is omitted from the object.
    """

    op: Op
    path: str
    before: Any | UnsetType = UNSET
    after: Any | UnsetType = UNSET

    @property
    def has_before(self) -> bool:
        return self.before is not UNSET

    @property
    def has_after(self) -> bool:
        return self.after is not UNSET


class Summary(TypedDict):
    """``summarize``'s result; this and the dicts below are plain JSON for the page."""

    total: int
    add: int
    remove: int
    replace: int
    keys: list[str]
    root: bool


class Collapsed(TypedDict):
    text: str
    truncated: bool
    length: int


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


def diff(before: Any, after: Any) -> list[Change]:
    """The changes that turn ``before`` into ``after``, in document order.

    Objects are compared key by key (added, removed, changed keys; order ignored); lists
    by common prefix and suffix, so an appended message is one ``add`` at its index; a
    change of type (object to list, ``1`` to ``1.0``, ``0`` to ``false``) or of a scalar
    is one ``replace``. Equal states give ``[]``.

    Document order has one exception: several elements removed from one list come
    highest index first, each path naming the element's index in ``before``, so that
    the list is also a valid RFC 6902 patch applied in order.
    """
    out: list[Change] = []
    _diff("", before, after, out)
    return out


# Lists are encoded this many elements at a time. Encoding a 1 MB list in one call
# allocates (and page-faults) a fresh megabyte every time; 64-element chunks stay in
# memory the allocator reuses, and measured 1.3-3x faster (more so on a loaded machine).
_CHUNK = 64


def _same(a: Any, b: Any) -> bool:
    # Python's == is fast C code and stops at the first difference, but it says
    # 1 == 1.0 == True; values it calls equal are then confirmed by _strict.
    if a is b:
        return True
    if type(a) is not type(b) or a != b:
        return False
    return _strict(a, b)


def _strict(a: Any, b: Any) -> bool:
    """Given ``a == b`` in Python, whether they are also equal as JSON."""
    if type(a) is dict:
        for key, va in a.items():
            vb = b[key]
            if va is vb:
                continue
            kind = type(va)
            if kind is not type(vb) or ((kind is dict or kind is list) and not _strict(va, vb)):
                return False
        return True
    if type(a) is list:
        # The canonical encoding keeps 1, 1.0 and true apart and sorts keys: equal
        # bytes are equal JSON. (A -0.0 among them reads as a difference; _diff then
        # finds the floats equal, as serde_json does, and reports nothing.)
        if len(a) <= _CHUNK:
            return canonical_json(a) == canonical_json(b)
        for i in range(0, len(a), _CHUNK):
            if canonical_json(a[i : i + _CHUNK]) != canonical_json(b[i : i + _CHUNK]):
                return False
        return True
    # Scalars of one type that compare equal (NaN, not JSON, never compares equal).
    return True


def _diff(path: str, a: Any, b: Any, out: list[Change]) -> None:
    if a is b:
        return
    kind = type(a)
    if kind is not type(b):
        out.append(Change("replace", path, a, b))
    elif kind is dict:
        if not _same(a, b):
            _diff_dict(path, a, b, out)
    elif kind is list:
        if not _same(a, b):
            _diff_list(path, a, b, out)
    elif a != b:
        out.append(Change("replace", path, a, b))


def _diff_dict(path: str, a: dict[str, Any], b: dict[str, Any], out: list[Change]) -> None:
    # Keys come in the order of ``after``; a removed key is placed right after the key
    # that preceded it in ``before`` (or first), where a reader of both would look.
    removed_after: dict[str | None, list[str]] = {}
    if not a.keys() <= b.keys():
        anchor: str | None = None
        for key in a:
            if key in b:
                anchor = key
            else:
                removed_after.setdefault(anchor, []).append(key)
    for key in removed_after.get(None, ()):
        out.append(Change("remove", _child(path, key), before=a[key]))
    for key, vb in b.items():
        if key in a:
            va = a[key]
            if va is not vb:
                _diff(_child(path, key), va, vb, out)
            for gone in removed_after.get(key, ()):
                out.append(Change("remove", _child(path, gone), before=a[gone]))
        else:
            out.append(Change("add", _child(path, key), after=vb))


def _diff_list(path: str, a: list[Any], b: list[Any], out: list[Change]) -> None:
    # A node appends to, truncates, or edits a few elements of a list; it rarely moves
    # elements around. So: trim the common prefix and suffix, pair the middles element
    # by element (nested changes where both have an element), then add or remove the
    # rest of the longer middle. O(n) compares instead of an LCS's O(n·m); an insertion
    # in the middle of a list whose neighbours also changed shows as more changes than
    # strictly needed, which is still a correct patch.
    la, lb = len(a), len(b)
    shortest = min(la, lb)
    # Prefix and suffix are found with Python's ==, then confirmed once each by _strict
    # (encodings of a few chunks, not one call per element).
    if a[:shortest] == b[:shortest]:
        prefix = shortest
    else:
        prefix = 0
        while prefix < shortest and (a[prefix] is b[prefix] or a[prefix] == b[prefix]):
            prefix += 1
    suffix = 0
    limit = shortest - prefix
    while suffix < limit:
        x, y = a[la - 1 - suffix], b[lb - 1 - suffix]
        if x is not y and x != y:
            break
        suffix += 1

    if prefix and not _strict(a[:prefix], b[:prefix]):
        for i in range(prefix):
            _diff(f"{path}/{i}", a[i], b[i], out)

    mid_a, mid_b = la - prefix - suffix, lb - prefix - suffix
    paired = min(mid_a, mid_b)
    for i in range(prefix, prefix + paired):
        _diff(f"{path}/{i}", a[i], b[i], out)
    # Adds go in ascending order: each lands at its index in ``after``. Removes go in
    # descending order: each path is the element's index in ``before`` and still valid
    # when the previous removes have been applied.
    for i in range(prefix + paired, prefix + mid_b):
        out.append(Change("add", f"{path}/{i}", after=b[i]))
    for i in range(prefix + mid_a - 1, prefix + paired - 1, -1):
        out.append(Change("remove", f"{path}/{i}", before=a[i]))

    if suffix and not _strict(a[la - suffix :], b[lb - suffix :]):
        # Paths in ``after``'s indices: the changes above have already shifted them.
        for i in range(suffix):
            _diff(f"{path}/{lb - suffix + i}", a[la - suffix + i], b[lb - suffix + i], out)


def _child(path: str, key: str) -> str:
    if "~" in key or "/" in key:
        key = key.replace("~", "~0").replace("/", "~1")
    return f"{path}/{key}"


def _unescape(token: str) -> str:
    # ~1 before ~0, as RFC 6901 says: "~01" is the key "~1", not "/".
    return token.replace("~1", "/").replace("~0", "~")


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
            keys[_unescape(change.path.split("/", 2)[1])] = None
    return {
        "total": len(changes),
        "add": counts["add"],
        "remove": counts["remove"],
        "replace": counts["replace"],
        "keys": list(keys),
        "root": root,
    }


def collapse(value: Any, max_chars: int) -> Collapsed:
    """A display form of ``value``: its compact JSON text when at most ``max_chars``
    characters long, else the first ``max_chars - 1`` characters and an ellipsis, with
    ``truncated`` set and ``length`` the full text's length in characters."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    # Key order as stored: the reader compares this with the producer's own logs.
    text = msgspec.json.encode(value).decode()
    if len(text) <= max_chars:
        return {"text": text, "truncated": False, "length": len(text)}
    return {"text": text[: max_chars - 1] + "…", "truncated": True, "length": len(text)}


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
    return [_unescape(t) for t in tokens]


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
        changed = had != has or (has and not _same(old, new))
        if changed:
            if first is None:
                first = index
            last = index
        steps.append({"index": index, "found": has, "value": new, "changed": changed})
    return {"pointer": pointer, "steps": steps, "first_changed": first, "last_changed": last}
