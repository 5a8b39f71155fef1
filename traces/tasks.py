"""Celery tasks: thin wrappers around ``traces.exports``, and ``queue_export``, the one
place that sends ``export_runs`` (``exports`` does not import this module); the alerts'
evaluation (Celery beat, every ``ALERT_EVALUATE_EVERY`` seconds) and webhook delivery.

``export_runs`` is safe to run twice: it claims the export row, writes to a partial file
and renames it only when complete, and a second delivery of a finished export does
nothing. ``acks_late`` + ``reject_on_worker_lost``: the message is acknowledged only once
the export has finished, so a worker that dies mid-export leaves it to another worker,
which Redis hands it to after ``CELERY_VISIBILITY_TIMEOUT`` (settings.py says why short).
A retry never waits longer than ``RETRY_COUNTDOWN_MAX`` (half that timeout): a task
waiting in a worker past the timeout would be delivered a second time.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from . import alerts, exports, otlp, retention, webhooks
from .models import DeliveryStatus

log = logging.getLogger(__name__)

# Seconds before retrying a delivery that found the export held by another worker.
BUSY_RETRY_SECONDS = 30


def countdown(seconds: float) -> float:
    """A retry's wait, within ``RETRY_COUNTDOWN_MAX``."""
    return min(seconds, settings.RETRY_COUNTDOWN_MAX)


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
        raise self.retry(countdown=countdown(BUSY_RETRY_SECONDS)) from None


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


@shared_task(acks_late=True)  # type: ignore[untyped-decorator]
def evaluate_alerts() -> int:
    """Evaluate every enabled rule (Celery beat); returns how many fired. Each rule is
    evaluated in its own transaction, so a rule that fails is logged and the others
    still run; a firing with a webhook queues its delivery."""
    fired = 0
    for rule_id in alerts.enabled_rule_ids():
        try:
            firing = alerts.evaluate_rule(rule_id)
        except Exception:  # one broken rule must not silence the others; logged
            log.exception("alert rule %s: evaluation failed", rule_id)
            continue
        if firing is not None:
            fired += 1
            if firing.webhook_status == DeliveryStatus.PENDING:
                queue_webhook(firing.pk)
    return fired


@shared_task(bind=True, acks_late=True, max_retries=None)  # type: ignore[untyped-decorator]
def deliver_alert_webhook(self: Any, firing_id: int) -> Any:
    """POST a firing to its webhook; on a connection error, a timeout or a 5xx, again after
    ``ALERT_WEBHOOK_BACKOFF`` * 2^n seconds (capped at ``ALERT_WEBHOOK_BACKOFF_MAX`` and at
    ``RETRY_COUNTDOWN_MAX``), at most ``ALERT_WEBHOOK_MAX_RETRIES`` times. A delivered
    firing is not sent twice."""
    retries: int = self.request.retries
    try:
        return webhooks.deliver(firing_id, last_try=retries >= settings.ALERT_WEBHOOK_MAX_RETRIES)
    except webhooks.Retryable:
        wait = countdown(
            min(settings.ALERT_WEBHOOK_BACKOFF * 2**retries, settings.ALERT_WEBHOOK_BACKOFF_MAX)
        )
        if self.request.is_eager:
            # In-process Celery (no REDIS_URL) would raise Retry to whoever queued the
            # task; returned, Celery's apply() runs the retry at once (no countdown).
            return self.retry(countdown=wait, throw=False)
        raise self.retry(countdown=wait) from None


def queue_webhook(firing_id: int) -> None:
    """Send ``deliver_alert_webhook`` once the current transaction commits. An unreachable
    broker is logged: the firing stays ``pending`` and shows so on the settings page."""

    def send() -> None:
        try:
            deliver_alert_webhook.delay(firing_id)
        except OperationalError:
            log.exception("alert firing %s: could not queue its webhook", firing_id)

    transaction.on_commit(send)


@shared_task(acks_late=True)  # type: ignore[untyped-decorator]
def expire_idle_otlp_traces() -> int:
    """Celery beat, every minute: end the OpenTelemetry traces whose root span never came
    (``traces/otlp.py``); each OTLP request also sweeps its own project."""
    return otlp.expire_idle()


@shared_task(acks_late=True)  # type: ignore[untyped-decorator]
def purge_expired_runs() -> int:
    """Celery beat, every ``RETENTION_PURGE_EVERY`` seconds: delete every project's runs
    older than its retention, in short batches (``traces/retention.py``); returns how many
    runs went. Safe to run twice at once: each batch skips the runs another holds."""
    return retention.purge_all()
