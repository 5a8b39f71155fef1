"""The run page's graph figure: the transitions a run took between its nodes and, when the
run declares its graph (``traces/graph_schema.py``), the declared nodes and edges with
what the run did on them. A pure function of the steps and the schema reading."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from traces.graph_schema import END, START, GraphSchema, SchemaReading

from . import palette
from .timeline import FAIL_COLOR, escape

NODE_FILL = palette.NODE_FILL
NODE_LINE = palette.NODE_LINE
EDGE_COLOR = palette.EDGE
# Declared but never visited or taken: drawn, but faint.
UNUSED_FILL = palette.UNUSED_FILL
UNUSED_LINE = palette.UNUSED_LINE
UNUSED_TEXT = palette.UNUSED_TEXT
# What the run did that the schema does not declare.
WARN_COLOR = palette.WARN
TERMINAL_COLOR = palette.TERMINAL


@dataclass
class _Edge:
    source: str
    target: str
    count: int
    # "taken": observed (and declared, when there is a schema); "unused": declared, never
    # taken; "undeclared": observed, not in the schema.
    kind: str = "taken"
    note: str = ""


def _quad(
    p0: tuple[float, float], c: tuple[float, float], p1: tuple[float, float], t: float
) -> tuple[float, float]:
    """The point at ``t`` on the quadratic Bézier curve from p0 to p1 bent towards c."""
    u = 1 - t
    return (
        u * u * p0[0] + 2 * u * t * c[0] + t * t * p1[0],
        u * u * p0[1] + 2 * u * t * c[1] + t * t * p1[1],
    )


def _times(count: int) -> str:
    return f"{count} time{'s' if count != 1 else ''}"


def _order(schema: GraphSchema, visited: list[str]) -> list[str]:
    """Left to right: ``__start__``, then nodes by first visit; a node never visited sits
    just after its earliest placed predecessor (else at the end), ``__end__`` last."""
    key: dict[str, float] = {n: i for i, n in enumerate(visited)}
    key[START] = -1
    pending = [n for n in schema.nodes if n not in key and n != END]
    while pending:
        placed = False
        for node in list(pending):
            before = [key[e.source] for e in schema.edges if e.target == node and e.source in key]
            if before:
                key[node] = min(before) + 0.5
                pending.remove(node)
                placed = True
        if not placed:
            for node in pending:
                key[node] = len(visited)
            break
    key[END] = len(visited) + 1
    declared = {n: i for i, n in enumerate(schema.nodes)}
    every = dict.fromkeys([*schema.nodes, *visited])
    return sorted(every, key=lambda n: (key[n], declared.get(n, len(declared))))


def graph_figure(
    steps: Sequence[dict[str, Any]], declared: SchemaReading | None = None
) -> dict[str, Any]:
    """The nodes and the transitions between them, from execution order: an edge a→b is
    counted each time b directly follows a. Nodes sit on a line in first-run order, sized
    by visit count, outlined red if any visit failed, labelled with name and visit count.
    Edges to the next node are straight; edges that skip ahead arc above, back-edges
    (loops) arc below, and self-loops hang under their node; each carries its count at
    its midpoint. The ``transitions`` trace's ``customdata`` is ``[from, to, count]``.

    With a declared schema, its nodes and edges are drawn instead: a node never visited
    is faint and labelled so, an edge never taken is dotted with count 0, and a visit or
    transition the schema does not declare is drawn in a warning colour (trace and legend
    entry "not in the schema"; its edges are the ``off-schema transitions`` trace). The
    run's first step is a transition from ``__start__`` when the schema has one; its last,
    when it succeeded, one to ``__end__`` along a declared edge. A schema that could not be
    read falls back to the observed graph, and the figure's title says why."""
    visits: dict[str, int] = {}
    failed: dict[str, int] = {}
    ms: dict[str, float] = {}
    observed: dict[tuple[str, str], int] = {}
    previous: str | None = None
    for s in steps:
        node = s["node"]
        visits[node] = visits.get(node, 0) + 1
        failed[node] = failed.get(node, 0) + (0 if s["success"] else 1)
        ms[node] = ms.get(node, 0) + s["duration_ms"]
        if previous is not None:
            observed[previous, node] = observed.get((previous, node), 0) + 1
        previous = node
    schema = declared.schema if declared else None
    title = None
    if declared and declared.problem:
        title = f"Observed transitions: the declared graph could not be read ({declared.problem})"

    if schema is None:
        nodes = list(visits)
        edges = [_Edge(a, b, count) for (a, b), count in observed.items()]
        kinds = dict.fromkeys(nodes, "visited")
    else:
        nodes = _order(schema, list(visits))
        declared_nodes = set(schema.nodes)
        kinds = {
            n: "terminal"
            if n in (START, END)
            else "visited"
            if n in visits and n in declared_nodes
            else "undeclared"
            if n in visits
            else "unused"
            for n in nodes
        }
        pairs = {(e.source, e.target): e for e in schema.edges}
        if steps and START in declared_nodes:
            observed = {(START, steps[0]["node"]): 1, **observed}
        if steps and steps[-1]["success"] and (steps[-1]["node"], END) in pairs:
            observed[steps[-1]["node"], END] = 1
        edges = []
        for (a, b), e in pairs.items():
            count = observed.get((a, b), 0)
            branch = f" · branch {escape(e.label)}" if e.label else ""
            note = ("conditional" if e.conditional else "declared") + branch
            edges.append(_Edge(a, b, count, "taken" if count else "unused", note))
        edges += [
            _Edge(a, b, count, "undeclared", "not in the schema")
            for (a, b), count in observed.items()
            if (a, b) not in pairs
        ]
        unused = sum(k == "unused" for k in kinds.values())
        off = sum(k == "undeclared" for k in kinds.values()) + sum(
            e.kind == "undeclared" for e in edges
        )
        title = (
            f"Declared graph · {len(visits) - sum(k == 'undeclared' for k in kinds.values())}"
            f" of {len(nodes) - sum(k == 'terminal' for k in kinds.values())} nodes visited"
            f" · {sum(e.kind == 'taken' for e in edges)} of {len(pairs)} edges taken"
            + (f" · {unused} never visited" if unused else "")
            + (f" · {off} not in the schema" if off else "")
        )
    return _draw(nodes, kinds, visits, failed, ms, edges, title, legend=schema is not None)


