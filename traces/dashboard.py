"""The project dashboard's aggregates: one function per aggregate, each over a ``Window``
(a project, a time range of run starts, an optional graph).

A run belongs to a window when it *started* in it (``Run.started_at``, the column every
list orders by); its steps belong with it. So a point of any chart is a set of runs the
run list can show with its own filters (``started_after``, ``started_before``,
``graph_name``, and ``status`` or ``node``): ``Window.params`` and the chart builders
(``visualizer/dashboard_charts.py``) make those links.

Definitions, the same on both backends:

- **Percentiles** (p50, p95, p99 of a node's step durations) are *continuous*
  percentiles, PostgreSQL's ``percentile_cont``: the value at rank ``p * (n - 1)`` of the
  sorted durations, interpolated linearly between its neighbours. PostgreSQL finds the two
  values around each rank in SQL from the durations counted per distinct value (``_RANKED``:
  the same answer without sorting every step) and Python interpolates; SQLite sends the
  sorted durations and ``traces/percentiles.py`` applies the same formula.
- **A loop** is a node re-run without changing the state: a step whose node already ran
  earlier in the same run (lower ``position``) and whose ``state_after`` is the very
  snapshot its ``state_before`` was (snapshots are content-addressed, so equal ids are
  equal states). A first visit that changes nothing is not a loop (a pure check node
  does that); a step without a recorded state after is not counted.
  Over weeks that means reading every step, so a window's whole UTC days are read from
  the daily rollups instead (``traces/rollups.py``: durations counted in buckets 2% wide),
  and only its ragged ends from the steps: such percentiles are within 2% of the exact
  value (``NodeLatency.exact`` is False). A window without a whole day is exact.
- **Tokens per node** are sums, so the rollups give them exactly: whole days from there,
  the ragged ends from the steps.
- **Slower nodes** compare each node's p95 in the window with its p95 in the window of
  the same length just before it (both from one scan of the steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import Any, Literal

from django.db import connections
from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from . import rollups
from .errors import InputError
from .filters import parse_run_filter
from .models import Project, Run, RunStatus, Step
from .percentiles import interpolate, percentile

DEFAULT_LAST = "7d"
# Buckets of an hour up to two days, of a day beyond (at most MAX_DAYS of them).
HOURLY_UP_TO = timedelta(hours=48)
MAX_DAYS = 400
PERCENTILES = (0.5, 0.95, 0.99)

Unit = Literal["hour", "day"]
STEP: dict[Unit, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class Window:
    """The runs of ``project`` started in ``[start, end)``, of ``graph_name`` if set.
    ``last`` is the quick range it came from ("7d"), None for a custom range."""

    project: Project
    start: datetime
    end: datetime
    graph_name: str | None = None
    last: str | None = None

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        span = self.end - self.start
        return Window(self.project, self.start - span, self.start, self.graph_name)

    @property
    def unit(self) -> Unit:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"

    def params(self, start: datetime | None = None, end: datetime | None = None) -> dict[str, str]:
        """The run list's filters for this window's runs (or those started in
        ``[start, end)`` within it): exact times, so a link shows the same runs later."""
        found = {
            "started_after": max(start or self.start, self.start).isoformat(),
            "started_before": min(end or self.end, self.end).isoformat(),
        }
        if self.graph_name:
            found["graph_name"] = self.graph_name
        return found

    def runs(self) -> QuerySet[Run]:
        runs = Run.objects.filter(
            project=self.project, started_at__gte=self.start, started_at__lt=self.end
        )
        return runs.filter(graph_name=self.graph_name) if self.graph_name else runs

    def steps(self) -> QuerySet[Step]:
        steps = Step.objects.filter(
            run__project=self.project,
            run__started_at__gte=self.start,
            run__started_at__lt=self.end,
        )
        return steps.filter(run__graph_name=self.graph_name) if self.graph_name else steps


def parse_window(
    project: Project, params: Mapping[str, str], now: datetime | None = None
) -> Window:
    """The window a dashboard query asks for: ``last`` (such as ``24h``, ``7d``, the
    default), or ``started_after`` (and optionally ``started_before``, else now), and
    ``graph_name``; the run list's parameter names and rules. A bad value is an
    ``InputError`` naming the parameter."""
    now = now or timezone.now()
    given = parse_run_filter(params, now)
    if given.started_after is not None:
        start, last = given.started_after, None
    elif given.started_before is not None:
        raise InputError("started_after", "expected with started_before")
    else:
        last = given.last or DEFAULT_LAST
        start = given.since or parse_run_filter({"last": last}, now).since or now
    end = given.started_before or now
    if end <= start:
        raise InputError("started_before", "expected a time after the start of the range")
    if end - start > timedelta(days=MAX_DAYS):
        raise InputError("started_after", f"expected a range of at most {MAX_DAYS} days")
    return Window(project, start, end, given.graph_name, last)


def graph_names(project: Project) -> list[str]:
    """The project's graph names, for the filter."""
    names = Run.objects.filter(project=project).order_by().values_list("graph_name", flat=True)
    return sorted(name for name in names.distinct() if name)


