"""Signing in and seeing one's projects, in a real browser."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from traces.ingest import ingest_trace
from traces.models import Membership, Project, Role
from traces.trace import ExecutionTrace


@pytest.mark.django_db(transaction=True)
def test_user_signs_in_and_sees_only_their_projects_runs(
    live_server: Any, page: Page, fixture_files: list[Any]
) -> None:
    mine = Project.objects.create(slug="mine", name="Mine")
    theirs = Project.objects.create(slug="theirs", name="Theirs")
    user = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    Membership.objects.create(project=mine, user=user, role=Role.VIEWER)
    failing = next(f for f in fixture_files if f.name == "tool_timeout_failure.json")
    ingest_trace(mine, ExecutionTrace.from_json(failing.read_bytes()))
    hidden = next(f for f in fixture_files if f.name == "research_agent_success.json")
    ingest_trace(theirs, ExecutionTrace.from_json(hidden.read_bytes()))

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    page.fill("#id_username", "bob")
    page.fill("#id_password", "pw-bob-12345")
    page.click("button[type=submit]")

    expect(page.locator("h2")).to_have_text(["Mine"])
    row = page.locator("table.runs tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Failed")
    expect(page.get_by_text("Theirs")).to_have_count(0)
