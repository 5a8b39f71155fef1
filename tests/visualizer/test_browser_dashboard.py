"""The project dashboard in a real browser against a real Daphne: the charts render, the
slower-nodes table names the node whose p95 rose this week, a range change redraws, and a
click on a point lands on the run list filtered to the runs behind it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.dashboard_support import add_run, timed_steps
from tests.servers import Daphne, daphne, database_url, server_env
from traces.models import Project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_the_dashboard_shows_which_node_got_slower_and_links_to_its_runs(
    server: Daphne, page: Page, member: Any, project: Project
) -> None:
    now = timezone.now()
    add_run(project, "last-week", now - timedelta(days=9), timed_steps("search", [100, 100]))
    add_run(project, "this-week", now - timedelta(days=3), timed_steps("search", [900, 900]))
    add_run(project, "today", now - timedelta(hours=1), timed_steps("plan", [5]), failed=True)

    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")
    page.goto(f"{server.origin}/projects/acme/dashboard/")

    for chart in ("runs", "latency", "node-tokens", "graph-tokens", "loops"):
        expect(page.locator(f"#chart-{chart} .main-svg").first).to_be_visible()
    first_row = page.locator("#slower-rows tr").first
    expect(first_row.locator("td").first).to_have_text("search")
    expect(first_row.locator("td").nth(3)).to_contain_text("+800 ms")
    expect(page.locator("#stat-runs")).to_have_text("2")

    page.select_option("#range-select", "24h")
    expect(page.locator("#stat-runs")).to_have_text("1")
    expect(page.locator("#stat-failed")).to_have_text("1")
    expect(page.locator("#slower-empty")).to_be_visible()
    assert "last=24h" in page.url

    # The failed bar of the hour the failed run started in: its runs, failed ones only.
    failed = page.evaluate("document.getElementById('chart-runs').data[1].y")
    bar = page.locator("#chart-runs .trace.bars").nth(1).locator("g.point")
    bar.nth(next(i for i, n in enumerate(failed) if n)).locator("path").click(force=True)
    page.wait_for_url("**/projects/acme/runs/?*")
    assert "status=failed" in page.url
    assert "started_after=" in page.url
    expect(page.locator("#run-rows tr")).to_have_count(1)
