"""The compare page in a real browser against a real Daphne: the issue's "done when":
from a failed run, "compare with last success" shows the aligned step where the two
runs' states first differ, and ``d`` brings it back into view."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_run import post_trace, ready, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

FAILURE = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"
SUCCESS = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"


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
    page.keyboard.press("d")
    expect(divergence).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator("#step-diff tr[data-path='/question']")).to_have_count(1)
    if os.environ.get("COMPARE_SCREENSHOT"):
        page.screenshot(path=os.environ["COMPARE_SCREENSHOT"], full_page=True)
