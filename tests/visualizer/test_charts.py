"""The run page's figures (timeline, breakdown, graph), as pure functions of its steps."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from traces.trace import ExecutionTrace
from visualizer.charts import breakdown_figure, run_figures
from visualizer.graph_chart import graph_figure
from visualizer.timeline import (
    FAIL_COLOR,
    MAX_TIMELINE_BARS,
    TIMELINE_BAR_BUDGET,
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


def test_long_runs_are_aggregated_per_node_and_time_slice(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "long_loop_2000.json")
    assert len(steps) > MAX_TIMELINE_BARS

    figure = timeline_figure(steps)

    bars = [b for t in figure["data"] for b in t["x"]]
    assert figure["window"]["aggregated"] is True
    assert figure["window"]["executions"] == len(steps)
    assert {t["type"] for t in figure["data"]} == {"bar"}
    assert len(bars) <= TIMELINE_BAR_BUDGET
    # Every slice still covers its executions: the bars reach from the first start to the
    # run's last end, and each opens the first execution it groups.
    ok = figure["data"][0]
    assert min(ok["base"]) == 0.0
    last_end = max(b + x for t in figure["data"] for b, x in zip(t["base"], t["x"], strict=True))
    assert last_end == figure["window"]["to"]
    assert set(ok["customdata"]) <= {s["index"] for s in steps}
    assert "zoom in" in ok["hovertext"][0]
    json.dumps(figure)


def test_aggregated_bars_count_every_execution_once_with_its_tokens(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "long_loop_2000.json")

    figure = timeline_figure(steps)

    # Each bar's hover says how many executions it groups and their tokens.
    counts = tokens = 0
    for trace in figure["data"]:
        for text in trace["hovertext"]:
            counts += int(text.split("\u00d7", 1)[1].split(" ", 1)[0])
            tokens += int(text.split(" ms · ", 1)[1].split(" tokens", 1)[0].replace(",", ""))
    assert counts == len(steps)
    assert tokens == sum(s["tokens_used"] for s in steps)


def test_the_offsets_a_caller_has_draw_the_same_timeline(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "long_loop_2000.json")

    assert timeline_figure(steps, offsets=step_offsets(steps)) == timeline_figure(steps)
    assert run_figures(steps, offsets=step_offsets(steps)) == run_figures(steps)


def test_failures_keep_their_own_red_bars_when_aggregated(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "long_loop_2000.json")
    steps[1234] = dict(steps[1234], success=False)

    figure = timeline_figure(steps)

    [failed] = [t for t in figure["data"] if t["name"] == "failed"]
    assert failed["customdata"] == [steps[1234]["index"]]
    assert failed["marker"]["color"] == FAIL_COLOR


def test_a_window_draws_single_executions_over_its_range(fixtures_dir: Path) -> None:
    steps = steps_of(fixtures_dir, "long_loop_2000.json")
    offsets = step_offsets(steps)
    lo, hi = offsets[100], offsets[140]

    figure = timeline_figure(steps, window=(lo, hi))

    shown = sorted(i for t in figure["data"] for i in t["customdata"])
    assert figure["window"]["aggregated"] is False
    assert figure["layout"]["xaxis"]["range"] == [lo, hi]
    # Steps 100..140 start inside; step 99 ends at step 100's start, so it touches.
    assert shown[0] in (99, 100)
    assert shown[-1] == 140
    assert len(shown) == figure["window"]["executions"]


def test_a_running_node_gets_a_growing_bar_after_the_last_step() -> None:
    steps = [
        {"index": 0, "node": "planner", "started_at": "2026-03-02T09:30:00.000+00:00",
         "duration_ms": 100, "tokens_used": 1, "tools_called": [], "success": True},
    ]  # fmt: skip
    running = [{"node": "<i>writer</i>", "index": 1, "started_at": None, "elapsed_ms": 250}]

    figure = timeline_figure(steps, running)

    [bar] = [t for t in figure["data"] if t["name"] == "running"]
    assert bar["base"] == [100.0]
    assert bar["x"] == [250]
    assert bar["customdata"] == [1]
    assert bar["y"] == ["&lt;i&gt;writer&lt;/i&gt;"]
    assert figure["layout"]["yaxis"]["categoryarray"] == ["&lt;i&gt;writer&lt;/i&gt;", "planner"]


def test_a_running_node_with_a_start_time_sits_at_its_start() -> None:
    steps = [
        {"index": 0, "node": "a", "started_at": "2026-03-02T09:30:00.000+00:00",
         "duration_ms": 100, "tokens_used": 1, "tools_called": [], "success": True},
    ]  # fmt: skip
    running = [{"node": "b", "index": 1, "started_at": "2026-03-02T09:30:00.400Z", "elapsed_ms": 0}]

    [_, bar] = timeline_figure(steps, running)["data"]

    assert bar["base"] == [400.0]
    assert bar["x"] == [1]


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


def test_figures_of_ten_thousand_steps_are_plain_json_sized_by_their_nodes(
    fixtures_dir: Path,
) -> None:
    loop = steps_of(fixtures_dir, "long_loop_2000.json")
    steps = [dict(s, index=s["index"] + 2000 * k) for k in range(5) for s in loop]
    assert len(steps) == 10_000

    # Their time is benchmarks/ui.py's to measure; here, what they hold.
    breakdown, graph = breakdown_figure(steps), graph_figure(steps)
    # Aggregated: the size follows the distinct nodes, not the steps.
    assert len(json.dumps(breakdown)) + len(json.dumps(graph)) < 20_000
    assert set(run_figures(steps[:10])) == {"timeline", "breakdown", "graph"}
    json.dumps(run_figures([]))


def test_quotes_in_names_stay_quotes_for_plotly() -> None:
    # Plotly decodes &lt; &gt; &amp; and numeric entities but shows "&quot;" as written.
    step = {"index": 0, "node": "say \"hi\" & <go>", "started_at": None, "duration_ms": 1,
            "tokens_used": 0, "tools_called": [], "success": True}  # fmt: skip

    [trace] = timeline_figure([step])["data"]

    assert trace["y"] == ['say "hi" &amp; &lt;go&gt;']
