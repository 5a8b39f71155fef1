"""Celery tasks: thin wrappers around ``traces.exports``, and ``queue_export``, the one
place that sends ``export_runs`` (``exports`` does not import this module).

``export_runs`` is safe to run twice: it claims the export row, writes to a partial file
and renames it only when complete, and a second delivery of a finished export does
nothing. ``acks_late`` + ``reject_on_worker_lost``: the message is acknowledged only once
the export has finished, so a worker that dies mid-export leaves it to another worker.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from . import exports

log = logging.getLogger(__name__)

# Seconds before retrying a delivery that found the export held by another worker.
BUSY_RETRY_SECONDS = 30


@shared_task(  # type: ignore[untyped-decorator]
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=settings.EXPORT_TIME_LIMIT,
    time_limit=settings.EXPORT_TIME_LIMIT + 60,
)
def export_runs(self: Any, export_id: str) -> str:
    """Write export ``export_id`` to its file; returns what happened. Past the soft
    time limit ``run_export`` marks the export failed."""
    try:
        return exports.run_export(export_id)
    except exports.ExportBusy:
        # A duplicate delivery while another worker runs it: look again later, in case
        # that worker dies (then this delivery takes over).
        raise self.retry(countdown=BUSY_RETRY_SECONDS) from None


@shared_task(acks_late=True)  # type: ignore[untyped-decorator]
def delete_expired_exports() -> int:
    """The retention sweep (Celery beat, hourly)."""
    return exports.delete_expired()


def queue_export(export_id: str) -> None:
    """Send ``export_runs`` for this export once the current transaction commits (at
    once outside one). When the broker is unreachable (after kombu's retries) the export
    is marked failed with the reason."""

    def send() -> None:
        try:
            export_runs.delay(export_id)
        except OperationalError as exc:
            log.exception("export %s: could not queue its task", export_id)
            exports.not_queued(export_id, str(exc))

    transaction.on_commit(send)