def _draw(
    nodes: list[str],
    kinds: dict[str, str],
    visits: dict[str, int],
    failed: dict[str, int],
    ms: dict[str, float],
    edges: list[_Edge],
    title: str | None,
    legend: bool,
) -> dict[str, Any]:
    at = {n: i for i, n in enumerate(nodes)}
    most_visits = max(visits.values(), default=1)
    sizes = {
        n: 16 + 24 * (visits[n] / most_visits) ** 0.5
        if n in visits
        else (12 if kinds[n] == "terminal" else 16)
        for n in nodes
    }
    most_edges = max((e.count for e in edges), default=1) or 1

    # Vertical extent in data units: room for the labels above the line, and for the
    # deepest arc or self-loop; the height follows so that one unit is always as tall.
    # Past five nodes, neighbouring labels would touch: every other one sits higher.
    stagger = len(nodes) > 5
    top, bottom = (0.75 if stagger else 0.5), -0.3
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    hover: dict[str, dict[str, list[Any]]] = {}
    for edge in edges:
        a, b, count = edge.source, edge.target, edge.count
        i, j = at[a], at[b]
        width = 1.2 + 2.8 * count / most_edges
        color = {"taken": EDGE_COLOR, "unused": UNUSED_LINE, "undeclared": WARN_COLOR}[edge.kind]
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
        line: dict[str, Any] = {"color": color, "width": width}
        if edge.kind == "unused":
            line["dash"] = "dot"
        shapes.append({"type": "path", "path": path, "layer": "below", "line": line})
        # The arrowhead stops at the target marker's rim (standoff is in pixels).
        annotations.append(
            {
                "x": head[0],
                "y": head[1],
                "xref": "x",
                "yref": "y",
                "axref": "x",
                "ayref": "y",
                "ax": tail[0],
                "ay": tail[1],
                "text": "",
                "showarrow": True,
                "arrowhead": 2,
                "arrowsize": 1.1,
                "arrowwidth": 1.5,
                "arrowcolor": color,
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
                "bgcolor": palette.COUNT_BG,
                "borderpad": 1,
                "font": {
                    "size": 11,
                    "color": _COUNT_TEXT.get(edge.kind, color),
                },
            }
        )
        name = "off-schema transitions" if edge.kind == "undeclared" else "transitions"
        trace = hover.setdefault(name, {"x": [], "y": [], "customdata": [], "hovertext": []})
        trace["x"].append(mid[0])
        trace["y"].append(mid[1])
        trace["customdata"].append([a, b, count])
        note = f"<br>{edge.note}" if edge.note else ""
        times = "never taken" if edge.kind == "unused" else _times(count)
        trace["hovertext"].append(f"{escape(a)} → {escape(b)}<br>{times}{note}")

    # The page and its tests find the edges' hover targets by name, even with no edge.
    hover.setdefault("transitions", {"x": [], "y": [], "customdata": [], "hovertext": []})
    labels = {n: _label(n, kinds[n], visits) for n in nodes}
    # Labels are annotations rather than marker text: a pixel offset clears the marker
    # whatever its size, and a white background keeps them readable over arcs. A raised
    # label clears the largest marker, so that it never sits level with a neighbour's.
    largest = max(sizes.values(), default=16)
    for n in nodes:
        raised = stagger and at[n] % 2 == 1
        annotations.append(
            {
                "x": float(at[n]),
                "y": 0,
                "xref": "x",
                "yref": "y",
                "text": labels[n],
                "showarrow": False,
                "yanchor": "bottom",
                "yshift": (largest / 2 + 20) if raised else sizes[n] / 2 + 3,
                "bgcolor": palette.LABEL_BG,
                "font": {"size": 12, "color": _TEXT[kinds[n]]},
            }
        )
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": name,
            **trace,
            "hoverinfo": "text",
            "showlegend": False,
            # Invisible: only a hover target; the count is drawn by an annotation.
            "marker": {"size": 14, "opacity": 0},
        }
        for name, trace in hover.items()
    ]
    for kind, name in _NODE_TRACES.items():
        of_kind = [n for n in nodes if kinds[n] == kind]
        if not of_kind and kind != "visited":
            continue
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "visited" if legend and kind == "visited" else name,
                "showlegend": legend and kind != "terminal",
                "x": [float(at[n]) for n in of_kind],
                "y": [0.0] * len(of_kind),
                "customdata": of_kind,
                "hovertext": [_hover(n, kinds[n], labels[n], ms, failed) for n in of_kind],
                "hoverinfo": "text",
                "marker": {
                    "size": [sizes[n] for n in of_kind],
                    # Plotly fades sized markers to 0.7 by default, which shows the edges
                    # through.
                    "opacity": 1,
                    "color": _FILL[kind],
                    "line": {
                        "color": [FAIL_COLOR if failed.get(n) else _LINE[kind] for n in of_kind],
                        "width": [3 if failed.get(n) else 1.5 for n in of_kind],
                    },
                },
            }
        )
    margin_top = 10
    layout_extra: dict[str, Any] = {}
    if title:
        margin_top = 34 + (22 if legend else 0)
        layout_extra["title"] = {
            "text": escape(title),
            "x": 0,
            "xanchor": "left",
            "xref": "paper",
            "y": 1,
            "yanchor": "top",
            "yref": "container",
            "pad": {"t": 8},
            "font": {"size": 12, "color": palette.COUNT_INK},
        }
    if legend:
        layout_extra["legend"] = {
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 1,
            "yanchor": "bottom",
            "font": {"size": 11},
            "itemclick": False,
            "itemdoubleclick": False,
        }
    hidden = {"visible": False, "fixedrange": True}
    return {
        "data": data,
        "layout": {
            "height": max(200, round(130 * (top - bottom)) + 20) + margin_top - 10,
            "margin": {"l": 10, "r": 10, "t": margin_top, "b": 10},
            "xaxis": {**hidden, "range": [-0.6, max(len(nodes), 1) - 0.4]},
            "yaxis": {**hidden, "range": [bottom, top]},
            "shapes": shapes,
            "annotations": annotations,
            "showlegend": legend,
            "hovermode": "closest",
            "plot_bgcolor": palette.TRANSPARENT,
            "paper_bgcolor": palette.TRANSPARENT,
            **layout_extra,
        },
    }


