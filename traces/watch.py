"""Watch one JSON path through a stored run: which steps changed the value there, and
what each left ("which node wrote this?"), for the run page's "Watch a path" and the MCP
server's ``watch_path``.

A 100,000-step run has as many states. They are read in one streamed query (each step's
state after, joined by key; the few states before that no step left, by id), each
decoded once and only as far as the path's first key (``diffview.pointer_reader``); a
step whose state after is the very snapshot it received changed nothing and is not
decoded at all. Only the values at the path are kept, not the states.
"""

from __future__ import annotations

from typing import Any, TypedDict

from . import zstd
from .bulk import raw_rows
from .diffview import pointer_reader
from .fields import from_db_u64
from .jsondiff import same
from .models import Run, StateSnapshot, Step

# Snapshot rows fetched per round trip while streaming a run's states.
_FETCH_ROWS = 2000


class Change(TypedDict):
    """A step that changed the watched value: the value it left (``found`` false when it
    removed it; ``value`` is then None)."""

    index: int
    node: str
    found: bool
    value: Any


class Watched(TypedDict):
    """``watch``'s result: every change in execution order, how many steps had both
    states (the ones that say anything about the path), the first and last changing step."""

    pointer: str
    changes: list[Change]
    steps_seen: int
    first_changed: int | None
    last_changed: int | None


def watch(run: Run, pointer: str) -> Watched:
    """The steps of ``run`` that changed the value at ``pointer`` (RFC 6901; ``""`` is the
    whole state): appeared, vanished, or became a different JSON value. Raises
    ``ValueError`` for a malformed pointer."""
    read = pointer_reader(pointer)
    steps = [
        (from_db_u64(index), node, before, after)
        for index, node, before, after in raw_rows(
            Step.objects.filter(run_id=run.pk)
            .order_by("position")
            .values_list("index", "node", "state_before_id", "state_after_id")
        )
        # A step without both states says nothing about what it wrote.
        if before is not None and after is not None
    ]
    wanted = {i for _, _, before, after in steps if before != after for i in (before, after)}
    values: dict[int, tuple[bool, Any]] = {}
    if wanted:
        # Each step's state after, joined by primary key (a nested loop over the run's
        # steps): a step's state before is almost always the one before it left.
        afters = (
            Step.objects.filter(run_id=run.pk, state_after__isnull=False)
            .order_by()
            .values_list("state_after_id", "state_after__data")
        )
        for pk, data in afters.iterator(chunk_size=_FETCH_ROWS):
            if pk in wanted and pk not in values:
                values[pk] = read(zstd.decompress(bytes(data)))
        rest = sorted(wanted.difference(values))
        for start in range(0, len(rest), _FETCH_ROWS):
            chunk = StateSnapshot.objects.filter(pk__in=rest[start : start + _FETCH_ROWS])
            for pk, data in chunk.values_list("pk", "data"):
                values[pk] = read(zstd.decompress(bytes(data)))
    changes: list[Change] = []
    for index, node, before, after in steps:
        if before == after:
            continue
        had, old = values[before]
        has, new = values[after]
        if had != has or (has and not same(old, new)):
            changes.append({"index": index, "node": node, "found": has, "value": new})
    return {
        "pointer": pointer,
        "changes": changes,
        "steps_seen": len(steps),
        "first_changed": changes[0]["index"] if changes else None,
        "last_changed": changes[-1]["index"] if changes else None,
    }
