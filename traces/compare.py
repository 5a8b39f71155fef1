"""Two runs side by side: their node sequences aligned, and the first step where their
states diverge. The compare page, ``GET /api/v1/compare`` and the MCP tool
``compare_runs`` all answer with ``comparison_json``.

**Alignment.** A step is paired by its node name and its occurrence number: the k-th
execution of node N in run a is paired with the k-th execution of N in run b (in a loop,
the 3rd ``retriever`` against the 3rd). A step whose (node, k) the other run lacks stands
alone: *missing* (only in a) or *inserted* (only in b); it is also *repeated* when the
other run executes that node too, only fewer times (a loop that went round once more).
Rows keep both runs' orders: they follow run a, each step of b that stands alone is
placed before the first row whose b-side comes after it, and a paired step of b that run
b reaches earlier than run a does (the two orders cross) is shown at run a's place.
Node names are the key, not the graph's name: runs of a renamed graph align all the same.
One pass over each run with a dictionary of occurrence counts: O(len(a) + len(b)).

**Divergence.** Two states are equal when their content digests are (SHA-256 of the
canonical JSON, ``trace.state_hash``: exactly what ``jsondiff.same`` calls equal), so no
state is decoded, whichever projects the runs belong to. The divergence is the first
paired row whose states differ: the first pair's states *before* (the runs began from
different inputs), else the first pair whose states *after* differ (a step without a
state after, such as a node that failed, differs from one with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from django.db.models import Q

from .errors import InputError
from .fields import from_db_u64
from .models import Run, RunStatus, Step

Kind = Literal["paired", "missing", "inserted"]


class Pair(NamedTuple):
    """One row of an alignment: positions in each run's sequence (None on the side the
    step is missing from), the node's occurrence number (1-based) and what kind of row."""

    a: int | None
    b: int | None
    node: str
    occurrence: int
    kind: Kind
    repeated: bool = False


def _occurrences(nodes: Sequence[str]) -> list[tuple[str, int]]:
    seen: dict[str, int] = {}
    keys = []
    for node in nodes:
        seen[node] = seen.get(node, 0) + 1
        keys.append((node, seen[node]))
    return keys


def align(a: Sequence[str], b: Sequence[str]) -> list[Pair]:
    """The rows pairing node sequences ``a`` and ``b`` (see the module's docstring)."""
    keys_a, keys_b = _occurrences(a), _occurrences(b)
    where_b = {key: j for j, key in enumerate(keys_b)}
    where_a = {key: i for i, key in enumerate(keys_a)}
    counts_a = {node: k for node, k in keys_a}  # the last occurrence is the count
    counts_b = {node: k for node, k in keys_b}
    done_b = [False] * len(b)
    rows: list[Pair] = []
    i = j = 0
    while i < len(a) or j < len(b):
        while j < len(b) and done_b[j]:
            j += 1
        if i < len(a) and keys_a[i] not in where_b:
            node, k = keys_a[i]
            rows.append(Pair(i, None, node, k, "missing", node in counts_b))
            i += 1
        elif j < len(b) and keys_b[j] not in where_a:
            node, k = keys_b[j]
            rows.append(Pair(None, j, node, k, "inserted", node in counts_a))
            j += 1
        elif i < len(a):
            partner = where_b[keys_a[i]]
            done_b[partner] = True
            rows.append(Pair(i, partner, *keys_a[i], "paired"))
            i += 1
        else:
            break  # every step of b left is paired, so already placed
    return rows


class StepRow(NamedTuple):
    """A step as the comparison reads it: no state, only its digests."""

    step_index: int  # DashFlow's index
    node: str
    duration_ms: int
    tokens_used: int
    success: bool
    started_at: str | None
    before: str | None  # content digest of the state before, None when not recorded
    after: str | None


class Divergence(NamedTuple):
    row: int  # in the alignment
    at: Literal["before", "after"]


def first_divergence(
    rows: Sequence[Pair], a: Sequence[StepRow], b: Sequence[StepRow]
) -> Divergence | None:
    """The first paired row whose states differ (see the module's docstring), or None."""
    first = True
    for n, pair in enumerate(rows):
        if pair.a is None or pair.b is None:
            continue
        sa, sb = a[pair.a], b[pair.b]
        if first and sa.before != sb.before:
            return Divergence(n, "before")
        first = False
        if sa.after != sb.after:
            return Divergence(n, "after")
    return None


_FIELDS = (
    "index",
    "node",
    "duration_ms",
    "tokens_used",
    "success",
    "started_at_text",
    "state_before__digest",
    "state_after__digest",
)


def step_rows(run: Run) -> list[StepRow]:
    """The run's steps in order, with their states' digests (one query, no state read)."""
    rows = Step.objects.filter(run_id=run.pk).order_by("position").values_list(*_FIELDS)
    return [
        StepRow(from_db_u64(i), node, from_db_u64(ms), from_db_u64(tok), bool(ok), *rest)
        for i, node, ms, tok, ok, *rest in rows
    ]


