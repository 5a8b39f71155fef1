"""The compare page's two-lane timeline: run a above run b, a bar per step at its start
offset (each run from its own start), and a marker where their states first diverge.
Pure: built from the rows ``traces.compare.comparison_json`` gives; the browser calls
``Plotly.react`` with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import palette
from .timeline import (
    FAIL_COLOR,
    MAX_TIMELINE_BARS,
    OK_COLOR,
    TIMELINE_BAR_BUDGET,
    escape,
    step_offsets,
)

DIVERGENCE_COLOR = palette.WARN
LANES = ("a", "b")


def _lane_steps(rows: Sequence[dict[str, Any]], side: str) -> list[dict[str, Any]]:
    """The steps of one run in its own order, each with the row it sits on."""
    steps = [{**r[side], "node": r["node"], "row": n} for n, r in enumerate(rows) if r[side]]
    return sorted(steps, key=lambda s: s["index"]) if side == "b" else steps


def _bars(
    lane: str, steps: list[dict[str, Any]], offsets: list[float], buckets: int
) -> list[dict[str, Any]]:
    """A trace per outcome: a bar per step, or per slice of time when the lane has more
    than its share of ``MAX_TIMELINE_BARS`` (each SVG bar costs a draw)."""
    end = max(
        (o + max(s["duration_ms"], 1) for s, o in zip(steps, offsets, strict=True)), default=1
    )
    width = max(end, 1.0) / buckets
    aggregate = len(steps) > MAX_TIMELINE_BARS // 2
    traces = []
    for success, color in ((True, OK_COLOR), (False, FAIL_COLOR)):
        picked = [(s, o) for s, o in zip(steps, offsets, strict=True) if s["success"] is success]
        if not picked:
            continue
        bars: list[tuple[float, float, int, str]] = []  # base, width, row, hover
        if aggregate:
            groups: dict[int, list[tuple[dict[str, Any], float]]] = {}
            for s, o in picked:
                groups.setdefault(min(int(o / width), buckets - 1), []).append((s, o))
            for members in groups.values():
                start = members[0][1]
                stop = max(o + max(s["duration_ms"], 1) for s, o in members)
                first, last = members[0][0], members[-1][0]
                hover = (
                    f"run {lane}: {len(members)} steps · #{first['index']}\u2013#{last['index']}"
                )
                bars.append((round(start, 1), round(stop - start, 1), first["row"], hover))
        else:
            for s, o in picked:
                hover = (
                    f"run {lane} · #{s['index']} {escape(s['node'])}<br>"
                    f"{s['duration_ms']} ms · {s['tokens_used']} tokens"
                )
                bars.append((round(o, 1), max(s["duration_ms"], 1), s["row"], hover))
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": f"{lane} {'ok' if success else 'failed'}",
                "y": [f"run {lane}"] * len(bars),
                "base": [b[0] for b in bars],
                "x": [b[1] for b in bars],
                "customdata": [b[2] for b in bars],
                "hovertext": [b[3] for b in bars],
                "hoverinfo": "text",
                "marker": {"color": color},
            }
        )
    return traces


def compare_timeline_figure(
    rows: Sequence[dict[str, Any]], divergence: dict[str, Any] | None
) -> dict[str, Any]:
    """Two lanes (run a, run b) of bars, green or red by outcome; each bar's ``customdata``
    is its row in the alignment, which a click opens. A diamond marks, in each lane, the
    step where the states first diverge. At most ``TIMELINE_BAR_BUDGET`` bars in all."""
    traces: list[dict[str, Any]] = []
    marks: dict[str, tuple[float, int]] = {}
    for lane in LANES:
        steps = _lane_steps(rows, lane)
        offsets = step_offsets(steps)
        traces += _bars(lane, steps, offsets, TIMELINE_BAR_BUDGET // 4)
        if divergence is not None:
            for s, o in zip(steps, offsets, strict=True):
                if s["row"] == divergence["row"]:
                    end = o + (0 if divergence["at"] == "before" else max(s["duration_ms"], 1))
                    marks[lane] = (round(end, 1), s["row"])
    if marks:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "divergence",
                "y": [f"run {lane}" for lane in marks],
                "x": [x for x, _ in marks.values()],
                "customdata": [row for _, row in marks.values()],
                "hovertext": ["states diverge here"] * len(marks),
                "hoverinfo": "text",
                "marker": {"symbol": "diamond", "size": 14, "color": DIVERGENCE_COLOR},
            }
        )
    return {
        "data": traces,
        "layout": {
            "barmode": "overlay",
            "height": 150,
            "margin": {"l": 60, "r": 16, "t": 8, "b": 36},
            "xaxis": {"title": {"text": "ms since each run's start"}, "zeroline": False},
            "yaxis": {"categoryorder": "array", "categoryarray": ["run b", "run a"]},
            "hovermode": "closest",
            "showlegend": False,
            "plot_bgcolor": palette.TRANSPARENT,
            "paper_bgcolor": palette.TRANSPARENT,
        },
    }