@dataclass(frozen=True)
class Bucket:
    start: datetime
    runs: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.runs if self.runs else None


def _floor(moment: datetime, unit: Unit) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


def runs_over_time(window: Window) -> list[Bucket]:
    """Runs and failed runs per hour or day (``window.unit``), every bucket of the
    window present, zeros where nothing started."""
    unit = window.unit
    trunc = TruncHour if unit == "hour" else TruncDay
    rows = (
        window.runs()
        .annotate(bucket=trunc("started_at", tzinfo=UTC))
        .order_by()
        .values("bucket")
        .annotate(runs=Count("id"), failed=Count("id", filter=Q(status=RunStatus.FAILED)))
        .values_list("bucket", "runs", "failed")
    )
    counts = {_floor(bucket, unit): (runs, failed) for bucket, runs, failed in rows}
    buckets = []
    moment = _floor(window.start, unit)
    while moment < window.end:
        runs, failed = counts.get(moment, (0, 0))
        buckets.append(Bucket(moment, runs, failed))
        moment += STEP[unit]
    return buckets


@dataclass(frozen=True)
class NodeLatency:
    node: str
    steps: int
    p50: float
    p95: float
    p99: float
    exact: bool = True  # False: merged from duration buckets, within 2% (traces/rollups.py)


# PostgreSQL: each node's durations counted per distinct value (a hash aggregate, no sort
# of the steps), then the values at the two ranks around each percentile read off the
# running counts: the durations percentile_cont would interpolate between, so the answer
# is exact, and only the distinct (node, duration) pairs are sorted; percentile_cont
# sorts every step, twice the time at 1,000,000 steps. The steps are read per run from
# step_run_cover alone; OFFSET 0 keeps the planner from flattening that into a hash join
# over a scan of every step, which it prefers for a week (measured: about twice as slow;
# benchmarks/results/dashboard.md).
_RANKED = """
WITH counted AS (
    SELECT {period} AS period, s.node, s.duration_ms AS value, count(*) AS n
    FROM ({runs}) r CROSS JOIN LATERAL (
        SELECT node, duration_ms FROM {steps} WHERE run_id = r.id OFFSET 0
    ) s
    GROUP BY 1, 2, 3
), running AS (
    SELECT period, node, value,
        sum(n) OVER (PARTITION BY period, node ORDER BY value) AS upto,
        sum(n) OVER (PARTITION BY period, node) AS total
    FROM counted
)
SELECT period, node, total, {picks} FROM running GROUP BY period, node, total
"""
_PICK = "min(value) FILTER (WHERE upto > {round}(%s::float8 * (total - 1)))"