# Node traces by kind, in drawing order; the names are the legend's entries.
_NODE_TRACES = {
    "terminal": "start / end",
    "unused": "never visited",
    "visited": "nodes",
    "undeclared": "not in the schema",
}
_FILL = {"terminal": TERMINAL_COLOR, "unused": UNUSED_FILL, "visited": NODE_FILL}
_FILL["undeclared"] = palette.WARN_FILL
_LINE = {"terminal": TERMINAL_COLOR, "unused": UNUSED_LINE, "visited": NODE_LINE}
_LINE["undeclared"] = WARN_COLOR
_TEXT = {"terminal": TERMINAL_COLOR, "unused": UNUSED_TEXT, "visited": palette.LABEL_INK}
_TEXT["undeclared"] = WARN_COLOR
# An edge's count: a warning edge's in its own colour.
_COUNT_TEXT = {"taken": palette.COUNT_INK, "unused": UNUSED_TEXT}


def _label(node: str, kind: str, visits: dict[str, int]) -> str:
    if kind == "terminal":
        return "start" if node == START else "end"
    # Short labels, since neighbours share the line: the colour and the legend say which
    # nodes the schema does not declare, a count of 0 which were never visited.
    return f"{escape(node)} \u00d7{visits.get(node, 0)}"


def _hover(node: str, kind: str, label: str, ms: dict[str, float], failed: dict[str, int]) -> str:
    if kind == "terminal":
        return label
    if kind == "unused":
        return f"{label}<br>declared, never visited"
    text = f"{label}<br>{ms[node]:,} ms"
    if kind == "undeclared":
        text += "<br>not in the schema"
    return text + (f"<br>{failed[node]} failed" if failed[node] else "")
