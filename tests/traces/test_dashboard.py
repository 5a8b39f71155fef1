"""The dashboard's aggregates against small runs with known answers; CI runs them on
SQLite and PostgreSQL, which compute percentiles two ways (``traces/dashboard.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.dashboard_support import add_run, timed_steps
from traces import dashboard
from traces.errors import InputError
from traces.models import Project

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def window(project: Project, days: int = 7, graph: str | None = None) -> dashboard.Window:
    return dashboard.Window(project, NOW - timedelta(days=days), NOW, graph)


def test_runs_over_time_counts_runs_and_failures_per_day_with_empty_days(
    project: Project,
) -> None:
    add_run(project, "a", NOW - timedelta(days=1, hours=1), timed_steps("plan", [10]))
    add_run(project, "b", NOW - timedelta(days=1, hours=2), timed_steps("plan", [10]), failed=True)
    add_run(project, "c", NOW - timedelta(hours=1), timed_steps("plan", [10]))
    add_run(project, "old", NOW - timedelta(days=9), timed_steps("plan", [10]))

    buckets = dashboard.runs_over_time(window(project))

    assert len(buckets) == 8  # the partial first day through today
    by_day = {b.start.date().isoformat(): (b.runs, b.failed) for b in buckets}
    assert by_day["2026-03-09"] == (2, 1)
    assert by_day["2026-03-10"] == (1, 0)
    assert sum(b.runs for b in buckets) == 3
    assert [b.failure_rate for b in buckets if b.runs] == [0.5, 0.0]


def test_a_day_long_window_counts_per_hour(project: Project) -> None:
    add_run(project, "a", NOW - timedelta(minutes=30), timed_steps("plan", [10]))
    buckets = dashboard.runs_over_time(window(project, days=1))
    assert len(buckets) == 24
    assert buckets[-1].start == datetime(2026, 3, 10, 11, tzinfo=UTC)
    assert buckets[-1].runs == 1


def test_node_percentiles_interpolate_like_percentile_cont(project: Project) -> None:
    # 1..100 ms over two runs: p50 = 50.5, p95 = 95.05, p99 = 99.01. A day's window holds
    # no whole UTC day, so it reads the steps: exact (traces/test_rollups.py: longer ones).
    add_run(project, "a", NOW - timedelta(hours=1), timed_steps("search", list(range(1, 51))))
    add_run(project, "b", NOW - timedelta(hours=2), timed_steps("search", list(range(51, 101))))
    add_run(project, "c", NOW - timedelta(hours=2), timed_steps("plan", [7]))

    found = {n.node: n for n in dashboard.node_latency(window(project, days=1))}

    search = found["search"]
    assert search.steps == 100
    assert search.p50 == pytest.approx(50.5)
    assert search.p95 == pytest.approx(95.05)
    assert search.p99 == pytest.approx(99.01)
    assert search.exact
    assert (found["plan"].p50, found["plan"].p99) == (7.0, 7.0)
    assert [n.node for n in dashboard.node_latency(window(project))] == ["search", "plan"]


def test_node_percentiles_count_repeated_durations_once_each(project: Project) -> None:
    # Sorted: 1 1 1 2 2 10 10 10 10 50. p50 at rank 4.5 (2..10), p95 at 8.55 (10..50),
    # p99 at 8.91: the repeats decide which values the ranks fall between.
    durations = [10, 1, 50, 2, 10, 1, 10, 2, 1, 10]
    add_run(project, "a", NOW - timedelta(days=1), timed_steps("search", durations))

    (search,) = dashboard.node_latency(window(project))

    assert search.steps == 10
    assert search.p50 == pytest.approx(6.0)
    assert search.p95 == pytest.approx(32.0)
    assert search.p99 == pytest.approx(46.4)


def test_tokens_per_node_and_per_graph_most_expensive_first(project: Project) -> None:
    add_run(project, "a", NOW - timedelta(days=1), timed_steps("llm", [5, 5], tokens=100))
    add_run(
        project,
        "b",
        NOW - timedelta(days=1),
        [*timed_steps("llm", [5], tokens=300), *timed_steps("tool", [5], tokens=1)],
        graph_name="other",
    )

    nodes = dashboard.node_tokens(window(project))
    graphs = dashboard.graph_tokens(window(project))

    assert [(t.name, t.count, t.tokens) for t in nodes] == [("llm", 3, 500), ("tool", 1, 1)]
    assert [(t.name, t.count, t.tokens) for t in graphs] == [("other", 1, 301), ("agent", 1, 200)]
    only = dashboard.node_tokens(window(project, graph="agent"))
    assert [(t.name, t.tokens) for t in only] == [("llm", 200)]


def test_a_loop_is_a_repeat_visit_that_leaves_the_state_unchanged(project: Project) -> None:
    same = {"q": "x"}
    add_run(
        project,
        "looping",
        NOW - timedelta(days=1),
        [
            ("check", 5, 0, same, same),  # first visit, no change: not a loop
            ("retry", 5, 0, same, {"q": "y"}),
            ("retry", 5, 0, {"q": "y"}, {"q": "y"}),  # a repeat, no change: a loop
            ("retry", 5, 0, {"q": "y"}, {"q": "y"}),  # and again
            ("check", 5, 0, {"q": "y"}, {"q": "y"}),  # a repeat of check: a loop
        ],
    )
    add_run(project, "fine", NOW - timedelta(days=1), timed_steps("retry", [5, 5, 5]))

    found = [(n.node, n.steps, n.runs) for n in dashboard.loops(window(project))]

    assert found == [("retry", 2, 1), ("check", 1, 1)]


def test_slower_nodes_compare_p95_with_the_window_before(project: Project) -> None:
    add_run(
        project,
        "last-week",
        NOW - timedelta(days=10),
        [*timed_steps("search", [100, 100]), *timed_steps("plan", [50])],
    )
    add_run(
        project,
        "this-week",
        NOW - timedelta(days=1),
        [*timed_steps("search", [400, 400]), *timed_steps("plan", [40]), *timed_steps("new", [9])],
    )

    changes = dashboard.slower_nodes(window(project))

    assert [(c.node, c.p95_before, c.p95, c.change_ms) for c in changes] == [
        ("search", 100.0, 400.0, 300.0),
        ("plan", 50.0, 40.0, -10.0),
    ]
    assert changes[0].change_ratio == 3.0
    # The page passes the window's node_latency; the one-scan path gives the same answer.
    assert dashboard.slower_nodes(window(project), dashboard.node_latency(window(project))) == (
        changes
    )


def test_a_run_started_at_the_windows_start_is_in_the_window_not_the_one_before(
    project: Project,
) -> None:
    add_run(project, "before", NOW - timedelta(days=7, seconds=1), timed_steps("search", [10]))
    add_run(project, "edge", NOW - timedelta(days=7), timed_steps("search", [30]))

    (change,) = dashboard.slower_nodes(window(project))

    assert (change.p95_before, change.p95, change.steps_before, change.steps) == (10.0, 30.0, 1, 1)


def test_the_window_reads_the_run_lists_parameters(project: Project) -> None:
    default = dashboard.parse_window(project, {}, NOW)
    assert (default.start, default.end, default.last) == (NOW - timedelta(days=7), NOW, "7d")
    custom = dashboard.parse_window(
        project,
        {"started_after": "2026-03-01", "started_before": "2026-03-03", "graph_name": "g"},
        NOW,
    )
    assert custom.end - custom.start == timedelta(days=2)
    assert (custom.graph_name, custom.last, custom.unit) == ("g", None, "hour")
    assert custom.params()["started_before"] == "2026-03-03T00:00:00+00:00"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"last": "7x"}, "last"),
        ({"started_after": "yesterday"}, "started_after"),
        ({"started_before": "2026-03-01"}, "started_after"),
        ({"started_after": "2026-03-05", "started_before": "2026-03-01"}, "started_before"),
        ({"started_after": "2020-01-01"}, "started_after"),
    ],
)
def test_a_bad_window_names_the_parameter(
    project: Project, params: dict[str, str], name: str
) -> None:
    with pytest.raises(InputError) as refused:
        dashboard.parse_window(project, params, NOW)
    assert refused.value.path == name


def test_the_demo_data_shows_the_retriever_got_slower_this_week(project: Project) -> None:
    from traces.demo import demo_runs
    from traces.ingest import ingest_trace

    now = datetime.now(UTC)
    for trace in demo_runs(60, now=now):
        ingest_trace(project, trace)

    week = dashboard.Window(project, now - timedelta(days=7), now)
    top = dashboard.slower_nodes(week)[0]

    assert top.node == "retriever"
    assert top.change_ms > 500
