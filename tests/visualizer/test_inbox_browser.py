"""Mentions that reach people, in real browsers against a real Daphne: bob types "@al",
picks alice from the list, comments on a step; alice's open page counts it in the
navigation's inbox badge live, and her inbox links to the run at that step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from playwright.sync_api import Browser, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.traces.test_review import FAILED_RUN, add_user, store_failed_run
from tests.visualizer.conftest import ARTIFACTS, CspWatch
from tests.visualizer.test_review_browser import contexts, signed_in_page  # noqa: F401
from traces.models import Comment, InboxItem, InboxKind, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_a_mention_shows_in_the_other_users_inbox_live(
    server: Daphne,
    browser: Browser,
    contexts: CspWatch,  # noqa: F811
    project: Project,
) -> None:
    alice = add_user(project, "alice", Role.MEMBER)
    bob = add_user(project, "bob", Role.MEMBER)
    add_user(project, "alfred", Role.VIEWER)
    add_user(project, "carol", Role.MEMBER)
    store_failed_run(project)
    alice_page = signed_in_page(browser, contexts, server, alice)
    alice_page.set_viewport_size({"width": 1440, "height": 900})
    alice_page.goto(f"{server.origin}/projects/acme/runs/")
    # The project socket is subscribed (the badge shares it): nothing after it is missed.
    expect(alice_page.locator("#live-indicator")).to_be_visible()
    badge = alice_page.locator("#inbox-unread")
    expect(badge).to_be_hidden()

    bob_page = signed_in_page(browser, contexts, server, bob)
    bob_page.set_viewport_size({"width": 1440, "height": 900})
    bob_page.goto(f"{server.origin}/projects/acme/runs/{FAILED_RUN}/#step=3")
    expect(bob_page.locator("#review-live")).to_be_visible()
    expect(bob_page.locator("#comment-target")).to_have_value("step")
    # The review answer, which lists the members "@" offers, has arrived.
    expect(bob_page.locator("#review-assignee option")).to_have_count(4)
    box = bob_page.locator("#comment-body")
    box.click()
    box.press_sequentially("Timed out again, @al")
    menu = bob_page.locator("#comment-body-mentions")
    expect(menu).to_be_visible()
    # Members whose name starts with "al", bob himself never offered.
    expect(menu.locator("li")).to_have_text(["@alfred", "@alice"])
    box.press("ArrowDown")
    expect(menu.locator("li.on")).to_have_text("@alice")
    box.press("Enter")
    expect(menu).to_be_hidden()
    box.press_sequentially("can you look?")
    expect(box).to_have_value("Timed out again, @alice can you look?")
    ARTIFACTS.mkdir(exist_ok=True)
    box.press_sequentially(" @c")
    expect(menu.locator("li")).to_have_text(["@carol"])
    bob_page.locator("#review-panel").screenshot(path=str(ARTIFACTS / "mention-autocomplete.png"))
    box.press("Escape")
    expect(menu).to_be_hidden()
    box.press("Backspace")
    box.press("Backspace")
    bob_page.click("#comment-form button[type=submit]")
    expect(bob_page.locator("#comments li.comment")).to_have_count(1)

    # alice's open page: the badge goes up without a reload.
    expect(badge).to_be_visible()
    expect(badge).to_have_text("1")
    item = InboxItem.objects.get(user=alice)
    assert item.kind == InboxKind.MENTION
    assert Comment.objects.get().mentions == ["alice"]
    assert not InboxItem.objects.filter(user=bob).exists()

    # Her inbox, open while a second comment arrives, lists it without a reload.
    alice_page.click("#inbox-link")
    expect(alice_page.locator("#inbox-items")).to_have_attribute("data-live", "1")
    rows = alice_page.locator("#inbox-items tr[data-item]")
    expect(rows).to_have_count(1)
    box.press_sequentially("Also @ali")
    box.press("Enter")  # the first (only) choice
    bob_page.click("#comment-form button[type=submit]")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("bob mentioned you on step #3")
    expect(badge).to_have_text("2")
    second = InboxItem.objects.filter(user=alice).latest("id")
    assert second.body == "Also @alice"
    row = alice_page.locator(f'#inbox-items tr[data-item="{item.pk}"]')
    expect(row).to_contain_text("bob mentioned you on step #3")
    expect(row).to_contain_text("Timed out again, @alice can you look?")
    link = row.locator("a").first
    run_url = f"/projects/acme/runs/{FAILED_RUN}/#step=3"
    expect(link).to_have_attribute("href", run_url)
    alice_page.screenshot(path=str(ARTIFACTS / "inbox-mention.png"))

    alice_page.click("#read-all")
    expect(alice_page.locator("#inbox-unread")).to_be_hidden()
    expect(alice_page.locator("#inbox-items tr.unread")).to_have_count(0)
    assert not InboxItem.objects.filter(user=alice, read_at=None).exists()

    alice_page.locator(f'#inbox-items tr[data-item="{item.pk}"] a').first.click()
    expect(alice_page).to_have_url(f"{server.origin}{run_url}")
    expect(alice_page.locator("#verdict-step")).to_have_text("step #3")
