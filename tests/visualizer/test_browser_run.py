"""The run page in a real browser against a real Daphne: the issue's "done when" flow on
the demo data, a long run (virtualized list, aggregated timeline that zooms into single
executions), the selection event other panels follow, and a running node growing live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env, wait_for
from tests.visualizer.conftest import ARTIFACTS
from traces.demo import RESEARCH_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)

FAILURE = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"
LONG = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a05"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def sign_in(page: Page, server: Daphne, username: str, password: str) -> None:
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")


def post_trace(server: Daphne, key: str, body: Any) -> str:
    response = server.request("POST", "/api/v1/traces", body, {"Authorization": f"Bearer {key}"})
    assert response.status in (200, 201), response.body
    execution_id: str = response.json()["execution_id"]
    return execution_id


def ready(page: Page) -> None:
    """The page's own mark: the timeline is drawn and the first step is shown."""
    page.locator("body[data-ready='true']").wait_for(timeout=30_000)


def open_failure_as_alice(
    server: Daphne, page: Page, api_key: str, fixtures_dir: Any, hash: str = ""
) -> None:
    """The tool-timeout run posted to acme and its page open for alice (a member), ready."""
    post_trace(
        server, api_key, json.loads((fixtures_dir / "tool_timeout_failure.json").read_text())
    )
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/{hash}")
    ready(page)


def test_done_when_a_new_user_finds_the_node_that_wrote_the_bad_value_and_shares_it(
    server: Daphne, page: Page
) -> None:
    call_command("seed_demo", "--runs", "4", stdout=open("/dev/null", "w"))  # noqa: SIM115
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, server, "demo", "demo")

    # The demo's run list; pick the failed run.
    page.goto(f"{server.origin}/projects/demo/runs/")
    row = page.locator(f'tr[data-execution-id="{FAILURE}"]')
    expect(row.locator(".badge")).to_have_text("Failed")
    row.locator("a").first.click()
    ready(page)
    expect(page.locator("h1")).to_contain_text("research-agent")

    # The failing node's bar is the red one: click it.
    failed_bar = page.locator("#timeline .trace.bars").nth(1).locator("g.point")
    expect(failed_bar).to_have_count(1)
    failed_bar.first.click(force=True)
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    expect(page.locator("#step-error")).to_have_text(
        "Timeout: GET https://example.org/doc/4 exceeded 30s"
    )
    # It wrote no state: the panel compares the state at its error, and says nothing changed.
    expect(page.locator("#step-no-diff")).to_contain_text("before the node failed")

    # k: back to the node before it, which changed these keys.
    page.keyboard.press("k")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    expect(page.locator("#step-summary")).to_contain_text("keys: messages, iteration")
    expect(page.locator("#step-diff tr[data-path='/iteration'] .val.new")).to_have_text("1")

    # Copy the link, and a teammate opening it sees the same step.
    page.click("#step-copy")
    expect(page.locator("#step-copy")).to_have_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link.endswith(f"/projects/demo/runs/{FAILURE}/#step=3")
    teammate = page.context.new_page()
    teammate.goto(link)
    expect(teammate.locator("#step-title")).to_have_text("Step #3 · critic")
    expect(teammate.locator("#steps tr.selected td").first).to_have_text("3")
    expect(teammate.locator("#step-summary")).to_contain_text("keys: messages, iteration")


