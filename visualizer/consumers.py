"""Websocket consumers: authenticate, join the group, send what the client missed, relay.

Protocol (JSON): live events are ``{"seq", "type", "data"}`` exactly as the producer sent
them; the client drops any ``seq`` it already has. Other messages have no ``seq``:
``{"type": "run_updated", "run": {...}}`` when a complete trace replaced the run, and
``{"type": "resync", "last_seq": n}`` when the client is too far behind to replay
(it should reload the run and reconnect with ``after`` = the latest seq it has).

The channel layer is lossy (Redis drops past a channel's capacity), so the consumer keeps
its own watermark: a gap in what it relays is filled from the database before going on.

Flow control: a client acknowledges what it has processed with ``{"type": "ack", "seq":
n}``. Daphne buffers outgoing frames without limit, so a client that stops reading would
make that buffer grow; instead, past ``WS_MAX_UNACKED`` live events without an ack the
consumer stops relaying to it and tells it to resync. Ingestion and other viewers never
wait for a viewer: publishing only hands a message to the channel layer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.generic.websocket import JsonWebsocketConsumer
from django.conf import settings

from traces.events import project_group, run_group
from traces.live import replay
from traces.models import Project, Run

# Close codes (4000-4999 are the application's): the browser script reads them.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400
CLOSE_RESYNC = 4409


class RunConsumer(JsonWebsocketConsumer):  # type: ignore[misc]
    """``/ws/runs/<execution_id>/?after=<seq>[&project=<slug>]``"""

    run: Run
    group: str
    relaying = False

    def connect(self) -> None:
        # Accept first: a close before accept is an HTTP 403 with no code for the client.
        self.accept()
        user = self.scope["user"]
        if not user.is_authenticated:
            self.close(code=CLOSE_UNAUTHENTICATED)
            return
        query = parse_qs(self.scope["query_string"].decode())
        after_text = query.get("after", ["0"])[0]
        if not after_text.isdigit():
            self.close(code=CLOSE_BAD_REQUEST)
            return
        runs = Run.objects.visible_to(user).filter(
            execution_id=self.scope["url_route"]["kwargs"]["execution_id"]
        )
        if "project" in query:
            runs = runs.filter(project__slug=query["project"][0])
        run = runs.select_related("project").first()
        if run is None:
            # Not a member, or no such run: the same answer, so nothing leaks.
            self.close(code=CLOSE_FORBIDDEN)
            return
        self.run = run
        self.group = run_group(run.pk)
        self.watermark = int(after_text)  # every seq up to here was sent (or was before)
        self.ahead: set[int] = set()  # seqs above the watermark already sent
        self.highest = self.watermark  # the highest seq sent
        self.unacked = 0  # live events sent since the client's last ack
        self.relaying = True
        # Subscribe first, then send from the database: an event committed in between
        # arrives twice at worst, never not at all.
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.catch_up(self.watermark)

    def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def catch_up(self, after: int) -> None:
        """Send every stored event above ``after``, or tell the client to resync."""
        limit: int = settings.WS_MAX_REPLAY
        backlog = list(replay(self.run, after, limit + 1))
        if len(backlog) > limit:
            self._resync()
            return
        for event in backlog:
            self._send_event(event)

    def _send_event(self, event: dict[str, Any], live: bool = False) -> None:
        seq = event["seq"]
        if seq <= self.watermark or seq in self.ahead:
            return
        if live:
            self.unacked += 1
            if self.unacked > settings.WS_MAX_UNACKED:
                self._resync()
                return
        self.send_json(event)
        self.highest = max(self.highest, seq)
        self.ahead.add(seq)
        while self.watermark + 1 in self.ahead:
            self.watermark += 1
            self.ahead.discard(self.watermark)

    def _resync(self) -> None:
        """Tell a client too far behind to reload the run, and stop relaying to it."""
        self.relaying = False
        self.run.refresh_from_db(fields=["last_seq"])
        self.send_json({"type": "resync", "last_seq": self.run.last_seq})
        self.close(code=CLOSE_RESYNC)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ack":
            self.unacked = 0

    def run_events(self, message: dict[str, Any]) -> None:
        if not self.relaying:
            return
        events = message["events"]
        if events and events[0]["seq"] > self.highest + 1:
            # A new hole: something between was lost on the way (the layer drops past its
            # capacity). What was committed is in the database; look there once per hole.
            self.catch_up(self.highest)
        for event in events:
            if not self.relaying:
                return
            self._send_event(event, live=True)

    def run_reload(self, message: dict[str, Any]) -> None:
        self.send_json({"type": "run_updated", "run": message["run"]})


class ProjectRunsConsumer(JsonWebsocketConsumer):  # type: ignore[misc]
    """``/ws/projects/<slug>/runs/``: a summary each time a run of the project changes."""

    group: str

    def connect(self) -> None:
        self.accept()
        user = self.scope["user"]
        if not user.is_authenticated:
            self.close(code=CLOSE_UNAUTHENTICATED)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        project = Project.objects.for_user(user).filter(slug=slug).first()
        if project is None:
            self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = project_group(project.pk)
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.send_json({"type": "subscribed", "project": slug})

    def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def run_summary(self, message: dict[str, Any]) -> None:
        self.send_json({"type": "run_summary", "run": message["run"]})
