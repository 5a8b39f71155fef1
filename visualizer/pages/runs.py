"""The run list page: the listing from ``traces.runlist`` plus its links, the filter form's
values and suggestions, and what the live script needs; and the page's rows as an HTML
fragment (``rows.html``), so a row is rendered in one place, ``_run_row.html``, whether
the page is rendered whole or the script adds or refreshes a row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from traces.error_steps import failing_steps
from traces.errors import InputError
from traces.filters import DEFAULT_SORT, FILTER_NAMES, QUICK_RANGES, RunFilter
from traces.models import Project, Run, RunError, RunStatus, Step
from traces.runlist import COUNT_CAP, PAGE_SIZE, RunListing, capped_count, list_runs

from ..routing import project_socket_path
from .access import member_project

# Suggestions in the form come from this many of the newest runs, not the whole project.
SUGGEST_FROM = 100
SUGGEST_SECONDS = 60
SORT_COLUMNS = {"started_at": "Started", "duration_ms": "Duration", "total_tokens": "Tokens"}
# rows.html answers for at most this many runs (a page's worth of new or changed runs).
ROWS_MAX = 500


def query(params: Mapping[str, str | None], **changes: str | None) -> str:
    """``?a=1&b=2``: ``params`` with ``changes`` (None removes), empty values left out."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v}
    return f"?{urlencode(kept)}" if kept else "?"


def suggestions(project: Project) -> dict[str, list[str]]:
    """Graph names, nodes and error types of the newest runs, for the form's datalists.

    Cached for a minute: they are hints, and three queries a page view are not worth it.
    """
    key = f"runlist-suggestions:{project.pk}"
    found: dict[str, list[str]] | None = cache.get(key)
    if found is None:
        found = _suggestions(project)
        cache.set(key, found, SUGGEST_SECONDS)
    return found


def _suggestions(project: Project) -> dict[str, list[str]]:
    # A subquery (not a list of ids): one round trip each, no thousand bound parameters.
    recent = Run.objects.filter(project=project).order_by("-started_at", "-id")
    ids = recent.values("pk")[:SUGGEST_FROM]
    graphs = Run.objects.filter(pk__in=ids).order_by().values_list("graph_name", flat=True)
    # order_by(): the models' default ordering would otherwise join the DISTINCT.
    nodes = Step.objects.filter(run_id__in=ids).order_by().values_list("node", flat=True)
    errors = RunError.objects.filter(run_id__in=ids).order_by().values_list("error_type", flat=True)
    return {
        "graph_names": sorted(g for g in set(graphs.distinct()) if g),
        "nodes": sorted(set(nodes.distinct()))[:100],
        "error_types": sorted(e for e in set(errors.distinct()) if e),
    }


def sort_links(params: Mapping[str, str], current: str) -> list[dict[str, Any]]:
    """Each sortable column: its link (newest/largest first, or flipped if current)."""
    links = []
    for field, label in SORT_COLUMNS.items():
        active = current.lstrip("-") == field
        descending = current.startswith("-")
        target = (field if descending else f"-{field}") if active else f"-{field}"
        links.append(
            {
                "field": field,
                "label": label,
                "active": active,
                "descending": descending,
                # The default sort needs no parameter: a clean link.
                "url": query(params, sort=None if target == DEFAULT_SORT else target, cursor=None),
            }
        )
    return links


def run_list_page(project: Project, params: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """The page's context and HTTP status (400 with a message for a bad parameter)."""
    # Only the names the list knows: a stray parameter neither breaks nor sticks to links.
    known = {k: params[k] for k in (*FILTER_NAMES, "sort", "limit", "cursor") if params.get(k)}
    base = {k: v for k, v in known.items() if k != "cursor"}
    context: dict[str, Any] = {
        "values": known,
        "statuses": RunStatus.values,
        "quick_ranges": QUICK_RANGES,
        "sort_links": sort_links(base, known.get("sort", DEFAULT_SORT)),
        "clear_url": query({}, sort=base.get("sort")),
        **suggestions(project),
    }
    try:
        listing: RunListing = list_runs(project, known)
    except InputError as exc:
        context.update(runs=[], error={"field": exc.path, "rule": exc.rule}, live_data=None)
        return context, 400
    # Counted on the first page only: paging on does not change how many runs match.
    count = capped_count(project, listing.filter) if listing.cursor is None else None
    context.update(
        runs=listing.page.runs,
        # A failed run's link opens its failing step.
        failing_steps=failing_steps(listing.page.runs),
        error=None,
        filtered=listing.filter.active,
        count=count,
        count_capped=count is not None and count >= COUNT_CAP,
        next_url=query(base, cursor=listing.page.next) if listing.page.next else None,
        previous_url=(query(base, cursor=listing.page.previous) if listing.page.previous else None),
        live_data=live_data(project, listing),
    )
    return context, 200


def live_data(project: Project, listing: RunListing) -> dict[str, Any]:
    """For runs.js: where to listen, and how to ask the API which new runs match."""
    filters: RunFilter = listing.filter
    head = {"project": project.slug, **filters.params(), "limit": str(listing.limit)}
    first_page = {
        **filters.params(),
        "sort": None if listing.sort.is_default else listing.sort.name,
        "limit": None if listing.limit == PAGE_SIZE else str(listing.limit),
    }
    # On a page in another order the script counts a run as new when the newest matching
    # runs (``head_url``) hold one it does not know. What it knows is read here, as the
    # page renders: read after the socket subscribed, it took a run started in between
    # for an old one and never counted it.
    head_ids = (
        [] if listing.is_head else [r.execution_id for r in list_runs(project, head).page.runs]
    )
    return {
        "project": project.slug,
        "ws_path": project_socket_path(project),
        "head_url": f"{reverse('api:runs')}{query(head)}",
        "head_ids": head_ids,
        "rows_url": reverse("visualizer:run-rows", args=[project.slug]),
        "compare_url": reverse("visualizer:compare", args=[project.slug]),
        "filtered": filters.active,
        "is_head": listing.is_head,
        "first_page_url": query(first_page),
        # How often the script fetches again the rows of running runs and the newest runs:
        # pushes are lost while the channel layer is down.
        "live_check_ms": settings.LIVE_CHECK_EVERY * 1000,
    }


@login_required
def runs_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The run list: filters, sort and cursor in the query string, so a view is a link."""
    found = member_project(request, slug)
    context, status = run_list_page(found, request.GET)
    context.update(project=found, nav="runs")
    return render(request, "visualizer/project.html", context, status=status)


@login_required
def run_rows(request: HttpRequest, slug: str) -> HttpResponse:
    """``?id=<execution_id>&id=...``: those runs' rows, rendered as on the page, in the
    order asked (ids of no run of the project are left out)."""
    found = member_project(request, slug)
    ids = request.GET.getlist("id")[:ROWS_MAX]
    runs = {
        r.execution_id: r
        for r in Run.objects.filter(project=found, execution_id__in=ids).select_related("project")
    }
    rows = [runs[i] for i in dict.fromkeys(ids) if i in runs]
    return render(
        request, "visualizer/run_rows.html", {"runs": rows, "failing_steps": failing_steps(rows)}
    )
