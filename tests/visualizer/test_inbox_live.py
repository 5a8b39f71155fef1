"""A firing's inbox items reach their users' open pages over the project's websocket
(a real Daphne on a private Redis), each only to its own user."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from tests.servers import (
    Daphne,
    RedisServer,
    WsClient,
    daphne,
    database_url,
    redis_server,
    server_env,
    session_cookie,
)
from tests.traces.test_alerts import trace
from traces import alerts
from traces.models import AlertKind, InboxItem, Membership, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def servers(django_db_setup: None) -> Iterator[tuple[Daphne, RedisServer]]:
    with (
        redis_server() as redis,
        daphne(server_env(database_url(connection.settings_dict), redis.url)) as live,
    ):
        yield live, redis


def messages_until_summary(ws: WsClient, execution_id: str) -> list[dict[str, Any]]:
    """The messages before the run summary of ``execution_id``."""
    seen = []
    while True:
        message: dict[str, Any] = ws.receive(10)
        if message["type"] == "run_summary" and message["run"]["execution_id"] == execution_id:
            return seen
        seen.append(message)


def test_each_member_gets_their_own_inbox_item_live(
    servers: tuple[Daphne, RedisServer], api_key: str, project: Project, settings: Any
) -> None:
    server, redis = servers
    # This process publishes the firing: to the same Redis layer as the Daphne.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis.url], "prefix": "dashflow.db0"},
        }
    }
    users = get_user_model().objects
    alice = users.create_user("alice", password="pw-alice-123")
    bob = users.create_user("bob", password="pw-bob-12345")
    for user in (alice, bob):
        Membership.objects.create(project=project, user=user, role=Role.MEMBER)
    auth = {"Authorization": f"Bearer {api_key}"}
    started = timezone.now() - timedelta(minutes=1)
    response = server.request("POST", "/api/v1/traces", trace("bad", started, failed=True), auth)
    assert response.status == 201
    rule = alerts.create_rule(project, {"name": "failing", "kind": AlertKind.FAILURE_RATE})

    with (
        server.websocket("/ws/projects/acme/runs/", session_cookie(alice)) as ws_alice,
        server.websocket("/ws/projects/acme/runs/", session_cookie(bob)) as ws_bob,
    ):
        assert ws_alice.receive()["type"] == "subscribed"
        assert ws_bob.receive()["type"] == "subscribed"
        assert alerts.evaluate_rule(rule.pk) is not None
        later = trace("later", timezone.now(), failed=False)
        assert server.request("POST", "/api/v1/traces", later, auth).status == 201

        for user, ws in ((alice, ws_alice), (bob, ws_bob)):
            (message,) = messages_until_summary(ws, "later")
            own = InboxItem.objects.get(user=user)
            assert message["type"] == "inbox"
            assert message["item"]["id"] == own.pk
            assert message["item"]["title"] == "Alert: failing"
            assert message["unread"] == 1
