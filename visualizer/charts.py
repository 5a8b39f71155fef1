"""Plotly figure dicts for the run page, built from a run's steps (Python computes; the
browser only calls ``Plotly.react`` with them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape as html_escape
from typing import Any

from django.utils.dateparse import parse_datetime

OK_COLOR = "#2b8a3e"
FAIL_COLOR = "#c92a2a"
RUNNING_COLOR = "#f59f00"

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
    groups: dict[tuple[str, int], list[tuple[dict[str, Any], float]]] = {}
    for s, o in picked:
        slot = min(max(int((o - lo) / width), 0), buckets - 1)
        groups.setdefault((s["node"], slot), []).append((s, o))
    bars = []
    for (node, _), members in groups.items():
        start = min(o for _, o in members)
        end = max(o + max(s["duration_ms"], 1) for s, o in members)
        first, last = members[0][0]["index"], members[-1][0]["index"]
        ms = sum(s["duration_ms"] for s, _ in members)
        tokens = sum(s["tokens_used"] for s, _ in members)
        bars.append(
            {
                "y": label[node],
                "x": round(end - start, 1),
                "base": round(start, 1),
                "index": first,
                "hover": f"{label[node]} \u00d7{len(members)} · #{first}\u2013#{last}<br>"
                f"{ms:,} ms · {tokens:,} tokens<br>zoom in to see each execution",
            }
        )
    return bars


def timeline_figure(
    steps: Sequence[dict[str, Any]],
    running: Sequence[dict[str, Any]] = (),
    window: tuple[float, float] | None = None,
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
    view, and ``aggregated``."""
    nodes = list(dict.fromkeys([*(s["node"] for s in steps), *(r["node"] for r in running)]))
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
    for success, name, color in ((True, "ok", OK_COLOR), (False, "failed", FAIL_COLOR)):
        picked = [(s, o) for s, o in placed if s["success"] is success]
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
                **({"range": [lo, hi]} if window else {}),
            },
            "yaxis": {
                "categoryorder": "array",
                "categoryarray": [label[n] for n in reversed(nodes)],
                "automargin": True,
            },
            "hovermode": "closest",
            "showlegend": False,
            "plot_bgcolor": "#fff",
            "paper_bgcolor": "#fff",
        },
        "window": {
            "from": round(lo, 1),
            "to": round(hi, 1),
            "executions": len(placed),
            "aggregated": aggregated,
        },
    }


