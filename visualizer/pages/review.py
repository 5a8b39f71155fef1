"""The review queue: what is assigned to me, failed runs nobody reviewed, new failure groups.

The page lists one tab's items server-side; ``static/visualizer/review_queue.js`` walks
them with the keyboard (``n``/``k`` move, ``a`` assign to me, ``r`` mark reviewed,
``o``/Enter open) through the review API, updating each row in place.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from traces.error_steps import failing_steps
from traces.models import FailureGroup, GroupStatus, Project, ReviewStatus, Run, RunStatus
from traces.permissions import REVIEW, user_can

from .. import links
from ..routing import project_socket_path
from .access import member_project

QUEUE_LIMIT = 200
TABS = {
    "assigned": "Assigned to me",
    "unreviewed": "Unreviewed failures",
    "groups": "New groups",
}


def _runs(project: Project) -> Any:
    return Run.objects.filter(project=project).select_related("review__assignee", "project")


def assigned_runs(project: Project, user: Any) -> Any:
    """Runs assigned to ``user`` that are not reviewed yet, newest first."""
    return (
        _runs(project)
        .filter(review__assignee=user)
        .exclude(review__status=ReviewStatus.REVIEWED)
        .order_by("-started_at", "-id")
    )


def unreviewed_failures(project: Project) -> Any:
    """Failed runs whose review is unreviewed, or that have no review row yet."""
    return (
        _runs(project)
        .filter(status=RunStatus.FAILED)
        .filter(Q(review__isnull=True) | Q(review__status=ReviewStatus.UNREVIEWED))
        .order_by("-started_at", "-id")
    )


def new_groups(project: Project) -> Any:
    return (
        FailureGroup.objects.filter(project=project, status=GroupStatus.NEW)
        .select_related("assignee")
        .order_by("-last_seen", "-id")
    )


def run_item(run: Run, failing_step: int | None = None) -> dict[str, Any]:
    """A run of the queue; its link opens ``failing_step`` (the queue lists failures)."""
    review = getattr(run, "review", None)
    return {
        "kind": "run",
        "key": run.execution_id,
        "title": run.graph_name or "run",
        "execution_id": run.execution_id,
        "run_status": run.status,
        "when": run.started_at,
        "error": run.first_error,
        "where": run.first_error_node,
        "status": review.status if review else ReviewStatus.UNREVIEWED.value,
        "status_label": ReviewStatus(review.status).label if review else "Unreviewed",
        "assignee": review.assignee.username if review and review.assignee else None,
        "labels": list(review.labels) if review else [],
        "url": links.run_page(run.project.slug, run.execution_id, failing_step),
        "api_url": links.api("api:run-review", run.execution_id, project=run.project.slug),
    }


def group_item(group: FailureGroup, slug: str) -> dict[str, Any]:
    return {
        "kind": "group",
        "key": str(group.pk),
        "title": group.error_type or "error",
        "id": group.pk,
        "count": group.count,
        "when": group.last_seen,
        "error": group.sample_message or group.message,
        "where": group.node,
        "status": group.status,
        "status_label": GroupStatus(group.status).label,
        "assignee": group.assignee.username if group.assignee else None,
        "labels": [],
        "url": reverse("visualizer:failure-group", args=[slug, group.pk]),
        "api_url": links.api("api:failure-group", group.pk, project=slug),
    }


def queue_counts(project: Project, user: Any) -> dict[str, int]:
    """How many items each tab of the queue holds for ``user``."""
    return {
        "assigned": assigned_runs(project, user).count(),
        "unreviewed": unreviewed_failures(project).count(),
        "groups": new_groups(project).count(),
    }


@login_required
def review_counts(request: HttpRequest, slug: str) -> JsonResponse:
    """The tab counts as JSON: the queue page asks again after each change."""
    return JsonResponse(queue_counts(member_project(request, slug), request.user))


@login_required
def review_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = member_project(request, slug)
    counts = queue_counts(project, request.user)
    tab = request.GET.get("tab", "")
    if tab not in TABS:
        tab = "assigned" if counts["assigned"] else "unreviewed"
    if tab == "groups":
        items = [group_item(g, project.slug) for g in new_groups(project)[:QUEUE_LIMIT]]
    else:
        runs = (
            assigned_runs(project, request.user)
            if tab == "assigned"
            else unreviewed_failures(project)
        )
        listed = list(runs[:QUEUE_LIMIT])
        failing = failing_steps(listed)
        items = [run_item(r, failing.get(r.pk)) for r in listed]
    can_review = user_can(project, request.user, REVIEW)
    page_data = {
        "project": project.slug,
        "username": request.user.get_username(),
        "can_review": can_review,
        "tab": tab,
        "ws_path": project_socket_path(project),
        "counts_url": reverse("visualizer:review-counts", args=[project.slug]),
    }
    return render(
        request,
        "visualizer/review.html",
        {
            "project": project,
            "section": "review",
            "tabs": [(key, label, counts[key]) for key, label in TABS.items()],
            "tab": tab,
            "items": items,
            "limit": QUEUE_LIMIT,
            "can_review": can_review,
            "page_data": page_data,
        },
    )
