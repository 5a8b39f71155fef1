"""The compare page in a real browser against a real Daphne: the issue's "done when":
from a failed run, "compare with last success" shows the aligned step where the two
runs' states first differ, and ``d`` brings it back into view; two long runs list only
the rows in view."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_run import post_trace, ready, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

FAILURE = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"
SUCCESS = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"
LONG = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a05"
LONG_OTHER = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a15"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_from_a_failed_run_compare_with_last_success_shows_the_divergence(
    server: Daphne, page: Page, api_key: str, member: object, fixtures_dir: Path
) -> None:
    for name in ("research_agent_success", "tool_timeout_failure"):
        post_trace(server, api_key, json.loads((fixtures_dir / f"{name}.json").read_text()))
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/")
    ready(page)

    page.click("#compare-menu summary")
    page.click("text=Compare with last success")
    ready(page)
    assert f"a={FAILURE}" in page.url
    assert f"b={SUCCESS}" in page.url

    divergence = page.locator("#pairs tr.diverge")
    expect(divergence).to_have_count(1)
    expect(divergence).to_be_in_viewport()
    expect(divergence).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#step-title")).to_contain_text("planner #1")
    expect(page.locator("#step-diff tr[data-path='/question']")).to_have_count(1)
    # Two lanes, the diamonds where the states diverge.
    expect(page.locator("#compare-timeline .scatterlayer .point")).to_have_count(2)

    # Another row, then d: back at the divergence.
    page.locator("#pairs tr").nth(5).click()
    expect(page.locator("#pair-note")).to_contain_text("ran only in run b")
    # The note links to that step on run b's page.
    only_b = page.locator("#pairs tr").nth(5).locator("td").nth(4).inner_text().lstrip("#")
    expect(page.locator("#pair-note a")).to_have_attribute(
        "href", f"/projects/acme/runs/{SUCCESS}/#step={only_b}"
    )
    page.keyboard.press("d")
    expect(divergence).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#step-diff tr[data-path='/question']")).to_have_count(1)
    if os.environ.get("COMPARE_SCREENSHOT"):
        page.screenshot(path=os.environ["COMPARE_SCREENSHOT"], full_page=True)


def with_other_states_from(trace: dict[str, Any], step: int, execution_id: str) -> dict[str, Any]:
    """``trace`` under another id whose states differ from step ``step``'s state after on."""
    nodes = []
    for n in trace["nodes_executed"]:
        n = dict(n)
        for side in ("state_before", "state_after"):
            if n[side] is not None and n["index"] + (side == "state_after") > step:
                n[side] = {**n[side], "question": "another question"}
        nodes.append(n)
    return {**trace, "execution_id": execution_id, "nodes_executed": nodes}


def test_two_2000_step_runs_list_only_the_rows_in_view_and_keep_the_divergence_reachable(
    server: Daphne, page: Page, api_key: str, member: object, fixtures_dir: Path
) -> None:
    long = json.loads((fixtures_dir / "long_loop_2000.json").read_text())
    post_trace(server, api_key, long)
    post_trace(server, api_key, with_other_states_from(long, 1500, LONG_OTHER))
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/compare/?a={LONG}&b={LONG_OTHER}")
    ready(page)

    expect(page.locator("#pairs-count")).to_have_text("2,000 rows")
    rows = page.locator("#pairs tr").count()
    assert 10 < rows < 100, rows
    divergence = page.locator("#pairs tr.diverge")
    expect(divergence).to_be_in_viewport()
    expect(divergence.locator("td").first).to_have_text("1501")
    expect(page.locator("#step-diff tr[data-path='/question']")).to_have_count(1)

    # A link to a row far from the divergence, then d: back in view, selected.
    page.goto("about:blank")  # a new load, not a change of the hash
    page.goto(f"{server.origin}/projects/acme/compare/?a={LONG}&b={LONG_OTHER}#row=3")
    ready(page)
    expect(page.locator("#pairs tr.selected td").first).to_have_text("3")
    expect(divergence).to_have_count(0)
    page.keyboard.press("d")
    expect(divergence).to_be_in_viewport()
    expect(divergence).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("j")
    expect(page.locator("#pairs tr.selected td").first).to_have_text("1502")
    assert page.evaluate("location.hash") == "#row=1502"
    page.keyboard.press("n")
    expect(page.locator("#pairs tr.selected td").first).to_have_text("1503")
