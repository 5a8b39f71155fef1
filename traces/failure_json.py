"""Failure groups as the API, the pages and the websockets read them: the list filter and
the JSON shapes (``traces/failures.py`` writes the groups)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from .errors import InputError
from .fields import iso
from .models import Activity, Failure, FailureGroup, GroupStatus

# How many execution ids a group lists (most recent first); the group page pages the rest.
RUN_IDS_CAP = 20


def run_ids(group_ids: Sequence[int], cap: int = RUN_IDS_CAP) -> dict[int, list[str]]:
    """Per group, the execution ids of its runs, most recent occurrence first, at most
    ``cap`` each.

    One small query per group along the (group, -seen_at) index, rather than one query
    aggregating every failure of every group: a busy group has millions of rows. A run
    that failed many times in a row fills several of the rows read, hence the margin.
    """
    found: dict[int, list[str]] = {}
    for pk in group_ids:
        ids: list[str] = []
        for execution_id in (
            Failure.objects.filter(group_id=pk)
            .order_by("-seen_at", "-id")
            .values_list("run__execution_id", flat=True)[: cap * 5]
        ):
            if execution_id not in ids:
                ids.append(execution_id)
                if len(ids) == cap:
                    break
        found[pk] = ids
    return found


def group_summary(group: FailureGroup, ids: list[str]) -> dict[str, Any]:
    """A group as the API, pages and websockets show it (plain JSON types)."""
    return {
        "id": group.pk,
        "fingerprint": group.fingerprint,
        "node": group.node,
        "error_type": group.error_type,
        "message": group.message,
        "sample_message": group.sample_message,
        "count": group.count,
        "status": group.status,
        "assignee": group.assignee.get_username() if group.assignee is not None else None,
        "first_seen": iso(group.first_seen),
        "last_seen": iso(group.last_seen),
        "regressed_at": iso(group.regressed_at),
        "run_ids": ids,
    }


def summaries(groups: Sequence[FailureGroup]) -> list[dict[str, Any]]:
    ids = run_ids([g.pk for g in groups])
    return [group_summary(g, ids.get(g.pk, [])) for g in groups]


def activity_entry(row: Activity) -> dict[str, Any]:
    """An Activity row as the group page lists it."""
    return {
        "id": row.pk,
        "verb": row.verb,
        "actor": row.actor.get_username() if row.actor is not None else None,
        "detail": row.detail,
        "created_at": row.created_at.isoformat(),
    }


def filter_groups(
    groups: QuerySet[FailureGroup], node: str | None, error_type: str | None, assignee: Any
) -> QuerySet[FailureGroup]:
    """The list filters the failures page and the API share; ``assignee`` is a user or a
    username."""
    if node:
        groups = groups.filter(node=node)
    if error_type:
        groups = groups.filter(error_type=error_type)
    if isinstance(assignee, str):
        groups = groups.filter(assignee__username=assignee)
    elif assignee is not None:
        groups = groups.filter(assignee=assignee)
    return groups


def parse_status(value: str | None) -> str | None:
    """A group status filter as given (None or "" for any); another value is an
    ``InputError`` on ``status``."""
    if value and value not in GroupStatus.values:
        allowed = ", ".join(GroupStatus.values)
        raise InputError("status", f"expected one of {allowed}, got {value!r}")
    return value or None
