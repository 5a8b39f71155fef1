"""Light and dark: every colour of the pages is a CSS variable of app.css with a value in
the light set and in the dark one, and the Plotly figures name theirs by those variables
(static/visualizer/theme.js resolves them for the theme shown), with transparent
backgrounds and no text or grid colour of their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.visualizer.test_charts import steps_of
from tests.visualizer.test_compare_page import side
from traces.dashboard import Bucket, NodeLatency, NodeLoops, Tokens, Window
from traces.demo import RESEARCH_SCHEMA
from traces.graph_schema import read_graph_schema
from traces.models import Project
from visualizer import dashboard_charts, palette
from visualizer.charts import run_figures
from visualizer.compare_charts import compare_timeline_figure
from visualizer.failure_charts import occurrences_figure

STATIC = Path(__file__).resolve().parent.parent.parent / "static"
APP_CSS = (STATIC / "css" / "app.css").read_text()
COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|rgba?\(")
VARIABLE = re.compile(r"var\(--([\w-]+)\)")


def block(selector: str) -> dict[str, str]:
    """The custom properties declared in the rule for ``selector`` in app.css."""
    start = APP_CSS.index(selector + " {")
    body = APP_CSS[start + len(selector) + 2 : APP_CSS.index("}", start)]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return dict(re.findall(r"(--[\w-]+):\s*([^;]+);", body))


LIGHT = block(":root")
DARK_SYSTEM = block(':root:not([data-theme="light"])')
DARK_CHOSEN = block(':root[data-theme="dark"]')


def test_the_dark_set_is_the_same_for_the_system_and_the_toggle_and_covers_every_colour() -> None:
    assert DARK_SYSTEM == DARK_CHOSEN
    assert set(DARK_CHOSEN) == set(LIGHT)
    # The dark set is dark where it matters: page, panels, text.
    assert DARK_CHOSEN["--bg"] != LIGHT["--bg"]
    assert DARK_CHOSEN["--panel"] != LIGHT["--panel"]
    assert DARK_CHOSEN["--ink"] != LIGHT["--ink"]
    assert '@media (prefers-color-scheme: dark) {\n  :root:not([data-theme="light"])' in APP_CSS


def test_no_stylesheet_or_script_hard_codes_a_colour_outside_the_variable_sets() -> None:
    rules = APP_CSS[APP_CSS.index("* { box-sizing") :]
    assert not COLOUR.findall(rules)
    for path in [*STATIC.glob("visualizer/*.css"), *STATIC.glob("visualizer/*.js")]:
        assert not COLOUR.findall(path.read_text()), path
    sheets = [APP_CSS, *(path.read_text() for path in STATIC.glob("visualizer/*.css"))]
    used = {name for sheet in sheets for name in VARIABLE.findall(sheet)}
    assert {f"--{name}" for name in used} <= set(LIGHT)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def every_figure(fixtures_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    steps = steps_of(fixtures_dir, "tool_timeout_failure.json")
    declared = read_graph_schema({"graph_schema": RESEARCH_SCHEMA})
    running = [{"node": "writer", "index": 9, "started_at": None, "elapsed_ms": 5}]
    yield from run_figures(steps, running, declared).items()
    yield "graph, observed", run_figures(steps)["graph"]
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    window = Window(Project(slug="acme"), now - timedelta(days=1), now, None)
    runs = "/projects/acme/runs/"
    yield "runs", dashboard_charts.runs_figure([Bucket(now, 4, 1)], window, runs)
    yield "latency", dashboard_charts.latency_figure([NodeLatency("a", 3, 1, 2, 3)], window, runs)
    yield "tokens", dashboard_charts.tokens_figure([Tokens("a", 1, 9)], window, runs, "node")
    yield "loops", dashboard_charts.loops_figure([NodeLoops("a", 2, 1)], window, runs)
    yield "empty", dashboard_charts.loops_figure([], window, runs)
    yield "occurrences", occurrences_figure([(now, 2)], "day", regressed_at=now)
    rows = [{"node": "a", "a": side(0), "b": side(0, ok=False)}]
    yield "compare", compare_timeline_figure(rows, {"row": 0, "at": "after"})


def test_figures_name_their_colours_by_variable_and_leave_the_background_to_the_page(
    fixtures_dir: Path,
) -> None:
    for name, figure in every_figure(fixtures_dir):
        layout = figure["layout"]
        assert layout["paper_bgcolor"] == layout["plot_bgcolor"] == palette.TRANSPARENT, name
        # Text, grid and axis colours are the theme's (theme.js fills them in).
        assert "color" not in layout.get("font", {}), name
        assert not any("gridcolor" in v for v in layout.values() if isinstance(v, dict)), name
        colours = [s for s in strings(figure) if COLOUR.match(s) or s.startswith("var(")]
        assert colours, name
        for colour in colours:
            if colour == palette.TRANSPARENT:
                continue
            found = VARIABLE.fullmatch(colour)
            assert found, f"{name}: {colour} is not a variable of app.css"
            assert f"--{found.group(1)}" in LIGHT, f"{name}: {colour} is not in app.css"


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours."""

    def luminance(colour: str) -> float:
        def linear(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        digits = colour[1:] if len(colour) == 7 else "".join(c * 2 for c in colour[1:])
        r, g, b = (linear(int(digits[i : i + 2], 16) / 255) for i in (0, 2, 4))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Text on the backgrounds the stylesheet puts it on: body text, badges, the diff's
# added / removed / replaced labels, code, inputs, selected and hovered rows, filled
# buttons, the review panel's chips, the top bar and the charts' labels.
TEXT_ON = [
    ("ink", "bg"), ("ink", "panel"), ("ink-soft", "panel"), ("muted", "panel"), ("muted", "bg"),
    ("muted", "neutral-soft"), ("faint", "subtle"), ("faint", "panel"), ("accent", "panel"),
    ("accent", "accent-soft"), ("accent-ink", "accent-soft"), ("ok", "ok-soft"), ("ok", "panel"),
    ("fail", "fail-soft"), ("fail", "panel"), ("fail", "code-bg"), ("run", "run-soft"),
    ("run", "panel"), ("warn", "panel"), ("regress", "regress-soft"), ("ink", "code-bg"),
    ("ink", "input-bg"), ("ink", "hover"), ("ink", "accent-soft"), ("ink", "info-soft"),
    ("ink", "fresh"), ("ink", "run-soft"), ("on-accent", "accent-strong"),
    ("on-accent", "ok-strong"), ("on-accent", "fail-strong"), ("on-accent", "run-strong"),
    ("topbar-ink", "topbar-bg"), ("topbar-link", "topbar-bg"), ("topbar-muted", "topbar-bg"),
    ("topbar-brand", "topbar-hover"), ("chart-ink", "panel"), ("chart-label-ink", "panel"),
    ("chart-count-ink", "panel"),
]  # fmt: skip


def test_text_stays_readable_in_both_themes() -> None:
    for name, colours in (("light", LIGHT), ("dark", DARK_CHOSEN)):
        for text, background in TEXT_ON:
            ratio = contrast(colours[f"--{text}"], colours[f"--{background}"])
            # WCAG AA for normal text.
            assert ratio >= 4.5, f"{name}: --{text} on --{background} is {ratio:.2f}:1"
        # A declared node never visited is faint on purpose, still legible.
        assert contrast(colours["--chart-unused-text"], colours["--panel"]) >= 3
