"""The daily duration rollups (traces/rollups.py): percentiles merged from them stay within
2% of percentile_cont, their tokens are exact, and every way a run's steps are written or
replaced keeps them equal to what a rebuild from the steps gives, also under concurrent
ingestion."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from tests.dashboard_support import add_run, timed_steps
from traces import dashboard, rollups
from traces.models import Project, StepRollup
from traces.percentiles import percentile

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
FRACTIONS = (0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)


def stored() -> dict[tuple[Any, ...], tuple[int, int]]:
    """The rollup rows that count something."""
    return {
        (r.project_id, r.day, r.graph_name, r.node, r.bucket): (r.steps, r.duration_ms)
        for r in StepRollup.objects.all()
        if r.steps
    }


def rebuilt() -> dict[tuple[Any, ...], tuple[int, int]]:
    rollups.backfill(connection)
    return stored()


def test_the_buckets_are_never_wider_than_two_percent_of_their_values() -> None:
    bounds = rollups.BOUNDS
    assert bounds[:3] == [0, 1, 2]
    assert bounds[-1] == rollups.CAP_MS
    for low, high in itertools.pairwise(bounds[1:]):
        # Every duration in [low, high) is within 2% of every other.
        assert (high - 1) <= low * (1 + rollups.RELATIVE_WIDTH)
    assert rollups.bucket_of(0) == 0
    assert rollups.bucket_of(rollups.CAP_MS * 5) == len(bounds) - 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_from_buckets_are_within_two_percent_of_percentile_cont(seed: int) -> None:
    rng = random.Random(seed)
    # Durations over six orders of magnitude, with repeats, as agents' nodes give.
    durations = sorted(int(10 ** rng.uniform(0, 6)) for _ in range(5000))
    histogram: rollups.Histogram = {}
    rollups.add_durations(histogram, [("n", d, 1) for d in durations])

    n, found = rollups.percentiles(histogram["n"], FRACTIONS)

    assert n == len(durations)
    for fraction, value in zip(FRACTIONS, found, strict=True):
        exact = percentile(durations, fraction)
        assert value == pytest.approx(exact, rel=rollups.RELATIVE_WIDTH), fraction


@pytest.mark.django_db
def test_a_weeks_percentiles_merge_whole_days_and_read_the_ends_from_steps(
    project: Project,
) -> None:
    rng = random.Random(7)
    # Runs in the window's ragged first day, in whole days, and today (a ragged end).
    starts = [NOW - timedelta(days=7) + timedelta(hours=3 * i) for i in range(56)]
    for i, start in enumerate(starts):
        steps = timed_steps("search", [rng.randint(1, 5000)] * 3, tokens=i)
        add_run(project, f"r{i}", start, [*steps, *timed_steps("plan", [5], tokens=2 * i)])
    add_run(project, "before", NOW - timedelta(days=8), timed_steps("search", [10**6]))
    week = dashboard.Window(project, NOW - timedelta(days=7), NOW)
    assert dashboard.whole_days(week) == (
        datetime(2026, 3, 4).date(),
        datetime(2026, 3, 10).date(),
    )

    merged, _ = dashboard.node_latency(week)
    exact, _ = dashboard._latencies(week)[True]

    assert not merged.exact
    assert exact.exact
    assert merged.steps == exact.steps == 56 * 3
    for name in ("p50", "p95", "p99"):
        assert getattr(merged, name) == pytest.approx(getattr(exact, name), rel=0.02), name
    # Tokens per node from the same rollups are exact.
    tokens = dashboard.node_tokens(week)
    assert tokens == dashboard._tokens(week.steps(), "node", "tokens_used")
    assert [(t.name, t.count, t.tokens) for t in tokens] == [
        ("search", 168, 3 * sum(range(56))),
        ("plan", 56, 2 * sum(range(56))),
    ]


@pytest.mark.django_db
def test_a_replaced_trace_moves_its_counts_and_a_repeat_writes_nothing(
    project: Project,
) -> None:
    add_run(project, "a", NOW - timedelta(days=3), timed_steps("search", [10, 20, 3000]))
    add_run(project, "b", NOW - timedelta(days=3), timed_steps("search", [10]))
    first = stored()
    # The same run again, started another day in another graph, with other steps.
    add_run(project, "a", NOW - timedelta(days=1), timed_steps("plan", [7, 7]), graph_name="g2")
    moved = stored()

    assert moved != first
    assert sum(steps for steps, _ in moved.values()) == 3
    assert moved == rebuilt()


@pytest.mark.django_db
def test_live_events_count_their_steps_and_a_late_run_started_moves_them(
    project: Project, api: APIClient
) -> None:
    def post(events: list[dict[str, Any]]) -> None:
        answer = api.post("/api/v1/runs/live-1/events", {"events": events}, format="json")
        assert answer.status_code == 200, answer.content

    def node(seq: int, duration: int) -> dict[str, Any]:
        data = {"node": "search", "index": seq, "duration_ms": duration, "tokens_used": 1}
        return {"seq": seq, "type": "node_finished", "data": data}

    post([node(2, 40), node(3, 4000)])
    post([node(3, 4000)])  # a retried batch counts once
    assert sum(steps for steps, _ in stored().values()) == 2
    # run_started arrives last and says the run began days ago in graph "g3".
    started = (NOW - timedelta(days=4)).isoformat()
    post(
        [
            {
                "seq": 1,
                "type": "run_started",
                "data": {"started_at": started, "metadata": {"graph_name": "g3"}},
            },
            node(4, 50),
        ]
    )

    counts = stored()
    assert {key[1:3] for key in counts} == {(NOW.date() - timedelta(days=4), "g3")}
    assert sum(steps for steps, _ in counts.values()) == 3
    assert counts == rebuilt()


@pytest.mark.django_db(transaction=True)
def test_concurrent_ingestion_loses_no_count(project: Project) -> None:
    def ingest(i: int) -> None:
        try:
            add_run(project, f"c{i}", NOW - timedelta(days=2), timed_steps("search", [10, 11]))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ingest, range(16)))

    counts = stored()
    assert sum(steps for steps, _ in counts.values()) == 32
    assert counts == rebuilt()
