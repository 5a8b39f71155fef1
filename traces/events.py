"""Publishing "run changed" to the channel layer, only after the transaction commits.

The one helper every push goes through (STYLE.md habit 6). Payloads are plain JSON types:
a UUID or datetime would pass the in-memory layer and break on Redis. The layer is
treated as lossy (Redis drops messages past a channel's capacity; Redis may be down):
a failed publish is logged and ingestion still succeeds, because clients catch up from
the database by ``seq`` when they reconnect.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .models import Run

log = logging.getLogger(__name__)


def run_group(run_pk: int) -> str:
    return f"run.{run_pk}"


def project_group(project_pk: int) -> str:
    return f"project.{project_pk}.runs"


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # any layer failure: logged, and the database still has the events
        log.warning(
            "could not publish to %s; clients will catch up on reconnect", group, exc_info=True
        )


def run_events(run: Run, events: list[dict[str, Any]]) -> None:
    """After commit: the new events to the run's viewers, the summary to its project list."""
    summary = run.summary()
    run_pk, project_pk = run.pk, run.project_id

    def send() -> None:
        _send(run_group(run_pk), {"type": "run.events", "events": events})
        _send(project_group(project_pk), {"type": "run.summary", "run": summary})

    transaction.on_commit(send)


def run_changed(run: Run) -> None:
    """After commit: a run's rows changed as a whole (a complete trace was stored)."""
    summary = run.summary()
    run_pk, project_pk = run.pk, run.project_id

    def send() -> None:
        _send(run_group(run_pk), {"type": "run.reload", "run": summary})
        _send(project_group(project_pk), {"type": "run.summary", "run": summary})

    transaction.on_commit(send)
