"""Alert rules: their validation, and evaluating one (measure, de-duplicate, fire).

Firing records an ``AlertFiring`` with the runs behind it, adds an inbox item for every
member of the project (``traces/inbox.py``, pushed after commit) and marks its webhook
pending; ``traces/tasks.py`` then delivers it (``traces/webhooks.py``). What each kind
measures is in ``traces/alert_measures.py``.

De-duplication, so a condition that holds for an hour is one notice, not sixty:

- ``failure_rate`` and ``node_p95`` fire when the condition starts to hold (the rule's
  ``breached`` goes from false to true) and stay quiet while it holds; the first
  evaluation that finds it false (including a window without runs) clears it, and the
  next breach fires again.
- ``new_failure_group`` and ``regression`` fire once per subject: a group (for a
  regression, a group's regression at a given time) named by an earlier firing is never
  counted again.

Evaluating a rule locks its row, so two workers evaluating it at once fire at most once:
each evaluation is idempotent for a given state of the rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import egress, inbox
from .alert_measures import measure, window_start
from .errors import InputError
from .fields import iso
from .models import AlertFiring, AlertKind, AlertRule, DeliveryStatus, InboxKind, Project

_THRESHOLD_KINDS = (AlertKind.FAILURE_RATE, AlertKind.NODE_P95)
_MAX_WINDOW_MINUTES = 31 * 24 * 60


def _text(body: dict[str, Any], name: str, limit: int, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > limit:
        raise InputError(name, f"expected a string of at most {limit} characters")
    return value.strip()


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(name, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(name, f"expected a number >= 0, got {value!r}")
    return float(value)


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value in ("on", "true", "1"):
        return True
    if value in ("off", "false", "0", ""):
        return False
    if not isinstance(value, bool):
        raise InputError(name, f"expected a boolean, got {value!r}")
    return value


def _apply(rule: AlertRule, body: dict[str, Any]) -> None:
    """Set the fields ``body`` names on ``rule`` (a JSON object, or a form's values)."""
    if not isinstance(body, dict):
        raise InputError("$", "expected a JSON object")
    unknown = set(body) - {
        "name",
        "kind",
        "threshold",
        "window_minutes",
        "node",
        "graph_name",
        "webhook_url",
        "enabled",
    }
    if unknown:
        raise InputError(sorted(unknown)[0], "unknown field")
    if "name" in body or not rule.name:
        rule.name = _text(body, "name", 200)
        if not rule.name:
            raise InputError("name", "required field is missing")
    if "kind" in body or not rule.kind:
        kind = body.get("kind")
        if kind not in AlertKind.values:
            raise InputError("kind", f"expected one of {', '.join(AlertKind.values)}, got {kind!r}")
        rule.kind = kind
    if "threshold" in body:
        rule.threshold = _number(body, "threshold", 0)
    if rule.kind == AlertKind.FAILURE_RATE and rule.threshold > 1:
        raise InputError("threshold", "a failure rate is a fraction from 0 to 1")
    if "window_minutes" in body:
        minutes = _number(body, "window_minutes", 60)
        if minutes != int(minutes) or not 1 <= minutes <= _MAX_WINDOW_MINUTES:
            raise InputError(
                "window_minutes", f"expected whole minutes, 1 to {_MAX_WINDOW_MINUTES}"
            )
        rule.window_minutes = int(minutes)
    if "node" in body:
        rule.node = _text(body, "node", 200)
    if rule.kind == AlertKind.NODE_P95 and not rule.node:
        raise InputError("node", "a node_p95 rule names its node")
    if "graph_name" in body:
        rule.graph_name = _text(body, "graph_name", 200)
    if "webhook_url" in body:
        url = _text(body, "webhook_url", 2000)
        if url:
            egress.check(url)  # the scheme, and where the host resolves (SSRF)
        rule.webhook_url = url
    if "enabled" in body:
        rule.enabled = _flag(body, "enabled", True)


def create_rule(project: Project, body: dict[str, Any]) -> AlertRule:
    """A new rule from ``body`` (admins; the caller checks); its secret is generated."""
    rule = AlertRule(project=project)
    _apply(rule, body)
    rule.save()
    return rule


def update_rule(rule: AlertRule, body: dict[str, Any]) -> AlertRule:
    """Change the fields ``body`` names. A changed condition starts undisturbed: a rule
    that was breached is cleared, so the new condition fires if it holds."""
    _apply(rule, body)
    rule.breached = False
    rule.save()
    return rule


def rule_summary(rule: AlertRule, with_secret: bool = False) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "id": rule.pk,
        "name": rule.name,
        "kind": rule.kind,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes,
        "node": rule.node or None,
        "graph_name": rule.graph_name or None,
        "webhook_url": rule.webhook_url or None,
        "enabled": rule.enabled,
        "breached": rule.breached,
        "last_evaluated_at": iso(rule.last_evaluated_at),
    }
    if with_secret:
        summary["secret"] = rule.secret
    return summary


