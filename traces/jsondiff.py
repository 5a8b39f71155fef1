"""Structural diff of two JSON values, as RFC 6902 operations: what one node changed.

Values are JSON as ``json`` or ``msgspec`` decode it (dict, list, str, int, float, bool,
None). Equality is JSON's, as DashFlow's serde_json sees it: ``1``, ``1.0`` and ``true``
are three different values, ``0`` is not ``false``, and object key order does not matter.

The changes of one diff, applied in order as RFC 6902 operations (``op``, ``path``,
``value=after``), turn ``before`` into ``after`` exactly. The step panel shows them
(``traces/diffview.py``), a run as Markdown lists them (``traces/run_markdown.py``), both
with long values cut by ``collapse``, and DashStream's ``StateDiff`` carries them
(``traces/dashstream.py``).

Lists are compared by trimming the common prefix and suffix and pairing up what is left
(see ``_diff_list``), not by a longest common subsequence: an LCS is O(n·m) on the 2,000
messages of a long run, while agent states almost only grow at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypedDict

import msgspec
from msgspec import UNSET, UnsetType

from traces.trace import canonical_json

__all__ = [
    "UNSET",
    "Change",
    "Collapsed",
    "Op",
    "PatchError",
    "apply_patch",
    "child_path",
    "collapse",
    "diff",
    "same",
    "unescape",
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


def same(a: Any, b: Any) -> bool:
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
        if not same(a, b):
            _diff_dict(path, a, b, out)
    elif kind is list:
        if not same(a, b):
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
        out.append(Change("remove", child_path(path, key), before=a[key]))
    for key, vb in b.items():
        if key in a:
            va = a[key]
            # _diff inlined: most keys are unchanged, and this settles that before
            # building their path (a third of the time on a typical agent state).
            if va is not vb:
                kind = type(va)
                if kind is not type(vb):
                    out.append(Change("replace", child_path(path, key), va, vb))
                elif kind is dict:
                    if not same(va, vb):
                        _diff_dict(child_path(path, key), va, vb, out)
                elif kind is list:
                    if not same(va, vb):
                        _diff_list(child_path(path, key), va, vb, out)
                elif va != vb:
                    out.append(Change("replace", child_path(path, key), va, vb))
            if removed_after:
                for gone in removed_after.get(key, ()):
                    out.append(Change("remove", child_path(path, gone), before=a[gone]))
        else:
            out.append(Change("add", child_path(path, key), after=vb))


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


def child_path(path: str, key: str) -> str:
    if "~" in key or "/" in key:
        key = key.replace("~", "~0").replace("/", "~1")
    return f"{path}/{key}"


def unescape(token: str) -> str:
    # ~1 before ~0, as RFC 6901 says: "~01" is the key "~1", not "/".
    return token.replace("~1", "/").replace("~0", "~")


class PatchError(ValueError):
    """An RFC 6902 operation that cannot apply to the value (a missing path, a failed
    ``test``, an unknown op)."""


def apply_patch(value: Any, operations: Iterable[tuple[str, str, Any, str]]) -> Any:
    """``value`` with the RFC 6902 ``operations`` (op, path, value, from) applied in order,
    ``value`` itself left untouched: only the containers along each path are copied, so a
    patch to a large state costs its paths, not the state. Raises ``PatchError``."""
    for op, path, item, source in operations:
        if op == "add":
            value = _put(value, _tokens(path), item, insert=True)
        elif op == "replace":
            _get(value, _tokens(path))
            value = _put(value, _tokens(path), item, insert=False)
        elif op == "remove":
            value = _put(value, _tokens(path), _REMOVE, insert=False)
        elif op in ("move", "copy"):
            moved = _get(value, _tokens(source))
            if op == "move":
                value = _put(value, _tokens(source), _REMOVE, insert=False)
            value = _put(value, _tokens(path), moved, insert=True)
        elif op == "test":
            if not same(_get(value, _tokens(path)), item):
                raise PatchError(f"test failed at {path!r}")
        else:
            raise PatchError(f"unknown op {op!r}")
    return value


_REMOVE = object()


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"path {path!r} is not a JSON Pointer")
    tokens = path[1:].split("/")
    return [unescape(token) for token in tokens] if "~" in path else tokens


def _index(container: list[Any], token: str, end_ok: bool) -> int:
    if token == "-" and end_ok:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not end_ok):
        raise PatchError(f"array index {index} is out of range")
    return index


def _get(value: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(value, dict):
            if token not in value:
                raise PatchError(f"no member {token!r}")
            value = value[token]
        elif isinstance(value, list):
            value = value[_index(value, token, end_ok=False)]
        else:
            raise PatchError(f"cannot descend into {type(value).__name__} at {token!r}")
    return value


def _put(value: Any, tokens: list[str], item: Any, insert: bool) -> Any:
    """A copy of ``value`` with ``item`` at ``tokens`` (``_REMOVE`` removes it)."""
    if not tokens:
        if item is _REMOVE:
            raise PatchError("cannot remove the whole document")
        return item
    token, rest = tokens[0], tokens[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if rest:
            if token not in copy:
                raise PatchError(f"no member {token!r}")
            copy[token] = _put(copy[token], rest, item, insert)
        elif item is _REMOVE:
            if token not in copy:
                raise PatchError(f"no member {token!r} to remove")
            del copy[token]
        else:
            copy[token] = item
        return copy
    if isinstance(value, list):
        listed = list(value)
        index = _index(listed, token, end_ok=not rest and insert and item is not _REMOVE)
        if rest:
            listed[index] = _put(listed[index], rest, item, insert)
        elif item is _REMOVE:
            del listed[index]
        elif insert:
            listed.insert(index, item)
        else:
            listed[index] = item
        return listed
    raise PatchError(f"cannot descend into {type(value).__name__} at {token!r}")


class Collapsed(TypedDict):
    text: str
    truncated: bool
    length: int


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
