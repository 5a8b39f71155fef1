"""The run filters and sort orders shared by the API, the run list page and exports.

One parser, the same parameter names everywhere: ``status``, ``node``, ``error_type``,
``thread_id``, ``graph_name``, ``started_after``, ``started_before``, ``last`` (a quick
range such as ``24h``), ``q`` (free text) and ``sort``. A bad value raises
``traces.errors.InputError(name, rule)``: a 400 naming the parameter in the API, a message on the
page.

Free text (``q``) matches ``Run.search_text``, a denormalised, lower-cased list of what a
user searches a run by (node names, error types and messages, metadata keys and values,
ids), one item a line: ``extend_search_text`` below keeps its format and cap, and
``traces/summary.py`` says what goes in, for whole traces and live events alike. Why a
column and a trigram index rather than full-text search: what people paste into a run
search is fragments of identifiers ("retr", "gpt-4o", a UUID prefix, "429") that a
tokenising, stemming tsvector does not match, while a pg_trgm GIN index answers ``LIKE
'%fragment%'`` directly; SQLite falls back to the same ``LIKE`` on the same column, so
both backends find the same runs. Why not search the step rows: a query per keystroke must
not read every step of 100,000 runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .errors import InputError
from .fields import iso
from .models import RunError, RunQuerySet, RunStatus, Step

FILTER_NAMES = (
    "status",
    "node",
    "error_type",
    "thread_id",
    "started_after",
    "started_before",
    "graph_name",
    "last",
    "q",
)

# `last=<n><unit>`: the runs started in the last n minutes, hours, days or weeks.
_LAST = re.compile(r"^([1-9][0-9]{0,3})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
QUICK_RANGES = (
    ("1h", "Last hour"),
    ("24h", "Last day"),
    ("7d", "Last week"),
    ("30d", "Last 30 days"),
)

Q_MAX_CHARS = 200
Q_MAX_TERMS = 8
_TERMS = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    node: str | None = None
    error_type: str | None = None
    thread_id: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    graph_name: str | None = None
    # The quick range as given ("24h") and the moment it resolved to when parsed.
    last: str | None = None
    since: datetime | None = None
    q: str | None = None

    def apply(self, runs: RunQuerySet) -> RunQuerySet:
        if self.status:
            runs = runs.filter(status=self.status)
        if self.thread_id:
            runs = runs.filter(thread_id=self.thread_id)
        if self.graph_name:
            runs = runs.filter(graph_name=self.graph_name)
        if self.started_after:
            runs = runs.filter(started_at__gte=self.started_after)
        if self.since:
            runs = runs.filter(started_at__gte=self.since)
        if self.started_before:
            runs = runs.filter(started_at__lt=self.started_before)
        # EXISTS rather than a join: a run with 500 visits to the node stays one row.
        if self.node:
            runs = runs.filter(Exists(Step.objects.filter(run=OuterRef("pk"), node=self.node)))
        if self.error_type:
            runs = runs.filter(
                Exists(RunError.objects.filter(run=OuterRef("pk"), error_type=self.error_type))
            )
        # Each term must appear; search_text is lower-cased, so a case-sensitive LIKE (which
        # the trigram index serves as is, unlike Django's UPPER(...) LIKE for icontains).
        for term in search_terms(self.q or ""):
            runs = runs.filter(search_text__contains=term)
        return runs

    def params(self) -> dict[str, str]:
        """The filter as query parameters (the ones set), as a link or an export keeps it."""
        values: dict[str, Any] = {
            "status": self.status,
            "node": self.node,
            "error_type": self.error_type,
            "thread_id": self.thread_id,
            "started_after": iso(self.started_after),
            "started_before": iso(self.started_before),
            "graph_name": self.graph_name,
            "last": self.last,
            "q": self.q,
        }
        return {name: value for name, value in values.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.params())


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
        raise InputError(name, f"expected an ISO 8601 date or time, got {raw!r}")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    try:
        # In UTC: PostgreSQL refuses a UTC offset past 15:59 (Python takes up to 23:59).
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first instant
        raise InputError(name, f"expected a time from year 1 to 9999, got {raw!r}") from None


def _since(raw: str, now: datetime) -> datetime:
    match = _LAST.match(raw)
    if match is None:
        raise InputError("last", f"expected a number and m, h, d or w (such as 24h), got {raw!r}")
    return now - timedelta(**{_UNITS[match[2]]: int(match[1])})


def _text(params: Mapping[str, str], name: str, max_chars: int = 200) -> str | None:
    value = (params.get(name) or "").strip()
    if len(value) > max_chars:
        raise InputError(name, f"expected at most {max_chars} characters")
    return value or None


def search_terms(q: str) -> list[str]:
    """The lower-cased terms of a search: words, or "quoted phrases"."""
    return [
        (phrase or word).lower() for phrase, word in _TERMS.findall(q) if (phrase or word).strip()
    ]


def parse_run_filter(params: Mapping[str, str], now: datetime | None = None) -> RunFilter:
    """Read the filters from query parameters; a bad value is a 400 naming it."""
    status = params.get("status") or None
    if status is not None and status not in RunStatus.values:
        allowed = ", ".join(RunStatus.values)
        raise InputError("status", f"expected one of {allowed}, got {status!r}")
    after = params.get("started_after")
    before = params.get("started_before")
    last = params.get("last") or None
    q = _text(params, "q", Q_MAX_CHARS)
    if q is not None and len(search_terms(q)) > Q_MAX_TERMS:
        raise InputError("q", f"expected at most {Q_MAX_TERMS} terms")
    run_filter = RunFilter(
        status=status,
        node=_text(params, "node"),
        error_type=_text(params, "error_type"),
        thread_id=_text(params, "thread_id"),
        started_after=_time("started_after", after) if after else None,
        started_before=_time("started_before", before) if before else None,
        graph_name=_text(params, "graph_name"),
        last=last,
        since=_since(last, now or timezone.now()) if last else None,
        q=q,
    )
    return run_filter


# -- sort ---------------------------------------------------------------------------------

SORT_FIELDS = ("started_at", "duration_ms", "total_tokens")
SORTS = tuple(f"{sign}{field}" for field in SORT_FIELDS for sign in ("-", ""))
DEFAULT_SORT = "-started_at"


@dataclass(frozen=True)
class RunSort:
    """An order of the list: one column, either way, ties broken by id the same way."""

    field: str = "started_at"
    descending: bool = True

    @property
    def name(self) -> str:
        return f"{'-' if self.descending else ''}{self.field}"

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_SORT

    def order_by(self, reverse: bool = False) -> tuple[str, str]:
        descending = self.descending != reverse
        sign = "-" if descending else ""
        return (f"{sign}{self.field}", f"{sign}id")

    def after(self, value: Any, pk: int, reverse: bool = False) -> Q:
        """Rows strictly after ``(value, pk)`` in this order (before it with ``reverse``).

        The redundant ``field <= value`` is what an index can seek to; the OR only sorts
        out the rows that tie on ``value``, so a deep page costs what the first one does.
        """
        descending = self.descending != reverse
        if descending:
            return Q(**{f"{self.field}__lte": value}) & (
                Q(**{f"{self.field}__lt": value}) | Q(pk__lt=pk)
            )
        return Q(**{f"{self.field}__gte": value}) & (
            Q(**{f"{self.field}__gt": value}) | Q(pk__gt=pk)
        )


def parse_run_sort(params: Mapping[str, str]) -> RunSort:
    raw = params.get("sort") or DEFAULT_SORT
    if raw not in SORTS:
        raise InputError("sort", f"expected one of {', '.join(SORTS)}, got {raw!r}")
    return RunSort(field=raw.lstrip("-"), descending=raw.startswith("-"))


# -- the search column --------------------------------------------------------------------

# Enough for the node names, errors and metadata of real runs; a run past it is found by
# what came first. The trigram index grows with the text, so it is bounded.
SEARCH_MAX_CHARS = 4000
_ITEM_MAX_CHARS = 300


def _metadata_items(value: Any, key: str = "") -> Iterator[str]:
    """A run's metadata as search items (also read by migration 0004's backfill)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _metadata_items(v, str(k))
    elif isinstance(value, list):
        for v in value[:50]:
            yield from _metadata_items(v, key)
    elif value is not None and not isinstance(value, bool):
        # "key=value": found by the key, the value, or both.
        yield f"{key}={value}" if key else str(value)


def extend_search_text(existing: str, items: Iterable[str | None]) -> str:
    """``existing`` with the new, distinct ``items`` appended (lower-cased, one a line)."""
    lines = existing.split("\n") if existing else []
    seen = set(lines)
    size = len(existing)
    for item in items:
        if not item:
            continue
        line = " ".join(item.lower().split())[:_ITEM_MAX_CHARS]
        if not line or line in seen:
            continue
        if size + len(line) + 1 > SEARCH_MAX_CHARS:
            break
        seen.add(line)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)
