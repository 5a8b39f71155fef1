"""Figures for the project dashboard, from the aggregates of ``traces/dashboard.py``.

Pure functions: the aggregates, the window and the run list's URL in, Plotly figure dicts
out. Every point carries, as its ``customdata``, the link to the runs behind it: the run
list with its own filters (the window's exact times, the graph, and ``status=failed`` or
``node=<node>``); the page's script follows it on a click. The committed Plotly build has
bar and scatter traces only, so percentiles are grouped bars, not box plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from traces.dashboard import STEP, Bucket, NodeChange, NodeLatency, NodeLoops, Tokens, Window

from .timeline import escape

OK_COLOR = "#4c6ef5"
FAIL_COLOR = "#c92a2a"
RATE_COLOR = "#e67700"
PERCENTILE_COLORS = {"p50": "#91a7ff", "p95": "#4c6ef5", "p99": "#364fc7"}
TOKEN_COLOR = "#2b8a3e"
LOOP_COLOR = "#862e9c"
# Bars past this many nodes (graphs) make labels unreadable; the table of slower nodes
# lists all.
TOP = 15


def runs_link(runs_url: str, params: dict[str, str]) -> str:
    """The run list filtered by ``params``."""
    return f"{runs_url}?{urlencode(params)}"


def _layout(y_title: str, empty: bool, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": 260,
        "margin": {"l": 56, "r": 16, "t": 12, "b": 64},
        "xaxis": {"gridcolor": "#eef0f3", "fixedrange": True, "automargin": True},
        "yaxis": {
            "title": {"text": y_title, "font": {"size": 12}},
            "rangemode": "tozero",
            "gridcolor": "#eef0f3",
            "fixedrange": True,
        },
        "showlegend": False,
        "plot_bgcolor": "#fff",
        "paper_bgcolor": "#fff",
        "font": {"size": 12},
        "hovermode": "closest",
        **extra,
    }
    if empty:
        # No made-up axis (-1 to 6) under the message; a time axis still shows the range.
        if layout["xaxis"].get("type") != "date":
            layout["xaxis"] = {"visible": False, "fixedrange": True}
            layout["yaxis"] = {"visible": False, "fixedrange": True}
        layout["annotations"] = [
            {
                "text": "Nothing in this range",
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "showarrow": False,
                "font": {"color": "#868e96", "size": 14},
            }
        ]
    return layout


def runs_figure(buckets: Sequence[Bucket], window: Window, runs_url: str) -> dict[str, Any]:
    """Runs per hour or day, stacked: the others and the failed ones; the failure rate
    as a line on the right axis. A bar links to its runs, a failed bar or a rate point to
    its failed runs."""
    unit = window.unit
    label = "%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d"
    x = [(b.start + STEP[unit] / 2).isoformat() for b in buckets]
    width = STEP[unit].total_seconds() * 1000 * 0.85
    links = [runs_link(runs_url, window.params(b.start, b.start + STEP[unit])) for b in buckets]
    failed_links = [
        runs_link(runs_url, {**window.params(b.start, b.start + STEP[unit]), "status": "failed"})
        for b in buckets
    ]
    rates = [
        round(100 * b.failure_rate, 1) if b.failure_rate is not None else None for b in buckets
    ]
    return {
        "data": [
            {
                "type": "bar",
                "name": "other runs",
                "x": x,
                "y": [b.runs - b.failed for b in buckets],
                "width": width,
                "customdata": links,
                "hovertext": [f"{b.start.strftime(label)}: {b.runs} runs" for b in buckets],
                "hoverinfo": "text",
                "marker": {"color": OK_COLOR},
            },
            {
                "type": "bar",
                "name": "failed runs",
                "x": x,
                "y": [b.failed for b in buckets],
                "width": width,
                "customdata": failed_links,
                "hovertext": [f"{b.start.strftime(label)}: {b.failed} failed" for b in buckets],
                "hoverinfo": "text",
                "marker": {"color": FAIL_COLOR},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "failure rate",
                "x": x,
                "y": rates,
                "yaxis": "y2",
                "customdata": failed_links,
                "hovertext": [
                    f"{b.start.strftime(label)}: {r}% failed" if r is not None else ""
                    for b, r in zip(buckets, rates, strict=True)
                ],
                "hoverinfo": "text",
                "line": {"color": RATE_COLOR, "width": 2},
                "marker": {"color": RATE_COLOR, "size": 6},
            },
        ],
        "layout": _layout(
            f"runs per {unit}",
            not any(b.runs for b in buckets),
            barmode="stack",
            bargap=0.1,
            xaxis={"type": "date", "gridcolor": "#eef0f3", "fixedrange": True},
            yaxis2={
                "title": {"text": "failure rate", "font": {"size": 12}},
                "overlaying": "y",
                "side": "right",
                "range": [0, 100],
                "tickvals": [0, 25, 50, 75, 100],
                "ticksuffix": "%",
                "showgrid": False,
                "fixedrange": True,
            },
            margin={"l": 56, "r": 56, "t": 12, "b": 40},
        ),
    }


def _node_link(runs_url: str, window: Window, node: str) -> str:
    return runs_link(runs_url, {**window.params(), "node": node})


def latency_figure(nodes: Sequence[NodeLatency], window: Window, runs_url: str) -> dict[str, Any]:
    """p50, p95 and p99 of each node's durations as grouped bars, the slowest p95 first
    (the ``TOP`` slowest); a bar links to the runs that ran the node. A value merged from
    the daily rollups says so, and its bound (``traces/rollups.py``)."""
    shown = list(nodes[:TOP])
    names = [n.node for n in shown]
    links = [_node_link(runs_url, window, n) for n in names]
    data = [
        {
            "type": "bar",
            "name": name,
            "x": [escape(n) for n in names],
            "y": [round(getattr(n, name), 1) for n in shown],
            "customdata": links,
            "hovertext": [
                f"{escape(n.node)} {name}: {'' if n.exact else '≈ '}{getattr(n, name):,.0f} ms"
                f" ({n.steps:,} steps{'' if n.exact else '; from daily buckets, within 2%'})"
                for n in shown
            ],
            "hoverinfo": "text",
            "marker": {"color": color},
        }
        for name, color in PERCENTILE_COLORS.items()
    ]
    return {
        "data": data,
        "layout": _layout(
            "duration (ms)",
            not shown,
            barmode="group",
            showlegend=True,
            legend={"orientation": "h", "y": 1.12, "x": 0},
            margin={"l": 56, "r": 16, "t": 28, "b": 64},
        ),
    }


def tokens_figure(
    totals: Sequence[Tokens], window: Window, runs_url: str, by: str
) -> dict[str, Any]:
    """Tokens per node (``by="node"``) or per graph (``by="graph_name"``), the most
    expensive first; a bar links to the runs behind it."""
    shown = list(totals[:TOP])
    unit = "step" if by == "node" else "run"
    return {
        "data": [
            {
                "type": "bar",
                "name": "tokens",
                "x": [escape(t.name) or "(no graph)" for t in shown],
                "y": [t.tokens for t in shown],
                "customdata": [
                    runs_link(runs_url, {**window.params(), by: t.name})
                    if t.name
                    else runs_link(runs_url, window.params())
                    for t in shown
                ],
                "hovertext": [
                    f"{escape(t.name) or '(no graph)'}: {t.tokens:,} tokens, "
                    f"{t.tokens / t.count if t.count else 0:,.0f} per {unit} ({t.count:,} {unit}s)"
                    for t in shown
                ],
                "hoverinfo": "text",
                "marker": {"color": TOKEN_COLOR},
            }
        ],
        "layout": _layout("tokens", not shown),
    }


def loops_figure(loops: Sequence[NodeLoops], window: Window, runs_url: str) -> dict[str, Any]:
    """Loop steps per node (re-runs that left the state unchanged), most first; a bar
    links to the runs that ran the node."""
    shown = list(loops[:TOP])
    return {
        "data": [
            {
                "type": "bar",
                "name": "loop steps",
                "x": [escape(n.node) for n in shown],
                "y": [n.steps for n in shown],
                "customdata": [_node_link(runs_url, window, n.node) for n in shown],
                "hovertext": [
                    f"{escape(n.node)}: {n.steps:,} re-runs without a state change"
                    f" in {n.runs:,} runs"
                    for n in shown
                ],
                "hoverinfo": "text",
                "marker": {"color": LOOP_COLOR},
            }
        ],
        "layout": _layout("loop steps", not shown),
    }


def slower_rows(
    changes: Sequence[NodeChange], window: Window, runs_url: str
) -> list[dict[str, Any]]:
    """The table of nodes by how much their p95 rose against the window before."""
    return [
        {
            "node": c.node,
            "p95_before": round(c.p95_before, 1),
            "p95": round(c.p95, 1),
            "change_ms": round(c.change_ms, 1),
            "change_pct": round(100 * c.change_ratio, 1) if c.change_ratio is not None else None,
            "steps": c.steps,
            "steps_before": c.steps_before,
            "url": _node_link(runs_url, window, c.node),
        }
        for c in changes
    ]
