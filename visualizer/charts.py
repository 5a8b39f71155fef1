"""Plotly figure dicts for the run page, built from a run's steps (Python computes; the
browser only calls ``Plotly.react`` with them). The timeline lives in ``timeline.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .timeline import FAIL_COLOR, escape, timeline_figure

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
