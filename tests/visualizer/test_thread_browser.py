"""The thread page in Chromium: reached from a run's header, the runs in order and the
conversation across them, each run's new messages under it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from playwright.sync_api import Browser, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.traces.test_review import add_user
from tests.traces.test_threads import bot, store, user
from tests.visualizer.conftest import ARTIFACTS, CspWatch
from tests.visualizer.test_review_browser import contexts, signed_in_page  # noqa: F401
from traces.models import Project, Role

pytestmark = pytest.mark.django_db(transaction=True)

THREAD = "support/42 é"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def test_a_runs_same_thread_link_opens_the_conversation_across_its_runs(
    server: Daphne,
    browser: Browser,
    contexts: CspWatch,  # noqa: F811
    project: Project,
) -> None:
    alice = add_user(project, "alice", Role.MEMBER)
    first = [user("My order 1234 is late"), bot("Let me check.")]
    second = [
        *first,
        user("Any news?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "track", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "in transit", "tool_call_id": "c", "name": "track"},
        bot("It is in transit."),
    ]
    store(project, "turn-1", THREAD, 1, first)
    store(project, "turn-2", THREAD, 2, second)
    page = signed_in_page(browser, contexts, server, alice)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{server.origin}/projects/acme/runs/turn-2/")

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".run-head").screenshot(path=str(ARTIFACTS / "run-head-thread.png"))
    page.locator("#same-thread a", has_text="the whole conversation").click()
    expect(page.locator("#thread-id")).to_have_text(THREAD)
    rows = page.locator("#thread-runs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-execution-id", "turn-1")
    expect(rows.nth(0).locator('[data-col="duration"]')).to_have_text("120 ms")
    expect(rows.nth(0).locator('[data-col="tokens"]')).to_have_text("42")

    turns = page.locator("#thread-conversation article.turn")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator("li.message")).to_have_count(2)
    new = turns.nth(1).locator("li.message")
    expect(new).to_have_count(4)
    expect(new.nth(0)).to_have_attribute("data-role", "user")
    expect(new.nth(0)).to_contain_text("Any news?")
    expect(new.nth(1).locator(".tool-call")).to_contain_text("track")
    expect(new.nth(2)).to_have_attribute("data-role", "tool")
    expect(new.nth(3)).to_contain_text("It is in transit.")
    page.screenshot(path=str(ARTIFACTS / "thread-page.png"), full_page=True)

    # A run of the conversation links back to its run page.
    turns.nth(0).locator(".turn-head a").click()
    expect(page).to_have_url(f"{server.origin}/projects/acme/runs/turn-1/")
