"""A page whose user has ``WS_MAX_SOCKETS_PER_USER`` sockets open already is refused with
4429 and does not hammer the server: ``live.js`` tries again only after 30 s, and the page
goes live once a slot is free."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, WebSocket, expect

from tests.servers import Daphne, daphne, database_url, server_env, session_cookie, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(database_url(connection.settings_dict), WS_MAX_SOCKETS_PER_USER="1")
    with daphne(env) as live:
        yield live


def test_a_page_over_the_socket_limit_waits_before_trying_again(
    server: Daphne, page: Page, member: Any
) -> None:
    cookie = session_cookie(member)
    held = server.websocket("/ws/projects/acme/runs/", cookie=cookie)  # the one slot
    assert held.receive(timeout=30)["type"] == "subscribed"

    opened: list[tuple[float, WebSocket]] = []
    page.on("websocket", lambda ws: opened.append((time.monotonic(), ws)))
    page.context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.origin}])
    page.goto(f"{server.origin}/projects/acme/runs/")

    # Playwright delivers the socket events during its own calls: the condition makes one.
    wait_for(
        lambda: page.evaluate("1") and opened and opened[0][1].is_closed(),
        60,
        "the first socket to be refused",
    )
    refused_at = time.monotonic()
    held.close()
    # The page goes live once its slot is free; it may find the slot still taken once
    # (the server lets go of the held socket when it has seen it close).
    expect(page.locator("#live-indicator")).to_be_visible(timeout=150_000)
    assert 2 <= len(opened) <= 3, f"{len(opened)} sockets opened: it hammered the server"
    # No second try within 30 s of the refusal (a lower bound: a slow machine only waits
    # longer). Backoff without the 4429 rule would have tried after 0.5 s.
    assert opened[1][0] - refused_at >= 25