def run_url(project: Project, execution_id: str) -> str:
    """A run page's absolute URL (``SITE_URL``), for webhook bodies and inbox links."""
    path = reverse("visualizer:run", args=[project.slug, execution_id])
    return str(settings.SITE_URL).rstrip("/") + path


def firing_summary(firing: AlertFiring) -> dict[str, Any]:
    project = firing.rule.project
    return {
        "id": firing.pk,
        "rule": firing.rule_id,
        "fired_at": firing.fired_at.isoformat(),
        "value": firing.value,
        "threshold": firing.threshold,
        "window_minutes": firing.window_minutes,
        "window_start": firing.window_start.isoformat(),
        "runs": [{"execution_id": e, "url": run_url(project, e)} for e in firing.execution_ids],
        "subjects": firing.subjects,
        "inbox_items": firing.inbox_items,
        "webhook": {
            "status": firing.webhook_status,
            "attempts": firing.webhook_attempts,
            "delivered_at": (iso(firing.webhook_delivered_at)),
        },
    }


def _describe(rule: AlertRule, value: float) -> str:
    if rule.kind == AlertKind.FAILURE_RATE:
        return f"failure rate {value:.0%} > {rule.threshold:.0%}"
    if rule.kind == AlertKind.NODE_P95:
        return f"p95 of {rule.node} {value:.0f} ms > {rule.threshold:.0f} ms"
    what = "new failure groups" if rule.kind == AlertKind.NEW_FAILURE_GROUP else "regressions"
    return f"{value:.0f} {what}"


def evaluate_rule(rule_id: int, now: datetime | None = None) -> AlertFiring | None:
    """Evaluate one rule at ``now``; the firing, if it fired. A disabled or deleted rule
    does nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update()
            .select_related("project")
            .filter(pk=rule_id, enabled=True)
            .first()
        )
        if rule is None:
            return None
        start = window_start(rule, now)
        seen: set[str] = set()
        if rule.kind not in _THRESHOLD_KINDS:
            # A subject is in the window only if its time is, and a firing comes after
            # its subject's time: earlier firings than the window cannot name one.
            for subjects in rule.firings.filter(fired_at__gt=start).values_list(
                "subjects", flat=True
            ):
                seen.update(subjects)
        found = measure(rule, now, seen)
        fire = found.breached and not (rule.kind in _THRESHOLD_KINDS and rule.breached)
        rule.breached = found.breached
        rule.last_evaluated_at = now
        rule.save(update_fields=["breached", "last_evaluated_at"])
        if not fire:
            return None
        firing = AlertFiring.objects.create(
            rule=rule,
            fired_at=now,
            value=found.value,
            threshold=rule.threshold,
            window_minutes=rule.window_minutes,
            window_start=start,
            execution_ids=found.execution_ids,
            subjects=found.subjects,
            webhook_status=DeliveryStatus.PENDING if rule.webhook_url else DeliveryStatus.NONE,
        )
        firing.inbox_items = inbox.notify_members(
            rule.project,
            InboxKind.ALERT,
            f"Alert: {rule.name}",
            f"{_describe(rule, found.value)} in the last {rule.window_minutes} min; "
            f"{len(found.execution_ids)} run(s) behind it.",
            reverse("visualizer:settings", args=[rule.project.slug]) + f"#firing-{firing.pk}",
            firing,
        )
        firing.save(update_fields=["inbox_items"])
        return firing


def enabled_rule_ids() -> list[int]:
    return list(AlertRule.objects.filter(enabled=True).order_by("id").values_list("id", flat=True))


def recent_firings(project: Project, limit: int = 20) -> list[AlertFiring]:
    rows = AlertFiring.objects.filter(rule__project=project).select_related("rule__project")
    return list(rows[:limit])
