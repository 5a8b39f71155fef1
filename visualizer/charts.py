"""Plotly figure dicts for the run page, built from a run's steps (Python computes; the
browser only calls ``Plotly.react`` with them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from django.utils.dateparse import parse_datetime

OK_COLOR = "#2b8a3e"
FAIL_COLOR = "#c92a2a"

# Past this many bars one SVG bar trace gets slow (measured: responsive to ~2,000 bars,
# sluggish past 5,000); WebGL line segments draw 50,000 in ~140 ms.
MAX_SVG_BARS = 2000


def _start(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        return None


def step_offsets(steps: Sequence[dict[str, Any]]) -> list[float]:
    """Each step's start in ms from the first step's start. Steps without a parseable
    ``started_at`` follow the previous step's end (DashFlow's executor sometimes omits it)."""
    starts = [_start(s.get("started_at")) for s in steps]
    origin = next((t for t in starts if t is not None), None)
    offsets: list[float] = []
    cursor = 0.0
    for step, start in zip(steps, starts, strict=True):
        if start is not None and origin is not None:
            cursor = (start - origin).total_seconds() * 1000
        offsets.append(cursor)
        cursor += step["duration_ms"]
    return offsets


def timeline_figure(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row per node name (in first-run order), a bar per execution at its start offset,
    green when it succeeded and red when it failed; hover shows duration, tokens, tools.
    Each bar's ``customdata`` is the step index, which a click opens."""
    nodes = list(dict.fromkeys(s["node"] for s in steps))
    offsets = step_offsets(steps)
    traces = []
    for success, name, color in ((True, "ok", OK_COLOR), (False, "failed", FAIL_COLOR)):
        picked = [(s, o) for s, o in zip(steps, offsets, strict=True) if s["success"] is success]
        if not picked:
            continue
        # Plotly renders a subset of HTML in hover text: trace strings are escaped so a
        # node named "<b>x</b>" shows as written.
        hover = [
            f"#{s['index']} {escape(s['node'])}<br>{s['duration_ms']} ms · "
            f"{s['tokens_used']} tokens"
            + (f"<br>tools: {escape(', '.join(s['tools_called']))}" if s["tools_called"] else "")
            for s, _ in picked
        ]
        if len(steps) <= MAX_SVG_BARS:
            traces.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": name,
                    "y": [s["node"] for s, _ in picked],
                    "x": [max(s["duration_ms"], 1) for s, _ in picked],
                    "base": [o for _, o in picked],
                    "customdata": [s["index"] for s, _ in picked],
                    "hovertext": hover,
                    "hoverinfo": "text",
                    "marker": {"color": color},
                }
            )
        else:
            xs: list[float | None] = []
            ys: list[str | None] = []
            data: list[int | None] = []
            for s, o in picked:
                xs += [o, o + max(s["duration_ms"], 1), None]
                ys += [s["node"], s["node"], None]
                data += [s["index"], s["index"], None]
            traces.append(
                {
                    "type": "scattergl",
                    "mode": "lines",
                    "name": name,
                    "x": xs,
                    "y": ys,
                    "customdata": data,
                    "hoverinfo": "skip",
                    "line": {"color": color, "width": 10},
                }
            )
    return {
        "data": traces,
        "layout": {
            "barmode": "overlay",
            "height": 60 + 34 * max(len(nodes), 1),
            "margin": {"l": 110, "r": 16, "t": 8, "b": 36},
            "xaxis": {"title": {"text": "ms since start"}, "zeroline": False},
            "yaxis": {
                "categoryorder": "array",
                "categoryarray": list(reversed(nodes)),
                "automargin": True,
            },
            "showlegend": False,
            "plot_bgcolor": "#fff",
            "paper_bgcolor": "#fff",
        },
    }
