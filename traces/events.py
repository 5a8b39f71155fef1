"""Publishing "run changed" to the channel layer, only after the transaction commits.

The one helper every push goes through (STYLE.md habit 6). Payloads are plain JSON types:
a UUID or datetime would pass the in-memory layer and break on Redis. The layer is
treated as lossy (Redis drops messages past a channel's capacity; Redis may be down):
a failed publish is logged and ingestion still succeeds, because clients catch up from
the database by ``seq`` when they reconnect.

Each hop to the event loop costs: from a thread outside the ASGI request (the OTLP
receiver's writer threads, the gRPC server's) it is a new event loop, and with Redis a new
connection. A request that writes many runs collects what its transactions committed in an
``Outbox`` (``collecting``) and publishes it once, from its own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .models import Run

log = logging.getLogger(__name__)


_json = msgspec.json.Encoder()


def encode_event(event: dict[str, Any]) -> str:
    """An event's websocket text, encoded once for every viewer."""
    return _json.encode(event).decode()


def run_group(run_pk: int) -> str:
    return f"run.{run_pk}"


def project_group(project_pk: int) -> str:
    return f"project.{project_pk}.runs"


Message = tuple[str, dict[str, Any]]  # (group, message)


class Outbox:
    """Messages whose transactions committed, held to be published in one hop."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def add(self, messages: tuple[Message, ...]) -> None:
        self.messages.extend(messages)  # one call: atomic across threads

    def publish(self) -> None:
        """Send what was added; inside a transaction, once it commits (what its own
        commit hooks add is added first: hooks run in the order they were registered)."""
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(self.publish)
            return
        messages, self.messages = self.messages, []
        if messages:
            _send(*messages)


_collecting = threading.local()


@contextmanager
def collecting(outbox: Outbox) -> Iterator[None]:
    """Within the block (in this thread), what each transaction publishes on commit goes to
    ``outbox`` instead of to the channel layer; a rolled-back one adds nothing."""
    previous = getattr(_collecting, "outbox", None)
    _collecting.outbox = outbox
    try:
        yield
    finally:
        _collecting.outbox = previous


def _after_commit(*messages: Message) -> None:
    """Publish ``messages`` once the current transaction commits (into the outbox being
    collected, if any)."""
    outbox: Outbox | None = getattr(_collecting, "outbox", None)
    if outbox is None:
        transaction.on_commit(lambda: _send(*messages))
    else:
        transaction.on_commit(lambda: outbox.add(messages))


def _send(*messages: Message) -> None:
    """Send ``(group, message)`` pairs in one hop to the event loop (each hop costs)."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for group, message in messages:
            try:
                await layer.group_send(group, message)
            except Exception:  # any layer failure: logged; the database has the events
                log.warning(
                    "could not publish to %s; clients catch up on reconnect", group, exc_info=True
                )

    try:
        async_to_sync(send_all)()
    except RuntimeError:  # called from a thread that runs an event loop (not a request)
        log.warning("could not publish from this thread; clients catch up on reconnect")


def run_events(run: Run, events: list[dict[str, Any]]) -> None:
    """After commit: the new events to the run's viewers, the summary to its project list."""
    summary = run.summary()
    run_pk, project_pk = run.pk, run.project_id

    # Seqs and the encoded texts: plain strings pass every layer, and viewers forward them.
    message = {
        "type": "run.events",
        "seqs": [e["seq"] for e in events],
        "texts": [encode_event(e) for e in events],
    }

    _after_commit(
        (run_group(run_pk), message),
        (project_group(project_pk), {"type": "run.summary", "run": summary}),
    )


def run_changed(run: Run) -> None:
    """After commit: a run's rows changed as a whole (a complete trace was stored)."""
    summary = run.summary()
    run_pk, project_pk = run.pk, run.project_id

    _after_commit(
        (run_group(run_pk), {"type": "run.reload", "run": summary}),
        (project_group(project_pk), {"type": "run.summary", "run": summary}),
    )


def exports_group(project_pk: int) -> str:
    return f"project.{project_pk}.exports"


def export_changed(project_pk: int, summary: dict[str, Any]) -> None:
    """After commit: an export's status or progress, to its project's exports page."""
    _after_commit((exports_group(project_pk), {"type": "export.changed", "export": summary}))


def export_deleted(project_pk: int, export_id: str) -> None:
    """After commit: an export and its file are gone."""
    _after_commit((exports_group(project_pk), {"type": "export.deleted", "id": export_id}))


def failure_group_changed(
    project_pk: int, group: dict[str, Any], activity: list[dict[str, Any]]
) -> None:
    """After commit: a failure group changed (traces/failures.py), to the project's
    viewers; ``activity`` lists the entries the change added to its log."""
    message = {"type": "failure.group", "group": group, "activity": activity}
    _after_commit((project_group(project_pk), message))


def run_review(run: Run, message: dict[str, Any]) -> None:
    """After commit: a review change (status, assignee, labels, a verdict, a comment) to
    the run's viewers. ``message`` is plain JSON; the consumer relays it as
    ``{"type": "review", ...}``."""
    run_pk, project_pk = run.pk, run.project_id
    sends: list[Message] = [(run_group(run_pk), {"type": "run.review", "review": message})]
    if message.get("event") == "review_changed":
        # Status and assignee also show in the project's review queue, open elsewhere.
        sends.append((project_group(project_pk), {"type": "run.review", "review": message}))

    _after_commit(*sends)


def inbox_items(project_pk: int, items: list[tuple[int, dict[str, Any], int]]) -> None:
    """After commit: each new inbox item ``(user_id, item, unread)`` to the project's open
    pages; the consumer relays an item only to its own user's sockets."""
    messages = [
        (project_group(project_pk), {"type": "inbox.item", "user_id": u, "item": i, "unread": n})
        for u, i, n in items
    ]
    if messages:
        _after_commit(*messages)


def inbox_unread(project_pk: int, user_id: int, unread: int) -> None:
    """After commit: the user's unread count changed without a new item (items marked
    read), so the badges on their other open pages come down too."""
    message = {"type": "inbox.unread", "user_id": user_id, "unread": unread}
    _after_commit((project_group(project_pk), message))