def _latencies(window: Window, split: datetime | None = None) -> dict[bool, list[NodeLatency]]:
    """``node_latency`` of the window's steps in one scan; with ``split``, separately for
    the runs started before it (``False``) and from it (``True``)."""
    rows: list[tuple[bool, str, int, list[float]]] = []
    connection = connections[window.runs().db]
    if connection.vendor == "postgresql":
        runs, params = window.runs().order_by().values("id", "started_at").query.sql_with_params()
        query = _RANKED.format(
            period="r.started_at >= %s" if split is not None else "true",
            runs=runs,
            steps=connection.ops.quote_name(Step._meta.db_table),
            picks=", ".join(_PICK.format(round=r) for _ in PERCENTILES for r in ("floor", "ceil")),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                query,
                [
                    *([split] if split is not None else []),
                    *params,
                    *(p for p in PERCENTILES for _ in range(2)),
                ],
            )
            for is_now, node, total, *values in cursor.fetchall():
                n = int(total)
                picked = [
                    interpolate(p, n, float(values[2 * i]), float(values[2 * i + 1]))
                    for i, p in enumerate(PERCENTILES)
                ]
                rows.append((is_now, node, n, picked))
    else:
        period = (
            Case(When(run__started_at__gte=split, then=Value(True)), default=Value(False))
            if split is not None
            else Value(True)
        )
        steps = window.steps().annotate(period=period)
        ordered = steps.order_by("period", "node", "duration_ms").values_list(
            "period", "node", "duration_ms"
        )
        for (is_now, node), group in groupby(
            ordered.iterator(chunk_size=10_000), key=lambda r: (r[0], r[1])
        ):
            durations = [d for _, _, d in group]
            rows.append(
                (
                    bool(is_now),
                    node,
                    len(durations),
                    [percentile(durations, p) for p in PERCENTILES],
                )
            )
    found: dict[bool, list[NodeLatency]] = {False: [], True: []}
    for is_now, node, n, values in rows:
        p50, p95, p99 = values
        found[bool(is_now)].append(NodeLatency(node, n, p50, p95, p99))
    return {key: sorted(nodes, key=lambda n: (-n.p95, n.node)) for key, nodes in found.items()}


def whole_days(window: Window) -> tuple[date, date] | None:
    """The UTC days ``[first, end)`` wholly inside the window, or None if there are none."""
    first = window.start.astimezone(UTC).date()
    if datetime.combine(first, time(), UTC) < window.start:
        first += timedelta(days=1)
    end = window.end.astimezone(UTC).date()
    return (first, end) if first < end else None


def _ragged_ends(window: Window, days: tuple[date, date]) -> list[Window]:
    """The parts of ``window`` before and after its whole days ``days`` (none if empty)."""
    first, end = (datetime.combine(day, time(), UTC) for day in days)
    parts = [(window.start, first), (end, window.end)]
    return [Window(window.project, a, b, window.graph_name) for a, b in parts if a < b]


def _from_rollups(window: Window, days: tuple[date, date]) -> list[NodeLatency]:
    """``node_latency`` from the rollups of the window's whole days and the steps of the
    runs in its parts before and after them (``traces/rollups.py``: within 2%)."""
    found = rollups.histogram(window.project, *days, window.graph_name)
    for part in _ragged_ends(window, days):
        counted = (
            part.steps()
            .order_by()
            .values_list("node", "duration_ms")
            .annotate(n=Count("*"))
            .values_list("node", "duration_ms", "n")
        )
        rollups.add_durations(found, counted)
    latencies = []
    for node, buckets in found.items():
        n, values = rollups.percentiles(buckets, PERCENTILES)
        if n:
            p50, p95, p99 = values
            latencies.append(NodeLatency(node, n, p50, p95, p99, exact=False))
    return sorted(latencies, key=lambda n: (-n.p95, n.node))


def node_latency(window: Window) -> list[NodeLatency]:
    """p50, p95 and p99 of each node's step durations, slowest p95 first: exact for a
    window without a whole UTC day, else merged from the daily rollups (within 2%)."""
    days = whole_days(window)
    return _from_rollups(window, days) if days else _latencies(window)[True]


