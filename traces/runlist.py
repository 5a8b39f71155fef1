"""A project's runs, filtered, sorted and paged: one function for the API and the page.

Pagination is a keyset cursor on ``(sort column, id)``: a page seeks in the matching index
to the row after the cursor, so page 2,000 costs what page 1 does, and there is no OFFSET
and no COUNT(*) over the project. DRF's ``CursorPagination`` was not enough: it seeks on
the sort column only and steps over ties with an OFFSET that it caps at 1,000, and a
busy project has thousands of runs tied on ``duration_ms`` / ``total_tokens`` (every run
still streaming has 0).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import InputError
from .filters import RunFilter, RunSort, parse_run_filter, parse_run_sort
from .models import Project, Run, RunQuerySet

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# The page says "500+ runs" past this: an exact count reads every matching row, and even
# a capped one reads up to this many (more when a filter's rows are scattered).
COUNT_CAP = 500


@dataclass(frozen=True)
class Cursor:
    """A position in one sort order: the row ``(value, pk)`` and which way to go from it."""

    sort: str
    value: Any
    pk: int
    backwards: bool = False

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = json.dumps([self.sort, value, self.pk, int(self.backwards)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: RunSort) -> Cursor:
        bad = InputError("cursor", "not a cursor of this list (follow a next/previous link)")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            name, value, pk, backwards = json.loads(raw)
        except (ValueError, TypeError, binascii.Error):
            raise bad from None
        if name != sort.name:
            raise InputError(
                "cursor", f"made for sort {name!r}, not {sort.name!r}; start from the first page"
            )
        if not isinstance(pk, int) or isinstance(pk, bool):
            raise bad
        if sort.field == "started_at":
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise bad from None
        elif not isinstance(value, int) or isinstance(value, bool):
            raise bad
        return cls(name, value, pk, bool(backwards))


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next: str | None  # cursors
    previous: str | None


@dataclass(frozen=True)
class RunListing:
    """What a list request asked for and the page it got."""

    filter: RunFilter
    sort: RunSort
    limit: int
    cursor: str | None
    page: RunPage

    @property
    def is_head(self) -> bool:
        """The newest runs first, first page: where a new run belongs at the top."""
        return self.cursor is None and self.sort.is_default


def parse_limit(params: Mapping[str, str]) -> int:
    raw = params.get("limit") or ""
    if not raw:
        return PAGE_SIZE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InputError("limit", f"expected an integer from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def page_of(runs: RunQuerySet, sort: RunSort, cursor: Cursor | None, limit: int) -> RunPage:
    """One page of ``runs`` in ``sort`` order, from ``cursor`` (None: the first page)."""
    backwards = cursor is not None and cursor.backwards
    if cursor is not None:
        runs = runs.filter(sort.after(cursor.value, cursor.pk, reverse=backwards))
    # One row more than the page tells whether there is another page that way.
    rows = list(runs.order_by(*sort.order_by(reverse=backwards))[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()

    def at(run: Run, back: bool) -> str:
        return Cursor(sort.name, getattr(run, sort.field), run.pk, back).encode()

    has_next = more if not backwards else True
    has_previous = more if backwards else cursor is not None
    return RunPage(
        runs=rows,
        next=at(rows[-1], False) if rows and has_next else None,
        previous=at(rows[0], True) if rows and has_previous else None,
    )


def list_runs(project: Project, params: Mapping[str, str]) -> RunListing:
    """The runs of ``project`` as ``params`` ask (filters, ``sort``, ``cursor``, ``limit``).

    A bad parameter raises ``InputError(name, rule)``.
    """
    run_filter = parse_run_filter(params)
    sort = parse_run_sort(params)
    limit = parse_limit(params)
    raw_cursor = params.get("cursor") or None
    cursor = Cursor.decode(raw_cursor, sort) if raw_cursor else None
    runs = run_filter.apply(
        # The search column is for WHERE only; lists never show it.
        Run.objects.filter(project=project).select_related("project").defer("search_text")
    )
    return RunListing(run_filter, sort, limit, raw_cursor, page_of(runs, sort, cursor, limit))


def capped_count(project: Project, run_filter: RunFilter, cap: int = COUNT_CAP) -> int:
    """How many runs match, counting no further than ``cap`` (``cap`` means "cap or more")."""
    runs = run_filter.apply(Run.objects.filter(project=project))
    return runs.values("pk")[:cap].count()
