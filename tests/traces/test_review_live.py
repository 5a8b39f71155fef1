"""Review changes reach everyone viewing the run, live, over the run's websocket: a real
Daphne subprocess, real sessions, a comment posted over HTTP by one user arriving on
another user's socket. A user outside the project cannot even subscribe."""

from __future__ import annotations

import csv
import io
import json
import secrets
import string
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.servers import Daphne, WsClient, daphne, database_url, server_env, session_cookie
from tests.traces.test_review import add_user
from traces.models import Comment, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "review-live-run"
CSRF = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def session_headers(cookie: str) -> dict[str, str]:
    """A signed-in browser's headers: the session cookie and a CSRF token (cookie + header)."""
    cookies = f"{settings.SESSION_COOKIE_NAME}={cookie}; {settings.CSRF_COOKIE_NAME}={CSRF}"
    return {"Cookie": cookies, "X-CSRFToken": CSRF}


def as_user(server: Daphne, cookie: str, method: str, path: str, body: Any) -> Any:
    """An API call from a signed-in browser session."""
    response = server.request(method, path, body, session_headers(cookie))
    assert response.status < 300, (response.status, response.body)
    return response.json()


def start_run(server: Daphne, key: str) -> None:
    events = [
        {"seq": 1, "type": "run_started", "data": {"metadata": {"graph_name": "g"}}},
        {
            "seq": 2,
            "type": "node_finished",
            "data": {
                "node": "retriever",
                "index": 0,
                "duration_ms": 30000,
                "tokens_used": 0,
                "state_before": {"query": "kafka"},
                "state_after": {"query": "kafka", "documents": []},
                "success": False,
                "error_message": "Timeout",
            },
        },
    ]
    response = server.request(
        "POST", f"/api/v1/runs/{RUN}/events", {"events": events}, {"Authorization": f"Bearer {key}"}
    )
    assert response.status == 200, response.body


def subscribed(server: Daphne, cookie: str) -> WsClient:
    """A socket on the run that has joined its group: the replayed events prove it."""
    socket = server.websocket(f"/ws/runs/{RUN}/?project=acme&after=0", cookie)
    assert [m["seq"] for m in socket.receive_events(2)] == [1, 2]
    return socket


def next_review(socket: WsClient) -> dict[str, Any]:
    message: dict[str, Any] = socket.receive()
    assert message["type"] == "review", message
    return message


def test_a_comment_reaches_the_other_viewers_of_the_run_live(
    server: Daphne, project: Project, other_project: Project, api_key: str
) -> None:
    alice = session_cookie(add_user(project, "alice", Role.MEMBER))
    bob = session_cookie(add_user(project, "bob", Role.MEMBER))
    vera = session_cookie(add_user(project, "vera", Role.VIEWER))
    otto = session_cookie(add_user(other_project, "otto", Role.ADMIN))
    start_run(server, api_key)

    # The run page's review socket replays no events and asks when it is subscribed.
    quiet = server.websocket(f"/ws/runs/{RUN}/?project=acme&after=9007199254740991", bob)
    quiet.connection.send(json.dumps({"type": "ping"}))
    assert quiet.receive() == {"type": "pong"}

    with subscribed(server, bob) as bob_ws, subscribed(server, vera) as vera_ws, quiet:
        posted = as_user(
            server,
            alice,
            "POST",
            f"/api/v1/runs/{RUN}/comments?project=acme",
            {"body": "the fetch of `/documents` timed out, @bob <script>x()</script>",
             "step": 0, "path": "/documents"},
        )  # fmt: skip
        for socket in (bob_ws, vera_ws, quiet):
            message = next_review(socket)
            assert message["event"] == "comment_added"
            comment = message["comment"]
            assert comment["id"] == posted["id"]
            assert (comment["author"], comment["step_index"], comment["path"]) == (
                "alice",
                0,
                "/documents",
            )
            assert comment["mentions"] == ["bob"]
            assert "&lt;script&gt;" in comment["html"]
            assert "<script" not in comment["html"]
            assert [(a["actor"], a["verb"]) for a in message["activity"]] == [
                ("alice", "commented")
            ]

        # Status, verdict, edit and delete arrive the same way, in order.
        as_user(server, bob, "PATCH", f"/api/v1/runs/{RUN}/review?project=acme",
                {"status": "needs_attention", "assignee": "bob"})  # fmt: skip
        as_user(server, bob, "PUT", f"/api/v1/runs/{RUN}/steps/0/verdict?project=acme",
                {"verdict": "bad", "reason": "timeout"})  # fmt: skip
        as_user(server, alice, "PATCH", f"/api/v1/comments/{posted['id']}?project=acme",
                {"body": "edited"})  # fmt: skip
        response = server.request(
            "DELETE",
            f"/api/v1/comments/{posted['id']}?project=acme",
            headers=session_headers(alice),
        )
        assert response.status == 204, response.body
        changes = [next_review(vera_ws) for _ in range(4)]
        assert [m["event"] for m in changes] == [
            "review_changed",
            "verdict_changed",
            "comment_edited",
            "comment_deleted",
        ]
        assert changes[0]["review"]["status"] == "needs_attention"
        assert [a["verb"] for a in changes[0]["activity"]] == ["status_changed", "assigned"]
        assert changes[1]["verdict"]["verdict"] == "bad"
        assert changes[2]["comment"]["html"] == "<p>edited</p>\n"
        assert changes[3]["comment"] == {"id": posted["id"]}
        assert not Comment.objects.exists()

    # Someone outside the project cannot subscribe, so sees none of it.
    outsider = server.websocket(f"/ws/runs/{RUN}/?project=acme&after=0", otto)
    assert outsider.close_code() == 4403
    # And a viewer cannot write through the API.
    refused = server.request(
        "POST",
        f"/api/v1/runs/{RUN}/comments?project=acme",
        {"body": "hi"},
        session_headers(vera),
    )
    assert refused.status == 403, refused.body
    assert json.loads(refused.body)["detail"].startswith("this needs the member role")


def test_the_export_streams_from_daphne(server: Daphne, project: Project, api_key: str) -> None:
    alice = session_cookie(add_user(project, "alice", Role.MEMBER))
    start_run(server, api_key)
    for n in range(3):
        as_user(server, alice, "POST", f"/api/v1/runs/{RUN}/comments?project=acme",
                {"body": f"note {n}, with a comma", "step": 0})  # fmt: skip
    as_user(server, alice, "PATCH", f"/api/v1/runs/{RUN}/review?project=acme",
            {"labels": ["timeout"]})  # fmt: skip

    response = server.request(
        "GET", "/api/v1/reviews/export?format=csv", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status == 200, response.body
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    assert [(r["record"], r["body"], r["labels"]) for r in rows] == [
        ("review", "", "timeout"),
        ("comment", "note 0, with a comma", ""),
        ("comment", "note 1, with a comma", ""),
        ("comment", "note 2, with a comma", ""),
    ]
    as_json = server.request(
        "GET", "/api/v1/reviews/export?project=acme", headers=session_headers(alice)
    )
    assert as_json.status == 200, as_json.body
    assert [c["author"] for c in as_json.json()["comments"]] == ["alice"] * 3
