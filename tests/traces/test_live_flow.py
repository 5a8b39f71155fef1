"""Flow control on the run websocket: a viewer that stops reading or acknowledging is cut
off with a resync instead of making the server buffer without limit, and it never slows
ingestion or the other viewers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from tests.servers import Daphne, daphne, database_url, server_env, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "flow-run"
LIMIT = 40


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(database_url(connection.settings_dict), WS_MAX_UNACKED=str(LIMIT))
    with daphne(env) as live:
        yield live


def post(server: Daphne, key: str, first: int, last: int) -> float:
    """Post ``node_started`` events ``first..last``; the seconds the POST took."""
    events = [
        {"seq": s, "type": "node_started", "data": {"node": f"n{s}", "index": s}}
        for s in range(first, last + 1)
    ]
    began = time.monotonic()
    response = server.request(
        "POST", f"/api/v1/runs/{RUN}/events", {"events": events}, {"Authorization": f"Bearer {key}"}
    )
    assert response.status == 200, response.body
    return time.monotonic() - began


def test_a_viewer_that_never_acks_is_told_to_resync_while_an_acking_one_gets_everything(
    server: Daphne, api_key: str, member: Any
) -> None:
    cookie = session_cookie(member)
    post(server, api_key, 1, 1)
    path = f"/ws/runs/{RUN}/?after=0"
    # The client library keeps reading into an unbounded queue, so what the server sent
    # is all there to inspect; to the server this viewer has simply stopped acking.
    stalled = server.websocket(path, cookie=cookie)
    stalled.connection.recv_messages.high = None
    healthy = server.websocket(path, cookie=cookie)
    assert stalled.receive()["seq"] == 1
    assert healthy.receive()["seq"] == 1

    total = 5 * LIMIT
    received = [1]
    slowest_post = 0.0
    for first in range(2, total + 1, 10):
        slowest_post = max(slowest_post, post(server, api_key, first, first + 9))
        # The healthy viewer reads what has arrived and acknowledges it, as live.js does.
        while received[-1] < first + 9:
            received.append(healthy.receive()["seq"])
        healthy.connection.send(json.dumps({"type": "ack", "seq": received[-1]}))

    assert received == list(range(1, total + 2))
    # The stalled viewer read nothing since seq 1: it got at most LIMIT live events, then
    # a resync naming the last seq, then the close.
    messages = []
    while True:
        message = stalled.receive()
        messages.append(message)
        if message.get("type") == "resync":
            break
    events = [m["seq"] for m in messages if "seq" in m]
    assert events == list(range(2, 2 + LIMIT))
    # The resync names the run's last seq when the limit was passed, at least the one that
    # passed it.
    assert messages[-1]["type"] == "resync"
    assert messages[-1]["last_seq"] >= 2 + LIMIT
    assert stalled.close_code() == 4409
    # Ingestion never waited for either viewer.
    assert slowest_post < 2.0
    stalled.close()
    healthy.close()
