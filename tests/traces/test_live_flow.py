"""Flow control on the run websocket, in bytes: a viewer that acknowledges without reading
is cut off with a resync once it is ``WS_MAX_PENDING_BYTES`` behind, a replay goes out only
as fast as the viewer's acks come back, and neither slows ingestion or the other viewers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
from django.db import connection
from websockets.exceptions import ConnectionClosed

from tests.servers import Daphne, WsClient, daphne, database_url, server_env, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 1024 * 1024  # WS_MAX_PENDING_BYTES of this server
PAD = 8 * 1024  # each event carries a state of about this many bytes
FRAME = 50  # a replay's frame holds this many events (consumers.REPLAY_FRAME_EVENTS)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(database_url(connection.settings_dict), WS_MAX_PENDING_BYTES=str(LIMIT))
    with daphne(env) as live:
        yield live


def event(seq: int) -> dict[str, Any]:
    state = {"seq": seq, "notes": "n" * PAD}
    return {
        "seq": seq,
        "type": "node_finished",
        "data": {"node": "worker", "index": seq, "duration_ms": 1, "state_after": state},
    }


def post(server: Daphne, key: str, run: str, first: int, last: int) -> float:
    """Post events ``first..last`` to ``run``; the seconds the POST took."""
    began = time.monotonic()
    response = server.request(
        "POST",
        f"/api/v1/runs/{run}/events",
        {"events": [event(s) for s in range(first, last + 1)]},
        {"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200, response.body
    return time.monotonic() - began


def frames_until(viewer: WsClient, kind: str) -> tuple[list[int], int]:
    """Read raw frames until a message of type ``kind``; the event seqs before it, in
    order, and the bytes of the frames that carried them."""
    seqs: list[int] = []
    size = 0
    while True:
        text = viewer.connection.recv(timeout=30)
        message = json.loads(text)
        if isinstance(message, dict) and message.get("type") == kind:
            return seqs, size
        items = message if isinstance(message, list) else [message]
        assert all("seq" in item for item in items), f"expected events, got {text[:200]}"
        seqs.extend(item["seq"] for item in items)
        size += len(text.encode())


def ack(viewer: WsClient, seq: int) -> None:
    viewer.connection.send(json.dumps({"type": "ack", "seq": seq}))


def test_a_viewer_that_acks_without_reading_is_told_to_resync_while_a_reading_one_gets_all(
    server: Daphne, api_key: str, member: Any
) -> None:
    run = "flow-live"
    cookie = session_cookie(member)
    post(server, api_key, run, 1, 1)
    path = f"/ws/runs/{run}/?after=0"
    # The client library reads into an unbounded queue, so everything the server sent is
    # there to inspect afterwards; to the server this viewer reads nothing, and its acks
    # name no seq it was sent.
    stalled = server.websocket(path, cookie=cookie)
    stalled.connection.recv_messages.high = None
    healthy = server.websocket(path, cookie=cookie)
    assert healthy.receive()["seq"] == 1

    total = 4 * LIMIT // PAD  # four times the bound in events
    received = [1]
    slowest_post = 0.0
    last = 1
    for first in range(2, total + 1, 10):
        last = first + 9
        slowest_post = max(slowest_post, post(server, api_key, run, first, last))
        with suppress(ConnectionClosed):  # once it is told to resync, it is closed
            stalled.connection.send(json.dumps({"type": "ack"}))
            stalled.connection.send(json.dumps({"type": "ack", "seq": 10**9}))
        # The healthy viewer reads what has arrived and acknowledges it, as live.js does.
        while received[-1] < last:
            received.append(healthy.receive()["seq"])
        ack(healthy, received[-1])

    assert received == list(range(1, last + 1))
    # The stalled viewer got events in order until it was the bound behind (plus the frame
    # that took it past), then a resync naming the run's last seq, then the close.
    seqs, size = frames_until(stalled, "resync")
    assert seqs == list(range(1, len(seqs) + 1))
    assert LIMIT < size <= LIMIT + 10 * (PAD + 1024)
    assert len(seqs) < total // 2
    assert stalled.close_code() == 4409
    # Ingestion never waited for either viewer (a wait would be for ever, not seconds).
    assert slowest_post < 10.0
    stalled.close()
    healthy.close()


@pytest.fixture
def backlog(server: Daphne, api_key: str) -> tuple[str, int]:
    """A run with four times the bound of events stored, posted before anyone watches."""
    run, total = "flow-replay", 4 * LIMIT // PAD
    for first in range(1, total + 1, 50):
        post(server, api_key, run, first, min(first + 49, total))
    return run, total


def test_a_replay_to_a_viewer_that_does_not_read_stops_at_the_bound(
    server: Daphne, member: Any, backlog: tuple[str, int]
) -> None:
    run, total = backlog
    viewers = [
        server.websocket(f"/ws/runs/{run}/?after=0", cookie=session_cookie(member))
        for _ in range(3)
    ]
    for viewer in viewers:
        # Messages are handled in order: what came before the pong is all the replay sent
        # before waiting for an ack.
        viewer.connection.send(json.dumps({"type": "ping"}))
        seqs, size = frames_until(viewer, "pong")
        assert seqs == list(range(1, len(seqs) + 1))
        assert LIMIT <= size <= LIMIT + FRAME * (PAD + 1024)
        assert len(seqs) < total // 2
        assert viewer.silent_for(1.0)
        viewer.close()


def test_a_slow_reader_is_replayed_every_event_in_order_as_it_acknowledges(
    server: Daphne, member: Any, backlog: tuple[str, int]
) -> None:
    run, total = backlog
    viewer = server.websocket(f"/ws/runs/{run}/?after=0", cookie=session_cookie(member))
    seqs: list[int] = []
    while len(seqs) < total:
        message = viewer.receive(timeout=30)
        assert "seq" in message, f"expected an event, got {message}"
        seqs.append(message["seq"])
        # A reader that takes its time: it acknowledges only every 40 events.
        if len(seqs) % 40 == 0:
            ack(viewer, seqs[-1])
    assert seqs == list(range(1, total + 1))
    viewer.close()


def test_a_replay_of_large_states_goes_in_frames_of_about_a_megabyte(
    server: Daphne, api_key: str, member: Any
) -> None:
    run, big = "flow-large", 300 * 1024
    for first in (1, 11):
        events = [event(seq) for seq in range(first, first + 10)]
        for item in events:
            item["data"]["state_after"]["notes"] = "n" * big
        response = server.request(
            "POST",
            f"/api/v1/runs/{run}/events",
            {"events": events},
            {"Authorization": f"Bearer {api_key}"},
        )
        assert response.status == 200, response.body
    viewer = server.websocket(f"/ws/runs/{run}/?after=0", cookie=session_cookie(member))
    viewer.connection.send(json.dumps({"type": "ping"}))
    seqs, size = frames_until(viewer, "pong")
    # 50 events to a frame would have sent all 6 MB at once; a frame stops at 1 MB, so the
    # replay stops at the bound plus one such frame.
    assert seqs == list(range(1, len(seqs) + 1))
    assert LIMIT <= size <= LIMIT + 1024 * 1024 + big + 1024
    viewer.close()
