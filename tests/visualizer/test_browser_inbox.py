"""The navigation's inbox badge in a real browser against a real Daphne on a private
Redis: an alert firing makes the count go up without a reload, and marking the items read
on another page brings it down there too."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.servers import Daphne, RedisServer, daphne, database_url, redis_server, server_env
from tests.traces.test_alerts import trace
from traces import alerts
from traces.models import AlertFiring, AlertKind, InboxItem, Project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def servers(django_db_setup: None) -> Iterator[tuple[Daphne, RedisServer]]:
    with (
        redis_server() as redis,
        daphne(server_env(database_url(connection.settings_dict), redis.url)) as live,
    ):
        yield live, redis


def fire(rule_id: int) -> AlertFiring | None:
    """Evaluate the rule as the beat task does, in a thread of its own: Playwright's event
    loop holds this one, and the push after commit needs a thread without one."""

    def evaluate() -> AlertFiring | None:
        try:
            return alerts.evaluate_rule(rule_id)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(evaluate).result()


def test_the_inbox_badge_counts_up_live_and_down_when_read_elsewhere(
    servers: tuple[Daphne, RedisServer],
    page: Page,
    api_key: str,
    member: Any,
    project: Project,
    settings: Any,
) -> None:
    server, redis = servers
    # This process publishes the firing: to the same Redis layer as the Daphne.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis.url], "prefix": "dashflow.db0"},
        }
    }
    auth = {"Authorization": f"Bearer {api_key}"}
    started = timezone.now() - timedelta(minutes=1)
    response = server.request("POST", "/api/v1/traces", trace("bad", started, failed=True), auth)
    assert response.status == 201
    rule = alerts.create_rule(project, {"name": "failing", "kind": AlertKind.FAILURE_RATE})

    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")
    # The failure list shares the badge's project socket and shows when it is open.
    page.goto(f"{server.origin}/projects/acme/failures/")
    expect(page.locator("#live-indicator")).to_be_visible()
    badge = page.locator("#inbox-unread")
    expect(badge).to_be_hidden()
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    assert fire(rule.pk) is not None

    expect(badge).to_be_visible()
    expect(badge).to_have_text("1")
    assert page.evaluate("window.sameDocument === true")

    # Read on another page of the same session: this page's badge comes down live.
    inbox = page.context.new_page()
    inbox.goto(f"{server.origin}/projects/acme/inbox/")
    expect(inbox.locator("#inbox-unread")).to_have_text("1")
    inbox.click("#read-all")
    expect(inbox.locator("#inbox-items tr.read")).to_have_count(1)
    expect(inbox.locator("#inbox-unread")).to_be_hidden()

    expect(badge).to_be_hidden()
    expect(badge).to_have_text("0")
    assert page.evaluate("window.sameDocument === true")
    assert InboxItem.objects.get().read_at is not None