@dataclass(frozen=True)
class Tokens:
    """Tokens of a node's steps (or a graph's runs), and how many there were."""

    name: str
    count: int
    tokens: int


def _tokens(rows: QuerySet[Any], key: str, column: str) -> list[Tokens]:
    totals = (
        rows.order_by()
        .values(key)
        .annotate(n=Count("*"), tokens=Sum(column))
        .values_list(key, "n", "tokens")
    )
    found = [Tokens(name, n, int(tokens or 0)) for name, n, tokens in totals]
    return sorted(found, key=lambda t: (-t.tokens, t.name))


def node_tokens(window: Window) -> list[Tokens]:
    """Tokens used per node, most expensive first; exact, with a window's whole UTC days
    read from the daily rollups (``traces/rollups.py``) and only its ends from the steps."""
    days = whole_days(window)
    if days is None:
        return _tokens(window.steps(), "node", "tokens_used")
    found = rollups.node_tokens(window.project, *days, window.graph_name)
    for part in _ragged_ends(window, days):
        for t in _tokens(part.steps(), "node", "tokens_used"):
            steps, tokens = found.get(t.name, (0, 0))
            found[t.name] = (steps + t.count, tokens + t.tokens)
    totals = [Tokens(node, steps, tokens) for node, (steps, tokens) in found.items()]
    return sorted(totals, key=lambda t: (-t.tokens, t.name))


def graph_tokens(window: Window) -> list[Tokens]:
    """Tokens used per graph (the runs' totals), most expensive first."""
    return _tokens(window.runs(), "graph_name", "total_tokens")


@dataclass(frozen=True)
class NodeLoops:
    node: str
    steps: int
    runs: int


def loops(window: Window) -> list[NodeLoops]:
    """Per node, the loop steps (re-runs that left the state as it was, see the module)
    and the runs they happened in; most loop steps first."""
    earlier_visit = Step.objects.filter(
        run=OuterRef("run"), node=OuterRef("node"), position__lt=OuterRef("position")
    )
    rows = (
        window.steps()
        .filter(state_after__isnull=False, state_after=F("state_before"))
        .filter(Exists(earlier_visit))
        .order_by()
        .values("node")
        .annotate(n=Count("id"), runs=Count("run", distinct=True))
        .values_list("node", "n", "runs")
    )
    found = [NodeLoops(node, n, runs) for node, n, runs in rows]
    return sorted(found, key=lambda n: (-n.steps, n.node))


@dataclass(frozen=True)
class NodeChange:
    node: str
    p95: float
    p95_before: float
    steps: int
    steps_before: int

    @property
    def change_ms(self) -> float:
        return self.p95 - self.p95_before

    @property
    def change_ratio(self) -> float | None:
        return self.change_ms / self.p95_before if self.p95_before else None


def slower_nodes(window: Window, now: Sequence[NodeLatency] | None = None) -> list[NodeChange]:
    """Each node that ran in both the window and the one before it, with its p95 in
    each; the largest rise first (a node that got faster sorts last). ``now`` is the
    window's ``node_latency`` when the caller has it already."""
    if now is None and whole_days(window):
        current, earlier = node_latency(window), node_latency(window.previous())
    elif now is None:
        # Both windows in one scan of the steps of [previous start, end).
        both = Window(window.project, window.previous().start, window.end, window.graph_name)
        latencies = _latencies(both, split=window.start)
        current, earlier = latencies[True], latencies[False]
    else:
        current, earlier = list(now), node_latency(window.previous())
    before = {n.node: n for n in earlier}
    changes = [
        NodeChange(n.node, n.p95, before[n.node].p95, n.steps, before[n.node].steps)
        for n in current
        if n.node in before
    ]
    return sorted(changes, key=lambda c: (-c.change_ms, c.node))
