"""Bounds on websockets that no client's claims can lift (dashflow_site/wsbuffer.py,
visualizer/socket_limit.py): a client that acknowledges every seq without reading, on a
run socket or on a project socket that has no acks, is closed once Daphne holds
``WS_MAX_UNSENT_BYTES`` unsent for it; one user cannot open more than
``WS_MAX_SOCKETS_PER_USER`` sockets. The server's memory under such clients is measured
in ``benchmarks/hardening.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.servers import (
    Daphne,
    WsClient,
    daphne,
    database_url,
    drain,
    live_events,
    raw_websocket,
    send_text,
    server_env,
    session_cookie,
    wait_for,
)
from traces.models import Membership, Project, Role
from visualizer import socket_limit

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
CAP = MB  # WS_MAX_UNSENT_BYTES of this server
SOCKETS = 3  # WS_MAX_SOCKETS_PER_USER of this server
BIG = 100 * 1024  # each event's state, each run's metadata: about this many bytes
# Far more than the cap and every kernel buffer between server and client together.
ENOUGH = 40 * MB


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(
        database_url(connection.settings_dict),
        WS_MAX_UNSENT_BYTES=str(CAP),
        # Far above what the tests send: the acks' own bound never closes these sockets.
        WS_MAX_PENDING_BYTES=str(256 * MB),
        WS_MAX_SOCKETS_PER_USER=str(SOCKETS),
    )
    with daphne(env) as live:
        yield live


def user_in(project: Project, name: str) -> Any:
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    Membership.objects.create(project=project, user=user, role=Role.MEMBER)
    return user


def post(server: Daphne, key: str, path: str, body: dict[str, Any]) -> None:
    response = server.request("POST", path, body, {"Authorization": f"Bearer {key}"})
    assert response.status in (200, 201), response.body[:300]


def events(first: int, last: int) -> list[dict[str, Any]]:
    return live_events(first, last, BIG)


def test_a_run_viewer_that_acks_every_seq_without_reading_is_closed_at_the_cap(
    server: Daphne, api_key: str, project: Project
) -> None:
    run = "guard-acks"
    post(server, api_key, f"/api/v1/runs/{run}/events", {"events": events(1, 1)})
    cookie = session_cookie(user_in(project, "guesser"))
    viewer = raw_websocket(server.port, f"/ws/runs/{run}/?after=0", cookie, receive_buffer=4096)
    assert viewer is not None, "the viewer was refused"
    posted, last, cut = 0, 1, False
    while posted < ENOUGH and not cut:
        first, last = last + 1, last + 5
        post(server, api_key, f"/api/v1/runs/{run}/events", {"events": events(first, last)})
        posted += 5 * BIG
        try:
            # Seqs are consecutive: it names every one it was sent without reading any.
            for seq in range(first, last + 1):
                send_text(viewer, {"type": "ack", "seq": seq})
        except OSError:  # reset: the server dropped it
            cut = True
    found = drain(viewer, quiet=30)
    viewer.close()
    assert found.end != "still open", f"the viewer was never closed ({posted} bytes posted)"
    assert found.size < posted / 2, "the server sent it (nearly) everything"
    # A close frame the client got to read says resync.
    assert found.close_code in (None, 4409)
    assert "WS_MAX_UNSENT_BYTES" in server.log_tail(200)

    # The server goes on serving a viewer that reads.
    with server.websocket(f"/ws/runs/{run}/?after={last}", cookie=cookie) as reader:
        reader.connection.send(json.dumps({"type": "ping"}))
        assert reader.receive(timeout=30) == {"type": "pong"}
        post(server, api_key, f"/api/v1/runs/{run}/events", {"events": events(last + 1, last + 1)})
        assert reader.receive(timeout=30)["seq"] == last + 1


def test_a_project_socket_that_does_not_read_is_closed_at_the_cap(
    server: Daphne, api_key: str, project: Project, fixtures_dir: Any
) -> None:
    trace = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    cookie = session_cookie(user_in(project, "sleeper"))
    viewer = raw_websocket(server.port, "/ws/projects/acme/runs/", cookie, receive_buffer=4096)
    assert viewer is not None, "the socket was refused"
    posted, number, cut = 0, 0, False
    while posted < ENOUGH and not cut:
        # Each ingested run pushes its summary, metadata included, to the project's sockets.
        number += 1
        trace["execution_id"] = f"guard-project-{number}"
        trace["metadata"] = {"notes": "m" * BIG}
        post(server, api_key, "/api/v1/traces", trace)
        posted += BIG
        try:
            send_text(viewer, {"type": "ping"})
        except OSError:
            cut = True
    found = drain(viewer, quiet=30)
    viewer.close()
    assert found.end != "still open", f"the socket was never closed ({posted} bytes posted)"
    assert found.size < posted / 2
    assert found.close_code in (None, 4409)


def open_project_socket(server: Daphne, cookie: str) -> WsClient:
    return server.websocket("/ws/projects/acme/runs/", cookie=cookie)


def test_a_user_past_the_socket_limit_is_refused_with_4429_until_one_closes(
    server: Daphne, project: Project
) -> None:
    cookie = session_cookie(user_in(project, "hoarder"))
    held = []
    for _ in range(SOCKETS):
        client = open_project_socket(server, cookie)
        assert client.receive(timeout=30)["type"] == "subscribed"
        held.append(client)
    refused = open_project_socket(server, cookie)
    assert refused.close_code(timeout=30) == 4429
    refused.close()
    # Another user is not counted with them.
    with open_project_socket(server, session_cookie(user_in(project, "neighbour"))) as other:
        assert other.receive(timeout=30)["type"] == "subscribed"

    held.pop().close()

    def reopened() -> bool:
        client = open_project_socket(server, cookie)
        try:
            with suppress(Exception):
                if client.receive(timeout=30)["type"] == "subscribed":
                    held.append(client)
                    return True
            return False
        finally:
            if client not in held:
                client.close()

    # The closed socket's slot is free once the server has seen it go.
    wait_for(reopened, 60, "a socket to be accepted again after one closed", interval=0.5)
    for client in held:
        client.close()


def test_handshakes_without_a_session_count_against_their_address(settings: Any) -> None:
    settings.WS_MAX_SOCKETS_PER_ADDRESS = 2

    class Anonymous:
        is_authenticated = False

    class Consumer:
        def __init__(self, address: str) -> None:
            self.scope = {"user": Anonymous(), "client": [address, 40000]}

    same = [Consumer("203.0.113.9") for _ in range(3)]
    assert socket_limit.holder(same[0].scope) == ("address:203.0.113.9", 2)
    assert [socket_limit.take(consumer) for consumer in same] == [True, True, False]
    assert socket_limit.take(Consumer("203.0.113.10"))  # another address
    socket_limit.release(same[0])
    assert socket_limit.take(same[2])
    for consumer in same:
        socket_limit.release(consumer)


def test_the_unsent_bytes_of_a_transport_are_its_buffer_past_the_offset() -> None:
    from dashflow_site.wsbuffer import unsent_bytes

    class Transport:
        dataBuffer = b"x" * 100
        offset = 40
        _tempDataLen = 25

    assert unsent_bytes(Transport()) == 85
    assert unsent_bytes(object()) == 0  # no write buffer to read: not capped
