"""Group changes reach open failure pages over the project's websocket: a real Daphne
with the Redis channel layer (so every payload must be plain JSON), real websockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.servers import (
    Daphne,
    WsClient,
    daphne,
    database_url,
    redis_server,
    server_env,
    session_cookie,
)
from traces.models import FailureGroup, Membership, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    # A private Redis: its groups are named after primary keys every test database reuses.
    with (
        redis_server() as redis,
        daphne(server_env(database_url(connection.settings_dict), redis.url)) as live,
    ):
        yield live


def next_of_type(ws: WsClient, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message of ``kind``, skipping the run list's own messages."""
    while True:
        message: dict[str, Any] = ws.receive(timeout)
        if message["type"] == kind:
            return message
        assert message["type"] in ("run_summary", "subscribed"), message


def test_a_viewer_sees_a_new_group_and_its_triage_live(
    server: Daphne, api_key: str, project: Project, fixtures_dir: Path
) -> None:
    viewer = get_user_model().objects.create_user("vic", password="pw-vic-123")
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    auth = {"Authorization": f"Bearer {api_key}"}

    with server.websocket("/ws/projects/acme/runs/", session_cookie(viewer)) as ws:
        assert ws.receive() == {"type": "subscribed", "project": "acme"}
        body = json.loads((fixtures_dir / "tool_timeout_failure.json").read_bytes())
        assert server.request("POST", "/api/v1/traces", body, auth).status == 201

        created = next_of_type(ws, "failure_group")
        group = FailureGroup.objects.get(project=project)
        assert created["group"]["id"] == group.pk
        assert created["group"]["count"] == 1
        assert created["group"]["message"] == "Timeout: GET <url> exceeded <num>s"
        assert created["group"]["run_ids"] == [body["execution_id"]]
        assert created["activity"] == []

        response = server.request(
            "PATCH", f"/api/v1/failure-groups/{group.pk}", {"status": "resolved"}, auth
        )
        assert response.status == 200, response.body

        changed = next_of_type(ws, "failure_group")
        assert changed["group"]["status"] == "resolved"
        (entry,) = changed["activity"]
        assert (entry["verb"], entry["detail"]["from"], entry["detail"]["to"]) == (
            "status_changed",
            "new",
            "resolved",
        )

        # A new occurrence reopens it, and the page hears the regression.
        body["execution_id"] = "another-run"
        assert server.request("POST", "/api/v1/traces", body, auth).status == 201
        reopened = next_of_type(ws, "failure_group")
        assert reopened["group"]["status"] == "new"
        assert reopened["group"]["regressed_at"]
        assert reopened["group"]["count"] == 2
        assert [a["verb"] for a in reopened["activity"]] == ["regressed"]


def test_a_user_of_another_project_hears_nothing(server: Daphne, other_project: Project) -> None:
    eve = get_user_model().objects.create_user("eve", password="pw-eve-123")
    Membership.objects.create(project=other_project, user=eve, role=Role.ADMIN)

    with server.websocket("/ws/projects/acme/runs/", session_cookie(eve)) as ws:
        assert ws.close_code() == 4403


def test_a_transient_live_group_is_announced_and_then_withdrawn(
    server: Daphne, api_key: str, member: Any, project: Project
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}

    def post(*events: dict[str, Any]) -> None:
        response = server.request(
            "POST", "/api/v1/runs/live-x/events", {"events": list(events)}, auth
        )
        assert response.status == 200, response.body

    with server.websocket("/ws/projects/acme/runs/", session_cookie(member)) as ws:
        assert ws.receive()["type"] == "subscribed"
        failed = {
            "node": "fetch",
            "index": 0,
            "duration_ms": 3,
            "tokens_used": 0,
            "success": False,
            "error_message": "reset",
        }
        post({"seq": 1, "type": "node_finished", "data": failed})
        guess = next_of_type(ws, "failure_group")["group"]
        assert (guess["error_type"], guess["count"]) == ("", 1)

        error = {"node": "fetch", "message": "reset", "error_type": "IOError", "execution_index": 0}
        post({"seq": 2, "type": "error", "data": error})

        messages = [next_of_type(ws, "failure_group")["group"] for _ in range(2)]
        by_id = {m["id"]: m for m in messages}
        assert by_id[guess["id"]] == {"id": guess["id"], "deleted": True}
        (real,) = [m for m in messages if m["id"] != guess["id"]]
        assert (real["error_type"], real["count"]) == ("IOError", 1)
    assert list(FailureGroup.objects.values_list("error_type", flat=True)) == ["IOError"]
