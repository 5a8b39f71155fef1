"""The run list in a real browser against a real Daphne: filter with the form, sort by a
column, page with the cursor, and watch new runs arrive live (on top when the page shows
the newest runs, as a "new runs" notice when it is sorted otherwise)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.traces.test_runlist import NOW, trace

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def ingest(server: Daphne, key: str, body: dict[str, Any]) -> None:
    response = server.request("POST", "/api/v1/traces", body, {"Authorization": f"Bearer {key}"})
    assert response.status in (200, 201), response.body


def stream(server: Daphne, key: str, execution_id: str, *events: dict[str, Any]) -> None:
    response = server.request(
        "POST",
        f"/api/v1/runs/{execution_id}/events",
        {"events": list(events)},
        {"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200, response.body


def started(graph: str) -> dict[str, Any]:
    return {"seq": 1, "type": "run_started", "data": {"metadata": {"graph_name": graph}}}


def sign_in(page: Page, server: Daphne) -> None:
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")


def rows(page: Page) -> Any:
    return page.locator("#run-rows tr[data-execution-id]")


def ids(page: Page) -> list[str]:
    return [str(r.get_attribute("data-execution-id")) for r in rows(page).all()]


@pytest.fixture
def seeded(server: Daphne, api_key: str) -> None:
    """Six runs: three failed at the retriever, durations all different."""
    for i in range(6):
        failed = i % 2 == 0
        ingest(
            server,
            api_key,
            trace(
                f"run-{i}",
                NOW - timedelta(minutes=10 * i),
                graph="research-agent" if i < 4 else "support-triage",
                nodes=("planner", "retriever", "writer"),
                error=("retriever", "Timeout", f"Timeout after {i}s") if failed else None,
                duration=[300, 900, 100, 700, 500, 200][i],
            ),
        )


def test_filter_sort_and_page_through_the_list(
    server: Daphne, page: Page, api_key: str, member: Any, seeded: None
) -> None:
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/?limit=2")
    expect(rows(page)).to_have_count(2)

    page.fill('input[name="q"]', "timeout")
    page.select_option('select[name="status"]', "failed")
    page.click("button.apply")

    # Only the fields that are set go into the URL: a clean link to share.
    expect(page).to_have_url(f"{server.origin}/projects/acme/runs/?q=timeout&status=failed&limit=2")
    assert ids(page) == ["run-0", "run-2"]
    expect(page.locator("#run-count")).to_have_text("3 runs match")

    page.click('th a.sort[data-sort="duration_ms"]')
    assert parse_qs(urlsplit(page.url).query)["sort"] == ["-duration_ms"]
    expect(page.locator('th a.sort.active[data-sort="duration_ms"]')).to_contain_text("↓")
    assert ids(page) == ["run-4", "run-0"]  # 500 ms, 300 ms

    page.click("#page-next")
    assert ids(page) == ["run-2"]  # 100 ms
    expect(page.locator("#page-next")).to_have_count(0)
    page.click("#page-previous")
    assert ids(page) == ["run-4", "run-0"]

    page.click('th a.sort[data-sort="duration_ms"]')  # flip: shortest first
    assert ids(page) == ["run-2", "run-0"]

    page.goto(f"{server.origin}/projects/acme/runs/?last=soon")
    expect(page.locator("#filter-error")).to_contain_text("last: expected a number")


def test_a_new_matching_run_appears_on_top_and_others_stay_out(
    server: Daphne, page: Page, api_key: str, member: Any, seeded: None
) -> None:
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/?q=live-graph")
    expect(page.locator("#live-indicator")).to_be_visible()
    expect(page.locator("#no-runs")).to_be_visible()

    stream(server, api_key, "other-live", started("unrelated"))
    stream(server, api_key, "match-live", started("live-graph"))

    row = page.locator('#run-rows tr[data-execution-id="match-live"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("Running")
    expect(page.locator("#no-runs")).to_have_count(0)
    assert ids(page) == ["match-live"]

    # Paused: nothing moves until "Follow live" is on again; then the row updates in place.
    page.uncheck("#follow")
    stream(
        server,
        api_key,
        "match-live",
        {
            "seq": 2,
            "type": "node_finished",
            "data": {"node": "planner", "index": 0, "duration_ms": 5, "tokens_used": 1},
        },
    )
    expect(page.locator("#follow-waiting")).to_have_text("1 update waiting")
    expect(row.locator('[data-col="nodes"]')).to_have_text("0")
    page.check("#follow")
    expect(row.locator('[data-col="nodes"]')).to_have_text("1")
    expect(page.locator("#follow-waiting")).to_be_hidden()
    assert ids(page) == ["match-live"]


def test_a_sorted_list_counts_new_runs_instead_of_breaking_its_order(
    server: Daphne, page: Page, api_key: str, member: Any, seeded: None
) -> None:
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/?sort=-duration_ms&graph_name=research-agent")
    expect(page.locator("#live-indicator")).to_be_visible()
    before = ids(page)
    assert before == ["run-1", "run-3", "run-0", "run-2"]

    stream(server, api_key, "late-1", started("research-agent"))
    stream(server, api_key, "late-2", started("support-triage"))  # filtered out
    stream(server, api_key, "late-3", started("research-agent"))

    expect(page.locator("#new-runs")).to_be_visible()
    expect(page.locator("#new-runs-text")).to_have_text("2 new runs match —")
    assert ids(page) == before

    page.click("#new-runs-link")
    assert set(ids(page)) == {"run-1", "run-3", "run-0", "run-2", "late-1", "late-3"}
    assert parse_qs(urlsplit(page.url).query) == {
        "graph_name": ["research-agent"],
        "sort": ["-duration_ms"],
    }


def test_screenshot_of_the_list(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Path
) -> None:
    """Not a check of looks: a picture to look at (test-artifacts/run-list.png)."""
    for path in sorted(fixtures_dir.glob("*.json")):
        body = json.loads(path.read_bytes())
        if len(body.get("nodes_executed", [])) <= 50:
            ingest(server, api_key, body)
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/?sort=-duration_ms")
    expect(rows(page).first).to_be_visible()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "run-list.png"), full_page=True)
    assert (SHOTS / "run-list.png").stat().st_size > 10_000


def test_times_are_in_the_readers_timezone_and_a_running_run_counts_its_time(
    server: Daphne, browser: Any, api_key: str, member: Any, seeded: None
) -> None:
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, server)
        stream(server, api_key, "still-going", started("research-agent"))
        page.goto(f"{server.origin}/projects/acme/runs/")
        expect(page.locator("#timezone")).to_have_text("times in Asia/Tokyo")
        # run-0 started at NOW (UTC); Tokyo is 9 hours ahead, written 24-hour.
        tokyo = (NOW + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
        run0 = page.locator('#run-rows tr[data-execution-id="run-0"]')
        expect(run0.locator("time")).to_have_text(tokyo)
        expect(run0.locator('[data-col="duration"]')).to_have_text("300 ms")
        # A running run shows the time so far, ticking, not "0 ms".
        elapsed = page.locator('#run-rows tr[data-execution-id="still-going"] .elapsed')
        expect(elapsed).to_have_text(re.compile(r"^(\d+ ms|\d+\.\d+ s)$"))
        first = elapsed.inner_text()
        expect(elapsed).not_to_have_text(first)
    finally:
        context.close()
