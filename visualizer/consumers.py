"""Websocket consumers: authenticate, join the group, send what the client missed, relay.
Their routes, and the paths the pages hand to their scripts, are in ``routing.py``.

Protocol (JSON): live events are ``{"seq", "type", "data"}`` exactly as the producer sent
them; the client drops any ``seq`` it already has. A frame holds one event, or a JSON
array of events in seq order: the events of one ingested batch go out as one frame, and a
replay goes in frames of ``REPLAY_FRAME_EVENTS`` (a frame costs Daphne and the client more
than its bytes do; with the producer's batches of 2-5 events this divides the fan-out's
frames by as much). Other messages have no ``seq``: ``{"type": "run_updated", "run":
{...}}`` when a complete trace replaced the run, and ``{"type": "resync", "last_seq": n}``
when the client is too far behind to replay (it should reload the run and reconnect with
``after`` = the latest seq it has).

The channel layer is lossy (Redis drops past a channel's capacity), so the consumer keeps
its own watermark: a gap in what it relays is filled from the database before going on.

Flow control: a client acknowledges what it has processed with ``{"type": "ack", "seq":
n}``. Daphne buffers outgoing frames without limit, so a client that stops reading would
make that buffer grow; instead, past ``WS_MAX_UNACKED`` live events without an ack the
consumer stops relaying to it and tells it to resync. Ingestion and other viewers never
wait for a viewer: publishing only hands a message to the channel layer.

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

# Close codes (4000-4999 are the application's): the browser script reads them.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CLOSE_RESYNC = 4409
# The standard "try again later": the channel layer failed as the socket joined its group.
CLOSE_TRY_AGAIN = 1013

# A replay goes out in frames of this many events (a frame costs the server and the
# client more than its bytes do).
REPLAY_FRAME_EVENTS = 50

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
        """The signed-in user, or None after closing with 4401."""
        # Accept first: a close before accept is an HTTP 403 with no code for the client.
        await self.accept()
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
        if hasattr(self, "group"):
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except Exception:  # the layer is down: it has forgotten the subscription too
                log.warning("could not leave %s", self.group, exc_info=True)


class RunConsumer(GroupConsumer):
    """``/ws/runs/<execution_id>/?after=<seq>[&project=<slug>]``"""

    run: Run
    relaying = False

    async def connect(self) -> None:
        user = await self.accept_user()
        if user is None:
            return
        query = parse_qs(self.scope["query_string"].decode())
        after_text = query.get("after", ["0"])[0]
        if not after_text.isdigit():
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
        self.unacked = 0  # live events sent since the client's last ack
        self.relaying = True
        # Subscribe first, then send from the database: an event committed in between
        # arrives twice at worst, never not at all.
        subscribed = await self.subscribe(run_group(run.pk))
        await self.catch_up(self.watermark)
        if not subscribed:
            # What the database had is sent; without the layer nothing more would come.
            self.relaying = False
            await self.close(code=CLOSE_TRY_AGAIN)

    async def catch_up(self, after: int) -> None:
        """Send every stored event above ``after``, or tell the client to resync."""
        limit: int = settings.WS_MAX_REPLAY
        backlog: list[dict[str, Any]] = await database_sync_to_async(stored_events)(
            self.run, after, limit + 1
        )
        if len(backlog) > limit:
            await self._resync()
            return
        for start in range(0, len(backlog), REPLAY_FRAME_EVENTS):
            chunk = backlog[start : start + REPLAY_FRAME_EVENTS]
            await self._send_events([(event["seq"], encode_event(event)) for event in chunk])

    async def _send_events(self, events: list[tuple[int, str]], live: bool = False) -> None:
        """Send the events of ``(seq, text)`` this client does not have yet, in one frame:
        one event as itself, several as a JSON array. A live event past
        ``WS_MAX_UNACKED`` without an ack is not sent: the client is told to resync."""
        texts: list[str] = []
        behind = False
        for seq, text in events:
            if seq <= self.watermark or seq in self.ahead:
                continue
            if live:
                self.unacked += 1
                if self.unacked > settings.WS_MAX_UNACKED:
                    behind = True
                    break
            texts.append(text)
            self.highest = max(self.highest, seq)
            self.ahead.add(seq)
            while self.watermark + 1 in self.ahead:
                self.watermark += 1
                self.ahead.discard(self.watermark)
        if texts:
            await self.send(text_data=texts[0] if len(texts) == 1 else f"[{','.join(texts)}]")
        if behind:
            await self._resync()

    async def _resync(self) -> None:
        """Tell a client too far behind to reload the run, and stop relaying to it."""
        self.relaying = False
        latest: int = await database_sync_to_async(last_seq)(self.run)
        await self.send_json({"type": "resync", "last_seq": latest})
        await self.close(code=CLOSE_RESYNC)

    async def sync(self) -> None:
        """The client asks whether it missed anything (pushes are lost while the channel
        layer is down): what the database has above what this socket sent, or
        ``run_updated`` if a complete trace replaced the run meanwhile."""
        replaced = await database_sync_to_async(replaced_summary)(self.run)
        if replaced is not None:
            await self.send_json({"type": "run_updated", "run": replaced})
        else:
            await self.catch_up(self.watermark)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ack":
            self.unacked = 0
        elif isinstance(content, dict) and content.get("type") == "sync" and self.relaying:
            await self.sync()
        elif isinstance(content, dict) and content.get("type") == "ping":
            # Messages are handled one at a time, so this answers after connect() joined the
            # group: a client that fetches on "pong" misses nothing (static/visualizer/review.js).
            await self.send_json({"type": "pong"})

    async def run_events(self, message: dict[str, Any]) -> None:
        if not self.relaying:
            return
        seqs: list[int] = message["seqs"]
        if seqs and seqs[0] > self.highest + 1:
            # A new hole: something between was lost on the way (the layer drops past its
            # capacity). What was committed is in the database; look there once per hole.
            await self.catch_up(self.highest)
        if self.relaying:
            await self._send_events(list(zip(seqs, message["texts"], strict=True)), live=True)

    async def run_reload(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "run_updated", "run": message["run"]})

    async def run_review(self, message: dict[str, Any]) -> None:
        """A review change (traces/review.py): relayed as ``{"type": "review", ...}``.
        Review messages carry no ``seq``: a client that reconnects refetches the review."""
        if self.relaying:
            await self.send_json({**message["review"], "type": "review"})


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
