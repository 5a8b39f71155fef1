"""The run page's figures (timeline, breakdown, graph), as pure functions of its steps."""

from __future__ import annotations

import json
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from traces.trace import ExecutionTrace
from visualizer.charts import (
    FAIL_COLOR,
    MAX_SVG_BARS,
    breakdown_figure,
    graph_figure,
    run_figures,
    step_offsets,
    timeline_figure,
)


def steps_of(fixtures_dir: Path, name: str) -> list[dict[str, Any]]:
    trace = ExecutionTrace.from_json((fixtures_dir / name).read_bytes())
    return [
        {
            "index": n.index,
            "node": n.node,
            "started_at": n.started_at,
            "duration_ms": n.duration_ms,
            "tokens_used": n.tokens_used,
            "tools_called": n.tools_called,
            "success": n.success,
        }
        for n in trace.nodes_executed
    ]


def test_bars_start_at_each_steps_offset_from_the_first_start(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "tool_timeout_failure.json")

    figure = timeline_figure(steps)

    ok, failed = figure["data"]
    assert ok["type"] == "bar"
    # 09:30:00.120 is the first start; the reader started at 09:30:00.865.
    assert ok["base"][ok["customdata"].index(2)] == 745.0
    assert failed["customdata"] == [4]
    assert failed["marker"]["color"] != ok["marker"]["color"]
    assert failed["x"] == [894]


def test_one_row_per_node_in_first_run_order(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "research_agent_success.json")

    layout = timeline_figure(steps)["layout"]

    first_seen = list(dict.fromkeys(s["node"] for s in steps))
    assert layout["yaxis"]["categoryarray"] == list(reversed(first_seen))


def test_hover_text_escapes_trace_strings() -> None:
    step = {
        "index": 0,
        "node": "<b>x</b>",
        "started_at": None,
        "duration_ms": 3,
        "tokens_used": 1,
        "tools_called": ["<script>"],
        "success": True,
    }

    [trace] = timeline_figure([step])["data"]

    assert "&lt;b&gt;x&lt;/b&gt;" in trace["hovertext"][0]
    assert "&lt;script&gt;" in trace["hovertext"][0]
    # The row label too: Plotly renders tick labels as its HTML subset.
    assert trace["y"] == ["&lt;b&gt;x&lt;/b&gt;"]


def test_steps_without_a_start_follow_the_previous_end() -> None:
    steps = [
        {"started_at": None, "duration_ms": 10},
        {"started_at": None, "duration_ms": 5},
        {"started_at": None, "duration_ms": 1},
    ]

    assert step_offsets(steps) == [0.0, 10.0, 15.0]


def test_long_runs_draw_webgl_segments_instead_of_svg_bars(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "long_loop_2000.json")
    steps += [dict(s, index=s["index"] + 2000) for s in steps[:10]]
    assert len(steps) > MAX_SVG_BARS

    figure = timeline_figure(steps)

    assert {t["type"] for t in figure["data"]} == {"scattergl"}
    segments = figure["data"][0]
    assert len(segments["x"]) == 3 * len(steps)
    json.dumps(figure)  # plain JSON for json_script


def transitions(figure: dict[str, Any]) -> dict[tuple[str, str], int]:
    [edges] = [t for t in figure["data"] if t["name"] == "transitions"]
    return {(a, b): count for a, b, count in edges["customdata"]}


def test_breakdown_sums_time_and_tokens_over_each_nodes_visits(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "research_agent_success.json")

    time_bars, token_bars = breakdown_figure(steps)["data"]

    first_seen = list(dict.fromkeys(s["node"] for s in steps))
    assert time_bars["y"] == token_bars["y"] == first_seen
    for bars, key in ((time_bars, "duration_ms"), (token_bars, "tokens_used")):
        expected = [sum(s[key] for s in steps if s["node"] == n) for n in first_seen]
        assert bars["x"] == expected
    assert time_bars["xaxis"] != token_bars["xaxis"]


def test_breakdown_hover_shows_each_nodes_share_of_the_run(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "research_agent_success.json")
    reader_ms = sum(s["duration_ms"] for s in steps if s["node"] == "reader")
    share = f"{100 * reader_ms / sum(s['duration_ms'] for s in steps):.1f}%"

    time_bars, _ = breakdown_figure(steps)["data"]

    at = time_bars["y"].index("reader")
    assert time_bars["text"][at] == share
    assert f"{share} of the run" in time_bars["hovertext"][at]
    assert "3 visits" in time_bars["hovertext"][at]


