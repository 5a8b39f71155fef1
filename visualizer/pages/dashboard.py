"""The project dashboard: the page, and ``data.json``, its figures for another time range
or graph (the script asks for it when a filter changes). The aggregates are
``traces/dashboard.py``'s, the figures ``visualizer/dashboard_charts.py``'s; every point
links to the run list filtered to the runs behind it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from traces import dashboard
from traces.errors import InputError
from traces.filters import QUICK_RANGES

from .. import dashboard_charts as charts
from .access import member_project

# The quick ranges the page offers (the run list's, without the last hour).
RANGES = [(value, label) for value, label in QUICK_RANGES if value != "1h"]


def dashboard_data(window: dashboard.Window) -> dict[str, Any]:
    """Everything the page draws for ``window``: figures, the slower-nodes table, totals."""
    runs_url = reverse("visualizer:runs", args=[window.project.slug])
    buckets = dashboard.runs_over_time(window)
    latency = dashboard.node_latency(window)
    runs = sum(b.runs for b in buckets)
    failed = sum(b.failed for b in buckets)
    return {
        "window": {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "last": window.last,
            "graph_name": window.graph_name or "",
            "previous_start": window.previous().start.isoformat(),
        },
        "totals": {
            "runs": runs,
            "failed": failed,
            "failure_rate": round(100 * failed / runs, 1) if runs else None,
            "runs_url": charts.runs_link(runs_url, window.params()),
        },
        "figures": {
            "runs": charts.runs_figure(buckets, window, runs_url),
            "latency": charts.latency_figure(latency, window, runs_url),
            "node_tokens": charts.tokens_figure(
                dashboard.node_tokens(window), window, runs_url, "node"
            ),
            "graph_tokens": charts.tokens_figure(
                dashboard.graph_tokens(window), window, runs_url, "graph_name"
            ),
            "loops": charts.loops_figure(dashboard.loops(window), window, runs_url),
        },
        "slower": charts.slower_rows(dashboard.slower_nodes(window, latency), window, runs_url),
    }


@login_required
def dashboard_page(request: HttpRequest, slug: str) -> HttpResponse:
    found = member_project(request, slug)
    error = None
    try:
        window = dashboard.parse_window(found, request.GET)
    except InputError as exc:
        error = {"field": exc.path, "rule": exc.rule}
        window = dashboard.parse_window(found, {})
    data_url = reverse("visualizer:dashboard-data", args=[found.slug])
    context = {
        "project": found,
        "section": "dashboard",
        "ranges": RANGES,
        "graphs": dashboard.graph_names(found),
        "window": window,
        "error": error,
        "page_data": {"data": dashboard_data(window), "data_url": data_url},
    }
    return render(request, "visualizer/dashboard.html", context, status=400 if error else 200)


@login_required
def dashboard_json(request: HttpRequest, slug: str) -> JsonResponse:
    """``?last=7d`` or ``?started_after=…&started_before=…``, and ``graph_name``: the
    page's data for that window; a bad parameter is a 400 naming it."""
    found = member_project(request, slug)
    try:
        window = dashboard.parse_window(found, request.GET)
    except InputError as exc:
        return JsonResponse(
            {"detail": f"{exc.path}: {exc.rule}", "path": exc.path, "rule": exc.rule}, status=400
        )
    data = dashboard_data(window)
    data["page_url"] = f"?{urlencode({k: v for k, v in request.GET.items() if v})}"
    return JsonResponse(data)
