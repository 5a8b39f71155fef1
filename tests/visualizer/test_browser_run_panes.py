"""The run page as a debugger, at 1440x900 in a real browser: the step list and the step
panel side by side under the header and timeline, each scrolling on its own, so every way
of selecting a step (timeline, error, keys, a cold link) shows it without a page scroll;
the charts in a tab, a node or an edge of them listing its steps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_run import FAILURE, LONG, post_trace, ready, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def assert_panel_in_view(page: Page) -> None:
    """The step panel is inside the window, and the window has not scrolled."""
    seen = page.evaluate(
        "(() => { const r = document.getElementById('step-panel').getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, height: innerHeight, y: scrollY}; })()"
    )
    assert seen["y"] == 0, seen
    assert 0 <= seen["top"] < seen["bottom"] <= seen["height"], seen


def open_run(page: Page, server: Daphne, api_key: str, fixtures_dir: Any, hash: str = "") -> None:
    post_trace(
        server, api_key, json.loads((fixtures_dir / "tool_timeout_failure.json").read_text())
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/{hash}")
    ready(page)


def test_every_way_of_selecting_a_step_shows_it_without_scrolling_the_page(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    # A cold link to a step.
    open_run(page, server, api_key, fixtures_dir, "#step=1")
    expect(page.locator("#step-title")).to_have_text("Step #1 · retriever")
    assert_panel_in_view(page)

    # A bar of the timeline: the failing node's (red) one.
    page.locator("#timeline .trace.bars").nth(1).locator("g.point").first.click(force=True)
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    assert_panel_in_view(page)

    # j / k from the keyboard.
    page.keyboard.press("k")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    page.keyboard.press("k")
    page.keyboard.press("j")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    assert_panel_in_view(page)

    # e: the next step that failed.
    page.keyboard.press("e")
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    assert_panel_in_view(page)

    # An error of the run.
    page.keyboard.press("k")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    page.locator("#errors li a").click()
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    assert page.evaluate("location.hash") == "#step=4"
    assert_panel_in_view(page)

    # The list and the panel are each as tall as the window leaves them, side by side.
    steps = page.locator("#steps-card").bounding_box()
    panel = page.locator("#step-panel").bounding_box()
    assert steps is not None
    assert panel is not None
    assert steps["x"] + steps["width"] <= panel["x"]
    assert abs(steps["y"] - panel["y"]) < 1
    assert panel["y"] + panel["height"] <= 900


def test_a_long_run_scrolls_its_list_and_its_panel_not_the_page(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_trace(server, api_key, json.loads((fixtures_dir / "long_loop_2000.json").read_text()))
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{LONG}/#step=1500")
    ready(page)
    expect(page.locator("#step-title")).to_contain_text("Step #1500 ·")
    # The selected row is scrolled to inside the list.
    expect(page.locator("#steps tr.selected")).to_be_in_viewport()
    assert page.evaluate("document.getElementById('steps-scroll').scrollTop") > 10_000
    assert_panel_in_view(page)

    # The panel scrolls inside itself; the next step opens at its top.
    page.evaluate("document.getElementById('step-panel').scrollTop = 400")
    assert page.evaluate("document.getElementById('step-panel').scrollTop") > 0
    page.keyboard.press("j")
    expect(page.locator("#step-title")).to_contain_text("Step #1501 ·")
    expect(page.locator("#step-title")).to_be_in_viewport()
    assert page.evaluate("document.getElementById('step-panel').scrollTop") == 0
    assert_panel_in_view(page)


def test_a_chart_node_bar_or_edge_lists_its_steps(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    open_run(page, server, api_key, fixtures_dir)
    page.locator("body[data-charts='true']").wait_for(timeout=30_000)
    expect(page.locator("#charts-view")).to_be_hidden()
    page.click("#tab-charts")
    expect(page.locator("#charts-view")).to_be_visible()
    expect(page.locator("#steps-view")).to_be_hidden()

    # A bar of the breakdown: the retriever's time (nodes top-down in run order).
    page.locator("#breakdown .trace.bars").first.locator("g.point").nth(1).click(force=True)
    expect(page.locator("#steps-view")).to_be_visible()
    expect(page.locator("#step-filter")).to_have_value("node:retriever")
    expect(page.locator("#steps-count")).to_have_text("2 of 5 match")
    expect(page.locator("#steps td.node-name")).to_have_text(["retriever", "retriever"])
    assert_panel_in_view(page)

    # A node of the graph: the critic.
    page.click("#tab-charts")
    node_point = page.evaluate(
        "(() => { const g = document.getElementById('graph'); const out = [];"
        " g.data.forEach((t, i) => (t.customdata || []).forEach((c, j) => out.push([i, j, c])));"
        " return out; })()"
    )
    trace, point = next((i, j) for i, j, c in node_point if c == "critic")
    page.locator("#graph .scatterlayer .trace").nth(trace).locator(".point").nth(point).click(
        force=True
    )
    expect(page.locator("#step-filter")).to_have_value("node:critic")
    expect(page.locator("#steps td.node-name")).to_have_text(["critic"])
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")

    # An edge of the graph: retriever → reader, the steps of reader that followed it.
    page.click("#tab-charts")
    edge = next(
        c for _, _, c in node_point if isinstance(c, list) and c[:2] == ["retriever", "reader"]
    )
    # An edge's marker sits between two nodes, where a pixel click can land on a node as the
    # graph's size varies: the click Plotly reports for the edge's point is sent directly.
    page.evaluate(
        "(edge) => document.getElementById('graph').emit('plotly_click', "
        "{points: [{customdata: edge}]})",
        edge,
    )
    expect(page.locator("#step-filter")).to_have_value("edge:retriever>reader")
    expect(page.locator("#steps td.node-name")).to_have_text(["reader"])
    expect(page.locator("#step-title")).to_have_text("Step #2 · reader")

    # Clearing the search lists every step again.
    page.fill("#step-filter", "")
    expect(page.locator("#steps-count")).to_have_text("5 steps")


def test_a_live_run_follows_its_new_steps_and_opens_a_linked_step_when_it_arrives(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    run = "browser-followed-run"
    seq = iter(range(1, 100))

    def post(kind: str, **data: Any) -> None:
        event = {"seq": next(seq), "type": kind, "data": data}
        response = server.request(
            "POST",
            f"/api/v1/runs/{run}/events",
            {"events": [event]},
            {"Authorization": f"Bearer {api_key}"},
        )
        assert response.status == 200, response.body

    def finish(node: str, index: int) -> None:
        post("node_started", node=node, index=index)
        post("node_finished", node=node, index=index, duration_ms=10, tokens_used=1)

    post("run_started", metadata={"graph_name": "g"})
    finish("planner", 0)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server, "alice", "pw-alice-123")
    # A link to a step the run has not reached yet: it says so, then opens it.
    page.goto(f"{server.origin}/projects/acme/runs/{run}/#step=1")
    ready(page)
    missing = page.locator("#step-missing")
    expect(missing).to_have_text("Step #1 has not run yet: it opens when it finishes.")
    expect(page.locator("#step-title")).to_have_text("Step #0 · planner")
    finish("writer", 1)
    expect(page.locator("#step-title")).to_have_text("Step #1 · writer")
    expect(missing).to_be_hidden()
    assert page.evaluate("location.hash") == "#step=1"

    # "follow": each step that finishes is opened, in the panel, without a page scroll.
    expect(page.locator("#follow-label")).to_be_visible()
    finish("critic", 2)
    expect(page.locator("#steps tr")).to_have_count(3)
    expect(page.locator("#step-title")).to_have_text("Step #1 · writer")
    page.check("#follow")
    finish("writer", 3)
    expect(page.locator("#step-title")).to_have_text("Step #3 · writer")
    assert_panel_in_view(page)

    post("run_finished", completed=True, total_duration_ms=40, total_tokens=4)
    expect(page.locator("#run-status")).to_have_text("Completed")
    expect(page.locator("#follow-label")).to_be_hidden()


def test_stepping_while_the_charts_show_finds_the_row_back_in_the_list(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_trace(server, api_key, json.loads((fixtures_dir / "long_loop_2000.json").read_text()))
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{LONG}/#step=10")
    ready(page)
    page.click("#tab-charts")
    expect(page.locator("#steps-view")).to_be_hidden()
    for _ in range(3):
        page.keyboard.press("j")
    expect(page.locator("#step-title")).to_contain_text("Step #13 ·")
    page.click("#tab-steps")
    expect(page.locator("#steps tr.selected td").first).to_have_text("13")
    expect(page.locator("#steps tr.selected")).to_be_in_viewport()
    assert_panel_in_view(page)
