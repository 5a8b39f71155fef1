"""The colours of the Plotly figures, as the CSS variables of ``static/css/app.css`` that
``static/visualizer/theme.js`` resolves for the theme shown (light or dark) before every
draw. A figure names no background, text or grid colour of its own: backgrounds are
transparent (the card shows through) and theme.js fills in the font, grid and axis
colours, so every chart follows the page's theme."""

from __future__ import annotations

TRANSPARENT = "rgba(0,0,0,0)"


def css(name: str) -> str:
    """A colour by the name of its variable in app.css (``--chart-…`` or a page colour)."""
    return f"var(--{name})"


OK = css("chart-ok")
FAIL = css("chart-fail")
RUNNING = css("chart-running")
TIME = css("chart-time")
TOKENS = css("chart-tokens")
RATE = css("chart-rate")
LOOP = css("chart-loop")
RUNS = css("chart-runs")
PERCENTILES = {"p50": css("chart-p50"), "p95": css("chart-p95"), "p99": css("chart-p99")}
WARN = css("chart-warn")
WARN_FILL = css("chart-warn-fill")
NODE_FILL = css("chart-node-fill")
NODE_LINE = css("chart-node-line")
EDGE = css("chart-edge")
UNUSED_FILL = css("chart-unused-fill")
UNUSED_LINE = css("chart-unused-line")
UNUSED_TEXT = css("chart-unused-text")
TERMINAL = css("chart-terminal")
LABEL_BG = css("chart-label-bg")
LABEL_INK = css("chart-label-ink")
COUNT_INK = css("chart-count-ink")
# An edge's count sits on an opaque chip of the card's own colour, over the arcs.
COUNT_BG = css("panel")
MUTED = css("muted")
