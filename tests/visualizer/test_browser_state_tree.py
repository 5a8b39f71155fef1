"""The step panel's state in a real browser: a collapsible JSON tree with the step's
changes marked in place (the old value inline and on hover), "only changed", before |
after side by side, copy path, watch from a node, "show all" on a long string and a long
list, numbers as stored, and the chat messages as a transcript with the new ones marked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_run import post_trace, ready, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "weather-chat"
LONG = "lorem ipsum " * 60  # 720 characters


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def weather_trace() -> dict[str, Any]:
    """A LangChain-shaped agent: agent asks for a tool, the tool answers, agent replies.
    Along the way it rewrites ``count`` from 1.0 to 2, keeps a 64-bit id, and drops a
    long string; ``items`` is a long list the tree shows a page of."""
    system = {"type": "system", "content": "You are a weather bot."}
    human = {"type": "human", "content": "What is the weather in Paris?"}
    call = {"name": "lookup_weather", "args": {"city": "Paris"}, "id": "call_1"}
    ask = {"type": "ai", "content": "", "tool_calls": [call]}
    tool = {"type": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "lookup_weather"}
    reply = {"type": "ai", "content": "It is sunny in Paris."}
    s0 = {
        "messages": [system, human],
        "count": 1.0,
        "big_id": 18446744073709551615,
        "long": LONG,
        "items": list(range(250)),
        "config": {"model": "fake", "retries": 2},
    }
    s1 = {**s0, "messages": [system, human, ask], "count": 2}
    s2 = {key: value for key, value in s1.items() if key != "long"}
    s2["messages"] = [system, human, ask, tool]
    s3 = {**s2, "messages": [system, human, ask, tool, reply], "answer": reply["content"]}

    def node(index: int, name: str, before: Any, after: Any) -> dict[str, Any]:
        return {
            "node": name,
            "index": index,
            "duration_ms": 100,
            "tokens_used": 10,
            "state_before": before,
            "state_after": after,
            "tools_called": ["lookup_weather"] if name == "tools" else [],
            "success": True,
            "error_message": None,
            "started_at": f"2026-03-02T09:30:0{index}.000+00:00",
            "metadata": {},
        }

    return {
        "thread_id": "chat-1",
        "execution_id": RUN,
        "nodes_executed": [
            node(0, "agent", s0, s1),
            node(1, "tools", s1, s2),
            node(2, "agent", s2, s3),
        ],
        "total_duration_ms": 400,
        "total_tokens": 30,
        "errors": [],
        "completed": True,
        "started_at": "2026-03-02T09:30:00.000+00:00",
        "ended_at": "2026-03-02T09:30:03.000+00:00",
        "final_state": s3,
        "metadata": {"graph_name": "weather_agent"},
    }


def open_step(server: Daphne, page: Page, api_key: str, step: int) -> None:
    post_trace(server, api_key, weather_trace())
    sign_in(page, server, "alice", "pw-alice-123")
    # A reader's earlier choices (localStorage) would change what the panel shows first.
    page.evaluate("localStorage.clear()")
    page.goto(f"{server.origin}/projects/acme/runs/{RUN}/#step={step}")
    ready(page)
    expect(page.locator("#step-title")).to_contain_text(f"Step #{step}")


def node(page: Page, path: str, side: str = "") -> Any:
    scope = f".state-side.{side} " if side else ""
    return page.locator(f'#step-states {scope}.jt-node[data-path="{path}"]')


def row(page: Page, path: str, side: str = "") -> Any:
    return node(page, path, side).locator(":scope > .jt-row")


def test_the_tree_marks_what_the_step_changed_where_it_is(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    open_step(server, page, api_key, 0)

    # The changed paths are open; the replaced value shows its old value inline and on
    # hover, numbers as they were stored (1.0, not 1; a 64-bit id not rounded).
    count = node(page, "/count")
    expect(count).to_have_class("jt-node jt-replaced")
    expect(count.locator(".jt-old")).to_have_text("1.0")
    expect(count.locator(".jt-badge")).to_have_attribute("title", "was: 1.0")
    expect(count.locator(".jt-val")).to_have_text("2")
    expect(row(page, "/big_id").locator(".jt-val")).to_have_text("18446744073709551615")
    added = node(page, "/messages/2")
    expect(added).to_have_class("jt-node jt-added")
    expect(added).to_have_attribute("aria-expanded", "true")
    for path in ("/messages/2/tool_calls", "/messages/2/tool_calls/0"):
        node(page, path).locator(".jt-toggle").first.click()
    expect(row(page, "/messages/2/tool_calls/0/name").locator(".jt-val")).to_have_text(
        '"lookup_weather"'
    )
    expect(row(page, "/messages").locator(".jt-inside")).to_have_text("1 change inside")

    # Expand and collapse: an unchanged object opens on a click, closes on the next.
    config = node(page, "/config")
    expect(config).to_have_attribute("aria-expanded", "false")
    expect(node(page, "/config/model")).to_have_count(0)  # not built until opened
    config.locator(".jt-toggle").first.click()
    expect(config).to_have_attribute("aria-expanded", "true")
    expect(row(page, "/config/model").locator(".jt-val")).to_have_text('"fake"')
    config.locator(".jt-toggle").first.click()
    expect(node(page, "/config/model")).to_be_hidden()

    # A long list shows its first 100 entries and builds the rest on demand.
    node(page, "/items").locator(".jt-toggle").first.click()
    items = node(page, "/items").locator(":scope > .jt-children")
    expect(items.locator(":scope > .jt-node")).to_have_count(100)
    items.get_by_role("button", name="show all 150").click()
    expect(items.locator(":scope > .jt-node")).to_have_count(250)
    expect(row(page, "/items/249").locator(".jt-val")).to_have_text("249")

    # A long string shows its start; "show all" the whole of it, as JSON.
    long = row(page, "/long")
    expect(long.locator(".jt-val")).to_contain_text('"lorem ipsum lorem')
    expect(long.locator(".jt-val")).not_to_contain_text(LONG.strip())
    long.get_by_role("button", name="show all 720 chars").click()
    expect(long.locator(".jt-val > span")).to_have_text(f'"{LONG}"')

    # Only changed: the changed paths and their ancestors, nothing else.
    page.locator("#state-only-changed").check()
    expect(node(page, "/count")).to_be_visible()
    expect(node(page, "/messages/2")).to_be_visible()
    expect(row(page, "/messages/2/type").locator(".jt-val")).to_have_text('"ai"')  # all of it
    expect(node(page, "/big_id")).to_have_count(0)
    expect(node(page, "/messages/0")).to_have_count(0)
    expect(node(page, "/config")).to_have_count(0)
    # The choice stays for the next step (j), where the tool's answer was added and the
    # long string removed: shown where it was.
    page.keyboard.press("j")
    expect(page.locator("#step-title")).to_contain_text("Step #1")
    expect(page.locator("#state-only-changed")).to_be_checked()
    expect(node(page, "/messages/3")).to_have_class("jt-node jt-added")
    gone = node(page, "/long")
    expect(gone).to_have_attribute("data-removed", "true")
    expect(gone.locator(".jt-badge")).to_have_text("removed")
    expect(node(page, "/count")).to_have_count(0)


def test_before_and_after_side_by_side_open_together(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    open_step(server, page, api_key, 1)

    page.get_by_role("button", name="Before | after").click()
    expect(page.get_by_role("button", name="Before | after")).to_have_attribute(
        "aria-pressed", "true"
    )
    # The removed string is marked in the state before; the added message in the after.
    expect(node(page, "/long", "before")).to_have_class("jt-node jt-removed")
    expect(node(page, "/long", "after")).to_have_attribute("data-removed", "true")
    expect(node(page, "/messages/3", "after")).to_have_class("jt-node jt-added")
    expect(node(page, "/messages/3", "before")).to_have_count(0)
    # Opening a node on one side opens it on the other.
    node(page, "/config", "before").locator(".jt-toggle").first.click()
    expect(node(page, "/config", "after")).to_have_attribute("aria-expanded", "true")
    expect(row(page, "/config/retries", "after").locator(".jt-val")).to_have_text("2")
    # What the reader opened stays open on the next step; what opened because it changed
    # (the added message) does not.
    page.keyboard.press("j")
    expect(page.locator("#step-title")).to_contain_text("Step #2")
    expect(node(page, "/config", "before")).to_have_attribute("aria-expanded", "true")
    expect(node(page, "/messages/4", "after")).to_have_attribute("aria-expanded", "true")
    expect(node(page, "/messages/3", "after")).to_have_attribute("aria-expanded", "false")
    # The mode stays after a reload.
    page.reload()
    ready(page)
    expect(page.locator("#step-states .state-side.after")).to_be_visible()


def test_copy_a_nodes_path_and_watch_it_from_the_tree(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_step(server, page, api_key, 0)

    count = row(page, "/count")
    count.hover()
    count.get_by_role("button", name="copy path").click()
    expect(count.get_by_role("button", name="copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "/count"
    config = row(page, "/config")
    config.hover()
    config.get_by_role("button", name="copy value").click()
    expect(config.get_by_role("button", name="copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == (
        '{\n  "model": "fake",\n  "retries": 2\n}'
    )

    # Watch from a node: the run page's watch-a-path, for that pointer.
    message = row(page, "/messages/2")
    message.hover()
    message.get_by_role("button", name="watch").click()
    expect(page.locator("#watch-path")).to_have_value("/messages/2")
    expect(page.locator("#watch-result")).to_contain_text("first written by #0 agent")
    assert page.url.endswith("#step=0&path=/messages/2")


def test_the_chat_messages_read_as_a_transcript_with_the_new_ones_marked(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    open_step(server, page, api_key, 2)

    chat = page.locator("#step-states .chat")
    expect(chat.locator("h4")).to_have_text("Messages · 5 · 1 new")
    messages = chat.locator(".chat-msg")
    expect(messages.locator(".chat-role")).to_have_text(
        ["system", "user", "assistant", "tool", "assistant"]
    )
    expect(messages.nth(2).locator(".chat-call")).to_contain_text(
        '→ lookup_weather({"city":"Paris"})'
    )
    expect(messages.nth(3)).to_contain_text("result of call_1")
    expect(chat.locator(".chat-msg.new")).to_have_count(1)
    new = chat.locator(".chat-msg.new")
    expect(new).to_have_attribute("data-index", "4")
    expect(new.locator(".chat-text")).to_have_text("It is sunny in Paris.")
    expect(new.locator(".jt-badge")).to_have_text("new")

    # k: the tool's step, whose new message is the tool's answer.
    page.keyboard.press("k")
    expect(page.locator("#step-title")).to_contain_text("Step #1")
    expect(chat.locator(".chat-msg.new")).to_have_attribute("data-index", "3")
