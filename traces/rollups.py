"""Step durations rolled up per day, so the dashboard's percentiles over weeks need not
read every step.

``StepRollup`` holds, per project, UTC day of the run's start, graph and node, how many
steps fell in each duration bucket, their total duration and their tokens (so the
tokens per node over whole days are read from here too, exactly). The buckets are fixed
(``BOUNDS``): one per millisecond up to 50 ms, then each 2% wider than the one before, so
every value in a bucket is within 2% of every other. A percentile merged from the buckets
(``percentiles``) takes, for the values at the two ranks ``percentile_cont`` interpolates
between, the mean of their bucket: within 2% of the exact value (tested against
``traces/percentiles.py``).

Why per day and not per hour: at 100,000 runs a month an hour holds ~20 steps per node and
graph, spread over ~15 buckets, so hourly rows would be nearly as many as the steps
(measured in benchmarks/results/dashboard.md); a day's rows are ~25 times fewer. The parts
of a window that are not whole days are read from the steps (``traces/dashboard.py``).

The ingest workflow (``traces/ingest.py``) is the one writer: in the transaction that
writes a run's steps it passes what it removed and added (``record``), and the change is
applied as additive upserts (``INSERT … ON CONFLICT DO UPDATE SET steps = steps + …``), so
concurrent ingestion loses no count; the rows are written in key order, so two writers
lock them in the same order. Migration 0009 fills the table from the steps already stored
(``backfill``); changing ``BOUNDS`` needs such a migration again.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import QuerySet, Sum

from .fields import from_db_u64
from .models import Project, Run, Step, StepRollup
from .percentiles import interpolate

# The widest a bucket is, relative to its lower bound: the bound on a percentile's error.
RELATIVE_WIDTH = 0.02
# Durations from here on share the last bucket (and count as this much in its mean), so a
# day's sum cannot overflow a 64-bit column: 10^12 ms is 31 years.
CAP_MS = 10**12


def _bounds() -> list[int]:
    found, bound = [0], 1
    while bound < CAP_MS:
        found.append(bound)
        bound = max(bound + 1, math.ceil(bound * (1 + RELATIVE_WIDTH)))
    found.append(CAP_MS)
    return found


# The lower bound of each bucket: bucket i holds the durations in [BOUNDS[i], BOUNDS[i+1]).
BOUNDS = _bounds()


def bucket_of(duration_ms: int) -> int:
    """The bucket of a duration (PostgreSQL: ``width_bucket(d, BOUNDS) - 1``, the same)."""
    return bisect_right(BOUNDS, min(duration_ms, CAP_MS)) - 1


Key = tuple[date, str, str, int]  # day, graph, node, bucket


def day_of(started_at: datetime) -> date:
    return started_at.astimezone(UTC).date()


class RunSteps(NamedTuple):
    """Some steps of one run, as the rollup counts them: the run's start and graph, and
    each step's node, duration and tokens (as stored: u64s in signed columns)."""

    started_at: datetime
    graph_name: str
    steps: Sequence[tuple[str, int, int]]


def _add(delta: dict[Key, list[int]], part: RunSteps, sign: int) -> None:
    day = day_of(part.started_at)
    for node, stored, tokens in part.steps:
        duration = min(from_db_u64(stored), CAP_MS)
        entry = delta.setdefault((day, part.graph_name, node, bucket_of(duration)), [0, 0, 0])
        entry[0] += sign
        entry[1] += sign * duration
        entry[2] += sign * min(from_db_u64(tokens), CAP_MS)


# The delta being gathered by ``batched`` in this thread (the OTLP receiver writes a
# request's groups of runs in threads of their own), with its project's id.
_gathering = threading.local()


@contextmanager
def batched(project: Project) -> Iterator[None]:
    """Within: ``record`` for ``project`` adds to one delta, applied when the block ends
    without an exception, in one statement (a write of many runs: one upsert, not one a
    run). Call it inside the write's transaction."""
    delta: dict[Key, list[int]] = {}
    outer = getattr(_gathering, "batch", None)
    _gathering.batch = (project.pk, delta)
    try:
        yield
    finally:
        _gathering.batch = outer
    _write(project, delta)


