"""The dashboard's figure builders: pure functions from aggregates to Plotly dicts, each
point linking to the run list filtered to the runs behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from traces.dashboard import Bucket, NodeChange, NodeLatency, NodeLoops, Tokens, Window
from traces.models import Project
from visualizer import dashboard_charts as charts

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RUNS = "/projects/acme/runs/"


def window(days: int = 7, graph: str | None = None) -> Window:
    return Window(Project(slug="acme"), NOW - timedelta(days=days), NOW, graph)


def query(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert parts.path == RUNS
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_runs_figure_stacks_failures_and_links_each_bar_to_its_hour() -> None:
    start = NOW - timedelta(hours=2)
    buckets = [Bucket(start, 4, 1), Bucket(start + timedelta(hours=1), 0, 0)]
    figure = charts.runs_figure(buckets, window(days=1, graph="g"), RUNS)

    others, failed, rate = figure["data"]
    assert others["y"] == [3, 0]
    assert failed["y"] == [1, 0]
    assert rate["y"] == [25.0, None]  # no runs: no rate, a gap rather than 0%
    assert figure["layout"]["barmode"] == "stack"
    assert query(others["customdata"][0]) == {
        "started_after": start.isoformat(),
        "started_before": (start + timedelta(hours=1)).isoformat(),
        "graph_name": "g",
    }
    assert query(failed["customdata"][0])["status"] == "failed"
    assert "annotations" not in figure["layout"]


def test_latency_figure_groups_percentiles_slowest_first_with_node_links() -> None:
    nodes = [NodeLatency("search", 10, 50.0, 95.0, 99.0), NodeLatency("plan", 3, 5, 6, 7)]
    figure = charts.latency_figure(nodes, window(), RUNS)

    assert [trace["name"] for trace in figure["data"]] == ["p50", "p95", "p99"]
    assert figure["data"][1]["x"] == ["search", "plan"]
    assert figure["data"][1]["y"] == [95.0, 6.0]
    assert {t["type"] for t in figure["data"]} == {"bar"}  # no box plots in our Plotly build
    link = query(figure["data"][2]["customdata"][1])
    assert link["node"] == "plan"
    assert link["started_before"] == NOW.isoformat()


def test_a_percentile_merged_from_the_daily_rollups_says_so_and_its_bound() -> None:
    nodes = [NodeLatency("search", 10, 50, 95, 99, exact=False), NodeLatency("plan", 3, 5, 6, 7)]
    hover = charts.latency_figure(nodes, window(), RUNS)["data"][1]["hovertext"]

    assert hover[0] == "search p95: ≈ 95 ms (10 steps; from daily buckets, within 2%)"
    assert hover[1] == "plan p95: 6 ms (3 steps)"


def test_node_and_graph_names_are_escaped_for_plotly_and_linked_as_they_are() -> None:
    # Plotly renders a subset of HTML in labels and hover text: a name never forms a tag.
    evil = "<a href='//x.test'>plan</a>"
    latency = charts.latency_figure([NodeLatency(evil, 1, 1, 1, 1)], window(), RUNS)["data"][0]
    tokens = charts.tokens_figure([Tokens(evil, 1, 5)], window(), RUNS, "graph_name")["data"][0]
    loops = charts.loops_figure([NodeLoops(evil, 2, 1)], window(), RUNS)["data"][0]

    for trace in (latency, tokens, loops):
        assert trace["x"] == ["&lt;a href='//x.test'&gt;plan&lt;/a&gt;"]
        assert "<" not in trace["hovertext"][0]
    assert query(latency["customdata"][0])["node"] == evil
    assert query(tokens["customdata"][0])["graph_name"] == evil


def test_tokens_figures_link_nodes_by_node_and_graphs_by_graph_name() -> None:
    by_node = charts.tokens_figure([Tokens("llm", 4, 400)], window(), RUNS, "node")
    by_graph = charts.tokens_figure([Tokens("agent", 2, 50)], window(), RUNS, "graph_name")

    assert by_node["data"][0]["y"] == [400]
    assert "100 per step" in by_node["data"][0]["hovertext"][0]
    assert query(by_node["data"][0]["customdata"][0])["node"] == "llm"
    assert query(by_graph["data"][0]["customdata"][0])["graph_name"] == "agent"


def test_an_empty_figure_says_so_without_a_made_up_axis() -> None:
    figure = charts.loops_figure([], window(), RUNS)
    assert figure["data"][0]["x"] == []
    assert figure["layout"]["annotations"][0]["text"] == "Nothing in this range"
    assert figure["layout"]["xaxis"]["visible"] is False


def test_loops_figure_counts_loop_steps_per_node() -> None:
    figure = charts.loops_figure([NodeLoops("retry", 5, 2)], window(), RUNS)
    assert figure["data"][0]["y"] == [5]
    assert "in 2 runs" in figure["data"][0]["hovertext"][0]


def test_slower_rows_give_the_change_in_ms_and_percent() -> None:
    rows = charts.slower_rows(
        [NodeChange("search", 400.0, 100.0, 8, 9), NodeChange("new", 5.0, 0.0, 1, 1)],
        window(),
        RUNS,
    )
    assert rows[0]["change_ms"] == 300.0
    assert rows[0]["change_pct"] == 300.0
    assert rows[1]["change_pct"] is None  # from 0 ms: no ratio
    assert query(rows[0]["url"])["node"] == "search"