def test_graph_counts_each_transition_between_consecutive_steps(fixtures_dir: Path) -> None:
    for name in ("research_agent_success.json", "long_loop_2000.json"):
        steps = steps_of(fixtures_dir, name)
        nodes = [s["node"] for s in steps]

        figure = graph_figure(steps)

        assert transitions(figure) == dict(Counter(pairwise(nodes)))
        [markers] = [t for t in figure["data"] if t["name"] == "nodes"]
        assert markers["customdata"] == list(dict.fromkeys(nodes))


def test_graph_draws_the_retrieval_loop_as_a_back_edge_with_its_count(
    fixtures_dir: Path,
) -> None:
    steps = steps_of(fixtures_dir, "research_agent_success.json")

    figure = graph_figure(steps)

    assert transitions(figure)["critic", "retriever"] == 2
    [markers] = [t for t in figure["data"] if t["name"] == "nodes"]
    critic = int(markers["x"][markers["customdata"].index("critic")])
    retriever = int(markers["x"][markers["customdata"].index("retriever")])
    # The back-edge is a curve bent below the line of nodes, from critic to retriever,
    # with its count on it.
    [loop] = [
        shape for shape in figure["layout"]["shapes"] if shape["path"].startswith(f"M {critic},0 Q")
    ]
    control_y = float(loop["path"].split()[3].split(",")[1])
    assert control_y < 0
    assert loop["path"].endswith(f"{retriever},0")
    [label] = [a for a in figure["layout"]["annotations"] if a["text"] == "2" and a["y"] < 0]
    assert min(critic, retriever) < label["x"] < max(critic, retriever)


def test_graph_shows_self_loops_and_outlines_failed_nodes_in_red(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "tool_timeout_failure.json")
    steps.append(dict(steps[-1], index=5, success=True))  # retriever runs again at once

    figure = graph_figure(steps)

    assert transitions(figure)["retriever", "retriever"] == 1
    assert any(" C " in shape["path"] for shape in figure["layout"]["shapes"])
    [markers] = [t for t in figure["data"] if t["name"] == "nodes"]
    outline = dict(zip(markers["customdata"], markers["marker"]["line"]["color"], strict=True))
    assert outline["retriever"] == FAIL_COLOR
    assert outline["planner"] != FAIL_COLOR
    labels = {a["text"] for a in figure["layout"]["annotations"]}
    assert "retriever \u00d73" in labels


def test_breakdown_and_graph_escape_trace_strings_in_hover_and_labels() -> None:
    steps = [
        {"index": 0, "node": "<b>x</b>", "duration_ms": 3, "tokens_used": 1, "success": True},
        {"index": 1, "node": "a&b", "duration_ms": 1, "tokens_used": 1, "success": False},
    ]

    breakdown = breakdown_figure(steps)
    graph = graph_figure(steps)

    time_bars, _ = breakdown["data"]
    assert time_bars["y"] == ["&lt;b&gt;x&lt;/b&gt;", "a&amp;b"]
    assert "&lt;b&gt;x&lt;/b&gt;" in time_bars["hovertext"][0]
    shown = json.dumps([[t["hovertext"] for t in graph["data"]], graph["layout"]["annotations"]])
    assert "<b>" not in shown
    assert "&lt;b&gt;x&lt;/b&gt; \u00d71" in {a["text"] for a in graph["layout"]["annotations"]}
    assert "&lt;b&gt;x&lt;/b&gt; → a&amp;b" in graph["data"][0]["hovertext"][0]


def test_figures_are_plain_json_and_cheap_for_ten_thousand_steps(fixtures_dir: Path) -> None:
    loop = steps_of(fixtures_dir, "long_loop_2000.json")
    steps = [dict(s, index=s["index"] + 2000 * k) for k in range(5) for s in loop]
    assert len(steps) == 10_000

    started = time.perf_counter()
    breakdown, graph = breakdown_figure(steps), graph_figure(steps)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.25
    # Aggregated: the size follows the distinct nodes, not the steps.
    assert len(json.dumps(breakdown)) + len(json.dumps(graph)) < 20_000
    assert set(run_figures(steps[:10])) == {"timeline", "breakdown", "graph"}
    json.dumps(run_figures([]))
