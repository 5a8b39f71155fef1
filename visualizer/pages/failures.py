"""The project's failures section: the list of failure groups and a group's page.

Both pages follow the project's websocket (``routing.project_socket_path``), on which
``traces.failures`` publishes every group change, and update in place: the list by asking
for the changed group's row (``rows.html``, rendered by ``_group_row.html`` as the page is,
and empty when the group no longer belongs under the page's tab and filters), the group's
page by refetching its data (``data.json``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDay, TruncHour
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from traces import failure_json
from traces.compare import last_success
from traces.jsondiff import Collapsed, collapse, diff
from traces.models import Activity, Failure, FailureGroup, GroupStatus, Project, RunError, Step
from traces.permissions import REVIEW, user_can
from traces.store import load_states

from .. import links
from ..failure_charts import (
    STEP,
    bucket_unit,
    daily_counts,
    fill_buckets,
    occurrences_figure,
)
from ..routing import project_socket_path
from ..stepview import VALUE_PREVIEW_CHARS, state_text, step_view
from .access import member_project

# The list's tabs: "open" (new and triaged, the default, as Sentry's "unresolved"), each
# status, and everything.
TABS = [("open", "Open"), *[(s.value, s.label) for s in GroupStatus], ("all", "All")]
OPEN = [GroupStatus.NEW, GroupStatus.TRIAGED]
LIST_LIMIT = 200
RUNS_SHOWN = 50
SPARK_DAYS = 14


def list_groups(
    project: Project, params: Any, user: Any, only: list[int] | None = None
) -> tuple[list[FailureGroup], str]:
    """The groups the list shows for the query (``status`` tab, ``node``, ``error_type``,
    ``assignee``: a username or ``me``), most recently seen first; and the tab. With
    ``only``, just those of these groups that belong."""
    tab = params.get("status") or "open"
    if tab not in dict(TABS):
        tab = "open"
    groups: QuerySet[FailureGroup] = FailureGroup.objects.filter(project=project)
    if only is not None:
        groups = groups.filter(pk__in=only)
    if tab == "open":
        groups = groups.filter(status__in=OPEN)
    elif tab != "all":
        groups = groups.filter(status=tab)
    assignee = params.get("assignee") or None
    groups = failure_json.filter_groups(
        groups, params.get("node"), params.get("error_type"), user if assignee == "me" else assignee
    )
    found = list(groups.select_related("assignee").order_by("-last_seen", "-id")[:LIST_LIMIT])
    return found, tab


def sparklines(groups: list[FailureGroup], now: datetime) -> dict[int, list[int]]:
    """Occurrences per day over the last SPARK_DAYS days, per group, in one query."""
    since = (now - timedelta(days=SPARK_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    counts: dict[int, dict[Any, int]] = {g.pk: {} for g in groups}
    rows = (
        Failure.objects.filter(group__in=groups, seen_at__gte=since)
        .annotate(day=TruncDay("seen_at", tzinfo=UTC))
        .values_list("group_id", "day")
        .annotate(n=Count("id"))
    )
    for group_id, day, n in rows:
        counts[group_id][day.date()] = n
    return {pk: daily_counts(c, now.date(), SPARK_DAYS) for pk, c in counts.items()}


def members_of(project: Project) -> list[str]:
    return list(
        get_user_model()
        .objects.filter(memberships__project=project)
        .order_by("username")
        .values_list("username", flat=True)
    )


def group_rows(groups: list[FailureGroup]) -> list[dict[str, Any]]:
    """Each group with its daily sparkline, as ``_group_row.html`` renders it."""
    sparks = sparklines(groups, timezone.now())
    return [{"group": g, "spark": sparks[g.pk]} for g in groups]


@login_required
def failures_page(request: HttpRequest, slug: str) -> HttpResponse:
    found = member_project(request, slug)
    groups, tab = list_groups(found, request.GET, request.user)
    filters = {k: request.GET.get(k, "") for k in ("node", "error_type", "assignee")}
    query = urlencode({k: v for k, v in filters.items() if v})
    page_data = {
        "project": found.slug,
        "ws_path": project_socket_path(found),
        # The rows under this page's tab and filters; the script adds ``id=<group>``.
        "rows_url": f"{reverse('visualizer:failure-rows', args=[found.slug])}?"
        + urlencode({"status": tab, **{k: v for k, v in filters.items() if v}}),
    }
    context = {
        "project": found,
        "section": "failures",
        "rows": group_rows(groups),
        "spark_days": SPARK_DAYS,
        "tabs": TABS,
        "tab": tab,
        "filters": filters,
        "filter_query": query,
        "limit": LIST_LIMIT,
        "nodes": sorted(
            set(FailureGroup.objects.filter(project=found).values_list("node", flat=True))
        ),
        "error_types": sorted(
            set(FailureGroup.objects.filter(project=found).values_list("error_type", flat=True))
            - {""}
        ),
        "page_data": page_data,
    }
    return render(request, "visualizer/failures.html", context)


def member_group(request: HttpRequest, slug: str, group_id: int) -> FailureGroup:
    found = member_project(request, slug)
    group = (
        FailureGroup.objects.filter(project=found, pk=group_id)
        .select_related("project", "assignee")
        .first()
    )
    if group is None:
        raise Http404("no such failure group")
    return group


# The occurrences chart's ranges: recent by default, so one old event does not stretch
# the axis over months; "all" spans the group's whole life.
CHART_RANGES: dict[str, timedelta | None] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_CHART_RANGE = "7d"


def chart_range(request: HttpRequest) -> str:
    wanted = request.GET.get("range", DEFAULT_CHART_RANGE)
    return wanted if wanted in CHART_RANGES else DEFAULT_CHART_RANGE


def chart(group: FailureGroup, span: str = DEFAULT_CHART_RANGE) -> dict[str, Any]:
    """The group's occurrences over the last ``span`` (a CHART_RANGES key), per hour or
    day depending on the span."""
    length = CHART_RANGES[span]
    now = timezone.now()
    if length is None:
        unit = bucket_unit(group.first_seen, max(group.last_seen, group.first_seen))
    else:
        unit = "hour" if length <= timedelta(days=7) else "day"
    trunc = TruncHour if unit == "hour" else TruncDay
    failures = Failure.objects.filter(group=group)
    if length is not None:
        failures = failures.filter(seen_at__gte=now - length)
    counts = dict(
        failures.annotate(bucket=trunc("seen_at", tzinfo=UTC))
        .values_list("bucket")
        .annotate(n=Count("id"))
        .values_list("bucket", "n")
    )
    if length is not None:
        # The whole window, up to now: a quiet spell reads as one.
        floor = _truncate(now, unit)
        buckets = fill_buckets(counts, _truncate(now - length, unit), floor, unit)
        return occurrences_figure(buckets, unit, group.regressed_at)
    if not counts:
        return occurrences_figure([], unit, group.regressed_at)
    # At least a day of hours (two weeks of days) on the axis, so a group seen once or
    # twice reads as bars in time rather than as a wall of colour.
    end = max(counts)
    start = min(min(counts), end - STEP[unit] * (23 if unit == "hour" else 13))
    buckets = fill_buckets(counts, start, end, unit)
    return occurrences_figure(buckets, unit, group.regressed_at)


def _truncate(moment: datetime, unit: str) -> datetime:
    hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour if unit == "hour" else hour.replace(hour=0)


def affected_runs(group: FailureGroup, limit: int = RUNS_SHOWN) -> list[dict[str, Any]]:
    """The latest runs of the group (one row per run, its latest occurrence), each with
    the run page link at the failing step."""
    seen: dict[int, Failure] = {}
    for failure in (
        Failure.objects.filter(group=group)
        .select_related("run")
        .order_by("-seen_at", "-id")[: limit * 5]
    ):
        seen.setdefault(failure.run_id, failure)
        if len(seen) == limit:
            break
    picked = list(seen.values())
    positions = {(f.run_id, f.step_position) for f in picked if f.step_position is not None}
    index_of: dict[tuple[int, int], int] = {}
    if positions:
        for run_id, position, step_index in Step.objects.filter(
            run_id__in={r for r, _ in positions}, position__in={p for _, p in positions}
        ).values_list("run_id", "position", "index"):
            index_of[(run_id, position)] = step_index
    rows = []
    slug = group.project.slug
    for f in picked:
        index = index_of.get((f.run_id, f.step_position)) if f.step_position is not None else None
        link = reverse("visualizer:run", args=[slug, f.run.execution_id])
        rows.append(
            {
                "execution_id": f.run.execution_id,
                "graph_name": f.run.graph_name,
                "run_status": f.run.status,
                "seen_at": f.seen_at.isoformat(),
                "message": f.message,
                "step_index": index,
                "url": link + (f"#step={index}" if index is not None else ""),
            }
        )
    return rows


def failing_step(group: FailureGroup) -> dict[str, Any] | None:
    """The most recent failing step of the group with what it changed: its own diff, or,
    when it left no state after (a node that raised), the diff from the state it received
    to the state the error recorded."""
    failure = (
        Failure.objects.filter(group=group, step_position__isnull=False)
        .select_related("run", "run__project")
        .order_by("-seen_at", "-id")
        .first()
    )
    if failure is None or failure.step_position is None:
        return None
    step = Step.objects.filter(run=failure.run, position=failure.step_position).first()
    if step is None:
        return None
    view = step_view(failure.run, step)
    before = view["state_before"]
    if before.get("value") is not None:
        # This page shows the state it received as text, not the run page's tree.
        before["text"] = state_text(before["value"])
    view["execution_id"] = failure.run.execution_id
    link = reverse("visualizer:run", args=[group.project.slug, failure.run.execution_id])
    view["url"] = f"{link}#step={step.index}"
    view["compared_with"] = "state after"
    good = last_success(failure.run)
    if good is not None:
        # The failing run against the last good one of its graph (the compare page).
        query = urlencode({"a": failure.run.execution_id, "b": good.execution_id})
        view["compare_url"] = f"{reverse('visualizer:compare', args=[group.project.slug])}?{query}"
    if not view["has_both_states"] and failure.key.startswith("error:"):
        error = RunError.objects.filter(
            run=failure.run, position=int(failure.key.split(":", 1)[1])
        ).first()
        if error is not None and error.state_at_error_id and step.state_before_id:
            states = load_states(
                failure.run.project_id, [step.state_before_id, error.state_at_error_id]
            )
            changes = diff(states[step.state_before_id], states[error.state_at_error_id])
            view["has_both_states"] = True
            view["compared_with"] = "state at error"
            view["changes"] = [
                {
                    "op": c.op,
                    "path": c.path,
                    "before": _preview(c.before) if c.has_before else None,
                    "after": _preview(c.after) if c.has_after else None,
                }
                for c in changes
            ]
    return view


def _preview(value: Any) -> Collapsed:
    return collapse(value, VALUE_PREVIEW_CHARS)


def group_data(group: FailureGroup, span: str = DEFAULT_CHART_RANGE) -> dict[str, Any]:
    """What the group page draws and refreshes live: the group, its chart and runs."""
    return {
        "group": failure_json.summaries([group])[0],
        "chart": chart(group, span),
        "chart_range": span,
        "runs": affected_runs(group),
        "distinct_runs": Failure.objects.filter(group=group).values("run_id").distinct().count(),
    }


@login_required
def group_page(request: HttpRequest, slug: str, group_id: int) -> HttpResponse:
    group = member_group(request, slug, group_id)
    can_edit = user_can(group.project, request.user, REVIEW)
    span = chart_range(request)
    data = group_data(group, span)
    activity = [
        failure_json.activity_entry(a)
        for a in Activity.objects.filter(group=group).select_related("actor")[:100]
    ]
    page_data = {
        **data,
        "project": group.project.slug,
        "ws_path": project_socket_path(group.project),
        "data_url": reverse("visualizer:failure-group-data", args=[group.project.slug, group.pk])
        + f"?range={span}",
        "api_url": links.api("api:failure-group", group.pk, project=group.project.slug),
        "csrf_token": get_token(request) if can_edit else None,
        "can_edit": can_edit,
        "activity": activity,
    }
    context = {
        "project": group.project,
        "section": "failures",
        "group": group,
        "data": data,
        "can_edit": can_edit,
        "statuses": GroupStatus.choices,
        "members": members_of(group.project),
        "step": failing_step(group),
        "activity": activity,
        "page_data": page_data,
        "chart_ranges": list(CHART_RANGES),
        "chart_range": span,
    }
    return render(request, "visualizer/failure_group.html", context)


@login_required
def group_json(request: HttpRequest, slug: str, group_id: int) -> JsonResponse:
    """The group page's live refresh: the group, its chart and affected runs."""
    return JsonResponse(group_data(member_group(request, slug, group_id), chart_range(request)))


@login_required
def failure_rows(request: HttpRequest, slug: str) -> HttpResponse:
    """``?<the list's query>&id=<group>&id=...``: those groups' rows as the list renders
    them, leaving out each that does not belong under the list's tab and filters (the one
    place that decides, with ``traces.failure_json.filter_groups``)."""
    found = member_project(request, slug)
    ids = request.GET.getlist("id")[:LIST_LIMIT]
    # isdigit() also passes "²" and digits past any row id (SQLite overflowed on 10^30).
    if not all(i.isascii() and i.isdigit() and len(i) <= 18 for i in ids):
        return HttpResponse("id: expected failure group ids", status=400)
    groups, _tab = list_groups(found, request.GET, request.user, only=[int(i) for i in ids])
    return render(
        request, "visualizer/failure_rows.html", {"project": found, "rows": group_rows(groups)}
    )
