"""Links into the run page land where they point, in a real browser: a failed run opens
on its failing step from the run list and the review queue, a deep link keeps its step and
watched path through sign-in, a step the run lacks is said to be missing, and "Copy link"
leaves out what is empty."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_run import FAILURE, post_trace, ready, sign_in
from tests.visualizer.test_browser_run_panes import assert_panel_in_view

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def post_failure(server: Daphne, api_key: str, fixtures_dir: Any) -> None:
    post_trace(
        server, api_key, json.loads((fixtures_dir / "tool_timeout_failure.json").read_text())
    )


def test_a_failed_run_opens_on_its_failing_step_from_the_list_and_the_review_queue(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_failure(server, api_key, fixtures_dir)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, server, "alice", "pw-alice-123")

    page.goto(f"{server.origin}/projects/acme/runs/")
    page.locator(f'tr[data-execution-id="{FAILURE}"] a').first.click()
    ready(page)
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    assert page.evaluate("location.hash") == "#step=4"
    assert_panel_in_view(page)

    # The review queue: the failed run's item links its failing step.
    page.goto(f"{server.origin}/projects/acme/review/?tab=unreviewed")
    item = page.locator(f'#queue-rows tr[data-key="{FAILURE}"] a').first
    expect(item).to_have_attribute("href", f"/projects/acme/runs/{FAILURE}/#step=4")
    item.click()
    ready(page)
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    expect(page.locator("#step-error")).to_contain_text("Timeout")
    assert_panel_in_view(page)


def test_a_deep_link_keeps_its_step_and_path_through_sign_in(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_failure(server, api_key, fixtures_dir)
    page.set_viewport_size({"width": 1440, "height": 900})
    # Signed out: the link sends the teammate to sign in first.
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/#step=3&path=/iteration")
    expect(page.locator("#id_username")).to_be_visible()
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")

    ready(page)
    assert page.evaluate("location.pathname") == f"/projects/acme/runs/{FAILURE}/"
    assert page.evaluate("location.hash") == "#step=3&path=/iteration"
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    expect(page.locator("#watch-path")).to_have_value("/iteration")
    expect(page.locator("#watch-result")).to_contain_text("first written by #3 critic")
    assert_panel_in_view(page)


def test_a_wrong_password_first_still_lands_on_the_step(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_failure(server, api_key, fixtures_dir)
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/#step=2")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".login .error")).to_be_visible()
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")
    ready(page)
    expect(page.locator("#step-title")).to_have_text("Step #2 · reader")


def test_a_link_to_a_step_the_run_lacks_says_so(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_failure(server, api_key, fixtures_dir)
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/#step=999")
    ready(page)
    missing = page.locator("#step-missing")
    expect(missing).to_be_visible()
    expect(missing).to_have_text("This run has no step #999 (it has 5: #0\u2013#4).")
    # The panel shows where the run opens on its own: the failing step.
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    # Choosing a step clears the notice.
    page.keyboard.press("k")
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    expect(missing).to_be_hidden()

    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/#step=two")
    ready(page)
    expect(missing).to_have_text('"two" is not a step number.')


def test_copy_link_leaves_out_empty_parameters(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_failure(server, api_key, fixtures_dir)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/{FAILURE}/#step=3&path=")
    ready(page)
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    page.click("#step-copy")
    expect(page.locator("#step-copy")).to_have_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"{server.origin}/projects/acme/runs/{FAILURE}/#step=3"

    page.fill("#watch-path", "/iteration")
    page.press("#watch-path", "Enter")
    expect(page.locator("#watch-result")).to_contain_text("first written by #3 critic")
    expect(page.locator("#step-copy")).to_have_text("Copy link")
    page.click("#step-copy")
    expect(page.locator("#step-copy")).to_have_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"{server.origin}/projects/acme/runs/{FAILURE}/#step=3&path=/iteration"
