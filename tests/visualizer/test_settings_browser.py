"""The settings page in Chromium: a new key is shown once and a reload creates no other;
removing a member asks first; the activity log says what happened in words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import Dialog, Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_run import sign_in
from traces.models import ApiKey, Membership, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_an_admin_creates_a_key_reloads_and_removes_a_member_after_confirming(
    server: Daphne, page: Page, project: Project
) -> None:
    users = get_user_model().objects
    admin = users.create_user("ada", password="pw-ada-1234")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    Membership.objects.create(
        project=project, user=users.create_user("bob", password="pw-bob-1234"), role=Role.MEMBER
    )
    sign_in(page, server, "ada", "pw-ada-1234")
    page.goto(f"{server.origin}/projects/acme/settings/")

    page.fill('input[aria-label="key name"]', "ci")
    page.click("text=Create key")
    key = page.locator("#new-key")
    expect(key).to_be_visible()
    assert key.inner_text().startswith(ApiKey.objects.get(name="ci").prefix)
    # Post, then redirect: a reload neither shows the secret again nor makes a second key.
    page.reload()
    expect(page.locator("table.keys tbody tr")).to_have_count(1)
    expect(page.locator("#new-key")).to_have_count(0)
    assert ApiKey.objects.count() == 1

    asked: list[str] = []

    def answer(dialog: Dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    bob_row = page.locator("table.members tbody tr", has_text="bob")
    page.once("dialog", lambda dialog: answer(dialog, False))
    bob_row.locator("button", has_text="Remove").click()
    assert asked == ["Remove bob from Acme?"]
    expect(bob_row).to_have_count(1)
    assert Membership.objects.filter(user__username="bob").exists()

    page.once("dialog", lambda dialog: answer(dialog, True))
    bob_row.locator("button", has_text="Remove").click()
    expect(page.locator(".flash")).to_have_text("bob was removed.")
    expect(bob_row).to_have_count(0)
    activity = page.locator("ul.activity li")
    expect(activity.first).to_contain_text("ada removed bob")
    expect(activity.nth(1)).to_contain_text("ada created the API key ci (")
