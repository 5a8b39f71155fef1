"""The run page's timeline figure: one row per node, a bar per execution (or, for long
runs, per node and slice of time), built from a run's steps. Python computes; the browser
only calls ``Plotly.react`` with it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape as html_escape
from typing import Any

from django.utils.dateparse import parse_datetime

from . import palette

OK_COLOR = palette.OK
FAIL_COLOR = palette.FAIL
RUNNING_COLOR = palette.RUNNING

# Past this many executions in view the timeline aggregates them (see timeline_figure):
# Plotly draws each SVG bar (~0.3 ms apiece here, on a busy 2-core machine), and WebGL
# needs a GPU that headless and many laptops' browsers emulate in software.
MAX_TIMELINE_BARS = 400
TIMELINE_BAR_BUDGET = 300


def escape(text: str) -> str:
    """Trace text for Plotly labels and hover text, which Plotly renders as a subset of
    HTML: ``<`` and ``&`` are escaped so no tag is ever formed. Quotes are left alone:
    outside a tag they are harmless, and Plotly does not decode ``&quot;`` back."""
    return html_escape(text, quote=False)


def _start(text: str | None) -> datetime | None:
    if not text:
        return None
    # fromisoformat (C, ~20x faster than Django's regex parser) reads DashFlow's
    # RFC 3339 form; anything else falls back to the lenient parser.
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
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


def _bars(name: str, color: str, bars: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "orientation": "h",
        "name": name,
        "y": [b["y"] for b in bars],
        "x": [b["x"] for b in bars],
        "base": [b["base"] for b in bars],
        "customdata": [b["index"] for b in bars],
        "hovertext": [b["hover"] for b in bars],
        "hoverinfo": "text",
        "marker": {"color": color},
    }


def _execution_bars(
    picked: Sequence[tuple[dict[str, Any], float]], label: dict[str, str]
) -> list[dict[str, Any]]:
    """One bar per execution."""
    return [
        {
            "y": label[s["node"]],
            "x": max(s["duration_ms"], 1),
            "base": round(o, 1),
            "index": s["index"],
            # Plotly renders a subset of HTML in hover text: trace strings are escaped so
            # a node named "<b>x</b>" shows as written.
            "hover": f"#{s['index']} {label[s['node']]}<br>{s['duration_ms']} ms · "
            f"{s['tokens_used']} tokens"
            + (f"<br>tools: {escape(', '.join(s['tools_called']))}" if s["tools_called"] else ""),
        }
        for s, o in picked
    ]


def _bucket_bars(
    picked: Sequence[tuple[dict[str, Any], float]],
    label: dict[str, str],
    lo: float,
    width: float,
    buckets: int,
) -> list[dict[str, Any]]:
    """Executions of one outcome grouped per node and per slice of the time axis: one bar
    from the first start to the last end in the slice, opening its first execution."""
    # One pass, each group's figures folded in place ([start, end, first, last, count,
    # ms, tokens]) rather than listing each group's members and going over them again.
    groups: dict[tuple[str, int], list[Any]] = {}
    for s, o in picked:
        slot = min(max(int((o - lo) / width), 0), buckets - 1)
        ms = s["duration_ms"]
        end = o + (ms if ms > 1 else 1)
        group = groups.get((s["node"], slot))
        if group is None:
            groups[(s["node"], slot)] = [o, end, s["index"], s["index"], 1, ms, s["tokens_used"]]
            continue
        if o < group[0]:
            group[0] = o
        if end > group[1]:
            group[1] = end
        group[3] = s["index"]
        group[4] += 1
        group[5] += ms
        group[6] += s["tokens_used"]
    return [
        {
            "y": label[node],
            "x": round(end - start, 1),
            "base": round(start, 1),
            "index": first,
            "hover": f"{label[node]} \u00d7{count} · #{first}\u2013#{last}<br>"
            f"{ms:,} ms · {tokens:,} tokens<br>zoom in to see each execution",
        }
        for (node, _), (start, end, first, last, count, ms, tokens) in groups.items()
    ]


def timeline_figure(
    steps: Sequence[dict[str, Any]],
    running: Sequence[dict[str, Any]] = (),
    window: tuple[float, float] | None = None,
    offsets: Sequence[float] | None = None,
) -> dict[str, Any]:
    """One row per node name (in first-run order), a bar per execution at its start offset,
    green when it succeeded and red when it failed; hover shows duration, tokens, tools.
    Each bar's ``customdata`` is the step index, which a click opens.

    Past ``MAX_TIMELINE_BARS`` executions (an SVG bar costs ~0.3 ms to draw and every one
    is drawn, in view or not), bars are aggregated: per node, executions are grouped into
    slices of the time axis (at most ``TIMELINE_BAR_BUDGET`` bars in all), failures apart
    from successes so a red bar still marks every failure. ``window`` (ms from the start)
    keeps only the executions that overlap it and lays the axis over it: the page asks for
    the window it zooms into, so zooming in reaches single executions.

    ``running`` lists nodes that started and have not finished (``node``, ``index``,
    ``started_at``, ``elapsed_ms``): each gets a bar in a trace named ``running``, as wide
    as it has run so far, which the page widens as time passes until the node finishes.

    ``window`` in the result says what was drawn: ``from``/``to`` (ms), ``executions`` in
    view, and ``aggregated``. ``offsets`` are the steps' ``step_offsets`` when the caller
    has them already (the run page lists them too)."""
    nodes = list(dict.fromkeys([*(s["node"] for s in steps), *(r["node"] for r in running)]))
    if offsets is None:
        offsets = step_offsets(steps)
    # Row labels are rendered as Plotly's HTML subset: escaped (once per name).
    label = {n: escape(n) for n in nodes}
    placed = list(zip(steps, offsets, strict=True))
    end = max((o + max(s["duration_ms"], 1) for s, o in placed), default=0.0)
    lo, hi = window if window else (0.0, end)
    if window:
        placed = [(s, o) for s, o in placed if o + max(s["duration_ms"], 1) >= lo and o <= hi]
    aggregated = len(placed) > MAX_TIMELINE_BARS
    buckets = max(10, TIMELINE_BAR_BUDGET // max(len(nodes), 1))
    width = max(hi - lo, 1.0) / buckets
    traces = []
    # Both outcomes in one pass over a long run's steps.
    by_outcome: dict[bool, list[tuple[dict[str, Any], float]]] = {True: [], False: []}
    for pair in placed:
        by_outcome[pair[0]["success"] is True].append(pair)
    for success, name, color in ((True, "ok", OK_COLOR), (False, "failed", FAIL_COLOR)):
        picked = by_outcome[success]
        if not picked:
            continue
        bars = (
            _bucket_bars(picked, label, lo, width, buckets)
            if aggregated
            else _execution_bars(picked, label)
        )
        traces.append(_bars(name, color, bars))
    if running:
        origin = next((t for t in map(_start, (s.get("started_at") for s in steps)) if t), None)
        bases = []
        for r in running:
            began = _start(r.get("started_at"))
            if began is not None and origin is not None:
                bases.append(round((began - origin).total_seconds() * 1000, 1))
            else:
                bases.append(round(end, 1))
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": "running",
                "y": [label[r["node"]] for r in running],
                "x": [max(r.get("elapsed_ms") or 0, 1) for r in running],
                "base": bases,
                "customdata": [r["index"] for r in running],
                "hovertext": [f"#{r['index']} {label[r['node']]}<br>running" for r in running],
                "hoverinfo": "text",
                "marker": {"color": RUNNING_COLOR},
            }
        )
    return {
        "data": traces,
        "layout": {
            "barmode": "overlay",
            "height": 60 + 34 * max(len(nodes), 1),
            "margin": {"l": 110, "r": 16, "t": 8, "b": 36},
            "xaxis": {
                "title": {"text": "ms since start"},
                "zeroline": False,
                # The whole run autoranges: drawn after a window, it must not keep the
                # window's range (a double-click would then need a second one).
                **({"range": [lo, hi]} if window else {"autorange": True}),
            },
            "yaxis": {
                "categoryorder": "array",
                "categoryarray": [label[n] for n in reversed(nodes)],
                "automargin": True,
            },
            "hovermode": "closest",
            "showlegend": False,
            "plot_bgcolor": palette.TRANSPARENT,
            "paper_bgcolor": palette.TRANSPARENT,
        },
        "window": {
            "from": round(lo, 1),
            "to": round(hi, 1),
            "executions": len(placed),
            "aggregated": aggregated,
        },
    }
