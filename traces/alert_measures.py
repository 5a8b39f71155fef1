"""What an alert rule measures over its window: the value, whether it breaks the rule, and
the runs behind it. Pure reads; ``traces/alerts.py`` decides whether to fire.

The window of an evaluation at ``now`` is ``(now - window_minutes, now]``, and a run is in
it when its ``started_at`` is. ``graph_name``, when a rule names one, narrows every kind
to the runs of that graph.

- ``failure_rate``: failed runs / finished runs (completed or failed; running runs do
  not count) in the window. Breaks the rule when at least one run finished and the rate
  is above ``threshold`` (a fraction, 0.2 = 20 %). The runs: the failed ones.
- ``node_p95``: the 95th percentile (continuous, interpolated: PostgreSQL's
  ``percentile_cont(0.95)``, the same arithmetic in Python on SQLite) of
  ``Step.duration_ms`` over the steps of ``node`` in the window's runs. Breaks the rule
  when there is a step and the p95 is above ``threshold`` milliseconds. The runs: those
  with a step of the node slower than the threshold, slowest first.
- ``new_failure_group``: failure groups (not ignored) whose ``first_seen`` is in the
  window and that were not named by an earlier firing of the rule. Breaks the rule when
  there are more than ``threshold`` of them (0: any). The runs: their failures' runs.
- ``regression``: the same for groups whose ``regressed_at`` is in the window; a group
  that regresses again later is a new subject (the subject names the regression time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet

from .models import AlertKind, AlertRule, Failure, FailureGroup, GroupStatus, Run, RunStatus, Step
from .percentiles import PercentileCont, percentile


@dataclass
class Measurement:
    value: float
    breached: bool
    execution_ids: list[str] = field(default_factory=list)
    # The group kinds: what this firing would be about ("group:<id>[@<regressed_at>]").
    subjects: list[str] = field(default_factory=list)


def window_start(rule: AlertRule, now: datetime) -> datetime:
    return now - timedelta(minutes=rule.window_minutes)


def measure(
    rule: AlertRule, now: datetime, seen: set[str] | frozenset[str] = frozenset()
) -> Measurement:
    """Measure ``rule`` at ``now``; ``seen`` holds the subjects earlier firings named."""
    runs = Run.objects.filter(
        project_id=rule.project_id, started_at__gt=window_start(rule, now), started_at__lte=now
    )
    if rule.graph_name:
        runs = runs.filter(graph_name=rule.graph_name)
    if rule.kind == AlertKind.FAILURE_RATE:
        return _failure_rate(rule, runs)
    if rule.kind == AlertKind.NODE_P95:
        return _node_p95(rule, runs)
    return _groups(rule, now, seen)


def _capped(execution_ids: QuerySet[Run, str] | list[str]) -> list[str]:
    limit: int = settings.ALERT_MAX_RUNS
    return list(execution_ids[:limit])


def _failure_rate(rule: AlertRule, runs: QuerySet[Run]) -> Measurement:
    finished = runs.filter(status__in=[RunStatus.COMPLETED, RunStatus.FAILED])
    total = finished.count()
    failed = finished.filter(status=RunStatus.FAILED)
    n_failed = failed.count()
    rate = n_failed / total if total else 0.0
    breached = total > 0 and rate > rule.threshold
    ids = failed.order_by("-started_at", "-id").values_list("execution_id", flat=True)
    return Measurement(rate, breached, _capped(ids) if breached else [])


def step_percentile(steps: QuerySet[Step], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``steps``' ``duration_ms`` (None without steps): in
    the database on PostgreSQL, else over the sorted durations in Python."""
    if connection.vendor == "postgresql":
        result = steps.aggregate(p=PercentileCont("duration_ms", fraction=fraction))["p"]
        return None if result is None else float(result)
    durations = list(steps.order_by("duration_ms").values_list("duration_ms", flat=True))
    return percentile(durations, fraction) if durations else None


def _node_p95(rule: AlertRule, runs: QuerySet[Run]) -> Measurement:
    steps = Step.objects.filter(node=rule.node, run__in=runs)
    p95 = step_percentile(steps, 0.95)
    if p95 is None or p95 <= rule.threshold:
        return Measurement(p95 or 0.0, False)
    slow = (
        steps.filter(duration_ms__gt=rule.threshold)
        .order_by("-duration_ms")
        .values_list("run__execution_id", flat=True)
    )
    ids = list(dict.fromkeys(slow[: settings.ALERT_MAX_RUNS * 4]))
    return Measurement(p95, True, _capped(ids))


def _groups(rule: AlertRule, now: datetime, seen: set[str] | frozenset[str]) -> Measurement:
    start = window_start(rule, now)
    groups = FailureGroup.objects.filter(project_id=rule.project_id).exclude(
        status=GroupStatus.IGNORED
    )
    if rule.kind == AlertKind.NEW_FAILURE_GROUP:
        groups = groups.filter(first_seen__gt=start, first_seen__lte=now)
    else:
        groups = groups.filter(regressed_at__gt=start, regressed_at__lte=now)
    if rule.graph_name:
        groups = groups.filter(failures__run__graph_name=rule.graph_name).distinct()
    fresh: dict[str, int] = {}
    for group_id, regressed_at in groups.order_by("id").values_list("id", "regressed_at"):
        subject = f"group:{group_id}"
        if regressed_at is not None and rule.kind == AlertKind.REGRESSION:
            subject += f"@{regressed_at.isoformat()}"
        if subject not in seen:
            fresh[subject] = group_id
    breached = len(fresh) > rule.threshold
    if not breached:
        return Measurement(len(fresh), False)
    failures = Failure.objects.filter(group_id__in=fresh.values())
    if rule.graph_name:
        failures = failures.filter(run__graph_name=rule.graph_name)
    newest = failures.order_by("-seen_at", "-id").values_list("run__execution_id", flat=True)
    ids = list(dict.fromkeys(newest[: settings.ALERT_MAX_RUNS * 4]))
    return Measurement(len(fresh), True, _capped(ids), list(fresh))
