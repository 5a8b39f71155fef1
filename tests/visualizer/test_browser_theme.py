"""Dark mode in a real browser: a system that prefers dark gets dark pages and charts
(transparent paper on a dark card, light text), the top bar's toggle switches to light,
redraws the charts in it and keeps the choice across a reload, then dark, then back to
the system's, whose changes it follows; a choice made in another tab is followed too.
The Content-Security-Policy blocks nothing (the ``page`` fixture)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env, wait_for
from tests.visualizer.test_browser_run import open_failure_as_alice, ready

pytestmark = pytest.mark.django_db(transaction=True)

COLOURS = """() => {
  const timeline = document.getElementById("timeline");
  const bar = timeline.querySelectorAll(".trace.bars")[1]?.querySelector("path");
  return {
    theme: document.documentElement.dataset.theme ?? null,
    stored: localStorage.getItem("theme"),
    toggle: document.getElementById("theme-toggle").textContent,
    body: getComputedStyle(document.body).backgroundColor,
    card: getComputedStyle(timeline.closest(".card")).backgroundColor,
    paper: getComputedStyle(timeline.querySelector(".main-svg")).backgroundColor,
    tick: getComputedStyle(timeline.querySelector(".xtick text")).fill,
    failed: bar && getComputedStyle(bar).fill,
  };
}"""


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def rgba(css: str) -> tuple[float, float, float, float]:
    r, g, b, *a = (float(x) for x in re.findall(r"[\d.]+", css))
    return r, g, b, a[0] if a else 1.0


def luminance(css: str) -> float:
    """WCAG relative luminance: 0 is black, 1 white."""

    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b, _ = rgba(css)
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def colours(page: Page) -> dict[str, Any]:
    seen: dict[str, Any] = page.evaluate(COLOURS)
    return seen


def test_dark_system_gets_dark_pages_and_charts_and_the_toggle_switches_and_persists(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    page.emulate_media(color_scheme="dark")
    open_failure_as_alice(server, page, api_key, fixtures_dir)
    # The choice is applied by a classic script in <head>, before the stylesheet and the
    # body: no flash of the other theme.
    first = page.evaluate("[...document.head.children].map((e) => e.src || e.href || '')")
    assert [i for i, url in enumerate(first) if url.endswith("/theme_init.js")] == [
        next(i for i, url in enumerate(first) if url.endswith("/app.css")) - 1
    ]

    dark = colours(page)
    assert dark["theme"] is None
    assert dark["stored"] is None
    assert "System" in dark["toggle"]
    assert luminance(dark["body"]) < 0.02
    assert luminance(dark["card"]) < 0.02
    assert rgba(dark["paper"])[3] == 0  # transparent: the dark card shows through
    assert luminance(dark["tick"]) > 0.4
    red, green, blue, _ = rgba(dark["failed"])
    assert red > green + 80
    assert red > blue + 80

    # System -> light: the page and the charts follow, without a reload.
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    wait_for(lambda: luminance(colours(page)["tick"]) < 0.2, 15, "the timeline redrawn light")
    light = colours(page)
    assert light["stored"] == "light"
    assert "Light" in light["toggle"]
    assert luminance(light["body"]) > 0.8
    assert luminance(light["card"]) > 0.9
    assert light["failed"] != dark["failed"]
    red, green, blue, _ = rgba(light["failed"])
    assert red > green + 80
    assert red > blue + 80

    # Kept across a reload, though the system still prefers dark.
    page.reload()
    ready(page)
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    again = colours(page)
    assert luminance(again["body"]) > 0.8
    assert luminance(again["tick"]) < 0.2

    # Light -> dark -> the system's again.
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    wait_for(lambda: luminance(colours(page)["tick"]) > 0.4, 15, "the timeline redrawn dark")
    assert colours(page)["stored"] == "dark"
    page.click("#theme-toggle")
    expect(page.locator("#theme-toggle")).to_contain_text("System")
    back = colours(page)
    assert back["theme"] is None
    assert back["stored"] is None
    assert luminance(back["body"]) < 0.02

    # Following the system: its change redraws the page and the charts.
    page.emulate_media(color_scheme="light")
    wait_for(lambda: luminance(colours(page)["tick"]) < 0.2, 15, "the timeline redrawn light")
    assert luminance(colours(page)["body"]) > 0.8

    # A choice made in another tab is followed here.
    other = page.context.new_page()
    other.goto(page.url)
    ready(other)
    other.click("#theme-toggle")  # system -> light
    other.click("#theme-toggle")  # light -> dark
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    wait_for(lambda: luminance(colours(page)["tick"]) > 0.4, 15, "the timeline redrawn dark")