def _side(step: StepRow | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "index": step.step_index,
        "duration_ms": step.duration_ms,
        "tokens_used": step.tokens_used,
        "success": step.success,
        "started_at": step.started_at,
    }


class Comparison(NamedTuple):
    rows: list[Pair]
    a: list[StepRow]
    b: list[StepRow]
    divergence: Divergence | None


def compare(run_a: Run, run_b: Run) -> Comparison:
    a, b = step_rows(run_a), step_rows(run_b)
    rows = align([s.node for s in a], [s.node for s in b])
    return Comparison(rows, a, b, first_divergence(rows, a, b))


def row_json(pair: Pair, a: Sequence[StepRow], b: Sequence[StepRow]) -> dict[str, Any]:
    """One aligned row: each side's step (or None), the deltas b - a, and whether the
    states after are equal (None unless both sides ran)."""
    sa = None if pair.a is None else a[pair.a]
    sb = None if pair.b is None else b[pair.b]
    return {
        "kind": pair.kind,
        "repeated": pair.repeated,
        "node": pair.node,
        "occurrence": pair.occurrence,
        "a": _side(sa),
        "b": _side(sb),
        "duration_delta_ms": sb.duration_ms - sa.duration_ms if sa and sb else None,
        "tokens_delta": sb.tokens_used - sa.tokens_used if sa and sb else None,
        "same_state": sa.after == sb.after if sa and sb else None,
    }


def counts(rows: Sequence[Pair]) -> dict[str, int]:
    kinds = {"paired": 0, "missing": 0, "inserted": 0, "repeated": 0}
    for pair in rows:
        kinds[pair.kind] += 1
        kinds["repeated"] += pair.repeated
    return kinds


def comparison_json(
    run_a: Run, run_b: Run, found: Comparison, window: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The comparison as JSON: both runs' summaries, counts by kind, the divergence
    (its row, whether before or after, and each side's step index) and the rows, all of
    them or those of ``window`` (``offset``, ``limit``)."""
    lo, hi = (0, len(found.rows)) if window is None else (window[0], sum(window))
    div = found.divergence
    divergence = None
    if div is not None:
        pair = found.rows[div.row]
        assert pair.a is not None
        assert pair.b is not None
        divergence = {
            "row": div.row,
            "at": div.at,
            "node": pair.node,
            "occurrence": pair.occurrence,
            "a_index": found.a[pair.a].step_index,
            "b_index": found.b[pair.b].step_index,
        }
    return {
        "a": run_a.summary(),
        "b": run_b.summary(),
        "counts": counts(found.rows),
        "divergence": divergence,
        "row_count": len(found.rows),
        "offset": lo,
        "rows": [row_json(p, found.a, found.b) for p in found.rows[lo:hi]],
    }


def last_success(run: Run) -> Run | None:
    """The completed run of the same graph and project nearest in time to ``run``: the
    latest that started before it, else the earliest after (what a failed run is
    compared with)."""
    good = (
        Run.objects.filter(
            project_id=run.project_id, graph_name=run.graph_name, status=RunStatus.COMPLETED
        )
        .exclude(pk=run.pk)
        .select_related("project")
    )
    before = good.filter(
        Q(started_at__lt=run.started_at) | Q(started_at=run.started_at, pk__lt=run.pk)
    )
    found = before.order_by("-started_at", "-pk").first()
    return found or good.order_by("started_at", "pk").first()


def previous_in_thread(run: Run) -> Run | None:
    """The run of the same thread that started last before ``run``."""
    if not run.thread_id:
        return None
    return (
        Run.objects.filter(project_id=run.project_id, thread_id=run.thread_id)
        .filter(Q(started_at__lt=run.started_at) | Q(started_at=run.started_at, pk__lt=run.pk))
        .exclude(pk=run.pk)
        .select_related("project")
        .order_by("-started_at", "-pk")
        .first()
    )


ROWS_DEFAULT = 1000
ROWS_MAX = 10_000


def _count(params: Mapping[str, str], name: str, default: int, top: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or int(text) > top:
        raise InputError(name, f"expected an integer from 0 to {top}, got {text[:40]!r}")
    return int(text)


def parse_request(params: Mapping[str, str]) -> tuple[str, str, tuple[int, int]]:
    """``a`` and ``b`` (execution ids, both required) and the window of rows (``offset``,
    ``limit`` up to ``ROWS_MAX``) of a comparison request; a bad one is an ``InputError``."""
    ids = []
    for name in ("a", "b"):
        value = params.get(name, "").strip()
        if not value:
            raise InputError(name, "required: the execution id of a run to compare")
        ids.append(value)
    offset = _count(params, "offset", 0, 2**31)
    limit = _count(params, "limit", ROWS_DEFAULT, ROWS_MAX)
    return ids[0], ids[1], (offset, limit)