def test_each_error_opens_its_step(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    open_failure_as_alice(server, page, api_key, fixtures_dir)
    # Without a link a failed run opens on its failing step, and the URL is left alone.
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    assert page.evaluate("location.hash") == ""
    page.keyboard.press("k")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")

    error = page.locator("#errors li")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("Timeout")
    error.get_by_role("link").click()

    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    assert page.evaluate("location.hash") == "#step=4"


def test_a_run_with_many_errors_says_how_many_and_shows_all_on_request(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    trace = json.loads((fixtures_dir / "tool_timeout_failure.json").read_text())
    first = trace["errors"][0]
    trace["execution_id"] = "many-errors-run"
    trace["errors"] = [{**first, "message": f"Timeout number {n}"} for n in range(14)]
    post_trace(server, api_key, trace)
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/many-errors-run/")
    ready(page)
    # The card shows a couple of rows and scrolls: its heading gives the count.
    expect(page.locator("#errors-count")).to_have_text("14")
    items = page.locator("#errors li")
    expect(items).to_have_count(14)
    expect(page.locator("#errors li:visible")).to_have_count(12)
    page.get_by_role("button", name="show all 14 errors").click()
    expect(page.locator("#errors li:visible")).to_have_count(14)
    expect(items.last).to_contain_text("Timeout number 13")


def test_copy_as_markdown_copies_the_run_and_the_selected_steps_diff(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_failure_as_alice(server, page, api_key, fixtures_dir, "#step=3")

    page.click("#run-copy-md")
    expect(page.locator("#run-copy-md")).to_have_text("Copied")
    run_text = page.evaluate("navigator.clipboard.readText()")
    assert run_text.startswith("# Run `research-agent`")
    assert f"- **Execution:** `{FAILURE}`" in run_text
    assert "1. step 4 · `retriever` · `Timeout`" in run_text
    assert "## Step" not in run_text

    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    page.click("#step-copy-md")
    expect(page.locator("#step-copy-md")).to_have_text("Copied")
    step_text = page.evaluate("navigator.clipboard.readText()")
    assert step_text.startswith("# Run `research-agent`")
    assert "## Step 3 · `critic` · ok" in step_text
    assert "- replaced `/iteration`: `0` → `1`" in step_text
    # The label comes back for the next copy.
    expect(page.locator("#step-copy-md")).to_have_text("Copy as Markdown")


def test_without_the_clipboard_api_the_markdown_is_selected_in_a_textarea(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    # As on a page served over plain HTTP: no navigator.clipboard.
    page.add_init_script("delete Navigator.prototype.clipboard")
    open_failure_as_alice(server, page, api_key, fixtures_dir)
    page.click("#run-copy-md")
    expect(page.locator("#run-copy-md")).to_have_text("Selected: press Ctrl+C")
    box = page.locator(".run-title textarea.copy-fallback")
    expect(box).to_be_focused()
    assert box.input_value().startswith("# Run `research-agent`")
    selected = page.evaluate(
        "(() => { const b = document.activeElement;"
        " return b.value.slice(b.selectionStart, b.selectionEnd); })()"
    )
    assert selected == box.input_value()


def test_a_2000_step_run_lists_only_the_rows_in_view_and_zooms_into_single_executions(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_trace(server, api_key, json.loads((fixtures_dir / "long_loop_2000.json").read_text()))
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{LONG}/#step=1500")
    ready(page)

    expect(page.locator("#steps-count")).to_have_text("2,000 steps")
    expect(page.locator("#step-title")).to_contain_text("Step #1500 ·")
    rows = page.locator("#steps tr").count()
    assert 10 < rows < 100, rows
    expect(page.locator("#steps tr.selected td").first).to_have_text("1500")
    page.keyboard.press("j")
    expect(page.locator("#steps tr.selected td").first).to_have_text("1501")
    assert page.evaluate("location.hash") == "#step=1501"

    # Searching within the run: "/" focuses the box; "#1999" finds that step.
    page.keyboard.press("/")
    page.keyboard.type("#1999")
    expect(page.locator("#steps-count")).to_have_text("1 of 2,000 match")
    page.locator("#steps tr").first.click()
    expect(page.locator("#step-title")).to_contain_text("Step #1999 ·")

    # The timeline groups 2,000 executions; zooming in asks for single executions.
    expect(page.locator("#timeline-window")).to_contain_text("2,000 executions, grouped")
    whole = page.evaluate("document.getElementById('timeline')._fullLayout.xaxis.range")
    assert page.locator("#timeline g.point").count() <= 300
    page.evaluate(
        "Plotly.relayout(document.getElementById('timeline'), {'xaxis.range': [1000, 6000]})"
    )
    expect(page.locator("#timeline-window")).to_contain_text("executions in this window")
    shown = page.evaluate("document.getElementById('timeline').data.flatMap((t) => t.customdata)")
    assert 0 < len(shown) < 20
    page.locator("#timeline g.point").last.click(force=True)
    expect(page.locator("#step-title")).to_contain_text(f"Step #{max(shown)} ·")
    # One double-click resets to the whole run, its axis included.
    page.locator("#timeline .nsewdrag").first.dblclick()
    expect(page.locator("#timeline-window")).to_contain_text("2,000 executions, grouped")
    wait_for(
        lambda: page.evaluate(
            "([lo, hi]) => { const r = document.getElementById('timeline')._fullLayout"
            ".xaxis.range; return r[0] <= lo + 1 && r[1] >= hi - 1; }",
            whole,
        ),
        30,
        "the whole run's axis",
    )
    # The same after zooming with the mouse, as a user does.
    box = page.locator("#timeline .nsewdrag").first.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, y, steps=5)
    page.mouse.up()
    expect(page.locator("#timeline-window")).to_contain_text("executions in this window")
    page.locator("#timeline .nsewdrag").first.dblclick()
    expect(page.locator("#timeline-window")).to_contain_text("2,000 executions, grouped")
    wait_for(
        lambda: page.evaluate(
            "([lo, hi]) => { const r = document.getElementById('timeline')._fullLayout"
            ".xaxis.range; return r[0] <= lo + 1 && r[1] >= hi - 1; }",
            whole,
        ),
        30,
        "the whole run's axis",
    )


def test_every_selection_is_announced_for_other_panels(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_trace(
        server, api_key, json.loads((fixtures_dir / "tool_timeout_failure.json").read_text())
    )
    sign_in(page, server, "alice", "pw-alice-123")
    page.add_init_script(
        "window.__steps = []; document.addEventListener('dashflow:step', "
        "(e) => window.__steps.push(e.detail));"
    )
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/#step=2")
    ready(page)

    page.keyboard.press("j")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    page.fill("#watch-path", "/iteration")
    page.press("#watch-path", "Enter")
    expect(page.locator("#watch-result")).to_contain_text("first written by #3 critic")

    events = page.evaluate("window.__steps")
    assert events[0] == {"index": 2, "position": 2, "path": None}
    assert {"index": 3, "position": 3, "path": None} in events
    assert events[-1] == {"index": 3, "position": 3, "path": "/iteration"}


def test_a_running_node_grows_on_the_timeline_until_it_finishes(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    run = "browser-growing-run"

    def post(*events: dict[str, Any]) -> None:
        response = server.request(
            "POST",
            f"/api/v1/runs/{run}/events",
            {"events": list(events)},
            {"Authorization": f"Bearer {api_key}"},
        )
        assert response.status == 200, response.body

    post(
        {"seq": 1, "type": "run_started", "data": {"metadata": {"graph_name": "g"}}},
        {"seq": 2, "type": "node_started", "data": {"node": "planner", "index": 0}},
    )
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{run}/")
    ready(page)
    width = (
        "() => document.getElementById('timeline').data"
        ".find((t) => t.name === 'running')?.x[0] ?? null"
    )

    # Already running when the page opened: its bar is there, and widens.
    first = page.evaluate(width)
    assert first is not None
    wait_for(lambda: page.evaluate(width) > first + 300, 30, "the running bar to widen")

    # It finishes: a green bar replaces it; the next node starts and grows live.
    post(
        {"seq": 3, "type": "node_finished",
         "data": {"node": "planner", "index": 0, "duration_ms": 40, "tokens_used": 5}},
        {"seq": 4, "type": "node_started", "data": {"node": "writer", "index": 1}},
    )  # fmt: skip
    expect(page.locator("#steps tr")).to_have_count(1)
    # Polled from here: wait_for_function evaluates a string, which the CSP refuses.
    wait_for(
        lambda: page.evaluate(
            "() => document.getElementById('timeline').data.some((t) => t.name === 'running' "
            "&& t.y[0] === 'writer')"
        ),
        30,
        "the running bar on the writer's row",
    )
    expect(page.locator("#timeline .ytick text")).to_have_text(["writer", "planner"])
    post(
        {"seq": 5, "type": "node_finished",
         "data": {"node": "writer", "index": 1, "duration_ms": 90, "tokens_used": 7}},
    )  # fmt: skip
    wait_for(
        lambda: page.evaluate(
            "() => !document.getElementById('timeline').data.some((t) => t.name === 'running')"
        ),
        30,
        "no running bar left",
    )
    expect(page.locator("#timeline g.point")).to_have_count(2)


def test_the_graph_draws_the_declared_schema_and_marks_the_node_never_visited(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    raw = json.loads((fixtures_dir / "research_agent_success.json").read_text())
    raw["metadata"]["graph_schema_json"] = json.dumps(RESEARCH_SCHEMA)
    declared = post_trace(server, api_key, raw)
    open_failure_as_alice(server, page, api_key, fixtures_dir)
    page.click("#tab-charts")
    graph = page.locator("#graph")
    # Without a schema: the observed transitions, no legend.
    expect(graph.locator(".annotation-text", has_text="retriever \u00d72")).to_have_count(1)
    expect(graph.locator(".legendtext")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    graph.locator("xpath=ancestor::section").screenshot(
        path=str(ARTIFACTS / "run-graph-observed.png")
    )

    page.goto(f"{server.origin}/projects/acme/runs/{declared}/")
    ready(page)
    page.click("#tab-charts")

    expect(graph.locator(".gtitle")).to_contain_text("Declared graph")
    expect(graph.locator(".gtitle")).to_contain_text("1 never visited")
    expect(graph.locator(".annotation-text", has_text="human_review \u00d70")).to_have_count(1)
    expect(graph.locator(".legendtext", has_text="never visited")).to_have_count(1)
    graph.locator("xpath=ancestor::section").screenshot(
        path=str(ARTIFACTS / "run-graph-declared.png")
    )