def record(project: Project, removed: Iterable[RunSteps], added: Iterable[RunSteps]) -> None:
    """Apply to the rollups the steps a write removed and added (call it in the write's
    transaction). What cancels out (a live run's final trace repeating its steps) writes
    nothing."""
    batch = getattr(_gathering, "batch", None)
    gathering = batch is not None and batch[0] == project.pk
    delta: dict[Key, list[int]] = batch[1] if batch is not None and gathering else {}
    for part in removed:
        _add(delta, part, -1)
    for part in added:
        _add(delta, part, 1)
    if not gathering:
        _write(project, delta)


def _write(project: Project, delta: dict[Key, list[int]]) -> None:
    rows: list[tuple[Any, ...]] = [
        (project.pk, *key, *sums) for key, sums in sorted(delta.items()) if any(sums)
    ]
    if not rows:
        return
    table = connection.ops.quote_name(StepRollup._meta.db_table)
    columns = "project_id, day, graph_name, node, bucket, steps, duration_ms, tokens"
    upsert = (
        " ON CONFLICT (project_id, day, graph_name, node, bucket) DO UPDATE SET"
        f" steps = {table}.steps + excluded.steps,"
        f" duration_ms = {table}.duration_ms + excluded.duration_ms,"
        f" tokens = {table}.tokens + excluded.tokens"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement with a column per array: a multi-row VALUES list of a long
            # run's ~400 keys cost psycopg more to build than the database to apply.
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest(%s::bigint[],"
                " %s::date[], %s::text[], %s::text[], %s::int[], %s::bigint[], %s::bigint[],"
                f" %s::bigint[]){upsert}",
                [list(column) for column in zip(*rows, strict=True)],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s){upsert}",
                rows,
            )


def record_live(
    project: Project,
    run: Run,
    before: tuple[datetime, str] | None,
    added: Sequence[tuple[str, int, int]],
) -> None:
    """The rollups after a live batch: ``added`` are the steps it inserted; ``before`` the
    run's start and graph when the batch began (None for a run it created). A batch that
    moves the run to another day or graph (a late ``run_started``) moves its earlier steps
    with it."""
    now = RunSteps(run.started_at, run.graph_name, added)
    if before is None or (day_of(before[0]), before[1]) == (day_of(run.started_at), run.graph_name):
        record(project, [], [now])
        return
    steps = Step.objects.filter(run=run).values_list("node", "duration_ms", "tokens_used")
    stored = Counter((node, from_db_u64(d), from_db_u64(t)) for node, d, t in steps)
    earlier = stored - Counter((node, from_db_u64(d), from_db_u64(t)) for node, d, t in added)
    record(
        project,
        [RunSteps(before[0], before[1], list(earlier.elements()))],
        [RunSteps(run.started_at, run.graph_name, list(stored.elements()))],
    )


Histogram = dict[str, dict[int, list[int]]]  # node -> bucket -> [steps, duration, tokens]


def _days(project: Project, first: date, end: date, graph_name: str | None) -> QuerySet[Any]:
    rows = StepRollup.objects.filter(project=project, day__gte=first, day__lt=end)
    return rows.filter(graph_name=graph_name) if graph_name else rows


def histogram(project: Project, first: date, end: date, graph_name: str | None) -> Histogram:
    """Each node's buckets over the days ``[first, end)`` (of one graph if given)."""
    found: Histogram = {}
    for node, bucket, steps, total in (
        _days(project, first, end, graph_name)
        .order_by()
        .values_list("node", "bucket")
        .annotate(n=Sum("steps"), d=Sum("duration_ms"))
        .values_list("node", "bucket", "n", "d")
    ):
        if steps:
            found.setdefault(node, {})[bucket] = [int(steps), int(total), 0]
    return found


