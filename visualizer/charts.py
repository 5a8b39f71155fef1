"""Plotly figure dicts for the run page, built from a run's steps (Python computes; the
browser only calls ``Plotly.react`` with them). The timeline lives in ``timeline.py``, the
graph in ``graph_chart.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traces.graph_schema import SchemaReading

from . import palette
from .graph_chart import graph_figure
from .timeline import escape, timeline_figure

TIME_COLOR = palette.TIME
TOKEN_COLOR = palette.TOKENS


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def breakdown_figure(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per node (first-run order, top to bottom): total time and total tokens summed over
    its visits, as two horizontal bar charts side by side sharing the node axis. Each bar
    is labelled with its share of the run total, which hover repeats with the visit count;
    its ``customdata`` is the node (a click lists its steps)."""
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
            # The raw node name: a click lists the node's steps (run.js).
            "customdata": nodes,
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
            "plot_bgcolor": palette.TRANSPARENT,
            "paper_bgcolor": palette.TRANSPARENT,
            "font": {"size": 12},
        },
    }


def run_figures(
    steps: Sequence[dict[str, Any]],
    running: Sequence[dict[str, Any]] = (),
    declared: SchemaReading | None = None,
    offsets: Sequence[float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every figure on the run page, for the first render and for each live refetch;
    ``declared`` is the run's declared graph, if any (``traces/graph_schema.py``);
    ``offsets`` the steps' start offsets when the caller has them."""
    return {
        "timeline": timeline_figure(steps, running, offsets=offsets),
        "breakdown": breakdown_figure(steps),
        "graph": graph_figure(steps, declared),
    }
