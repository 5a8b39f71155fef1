"""Live runs end to end: events posted over HTTP to a real Daphne, watched
over real websockets, with the in-memory layer and with Redis.

Every test commits what it writes (transactional database), so the Daphne subprocesses
see it. A viewer can only subscribe to a run that exists, so tests post a first event,
connect, and take that first event's arrival as the proof that the consumer has joined
the group: anything posted afterwards must come through the channel layer. Waiting for
a later seq (a sentinel) instead of sleeping proves that nothing else came in between.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.layers import InMemoryChannelLayer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.servers import (
    Daphne,
    RedisServer,
    WsClient,
    daphne,
    database_url,
    redis_server,
    server_env,
    session_cookie,
    start_daphnes,
    wait_for,
    with_redis_db,
)
from traces.models import Membership, Project, Role, Run, RunEvent, Step
from visualizer.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "live-run-1"
OpenSocket = Callable[..., WsClient]


def load_fixture(fixtures_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir / f"{name}.json").read_bytes())
    return data


def started(seq: int) -> dict[str, Any]:
    """A small event: node ``n<seq>`` started."""
    return {"seq": seq, "type": "node_started", "data": {"node": f"n{seq}", "index": seq}}


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages]


def post_events(
    server: Daphne, key: str, events: list[dict[str, Any]], execution_id: str = RUN
) -> dict[str, Any]:
    response = server.request(
        "POST",
        f"/api/v1/runs/{execution_id}/events",
        {"events": events},
        {"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200, response.body
    body: dict[str, Any] = response.json()
    return body


def get_run(server: Daphne, key: str, execution_id: str = RUN) -> dict[str, Any]:
    response = server.request(
        "GET", f"/api/v1/runs/{execution_id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 200, response.body
    body: dict[str, Any] = response.json()
    return body


def stored_seqs(execution_id: str = RUN) -> list[int]:
    return list(
        RunEvent.objects.filter(run__execution_id=execution_id)
        .order_by("seq")
        .values_list("seq", flat=True)
    )


def current_db_url() -> str:
    # Called inside a test or a fixture after the test database exists, when the
    # connection's settings name it (with pytest-django's _gwN suffix under xdist).
    return database_url(connection.settings_dict)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    """One Daphne per xdist worker, with the in-memory channel layer, for the tests that
    need nothing special. Its groups are named after run primary keys, which the
    worker's database never reuses, so a test never sees another's events."""
    with daphne(server_env(current_db_url())) as live:
        yield live


@pytest.fixture
def redis_url(worker_id: str) -> Iterator[str]:
    """A Redis for the channel layer: ``REDIS_URL`` when set, else a private server.

    On a shared Redis each xdist worker takes a database of its own: the layer names
    groups after run primary keys, which every worker's test database counts from 1.
    """
    shared = os.environ.get("REDIS_URL")
    if shared:
        worker = int(worker_id[2:]) if worker_id.startswith("gw") else 0
        yield with_redis_db(shared, 1 + worker)
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail("REQUIRE_SERVICES=1 needs REDIS_URL: the Redis channel layer is under test")
    with redis_server() as private:
        yield private.url


@pytest.fixture
def alice(member: Any) -> str:
    """The session cookie of ``member`` (alice, a member of ``project``)."""
    return session_cookie(member)


@pytest.fixture
def open_socket(alice: str) -> Iterator[OpenSocket]:
    """Open a websocket (as alice unless told otherwise); all are closed after the test."""
    opened: list[WsClient] = []

    def open_(
        server: Daphne, path: str, cookie: str | None = alice, origin: str | None = None
    ) -> WsClient:
        client = server.websocket(path, cookie=cookie, origin=origin)
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()


def run_path(after: int = 0, execution_id: str = RUN) -> str:
    return f"/ws/runs/{execution_id}/?after={after}"


# First in the file: it idles for a minute, and xdist gives it one worker while the other
# runs everything else.
def test_a_viewer_idle_for_a_minute_on_redis_still_receives_the_next_event(
    api_key: str, open_socket: OpenSocket, redis_url: str
) -> None:
    # redis-py closed idle sockets after a few seconds, so a viewer that had seen nothing
    # for a while silently stopped receiving (channels_redis #422).
    with daphne(server_env(current_db_url(), redis_url)) as live:
        post_events(live, api_key, [started(1)])
        viewer = open_socket(live, run_path())
        assert seqs(viewer.receive_events(1)) == [1]

        assert viewer.silent_for(60)
        post_events(live, api_key, [started(2)])

        assert seqs(viewer.receive_events(1, timeout=10)) == [2]


def test_a_repeated_batch_is_stored_once_and_each_seq_reaches_a_viewer_once(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])
    viewer = open_socket(server, run_path())
    assert seqs(viewer.receive_events(1)) == [1]
    batch = [started(2), started(3), started(4)]

    first = post_events(server, api_key, batch)
    again = post_events(server, api_key, batch)
    post_events(server, api_key, [started(5)])  # the sentinel

    assert (first["accepted"], first["duplicates"]) == (3, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert again["last_seq"] == 4
    assert stored_seqs() == [1, 2, 3, 4, 5]
    assert seqs(viewer.receive_until_seq(5)) == [2, 3, 4, 5]


def test_a_batch_reaches_a_viewer_as_one_frame_and_a_replay_in_frames(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])
    viewer = open_socket(server, run_path())
    assert json.loads(viewer.connection.recv(timeout=10))["seq"] == 1  # one event: itself

    post_events(server, api_key, [started(2), started(3), started(4)])
    frame = json.loads(viewer.connection.recv(timeout=10))

    assert isinstance(frame, list)
    assert seqs(frame) == [2, 3, 4]
    assert [e["data"]["node"] for e in frame] == ["n2", "n3", "n4"]
    post_events(server, api_key, [started(n) for n in range(5, 131)])
    late = open_socket(server, run_path(after=0))
    frames = [json.loads(late.connection.recv(timeout=10)) for _ in range(3)]
    assert [seqs(f) for f in frames] == [
        list(range(1, 51)),
        list(range(51, 101)),
        list(range(101, 131)),
    ]


def test_a_seq_repeated_inside_one_batch_counts_once(server: Daphne, api_key: str) -> None:
    body = post_events(server, api_key, [started(1), started(2), started(1)])

    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert stored_seqs() == [1, 2]


def test_out_of_order_batches_are_stored_and_replayed_in_seq_order(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(3), started(1), started(2)])
    post_events(server, api_key, [started(5), started(4)])

    viewer = open_socket(server, run_path(after=0))

    replayed = viewer.receive_events(5)
    assert seqs(replayed) == [1, 2, 3, 4, 5]
    assert [e["data"]["node"] for e in replayed] == ["n1", "n2", "n3", "n4", "n5"]
    assert stored_seqs() == [1, 2, 3, 4, 5]
    run = get_run(server, api_key)
    assert (run["last_seq"], run["missing_seqs"]) == (5, 0)


def test_missing_seqs_counts_a_gap_until_it_is_filled(server: Daphne, api_key: str) -> None:
    answer = post_events(server, api_key, [started(1), started(2), started(5)])
    assert answer["missing_seqs"] == 2
    assert get_run(server, api_key)["missing_seqs"] == 2

    post_events(server, api_key, [started(4)])
    assert get_run(server, api_key)["missing_seqs"] == 1

    answer = post_events(server, api_key, [started(3)])
    run = get_run(server, api_key)

    assert answer["missing_seqs"] == 0
    assert (run["last_seq"], run["missing_seqs"]) == (5, 0)


def test_a_viewer_sees_a_late_seq_that_fills_a_gap(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])
    viewer = open_socket(server, run_path())
    assert seqs(viewer.receive_events(1)) == [1]

    post_events(server, api_key, [started(3)])
    post_events(server, api_key, [started(2)])

    assert sorted(seqs(viewer.receive_events(2))) == [2, 3]


def test_a_reconnect_with_after_receives_exactly_the_missed_events(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])
    first = open_socket(server, run_path())
    assert seqs(first.receive_events(1)) == [1]
    post_events(server, api_key, [started(2), started(3)])
    last_seen = first.receive_events(2)[-1]["seq"]
    first.close()

    post_events(server, api_key, [started(4), started(5), started(6)])
    second = open_socket(server, run_path(after=last_seen))
    post_events(server, api_key, [started(7)])  # the sentinel, live

    assert last_seen == 3
    assert seqs(second.receive_until_seq(7)) == [4, 5, 6, 7]


def test_a_viewer_receives_each_event_as_it_was_posted(
    server: Daphne, api_key: str, open_socket: OpenSocket, fixtures_dir: Path
) -> None:
    trace = load_fixture(fixtures_dir, "tool_timeout_failure")
    run_started = {
        "seq": 1,
        "type": "run_started",
        "data": {
            "thread_id": trace["thread_id"],
            "parent_execution_id": None,
            "root_execution_id": None,
            "depth": None,
            "started_at": trace["started_at"],
            "metadata": trace["metadata"],
            "initial_state": trace["nodes_executed"][0]["state_before"],
        },
    }
    nodes = [
        {"seq": 2 + i, "type": "node_finished", "data": node}
        for i, node in enumerate(trace["nodes_executed"])
    ]
    error = {"seq": len(nodes) + 2, "type": "error", "data": trace["errors"][0]}
    finished = {
        "seq": len(nodes) + 3,
        "type": "run_finished",
        "data": {
            "completed": trace["completed"],
            "ended_at": trace["ended_at"],
            "final_state": trace["final_state"],
            "total_duration_ms": trace["total_duration_ms"],
            "total_tokens": trace["total_tokens"],
        },
    }
    post_events(server, api_key, [run_started])
    viewer = open_socket(server, run_path())
    assert viewer.receive_events(1) == [run_started]

    live = [*nodes, error, finished]
    post_events(server, api_key, live[:2])  # a batch of two, then one at a time
    for event in live[2:]:
        post_events(server, api_key, [event])

    received = viewer.receive_events(len(live))
    assert received == live
    assert received[1]["data"]["state_after"] == trace["nodes_executed"][1]["state_after"]
    # A late viewer replays the same events from the database.
    late = open_socket(server, run_path())
    assert late.receive_events(len(live) + 1) == [run_started, *live]


def test_an_anonymous_socket_is_closed_with_4401(
    server: Daphne, api_key: str, project: Project, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])

    run_socket = open_socket(server, run_path(), cookie=None)
    project_socket = open_socket(server, f"/ws/projects/{project.slug}/runs/", cookie=None)

    assert run_socket.close_code() == 4401
    assert project_socket.close_code() == 4401


def test_a_user_of_another_project_is_closed_with_4403(
    server: Daphne,
    api_key: str,
    project: Project,
    other_project: Project,
    open_socket: OpenSocket,
) -> None:
    post_events(server, api_key, [started(1)])
    bob = get_user_model().objects.create_user("bob", password="pw-bob-123")
    Membership.objects.create(project=other_project, user=bob, role=Role.ADMIN)
    cookie = session_cookie(bob)

    run_socket = open_socket(server, run_path(), cookie=cookie)
    project_socket = open_socket(server, f"/ws/projects/{project.slug}/runs/", cookie=cookie)

    assert run_socket.close_code() == 4403
    assert project_socket.close_code() == 4403


def test_a_run_that_does_not_exist_is_closed_with_4403(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])

    unknown = open_socket(server, run_path(execution_id="no-such-run"))
    wrong_project = open_socket(server, run_path() + "&project=other")

    assert unknown.close_code() == 4403
    assert wrong_project.close_code() == 4403


def test_an_after_that_is_not_a_seq_is_closed_with_4400(
    server: Daphne, api_key: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])

    negative = open_socket(server, f"/ws/runs/{RUN}/?after=-1")
    text = open_socket(server, f"/ws/runs/{RUN}/?after=abc")

    assert negative.close_code() == 4400
    assert text.close_code() == 4400


def test_a_socket_from_a_foreign_origin_is_refused(
    server: Daphne, api_key: str, alice: str, open_socket: OpenSocket
) -> None:
    post_events(server, api_key, [started(1)])
    assert server.env["ALLOWED_HOSTS"] == "127.0.0.1"

    with pytest.raises(InvalidStatus) as refused:
        server.websocket(run_path(), cookie=alice, origin="http://evil.example")

    assert refused.value.response.status_code == 403
    # The same request from the site's own origin is let in.
    assert seqs(open_socket(server, run_path()).receive_events(1)) == [1]


def test_the_project_socket_receives_a_run_summary_when_a_run_gets_events(
    server: Daphne, api_key: str, project: Project, open_socket: OpenSocket
) -> None:
    runs = open_socket(server, f"/ws/projects/{project.slug}/runs/")
    assert runs.receive() == {"type": "subscribed", "project": project.slug}

    post_events(server, api_key, [started(1), started(2)])
    summary = runs.receive()
    post_events(server, api_key, [started(3)])
    later = runs.receive()

    assert summary["type"] == "run_summary"
    assert summary["run"]["execution_id"] == RUN
    assert summary["run"]["project"] == project.slug
    assert (summary["run"]["status"], summary["run"]["last_seq"]) == ("running", 2)
    assert (later["type"], later["run"]["last_seq"]) == ("run_summary", 3)


def test_the_complete_trace_after_streaming_completes_the_run_without_duplicate_steps(
    server: Daphne, api_key: str, open_socket: OpenSocket, fixtures_dir: Path
) -> None:
    trace = load_fixture(fixtures_dir, "research_agent_success")
    run_id = trace["execution_id"]
    nodes = trace["nodes_executed"]
    stream = [
        {"seq": 1, "type": "run_started", "data": {"thread_id": trace["thread_id"]}},
        *(
            {"seq": 2 + i, "type": "node_finished", "data": copy.deepcopy(node)}
            for i, node in enumerate(nodes)
        ),
    ]
    post_events(server, api_key, stream[:1], run_id)
    viewer = open_socket(server, run_path(execution_id=run_id))
    assert seqs(viewer.receive_events(1)) == [1]
    streamed = post_events(server, api_key, stream[1:], run_id)
    assert streamed["status"] == "running"
    assert Step.objects.filter(run__execution_id=run_id).count() == len(nodes)

    response = server.request(
        "POST", "/api/v1/traces", trace, {"Authorization": f"Bearer {api_key}"}
    )

    assert response.status == 200, response.body
    assert response.json()["status"] == "completed"
    run = get_run(server, api_key, run_id)
    assert (run["status"], run["completed"], run["node_count"]) == ("completed", True, len(nodes))
    assert [n["position"] for n in run["nodes"]] == list(range(len(nodes)))
    assert [n["node"] for n in run["nodes"]] == [n["node"] for n in nodes]
    assert Step.objects.filter(run__execution_id=run_id).count() == len(nodes)
    messages = viewer.receive_until_seq(len(nodes) + 1)
    assert seqs(messages) == list(range(2, len(nodes) + 2))
    updated = viewer.receive()
    assert updated["type"] == "run_updated"
    assert updated["run"]["status"] == "completed"


def test_a_running_run_without_events_for_run_stale_after_is_stale(
    api: APIClient, settings: Any
) -> None:
    # In-process: staleness is computed when a run is read, from RUN_STALE_AFTER. Two
    # seconds leave a read right after a post far from the limit on a loaded machine.
    settings.RUN_STALE_AFTER = 2
    # Posted in-process, the events are published from this process: keep them off a
    # shared Redis, where another worker's viewers may watch a run with the same pk.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    def stale(execution_id: str) -> bool:
        response = api.get(f"/api/v1/runs/{execution_id}")
        assert response.status_code == 200, response.content
        value: bool = response.json()["stale"]
        return value

    def post(execution_id: str, events: list[dict[str, Any]]) -> None:
        url = f"/api/v1/runs/{execution_id}/events"
        response = api.post(url, {"events": events}, format="json")
        assert response.status_code == 200, response.content

    finished = {"seq": 2, "type": "run_finished", "data": {"completed": True}}
    post("finished", [started(1), finished])
    before_post = time.monotonic()
    post(RUN, [started(1)])
    assert not stale(RUN)

    wait_for(lambda: stale(RUN), timeout=15, what="the run to become stale")

    assert time.monotonic() - before_post >= 2
    assert not stale("finished"), "a finished run is never stale"
    post(RUN, [started(2)])
    assert not stale(RUN), "a new event makes the run live again"
    assert Run.objects.get(execution_id=RUN).status == "running"


def test_a_viewer_on_one_daphne_receives_an_event_posted_to_another(
    api_key: str, open_socket: OpenSocket, redis_url: str
) -> None:
    env = server_env(current_db_url(), redis_url)
    a, b = start_daphnes(env, env)
    try:
        post_events(b, api_key, [started(1)])
        viewer = open_socket(a, run_path())
        assert seqs(viewer.receive_events(1)) == [1]

        post_events(b, api_key, [started(2)])
        post_events(b, api_key, [started(3), started(4)])

        assert seqs(viewer.receive_events(3)) == [2, 3, 4]
    finally:
        a.stop()
        b.stop()


def through_a_redis_outage(
    live: Daphne, redis: RedisServer, api_key: str, open_socket: OpenSocket
) -> int:
    """Stream with a viewer, kill Redis, stream on, bring Redis back (empty, same port);
    the last seq the viewer saw."""
    post_events(live, api_key, [started(1), started(2)])
    viewer = open_socket(live, run_path())
    last_seen: int = viewer.receive_events(2)[-1]["seq"]

    redis.kill()
    assert not redis.ping()
    answer = post_events(live, api_key, [started(3), started(4)])
    assert (answer["accepted"], answer["last_seq"]) == (2, 4)
    assert stored_seqs() == [1, 2, 3, 4]
    viewer.close()

    redis.start()
    return last_seen


def test_events_are_stored_while_redis_is_down_and_a_reconnect_catches_up(
    api_key: str, open_socket: OpenSocket
) -> None:
    # Always a private Redis: this test kills it.
    with redis_server() as redis, daphne(server_env(current_db_url(), redis.url)) as live:
        last_seen = through_a_redis_outage(live, redis, api_key, open_socket)

        again = open_socket(live, run_path(after=last_seen))

        assert seqs(again.receive_events(2)) == [3, 4]
        post_events(live, api_key, [started(5)])  # live again through the layer
        assert seqs(again.receive_events(1)) == [5]


def test_a_viewer_reconnecting_with_backoff_catches_up_after_a_redis_outage(
    api_key: str, open_socket: OpenSocket
) -> None:
    with redis_server() as redis, daphne(server_env(current_db_url(), redis.url)) as live:
        last_seen = through_a_redis_outage(live, redis, api_key, open_socket)

        again, caught_up = reconnect_like_live_js(live, open_socket, last_seen, until_seq=4)

        assert caught_up == [3, 4]
        post_events(live, api_key, [started(5)])
        assert seqs(again.receive_events(1)) == [5]


def reconnect_like_live_js(
    live: Daphne, open_socket: OpenSocket, after: int, until_seq: int, attempts: int = 5
) -> tuple[WsClient, list[int]]:
    """Follow the run as static/visualizer/live.js does: on a close that is not one of
    the application's codes (4xxx), reconnect after 0.5 s with ``after`` = the highest
    seq seen, dropping seqs already delivered. The socket and the seqs delivered."""
    delivered: list[int] = []
    for attempt in range(1, attempts + 1):
        client = open_socket(live, run_path(after=after))
        try:
            while after < until_seq:
                seq = client.receive()["seq"]
                if seq > after:
                    delivered.append(seq)
                    after = seq
            return client, delivered
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            assert code is None or code < 4000, f"closed with application code {code}"
            if attempt == attempts:
                raise
            time.sleep(0.5)  # live.js's backoff, not a wait for a condition
    raise AssertionError("unreachable")


def test_a_sync_brings_what_the_layer_lost_while_redis_was_down(
    api_key: str, open_socket: OpenSocket, fixtures_dir: Path
) -> None:
    # A private Redis, to kill. The socket outlives it (the layer's receiver retries), but
    # what is published meanwhile is lost: {"type": "sync"} asks the database instead.
    trace = load_fixture(fixtures_dir, "research_agent_success")
    run_id = trace["execution_id"]
    with redis_server() as redis, daphne(server_env(current_db_url(), redis.url)) as live:
        post_events(live, api_key, [started(1)], run_id)
        viewer = open_socket(live, run_path(execution_id=run_id))
        assert seqs(viewer.receive_events(1)) == [1]

        redis.kill()
        post_events(live, api_key, [started(2), started(3)], run_id)
        assert viewer.silent_for(1)  # lost on the way
        viewer.connection.send(json.dumps({"type": "sync"}))
        assert seqs(viewer.receive_events(2)) == [2, 3]

        viewer.connection.send(json.dumps({"type": "sync"}))
        assert viewer.silent_for(1)  # nothing new: nothing sent twice
        # A complete trace replaces the run; its run_updated is lost too.
        response = live.request(
            "POST", "/api/v1/traces", trace, {"Authorization": f"Bearer {api_key}"}
        )
        assert response.status == 200, response.body
        viewer.connection.send(json.dumps({"type": "sync"}))
        updated = viewer.receive()
        assert (updated["type"], updated["run"]["status"]) == ("run_updated", "completed")


class JoinFails(InMemoryChannelLayer):  # type: ignore[misc]
    """The in-memory layer, failing as a consumer joins a group, as Redis does when it goes
    down between a socket's channel and its group."""

    async def group_add(self, group: str, channel: str) -> None:
        raise ConnectionError("the channel layer is down")


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "tests.traces.test_live.JoinFails"}})
def test_a_viewer_that_cannot_join_gets_the_replay_then_1013(api: APIClient, alice: str) -> None:
    response = api.post(
        f"/api/v1/runs/{RUN}/events", {"events": [started(1), started(2)]}, format="json"
    )
    assert response.status_code == 200, response.content
    app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    cookie = f"{settings.SESSION_COOKIE_NAME}={alice}".encode()

    async def watch() -> tuple[bool, Any, dict[str, Any]]:
        viewer = WebsocketCommunicator(app, run_path(), headers=[(b"cookie", cookie)])
        accepted, _ = await viewer.connect(timeout=30)
        replay = await viewer.receive_json_from(timeout=30)
        closed: dict[str, Any] = await viewer.receive_output(timeout=30)
        await viewer.wait(timeout=30)
        return accepted, replay, closed

    accepted, replay, closed = async_to_sync(watch)()

    assert accepted
    assert seqs(replay) == [1, 2]  # what the database has, though the layer failed
    assert closed == {"type": "websocket.close", "code": 1013}
