"""The failures pages in a real browser against a real Daphne: the group page draws its
chart, a member triages the group, and a teammate's open pages follow live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env, wait_for
from tests.visualizer.conftest import ARTIFACTS, CspWatch
from traces.models import FailureGroup, Membership, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def post_trace(server: Daphne, key: str, body: dict[str, Any]) -> None:
    response = server.request("POST", "/api/v1/traces", body, {"Authorization": f"Bearer {key}"})
    assert response.status in (200, 201), response.body


def timeout_trace(fixtures_dir: Path, execution_id: str, **error: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    body["execution_id"] = execution_id
    body["errors"][0].update(error)
    return body


def sign_in(page: Page, server: Daphne, username: str, password: str) -> None:
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")


def test_a_member_triages_a_group_and_a_viewer_sees_it_live(
    server: Daphne,
    page: Page,
    csp_watch: CspWatch,
    api_key: str,
    member: Any,
    project: Project,
    fixtures_dir: Path,
) -> None:
    viewer = get_user_model().objects.create_user("vic", password="pw-vic-123")
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    for i, secs in enumerate([30, 31, 45]):
        post_trace(
            server,
            api_key,
            timeout_trace(
                fixtures_dir,
                f"run-{i}",
                message=f"Timeout: GET https://h{i}/{i} exceeded {secs}s",
                timestamp=f"2026-03-02T0{i}:10:00.000+00:00",
            ),
        )
    group = FailureGroup.objects.get(project=project)
    url = f"{server.origin}/projects/acme/failures/{group.pk}/"

    assert page.context.browser is not None
    other = csp_watch.watch(
        page.context.browser.new_context(viewport={"width": 1360, "height": 900})
    ).new_page()
    sign_in(other, server, "vic", "pw-vic-123")
    other.goto(url)
    expect(other.locator("#live-indicator")).to_be_visible()
    expect(other.locator("#status-select")).to_be_disabled()

    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(url)
    # The chart shows the last 7 days by default: these March runs are not in it.
    expect(page.locator("#chart-range a.on")).to_have_text("Last 7d")
    wait_for(
        lambda: page.evaluate(
            "() => document.getElementById('occurrences').data?.[0]?.y.length === 169"
        ),
        30,
        "the 7-day chart",
    )
    assert sum(page.evaluate("document.getElementById('occurrences').data[0].y")) == 0
    page.click("#chart-range >> text=All time")
    expect(page).to_have_url(f"{url}?range=all")
    # Three occurrences in three hours, on an axis of a day of hours: three bars.
    expect(page.locator("#occurrences g.point")).to_have_count(24)
    heights = page.evaluate("document.getElementById('occurrences').data[0].y")
    assert [n for n in heights if n] == [1, 1, 1]
    expect(page.locator("#stat-count")).to_have_text("3")
    expect(page.locator("#affected-runs tr")).to_have_count(3)
    expect(page.locator("#affected-runs tr a").first).to_have_attribute(
        "href", "/projects/acme/runs/run-2/#step=4"
    )
    expect(page.locator("#live-indicator")).to_be_visible()

    page.select_option("#status-select", "triaged")
    page.click("#assign-me")

    expect(page.locator("#group-status")).to_have_text("Triaged")
    expect(page.locator("#activity li")).to_have_count(2)
    expect(page.locator("#activity li").first).to_contain_text("alice assigned it to alice")
    # The viewer's page follows without a reload.
    expect(other.locator("#group-status")).to_have_text("Triaged")
    expect(other.locator("#assignee-select")).to_have_value("alice")
    expect(other.locator("#activity li").nth(1)).to_contain_text(
        "alice changed the status from New to Triaged"
    )
    group.refresh_from_db()
    assert (group.status, group.assignee) == ("triaged", member)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "failure_group.png"), full_page=True)
    csp_watch.collect()
    other.context.close()


def test_the_failures_list_follows_new_groups_and_status_changes(
    server: Daphne, page: Page, api_key: str, member: Any, project: Project, fixtures_dir: Path
) -> None:
    post_trace(server, api_key, timeout_trace(fixtures_dir, "run-a"))
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/failures/")
    expect(page.locator("#group-rows tr")).to_have_count(1)
    expect(page.locator("#live-indicator")).to_be_visible()

    # A new kind of failure arrives: a new row at the top, its message as text.
    post_trace(
        server,
        api_key,
        timeout_trace(
            fixtures_dir,
            "run-b",
            error_type="ConnectError",
            message="ConnectError: <b>refused</b> by 10.0.0.7:443",
            timestamp="2026-03-09T00:00:00.000+00:00",
        ),
    )
    rows = page.locator("#group-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".group-message")).to_have_text(
        "ConnectError: <b>refused</b> by <ip>"
    )
    expect(rows.first.locator('[data-col="count"]')).to_have_text("1")

    # The first group seen again: its count grows.
    post_trace(server, api_key, timeout_trace(fixtures_dir, "run-c"))
    timeout = FailureGroup.objects.get(project=project, error_type="Timeout")
    row = page.locator(f'#group-rows tr[data-group-id="{timeout.pk}"]')
    expect(row.locator('[data-col="count"]')).to_have_text("2")

    # Resolved by someone else (an API key): it leaves the "Open" tab.
    response = server.request(
        "PATCH",
        f"/api/v1/failure-groups/{timeout.pk}",
        {"status": "resolved"},
        {"Authorization": f"Bearer {api_key}"},
    )
    assert response.status == 200, response.body
    expect(row).to_have_count(0)
    expect(rows).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "failures_list.png"), full_page=True)