def node_tokens(
    project: Project, first: date, end: date, graph_name: str | None
) -> dict[str, tuple[int, int]]:
    """node -> (steps, tokens) over the days ``[first, end)`` (of one graph if given)."""
    rows = (
        _days(project, first, end, graph_name)
        .order_by()
        .values_list("node")
        .annotate(n=Sum("steps"), t=Sum("tokens"))
        .values_list("node", "n", "t")
    )
    return {node: (int(n), int(t)) for node, n, t in rows if n}


def add_durations(into: Histogram, counted: Iterable[tuple[str, int, int]]) -> None:
    """Add steps given as (node, stored duration, how many) to a histogram."""
    for node, stored, n in counted:
        duration = min(from_db_u64(stored), CAP_MS)
        entry = into.setdefault(node, {}).setdefault(bucket_of(duration), [0, 0, 0])
        entry[0] += n
        entry[1] += n * duration


def percentiles(
    buckets: dict[int, list[int]], fractions: Sequence[float]
) -> tuple[int, list[float]]:
    """The step count and the ``fractions`` percentiles of one node's buckets, each within
    ``RELATIVE_WIDTH`` of ``percentile_cont``'s value: the values at the ranks around
    ``fraction * (n - 1)`` are taken as the mean of their bucket."""
    ordered = [(s[0], s[1] / s[0]) for _, s in sorted(buckets.items()) if s[0]]
    n = sum(steps for steps, _ in ordered)

    def at(rank: int) -> float:
        for steps, mean in ordered:
            if rank < steps:
                return mean
            rank -= steps
        return ordered[-1][1]

    found = []
    for fraction in fractions:
        rank = fraction * (n - 1)
        found.append(interpolate(fraction, n, at(math.floor(rank)), at(math.ceil(rank))))
    return n, found


def backfill(using: Any) -> None:
    """Fill the rollups from every step stored (migration 0009; the benchmarks after
    loading rows in SQL). Replaces what the table holds."""
    table = using.ops.quote_name(StepRollup._meta.db_table)
    with using.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")
        if using.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (project_id, day, graph_name, node, bucket, steps,"
                " duration_ms, tokens)"
                " SELECT r.project_id, (r.started_at AT TIME ZONE 'UTC')::date, r.graph_name,"
                " s.node, width_bucket(s.d, %s::bigint[]) - 1, count(*), sum(s.d), sum(s.t)"
                " FROM traces_run r JOIN LATERAL (SELECT node,"
                " CASE WHEN duration_ms < 0 THEN %s ELSE least(duration_ms, %s) END AS d,"
                " CASE WHEN tokens_used < 0 THEN %s ELSE least(tokens_used, %s) END AS t"
                " FROM traces_step WHERE run_id = r.id) s ON true"
                " GROUP BY 1, 2, 3, 4, 5",
                [BOUNDS, *[CAP_MS] * 4],
            )
            # The planner's statistics for the new rows: without them it sorts the
            # dashboard's aggregate on disk instead of hashing it (measured: 5x slower).
            cursor.execute(f"ANALYZE {table}")
            return
        cursor.execute(
            "SELECT r.project_id, r.started_at, r.graph_name, s.node, s.duration_ms,"
            " s.tokens_used"
            " FROM traces_step s JOIN traces_run r ON r.id = s.run_id"
        )
        delta: dict[tuple[int, Key], list[int]] = {}
        while chunk := cursor.fetchmany(10_000):
            for project_id, started_at, graph_name, node, stored, tokens in chunk:
                if isinstance(started_at, str):
                    started_at = datetime.fromisoformat(started_at)
                if started_at.tzinfo is None:
                    started_at = started_at.replace(tzinfo=UTC)
                duration = min(from_db_u64(stored), CAP_MS)
                key = (day_of(started_at), graph_name, node, bucket_of(duration))
                entry = delta.setdefault((project_id, key), [0, 0, 0])
                entry[0] += 1
                entry[1] += duration
                entry[2] += min(from_db_u64(tokens), CAP_MS)
        cursor.executemany(
            f"INSERT INTO {table} (project_id, day, graph_name, node, bucket, steps,"
            " duration_ms, tokens) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(p, *key, *sums) for (p, key), sums in sorted(delta.items())],
        )
