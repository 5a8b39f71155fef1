"""Delivering a firing to its rule's webhook: the JSON body, its signature, one attempt.

The body is signed with the rule's secret: ``X-DashFlow-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the exact body bytes. ``X-DashFlow-Timestamp`` repeats the body's
``sent_at`` (so it is signed too): a receiver can refuse old deliveries. Each attempt is
logged on the firing (time, HTTP status or error); ``traces/tasks.py`` retries with
backoff when ``deliver`` raises ``Retryable`` (no connection, a timeout, a 5xx). The
request itself is ``traces/egress.py``'s: the URL's host resolved and checked again, the
connection made to the checked address, no redirect followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import egress
from .alerts import firing_summary
from .models import AlertFiring, DeliveryStatus

SIGNATURE_HEADER = "X-DashFlow-Signature"
TIMESTAMP_HEADER = "X-DashFlow-Timestamp"


class Retryable(Exception):
    """An attempt that may succeed later (connection refused, timeout, 5xx)."""


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(firing: AlertFiring, sent_at: str) -> bytes:
    rule = firing.rule
    summary = firing_summary(firing)
    document = {
        "event": "alert.fired",
        "sent_at": sent_at,
        "project": rule.project.slug,
        "rule": {"id": rule.pk, "name": rule.name, "kind": rule.kind, "node": rule.node or None},
        "firing": {k: summary[k] for k in ("id", "fired_at", "value", "threshold")},
        "window": {"minutes": firing.window_minutes, "start": summary["window_start"]},
        "runs": summary["runs"],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _log(firing_id: int, attempt: dict[str, Any], status: str, delivered: bool) -> None:
    with transaction.atomic():
        firing = AlertFiring.objects.select_for_update().get(pk=firing_id)
        firing.webhook_attempts = [*firing.webhook_attempts, attempt]
        firing.webhook_status = status
        fields = ["webhook_attempts", "webhook_status"]
        if delivered:
            firing.webhook_delivered_at = timezone.now()
            fields.append("webhook_delivered_at")
        firing.save(update_fields=fields)


def deliver(firing_id: int, last_try: bool) -> str:
    """One attempt to POST the firing to its webhook; returns its delivery status. Raises
    ``Retryable`` when another attempt may succeed and ``last_try`` is false; a firing
    already delivered (a duplicate task) is not sent again."""
    firing = AlertFiring.objects.select_related("rule__project").filter(pk=firing_id).first()
    if firing is None or firing.webhook_status != DeliveryStatus.PENDING:
        return firing.webhook_status if firing else "gone"
    sent_at = timezone.now().isoformat()
    body = body_of(firing, sent_at)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "DashFlow-Trace-Studio-Alerts",
        SIGNATURE_HEADER: sign(firing.rule.secret, body),
        TIMESTAMP_HEADER: sent_at,
    }
    attempt: dict[str, Any] = {"at": sent_at, "status": None, "error": None}
    try:
        code = egress.post(firing.rule.webhook_url, body, headers, settings.ALERT_WEBHOOK_TIMEOUT)
        attempt["status"] = code
        retry = code >= 500
    except egress.Refused as exc:  # checked again at delivery: DNS may answer otherwise now
        attempt["error"] = f"refused: {exc}"[:300]
        retry = False
    except (OSError, http.client.HTTPException) as exc:  # unreachable, timed out, garbled
        attempt["error"] = str(exc)[:300]
        retry = True
    ok = attempt["status"] is not None and 200 <= attempt["status"] < 300
    if ok:
        status = DeliveryStatus.DELIVERED
    elif retry and not last_try:
        status = DeliveryStatus.PENDING
    else:
        status = DeliveryStatus.FAILED
    _log(firing_id, attempt, status, ok)
    if status == DeliveryStatus.PENDING:
        raise Retryable(attempt["error"] or f"HTTP {attempt['status']}")
    return str(status)
