"""Websocket consumers: authenticate, join the group, send what the client missed, relay.
Their routes, and the paths the pages hand to their scripts, are in ``routing.py``.

Protocol (JSON): live events are ``{"seq", "type", "data"}`` exactly as the producer sent
them; the client drops any ``seq`` it already has. A frame holds one event, or a JSON
array of events in seq order: the events of one ingested batch go out as one frame, and a
replay goes in frames of ``REPLAY_FRAME_EVENTS`` (a frame costs Daphne and the client more
than its bytes do; with the producer's batches of 2-5 events this divides the fan-out's
frames by as much); a frame stops at ``FRAME_BYTES``. Other messages have no ``seq``:
``{"type": "run_updated", "run": {...}}`` when a complete trace replaced the run, and
``{"type": "resync", "last_seq": n}`` when the client is too far behind (it should reload
the run and reconnect with ``after`` = the latest seq it has).

The channel layer is lossy (Redis drops past a channel's capacity), so the consumer keeps
its own watermark: a gap in what it relays is filled from the database before going on.

Flow control, in bytes: a client acknowledges what it has processed with ``{"type":
"ack", "seq": n}``, n the highest seq it has taken in. Daphne buffers outgoing frames
without limit, so a client that stops reading would make that buffer grow; instead the
consumer counts the bytes of the event frames it sent that no ack covers yet. An ack
releases the frames up to its seq; one without a seq, or naming a seq never sent, releases
nothing, so acking without reading gains a client nothing. A client behind by more than
``WS_MAX_PENDING_BYTES`` when live events come is told to resync and closed: the server
holds at most that much, plus one frame, for it. A replay (on connect, or to fill a hole)
goes out frame by frame as the acks come back, never more than that many bytes ahead of
them, so a client that does not read holds the same bound whether it is replayed or fed
live. Ingestion and other viewers never wait for a viewer: publishing only hands a
message to the channel layer.

The channel layer may be down (Redis): the pushes of that time are lost, and a run that
ends then would look live on every open page. So a client asks, every ``LIVE_CHECK_EVERY``
seconds while its run is live, ``{"type": "sync"}``: the consumer sends what the database
has above what it sent (or ``run_updated`` if a complete trace replaced the run), which
needs no layer. A layer that fails as a socket joins its group closes the socket with 1013
(after the replay, on a run's socket): the client reconnects later and resumes by seq.

The consumers are async, against the house default of sync consumers, for a measured
reason: a sync consumer relays every (viewer, event) pair through Channels' one shared
sync thread and back to the event loop, which capped one Daphne process at ~1,500
deliveries/s (benchmarks/live.py, 100 viewers x 20 events/s: p99 7 s). Relaying here is
pure async; only the database reads go through ``database_sync_to_async``. Events arrive
already encoded (``traces.events``), so 100 viewers do not encode the same event 100 times.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from traces.events import encode_event, exports_group, project_group, run_group
from traces.exports import recent_exports
from traces.live import replay
from traces.models import Project, Run
from visualizer import socket_limit

# Close codes (4000-4999 are the application's): the browser script reads them.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CLOSE_RESYNC = 4409
# Too many sockets open for this user (or address): the page tries again later, slowly.
CLOSE_TOO_MANY = 4429
# The standard "try again later": the channel layer failed as the socket joined its group.
CLOSE_TRY_AGAIN = 1013

# A replay goes out in frames of this many events (a frame costs the server and the
# client more than its bytes do).
REPLAY_FRAME_EVENTS = 50
# No frame, replayed or live, carries more events than fit in this many bytes: Daphne
# refuses to send a websocket message over 1 MB (its websocket_max_message_size, which
# bounds both ways) and closes the socket with 1011, and a replay should overshoot
# WS_MAX_PENDING_BYTES by little. An event larger than this on its own goes alone.
FRAME_BYTES = 512 * 1024

log = logging.getLogger(__name__)


# Database reads: plain functions, run in a worker thread by database_sync_to_async.
def find_run(user: Any, execution_id: str, slug: str | None) -> Run | None:
    runs = Run.objects.visible_to(user).filter(execution_id=execution_id)
    if slug is not None:
        runs = runs.filter(project__slug=slug)
    return runs.select_related("project").first()


def stored_events(run: Run, after: int, limit: int) -> list[dict[str, Any]]:
    return list(replay(run, after, limit))


def last_seq(run: Run) -> int:
    run.refresh_from_db(fields=["last_seq"])
    return run.last_seq


def replaced_summary(run: Run) -> dict[str, Any] | None:
    """The run's summary if a complete trace replaced it since ``run`` was read (its
    ``trace_digest`` changed), else None; ``run`` takes the new digest."""
    digest = Run.objects.filter(pk=run.pk).values_list("trace_digest", flat=True).first()
    if digest is None or digest == run.trace_digest:
        return None
    run.refresh_from_db()
    return run.summary()


def find_project(user: Any, slug: str) -> Project | None:
    return Project.objects.for_user(user).filter(slug=slug).first()


class GroupConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """What the consumers share: accept, authenticate, leave the group on disconnect."""

    group: str

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' ``dispatch`` without its ``aclose_old_connections()`` before each
        message: that is a hop to Channels' one shared sync thread and back for every
        (viewer, message) pair, and with 20 viewers it was most of the fan-out's cost
        (benchmarks/live.py). The consumers here touch the database only through
        ``database_sync_to_async``, which closes stale connections itself, in its thread.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def accept_user(self) -> Any:
        """The signed-in user, or None after closing with 4429 (the user, or the address
        without a session, has ``WS_MAX_SOCKETS_PER_USER`` open already) or 4401."""
        # Accept first: a close before accept is an HTTP 403 with no code for the client.
        await self.accept()
        if not socket_limit.take(self):
            await self.close(code=CLOSE_TOO_MANY)
            return None
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return None
        return user

    async def join_project(self, group_of: Callable[[int], str]) -> Project | None:
        """Accept, authenticate and join the group ``group_of(project.pk)`` of the URL's
        project; None after closing with 4401 or 4403 (not a member)."""
        user = await self.accept_user()
        if user is None:
            return None
        slug = self.scope["url_route"]["kwargs"]["slug"]
        project: Project | None = await database_sync_to_async(find_project)(user, slug)
        if project is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return None
        if not await self.subscribe(group_of(project.pk)):
            await self.close(code=CLOSE_TRY_AGAIN)
            return None
        return project

    async def subscribe(self, group: str) -> bool:
        """Join ``group``; False when the channel layer fails (Redis down), logged: the
        caller closes with 1013 and the client comes back later."""
        self.group = group
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except Exception:  # whatever the layer raises: the socket closes, the client retries
            log.warning("could not join %s; closing the socket with 1013", group, exc_info=True)
            return False
        return True

    async def disconnect(self, code: int) -> None:
        socket_limit.release(self)
        if hasattr(self, "group"):
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except Exception:  # the layer is down: it has forgotten the subscription too
                log.warning("could not leave %s", self.group, exc_info=True)


class RunConsumer(GroupConsumer):
    """``/ws/runs/<execution_id>/?after=<seq>[&project=<slug>]``"""

    run: Run
    relaying = False
    replaying = False  # stored events above ``highest`` remain to be sent from the database

    async def connect(self) -> None:
        user = await self.accept_user()
        if user is None:
            return
        query = parse_qs(self.scope["query_string"].decode())
        after_text = query.get("after", ["0"])[0]
        if not (after_text.isascii() and after_text.isdigit()):
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        execution_id = self.scope["url_route"]["kwargs"]["execution_id"]
        run: Run | None = await database_sync_to_async(find_run)(
            user, execution_id, query.get("project", [None])[0]
        )
        if run is None:
            # Not a member, or no such run: the same answer, so nothing leaks.
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.run = run
        self.watermark = int(after_text)  # every seq up to here was sent (or was before)
        self.ahead: set[int] = set()  # seqs above the watermark already sent
        self.highest = self.watermark  # the highest seq sent
        # Event frames sent and not yet acknowledged: (highest seq in it, bytes), in order.
        self.unacked: deque[tuple[int, int]] = deque()
        self.unacked_bytes = 0
        self.relaying = True
        # Subscribe first, then send from the database: an event committed in between
        # arrives twice at worst, never not at all.
        subscribed = await self.subscribe(run_group(run.pk))
        await self.catch_up()
        if not subscribed:
            # What the database had is sent; without the layer nothing more would come.
            self.relaying = False
            await self.close(code=CLOSE_TRY_AGAIN)

    async def catch_up(self) -> None:
        """Start sending every stored event above ``highest`` (paced by the client's acks,
        ``pump``), or tell a client more than ``WS_MAX_REPLAY`` events behind to resync."""
        latest: int = await database_sync_to_async(last_seq)(self.run)
        if latest - self.highest > settings.WS_MAX_REPLAY:
            await self._resync(latest)
            return
        self.replaying = True
        await self.pump()

    async def pump(self) -> None:
        """Send stored events, a frame at a time, while the client has fewer than
        ``WS_MAX_PENDING_BYTES`` unacknowledged; the next ack sends more."""
        while self.replaying and self.relaying:
            if self.unacked_bytes >= settings.WS_MAX_PENDING_BYTES:
                return
            chunk: list[dict[str, Any]] = await database_sync_to_async(stored_events)(
                self.run, self.highest, REPLAY_FRAME_EVENTS
            )
            frame: list[tuple[int, str]] = []
            size = 0
            for event in chunk:
                text = encode_event(event)
                size += len(text.encode())
                if frame and size > FRAME_BYTES:
                    break  # the rest on the next round, after the acks allow it
                frame.append((event["seq"], text))
            if len(frame) == len(chunk) < REPLAY_FRAME_EVENTS:
                # The end of what is stored: live events take over from here (any that
                # arrived meanwhile were committed first, so this read has them).
                self.replaying = False
            await self._send_events(frame)

    async def _send_events(self, events: list[tuple[int, str]]) -> None:
        """Send the events of ``(seq, text)`` this client does not have yet, in frames of
        at most ``FRAME_BYTES`` (usually one): one event as itself, several as a JSON
        array."""
        frames: list[list[bytes]] = [[]]
        size = 0
        for seq, text in events:
            if seq <= self.watermark or seq in self.ahead:
                continue
            data = text.encode()
            if frames[-1] and size + len(data) + 1 > FRAME_BYTES:
                await self._send_frame(frames[-1])
                frames.append([])
                size = 0
            frames[-1].append(data)
            size += len(data) + 1
            self.highest = max(self.highest, seq)
            self.ahead.add(seq)
            while self.watermark + 1 in self.ahead:
                self.watermark += 1
                self.ahead.discard(self.watermark)
        if frames[-1]:
            await self._send_frame(frames[-1])

    async def _send_frame(self, texts: list[bytes]) -> None:
        """Send events (encoded) as one frame, counted as unacknowledged up to ``highest``."""
        frame = texts[0] if len(texts) == 1 else b"[" + b",".join(texts) + b"]"
        self.unacked.append((self.highest, len(frame)))
        self.unacked_bytes += len(frame)
        await self.send(text_data=frame.decode())

    async def _resync(self, latest: int | None = None) -> None:
        """Tell a client too far behind to reload the run, stop relaying to it and close."""
        self.relaying = False
        self.replaying = False
        if latest is None:
            latest = await database_sync_to_async(last_seq)(self.run)
        await self.send_json({"type": "resync", "last_seq": latest})
        await self.close(code=CLOSE_RESYNC)

    async def sync(self) -> None:
        """The client asks whether it missed anything (pushes are lost while the channel
        layer is down): what the database has above what this socket sent, or
        ``run_updated`` if a complete trace replaced the run meanwhile."""
        replaced = await database_sync_to_async(replaced_summary)(self.run)
        if replaced is not None:
            await self.send_json({"type": "run_updated", "run": replaced})
        elif not self.replaying:
            await self.catch_up()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ack":
            seq = content.get("seq")
            # Only a seq that was sent acknowledges anything.
            if type(seq) is not int or not self.relaying or seq > self.highest:
                return
            while self.unacked and self.unacked[0][0] <= seq:
                self.unacked_bytes -= self.unacked.popleft()[1]
            await self.pump()
        elif kind == "sync" and self.relaying:
            await self.sync()
        elif kind == "ping":
            # Messages are handled one at a time, so this answers after connect() joined the
            # group: a client that fetches on "pong" misses nothing (static/visualizer/review.js).
            await self.send_json({"type": "pong"})

    async def run_events(self, message: dict[str, Any]) -> None:
        # While a replay is under way these events wait in the database for it.
        if not self.relaying or self.replaying:
            return
        if self.unacked_bytes > settings.WS_MAX_PENDING_BYTES:
            await self._resync()
            return
        seqs: list[int] = message["seqs"]
        if seqs and seqs[0] > self.highest + 1:
            # A new hole: something between was lost on the way (the layer drops past its
            # capacity). What was committed, this batch too, is in the database.
            await self.catch_up()
            return
        await self._send_events(list(zip(seqs, message["texts"], strict=True)))

    async def run_reload(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "run_updated", "run": message["run"]})

    async def run_review(self, message: dict[str, Any]) -> None:
        """A review change (traces/review.py): relayed as ``{"type": "review", ...}``.
        Review messages carry no ``seq``: a client that reconnects refetches the review."""
        if self.relaying:
            await self.send_json({**message["review"], "type": "review"})

    async def disconnect(self, code: int) -> None:
        # Let go of what this client held at once (the instance may outlive the socket).
        self.relaying = self.replaying = False
        if hasattr(self, "unacked"):
            self.unacked.clear()
            self.ahead.clear()
        await super().disconnect(code)


class ProjectRunsConsumer(GroupConsumer):
    """``/ws/projects/<slug>/runs/``: a summary each time a run of the project changes."""

    async def connect(self) -> None:
        project = await self.join_project(project_group)
        if project is None:
            return
        await self.send_json({"type": "subscribed", "project": project.slug})

    async def run_summary(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "run_summary", "run": message["run"]})

    async def run_review(self, message: dict[str, Any]) -> None:
        # A run's review status or assignee changed: the review queue updates its row.
        await self.send_json({**message["review"], "type": "review"})

    async def inbox_item(self, message: dict[str, Any]) -> None:
        """A new inbox item (traces/inbox.py): relayed only to its own user, with their
        unread count, which the navigation's badge shows."""
        if message["user_id"] == self.scope["user"].pk:
            await self.send_json(
                {"type": "inbox", "item": message["item"], "unread": message["unread"]}
            )

    async def inbox_unread(self, message: dict[str, Any]) -> None:
        """The user marked items read (on another page): their badge's new count."""
        if message["user_id"] == self.scope["user"].pk:
            await self.send_json({"type": "inbox_unread", "unread": message["unread"]})

    async def failure_group(self, message: dict[str, Any]) -> None:
        # A failure group changed (traces/failures.py): the failure pages update in place.
        await self.send_json(
            {"type": "failure_group", "group": message["group"], "activity": message["activity"]}
        )


class ProjectExportsConsumer(GroupConsumer):
    """``/ws/projects/<slug>/exports/``: the project's exports as they progress.

    On connect: ``{"type": "exports", "exports": [...]}`` (the recent exports, after joining
    the group, so no change is missed in between); then ``{"type": "export", "export": {...}}``
    whenever one is created or its status or progress changes (every ~0.5 s while it runs),
    and ``{"type": "export_deleted", "id": ...}``. Messages carry the whole export, so a
    lost one is made good by the next.
    """

    async def connect(self) -> None:
        project = await self.join_project(exports_group)
        if project is None:
            return
        snapshot = await database_sync_to_async(recent_exports)(project)
        await self.send_json({"type": "exports", "exports": snapshot})

    async def export_changed(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "export", "export": message["export"]})

    async def export_deleted(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "export_deleted", "id": message["id"]})
