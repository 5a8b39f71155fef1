"""The review flow in a real browser against a real Daphne: going through the queue with
the keyboard (n, a, r, o), and a comment on a step's path that a teammate's open run page
shows live. Screenshots of both pages land in test-artifacts/ to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from playwright.sync_api import Browser, Page, expect

from tests.servers import Daphne, daphne, database_url, server_env, session_cookie
from tests.traces.test_review import FAILED_RUN, add_user, store_failed_run
from tests.visualizer.conftest import ARTIFACTS, CspWatch
from traces.models import Project, Role, RunReview

pytestmark = pytest.mark.django_db(transaction=True)

CURRENT = re.compile(r"\bcurrent\b")
ON = re.compile(r"\bon\b")


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


@pytest.fixture
def contexts(csp_watch: CspWatch) -> Iterator[CspWatch]:
    """The browser contexts a test opens, watched for CSP violations and closed after it."""
    yield csp_watch
    csp_watch.collect()
    for context in csp_watch.contexts:
        context.close()


def signed_in_page(browser: Browser, contexts: CspWatch, server: Daphne, user: Any) -> Page:
    """A browser context of its own (its own cookies) signed in as ``user``."""
    context = contexts.watch(browser.new_context(viewport={"width": 1360, "height": 900}))
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": session_cookie(user),
                "url": server.origin,
            }
        ]
    )
    return context.new_page()


def test_going_through_the_unreviewed_failures_with_the_keyboard(
    server: Daphne, browser: Browser, contexts: CspWatch, project: Project
) -> None:
    alice = add_user(project, "alice", Role.MEMBER)
    for minute, name in [(10, "fail-old"), (20, "fail-mid"), (30, "fail-new")]:
        store_failed_run(project, name, minute)
    page = signed_in_page(browser, contexts, server, alice)
    page.goto(f"{server.origin}/projects/acme/review/?tab=unreviewed")
    rows = page.locator("#queue-rows tr")
    expect(rows).to_have_count(3)
    count = {t: page.locator(f'.tabs [data-tab="{t}"] .count') for t in ("assigned", "unreviewed")}
    expect(count["unreviewed"]).to_have_text("3")
    expect(count["assigned"]).to_have_text("0")

    page.keyboard.press("n")  # the first item
    expect(rows.nth(0)).to_have_class(CURRENT)
    page.keyboard.press("a")  # assign to me
    expect(rows.nth(0).locator('[data-col="assignee"]')).to_have_text("alice")
    page.keyboard.press("r")  # reviewed, and on to the next
    expect(rows.nth(0).locator('[data-col="status"] .badge')).to_have_text("Reviewed")
    expect(rows.nth(1)).to_have_class(CURRENT)
    # The tab counts follow without a reload.
    expect(count["unreviewed"]).to_have_text("2")
    page.keyboard.press("n")
    page.keyboard.press("a")
    expect(rows.nth(2).locator('[data-col="assignee"]')).to_have_text("alice")
    expect(page.locator("#queue-message")).to_have_text(re.compile(r"^Assigned .+ to you\.$"))
    expect(count["assigned"]).to_have_text("1")
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    expect(page.locator("#keys-help")).to_contain_text("mark it reviewed and go to the next")
    page.keyboard.press("Escape")
    expect(page.locator("#keys-help")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-queue.png"))

    reviews = {
        r.run.execution_id: (r.status, r.assignee_id)
        for r in RunReview.objects.select_related("run")
    }
    assert reviews == {"fail-new": ("reviewed", alice.pk), "fail-old": ("unreviewed", alice.pk)}

    # The queue now holds the two still unreviewed; "assigned to me" the one not reviewed.
    page.goto(f"{server.origin}/projects/acme/review/?tab=assigned")
    expect(rows).to_have_count(1)
    page.keyboard.press("n")
    page.keyboard.press("o")
    # A failed run opens on its failing step.
    expect(page).to_have_url(f"{server.origin}/projects/acme/runs/fail-old/#step=4")


def test_two_reviewers_splitting_the_queue_see_each_others_changes_live(
    server: Daphne, browser: Browser, contexts: CspWatch, project: Project
) -> None:
    alice = add_user(project, "alice", Role.MEMBER)
    bob = add_user(project, "bob", Role.MEMBER)
    for minute, name in [(10, "fail-old"), (20, "fail-new")]:
        store_failed_run(project, name, minute)
    pages = [signed_in_page(browser, contexts, server, user) for user in (alice, bob)]
    for page in pages:
        page.goto(f"{server.origin}/projects/acme/review/?tab=unreviewed")
        expect(page.locator("#queue-rows tr")).to_have_count(2)
        # "● live" shows once the socket has subscribed: nothing after it is missed.
        expect(page.locator("#live-indicator")).to_be_visible()

    alice_page, bob_page = pages
    alice_page.keyboard.press("n")
    alice_page.keyboard.press("a")
    alice_page.keyboard.press("r")
    bob_row = bob_page.locator('#queue-rows tr[data-key="fail-new"]')
    expect(bob_row.locator('[data-col="assignee"]')).to_have_text("alice")
    expect(bob_row.locator('[data-col="status"] .badge')).to_have_text("Reviewed")

    bob_page.locator('#queue-rows tr[data-key="fail-old"]').click()
    bob_page.keyboard.press("a")
    alice_row = alice_page.locator('#queue-rows tr[data-key="fail-old"]')
    expect(alice_row.locator('[data-col="assignee"]')).to_have_text("bob")


def test_a_comment_on_a_steps_path_appears_live_for_a_teammate(
    server: Daphne, browser: Browser, contexts: CspWatch, project: Project
) -> None:
    alice = add_user(project, "alice", Role.MEMBER)
    bob = add_user(project, "bob", Role.MEMBER)
    vera = add_user(project, "vera", Role.VIEWER)
    store_failed_run(project)
    url = f"{server.origin}/projects/acme/runs/{FAILED_RUN}/#step=3&path=/iteration"
    pages = [signed_in_page(browser, contexts, server, u) for u in (alice, bob, vera)]
    for page in pages:
        page.goto(url)
        expect(page.locator("#review-live")).to_be_visible()
    mine, teammate, viewer = pages

    # The comment box targets the most specific place: the selected step's path.
    expect(mine.locator("#comment-target")).to_have_value("path")
    mine.fill("#comment-body", "`iteration` never grows: @bob look <script>alert(1)</script>")
    mine.click("#comment-form button[type=submit]")

    comment = teammate.locator("#comments li.comment")
    expect(comment).to_have_count(1)
    expect(comment.locator(".comment-head")).to_contain_text("alice on #3 /iteration")
    expect(comment.locator(".comment-body")).to_contain_text("<script>alert(1)</script>")
    expect(comment.locator(".mention")).to_have_text("@bob")
    expect(comment.locator("script")).to_have_count(0)
    expect(teammate.locator("#activity li").first).to_contain_text("alice commented on step #3")

    # Status and a verdict travel the same way.
    mine.click('#review-status button[data-status="needs_attention"]')
    expect(teammate.locator('#review-status button[data-status="needs_attention"]')).to_have_class(
        ON
    )
    mine.fill("#verdict-reason", "loops without progress")
    mine.click('#verdict-controls button[data-verdict="bad"]')
    expect(teammate.locator('#verdict-controls button[data-verdict="bad"]')).to_have_class(ON)
    expect(teammate.locator("#verdict-reason")).to_have_value("loops without progress")

    # Stepping on the run page moves the verdict box and the comment box along.
    mine.locator("#review-panel").click(position={"x": 5, "y": 5})
    mine.keyboard.press("j")
    expect(mine.locator("#verdict-step")).to_have_text("step #4")
    expect(mine.locator("#comment-target")).to_have_value("path")
    expect(mine.locator("#verdict-controls button[data-verdict=bad]")).not_to_have_class(ON)

    # The viewer sees all of it, read-only.
    expect(viewer.locator("#comments li.comment")).to_have_count(1)
    expect(viewer.locator("#review-readonly")).to_be_visible()
    expect(viewer.locator("#comment-form")).to_be_hidden()
    expect(viewer.locator('#review-status button[data-status="reviewed"]')).to_be_disabled()

    ARTIFACTS.mkdir(exist_ok=True)
    teammate.locator("#review-panel").screenshot(path=str(ARTIFACTS / "review-panel.png"))
    teammate.screenshot(path=str(ARTIFACTS / "review-run-page.png"), full_page=True)
