"""The inbox: notices for one user in one project, and whether they were read.

Generic on purpose: an alert firing adds an ``alert`` item for every member of its
project (``notify_members``); mentions and assignments will add their own kinds. New
items reach the user's open pages after commit (``events.inbox_items``), with the user's
new unread count, which the navigation's badge shows.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from . import events
from .errors import InputError
from .fields import iso
from .models import AlertFiring, InboxItem, Project


def item_summary(item: InboxItem) -> dict[str, Any]:
    return {
        "id": item.pk,
        "kind": item.kind,
        "title": item.title,
        "body": item.body,
        "link": item.link,
        "created_at": item.created_at.isoformat(),
        "read_at": iso(item.read_at),
    }


def items_for(user: Any, project: Project) -> QuerySet[InboxItem]:
    """The user's items in the project, newest first."""
    return InboxItem.objects.filter(user=user, project=project)


def unread_count(user: Any, project: Project) -> int:
    if not user.is_authenticated or user.pk is None:
        return 0
    return items_for(user, project).filter(read_at__isnull=True).count()


def notify_members(
    project: Project,
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    firing: AlertFiring | None = None,
) -> int:
    """One item per member of ``project`` (inside the caller's transaction); each is
    pushed to its user after commit. Returns how many were created."""
    user_ids = list(project.memberships.values_list("user_id", flat=True))
    now = timezone.now()
    created = InboxItem.objects.bulk_create(
        InboxItem(
            project=project,
            user_id=user_id,
            kind=kind,
            title=title[:300],
            body=body,
            link=link,
            firing=firing,
            created_at=now,
        )
        for user_id in user_ids
    )
    unread = dict(
        InboxItem.objects.filter(project=project, user_id__in=user_ids, read_at__isnull=True)
        .values_list("user_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    # bulk_create sets primary keys on PostgreSQL and SQLite 3.35+ (RETURNING).
    events.inbox_items(
        project.pk, [(i.user_id, item_summary(i), unread.get(i.user_id, 0)) for i in created]
    )
    return len(created)


def mark_read(user: Any, project: Project, ids: Any) -> int:
    """Mark the user's items ``ids`` (a list of ints; None: all of them) read; returns how
    many changed, and pushes the new unread count to the user's open pages after commit.
    Another user's items are not touched."""
    items = items_for(user, project).filter(read_at__isnull=True)
    if ids is not None:
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise InputError("ids", "expected a list of inbox item ids")
        items = items.filter(pk__in=ids)
    changed = items.update(read_at=timezone.now())
    if changed:
        events.inbox_unread(project.pk, user.pk, unread_count(user, project))
    return changed
