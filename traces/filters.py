"""The run filters shared by the API, the run list page and exports (same names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError

from .models import RunError, RunQuerySet, RunStatus, Step

FILTER_NAMES = ("status", "node", "error_type", "thread_id", "started_after", "started_before")


@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    node: str | None = None
    error_type: str | None = None
    thread_id: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None

    def apply(self, runs: RunQuerySet) -> RunQuerySet:
        if self.status:
            runs = runs.filter(status=self.status)
        if self.thread_id:
            runs = runs.filter(thread_id=self.thread_id)
        if self.started_after:
            runs = runs.filter(started_at__gte=self.started_after)
        if self.started_before:
            runs = runs.filter(started_at__lt=self.started_before)
        # EXISTS rather than a join: a run with 500 visits to the node stays one row.
        if self.node:
            runs = runs.filter(Exists(Step.objects.filter(run=OuterRef("pk"), node=self.node)))
        if self.error_type:
            runs = runs.filter(
                Exists(RunError.objects.filter(run=OuterRef("pk"), error_type=self.error_type))
            )
        return runs


def _time(name: str, raw: str) -> datetime:
    try:
        value = parse_datetime(raw)
        if value is None:
            day = parse_date(raw)
            if day is not None:
                value = datetime(day.year, day.month, day.day)
    except ValueError:  # well-formed but impossible, such as month 13
        value = None
    if value is None:
        raise ValidationError({name: f"expected an ISO 8601 date or time, got {raw!r}"})
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def parse_run_filter(params: Mapping[str, str]) -> RunFilter:
    """Read the filters from query parameters; a bad value is a 400 naming it."""
    status = params.get("status") or None
    if status is not None and status not in RunStatus.values:
        allowed = ", ".join(RunStatus.values)
        raise ValidationError({"status": f"expected one of {allowed}, got {status!r}"})
    after = params.get("started_after")
    before = params.get("started_before")
    return RunFilter(
        status=status,
        node=params.get("node") or None,
        error_type=params.get("error_type") or None,
        thread_id=params.get("thread_id") or None,
        started_after=_time("started_after", after) if after else None,
        started_before=_time("started_before", before) if before else None,
    )