TIME_COLOR = "#4263eb"
TOKEN_COLOR = "#f08c00"
NODE_FILL = "#e7f5ff"
NODE_LINE = "#1c7ed6"
EDGE_COLOR = "#868e96"


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def breakdown_figure(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per node (first-run order, top to bottom): total time and total tokens summed over
    its visits, as two horizontal bar charts side by side sharing the node axis. Each bar
    is labelled with its share of the run total, which hover repeats with the visit count."""
    durations: dict[str, float] = {}
    tokens: dict[str, int] = {}
    visits: dict[str, int] = {}
    for s in steps:
        node = s["node"]
        durations[node] = durations.get(node, 0) + s["duration_ms"]
        tokens[node] = tokens.get(node, 0) + s["tokens_used"]
        visits[node] = visits.get(node, 0) + 1
    nodes = list(visits)
    total_ms = sum(durations.values())
    total_tokens = sum(tokens.values())
    # Categories are escaped because Plotly renders a subset of HTML in tick labels and
    # hover text; it decodes the entities again, so the label reads as the raw name.
    labels = [escape(n) for n in nodes]

    def bars(values: dict[str, Any], total: float, unit: str, color: str, axis: str) -> Any:
        shares = [_percent(values[n], total) for n in nodes]
        return {
            "type": "bar",
            "orientation": "h",
            "name": unit,
            "y": labels,
            "x": [values[n] for n in nodes],
            "xaxis": axis,
            "yaxis": "y",
            "text": shares,
            "textposition": "outside",
            "cliponaxis": False,
            "hovertext": [
                f"{label}<br>{values[n]:,} {unit} · {share} of the run<br>"
                f"{visits[n]} visit{'s' if visits[n] != 1 else ''}"
                for n, label, share in zip(nodes, labels, shares, strict=True)
            ],
            "hoverinfo": "text",
            "marker": {"color": color},
        }

    def axis(domain: list[float], title: str) -> dict[str, Any]:
        return {
            "domain": domain,
            "title": {"text": title, "font": {"size": 12}},
            "rangemode": "tozero",
            "automargin": True,
            "zeroline": False,
            "gridcolor": "#eef0f3",
            "fixedrange": True,
        }

    x1 = axis([0, 0.46], f"time · {total_ms:,} ms total")
    x2 = axis([0.54, 1], f"tokens · {total_tokens:,} total")
    # Plotly does not reserve room for outside text labels: widen each axis by a quarter.
    x1["range"] = [0, 1.25 * max(durations.values(), default=0) or 1]
    x2["range"] = [0, 1.25 * max(tokens.values(), default=0) or 1]
    return {
        "data": [
            bars(durations, total_ms, "ms", TIME_COLOR, "x"),
            bars(tokens, total_tokens, "tokens", TOKEN_COLOR, "x2"),
        ],
        "layout": {
            "height": 80 + 30 * max(len(nodes), 1),
            "margin": {"l": 10, "r": 16, "t": 8, "b": 44},
            "xaxis": x1,
            "xaxis2": x2,
            "yaxis": {
                "categoryorder": "array",
                "categoryarray": list(reversed(labels)),
                "automargin": True,
                "fixedrange": True,
            },
            "bargap": 0.3,
            "showlegend": False,
            "plot_bgcolor": "#fff",
            "paper_bgcolor": "#fff",
            "font": {"size": 12},
        },
    }


def _quad(
    p0: tuple[float, float], c: tuple[float, float], p1: tuple[float, float], t: float
) -> tuple[float, float]:
    """The point at ``t`` on the quadratic Bézier curve from p0 to p1 bent towards c."""
    u = 1 - t
    return (
        u * u * p0[0] + 2 * u * t * c[0] + t * t * p1[0],
        u * u * p0[1] + 2 * u * t * c[1] + t * t * p1[1],
    )


def graph_figure(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The nodes and the transitions between them, from execution order: an edge a→b is
    counted each time b directly follows a. Nodes sit on a line in first-run order, sized
    by visit count, outlined red if any visit failed, labelled with name and visit count.
    Edges to the next node are straight; edges that skip ahead arc above, back-edges
    (loops) arc below, and self-loops hang under their node; each carries its count at
    its midpoint. The ``transitions`` trace's ``customdata`` is ``[from, to, count]``."""
    visits: dict[str, int] = {}
    failed: dict[str, int] = {}
    ms: dict[str, float] = {}
    edges: dict[tuple[str, str], int] = {}
    previous: str | None = None
    for s in steps:
        node = s["node"]
        visits[node] = visits.get(node, 0) + 1
        failed[node] = failed.get(node, 0) + (0 if s["success"] else 1)
        ms[node] = ms.get(node, 0) + s["duration_ms"]
        if previous is not None:
            edges[previous, node] = edges.get((previous, node), 0) + 1
        previous = node
    nodes = list(visits)
    at = {n: i for i, n in enumerate(nodes)}
    most_visits = max(visits.values(), default=1)
    sizes = {n: 16 + 24 * (visits[n] / most_visits) ** 0.5 for n in nodes}
    most_edges = max(edges.values(), default=1)

    # Vertical extent in data units: room for the labels above the line, and for the
    # deepest arc or self-loop; the height follows so that one unit is always as tall.
    # Past five nodes, neighbouring labels would touch: every other one sits higher.
    stagger = len(nodes) > 5
    top, bottom = (0.75 if stagger else 0.5), -0.3
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    mid_x: list[float] = []
    mid_y: list[float] = []
    edge_data: list[list[Any]] = []
    edge_hover: list[str] = []
    for (a, b), count in edges.items():
        i, j = at[a], at[b]
        width = 1.2 + 2.8 * count / most_edges
        p0, p1 = (float(i), 0.0), (float(j), 0.0)
        if i == j:
            # A self-loop: a teardrop under the node.
            path = f"M {i - 0.06},-0.05 C {i - 0.35},-0.7 {i + 0.35},-0.7 {i + 0.06},-0.05"
            mid, tail, head = (float(i), -0.53), (i + 0.15, -0.25), (i + 0.06, -0.05)
            bottom = min(bottom, -0.65)
        elif j == i + 1:
            path = f"M {i},0 L {j},0"
            mid, tail, head = ((i + j) / 2, 0.0), (j - 0.35, 0.0), p1
        else:
            # Forward skips arc above, back-edges below, higher the farther they reach
            # so that nested loops stay apart; the control point sits at twice the apex.
            span = abs(j - i)
            # Forward arcs start above the labels.
            lift = (0.85 if stagger else 0.6) if j > i else 0.35
            apex = min(lift + 0.17 * (span - 2 if j > i else span - 1), lift + 0.6)
            apex *= 1 if j > i else -1
            c = ((i + j) / 2, 2 * apex)
            path = f"M {i},0 Q {c[0]},{c[1]} {j},0"
            top, bottom = max(top, apex + 0.15), min(bottom, apex - 0.15)
            mid, tail, head = _quad(p0, c, p1, 0.5), _quad(p0, c, p1, 0.8), p1
        shapes.append(
            {
                "type": "path",
                "path": path,
                "layer": "below",
                "line": {"color": EDGE_COLOR, "width": width},
            }
        )
        # The arrowhead stops at the target marker's rim (standoff is in pixels).
        annotations.append(
            {
                "x": head[0],
                "y": head[1],
                "ax": tail[0],
                "ay": tail[1],
                "xref": "x",
                "yref": "y",
                "axref": "x",
                "ayref": "y",
                "text": "",
                "showarrow": True,
                "arrowhead": 2,
                "arrowsize": 1.1,
                "arrowwidth": 1.5,
                "arrowcolor": EDGE_COLOR,
                "standoff": max(sizes[b] / 2 - 8, 0) if i == j else sizes[b] / 2 + 1,
            }
        )
        annotations.append(
            {
                "x": mid[0],
                "y": mid[1],
                "xref": "x",
                "yref": "y",
                "text": str(count),
                "showarrow": False,
                "bgcolor": "#fff",
                "borderpad": 1,
                "font": {"size": 11, "color": "#495057"},
            }
        )
        mid_x.append(mid[0])
        mid_y.append(mid[1])
        edge_data.append([a, b, count])
        times = f"{count} time{'s' if count != 1 else ''}"
        edge_hover.append(f"{escape(a)} → {escape(b)}<br>{times}")

    labels = [f"{escape(n)} \u00d7{visits[n]}" for n in nodes]
    # Labels are annotations rather than marker text: a pixel offset clears the marker
    # whatever its size, and a white background keeps them readable over arcs.
    for n, label in zip(nodes, labels, strict=True):
        raised = stagger and at[n] % 2 == 1
        annotations.append(
            {
                "x": float(at[n]),
                "y": 0,
                "xref": "x",
                "yref": "y",
                "text": label,
                "showarrow": False,
                "yanchor": "bottom",
                "yshift": sizes[n] / 2 + (20 if raised else 3),
                "bgcolor": "rgba(255,255,255,0.85)",
                "font": {"size": 12, "color": "#212529"},
            }
        )
    node_trace = {
        "type": "scatter",
        "mode": "markers",
        "name": "nodes",
        "x": [float(at[n]) for n in nodes],
        "y": [0.0] * len(nodes),
        "customdata": nodes,
        "hovertext": [
            f"{label}<br>{ms[n]:,} ms" + (f"<br>{failed[n]} failed" if failed[n] else "")
            for n, label in zip(nodes, labels, strict=True)
        ],
        "hoverinfo": "text",
        "marker": {
            "size": [sizes[n] for n in nodes],
            # Plotly fades sized markers to 0.7 by default, which shows the edges through.
            "opacity": 1,
            "color": NODE_FILL,
            "line": {
                "color": [FAIL_COLOR if failed[n] else NODE_LINE for n in nodes],
                "width": [3 if failed[n] else 1.5 for n in nodes],
            },
        },
    }
    edge_trace = {
        "type": "scatter",
        "mode": "markers",
        "name": "transitions",
        "x": mid_x,
        "y": mid_y,
        "customdata": edge_data,
        "hovertext": edge_hover,
        "hoverinfo": "text",
        # Invisible: only a hover target; the count is drawn by an annotation.
        "marker": {"size": 14, "opacity": 0},
    }
    hidden = {"visible": False, "fixedrange": True}
    return {
        "data": [edge_trace, node_trace],
        "layout": {
            "height": max(200, round(130 * (top - bottom)) + 20),
            "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
            "xaxis": {**hidden, "range": [-0.6, max(len(nodes), 1) - 0.4]},
            "yaxis": {**hidden, "range": [bottom, top]},
            "shapes": shapes,
            "annotations": annotations,
            "showlegend": False,
            "hovermode": "closest",
            "plot_bgcolor": "#fff",
            "paper_bgcolor": "#fff",
        },
    }


def run_figures(
    steps: Sequence[dict[str, Any]], running: Sequence[dict[str, Any]] = ()
) -> dict[str, dict[str, Any]]:
    """Every figure on the run page, for the first render and for each live refetch."""
    return {
        "timeline": timeline_figure(steps, running),
        "breakdown": breakdown_figure(steps),
        "graph": graph_figure(steps),
    }
