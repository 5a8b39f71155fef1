"""The timeline figure, as a pure function of a run's steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traces.trace import ExecutionTrace
from visualizer.charts import MAX_SVG_BARS, step_offsets, timeline_figure


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
    assert trace["y"] == ["<b>x</b>"]


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
