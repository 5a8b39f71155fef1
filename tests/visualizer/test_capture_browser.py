"""The capture policy in Chromium: the settings form shows a refused policy's error in
place and keeps the text; the run page's step panel lists what the policy changed, by
which rule, and fetches an attachment on demand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.traces.test_capture_ingest import DOC, EMAIL, POLICY, SECRET, salted_doc
from tests.visualizer.test_browser_run import post_trace, ready, sign_in
from traces.capture_policy import save_policy
from traces.models import ApiKey, Membership, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def admin_signed_in(page: Page, server: Daphne, project: Project) -> None:
    admin = get_user_model().objects.create_user("ada", password="pw-ada-1234")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    sign_in(page, server, "ada", "pw-ada-1234")


def test_the_settings_form_shows_a_refused_policy_in_place_and_saves_a_good_one(
    server: Daphne, page: Page, project: Project
) -> None:
    admin_signed_in(page, server, project)
    page.goto(f"{server.origin}/projects/acme/settings/")
    text = page.locator("#capture-policy-text")
    bad = '{"rules": [{"path": "/x", "action": "hide"}]}'
    text.fill(bad)
    page.click("text=Save policy")
    expect(page.locator("#capture-policy-error")).to_contain_text(
        "$.rules[0].action: unknown action 'hide'"
    )
    expect(text).to_have_value(bad)
    project.refresh_from_db()
    assert project.capture_policy == {}

    text.fill(json.dumps(POLICY))
    page.click("text=Save policy")
    expect(page.locator("ul.flash")).to_contain_text("Capture policy saved: 5 rules")
    expect(page.locator("#capture-policy-error")).to_have_count(0)
    project.refresh_from_db()
    assert project.capture_policy == POLICY
    assert json.loads(text.input_value()) == POLICY


def test_the_step_panel_lists_the_markers_and_fetches_an_attachment(
    server: Daphne, page: Page, project: Project, fixtures_dir: Path
) -> None:
    save_policy(project, POLICY)
    key = ApiKey.issue(project)[1]
    post_trace(server, key, salted_doc(fixtures_dir, "research_agent_success.json", "cap"))
    admin_signed_in(page, server, project)
    page.goto(f"{server.origin}/projects/acme/runs/cap/#step=1")
    ready(page)
    note = page.locator("#step-capture")
    expect(note).to_be_visible()
    expect(note).to_contain_text("/api_key in after: redacted by rules[0]")
    expect(note).to_contain_text("/notes in after: truncated")
    expect(note).to_contain_text("detector:email")
    item = note.locator("li", has_text="/document in after")
    item.locator("button", has_text="fetch").click()
    expect(item.locator("pre")).to_contain_text(DOC["pages"][0])
    # In the state tree a collapsed marker says what it stands for.
    expect(page.locator("#step-states")).to_contain_text('"api_key": {redacted by rules[0]}')
    expect(page.locator("#step-states")).to_contain_text("{truncated: 540 bytes, 32 kept")
    html = page.content()
    assert SECRET not in html
    assert EMAIL not in html
