"""The project's exports page: start an export of selected runs and follow it live.

The page renders the form server-side; the table of exports is built by
``static/visualizer/exports.js`` from the same summaries the API and the websocket send.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from traces import exports, permissions
from traces.filters import FILTER_NAMES
from traces.models import ExportFormat, FailureGroup, Project, Run, RunStatus

from .. import links
from ..routing import exports_socket_path
from .access import member_project

FORMAT_HELP = {
    ExportFormat.TRAINING_EXAMPLES: "DashFlow Example JSONL (one per node execution)",
    ExportFormat.OPENAI_FINETUNE: "OpenAI fine-tuning chat JSONL",
    ExportFormat.DASHSTREAM: "DashStream frames (binary, length-prefixed)",
    ExportFormat.DASHSTREAM_JSONL: "DashStream messages as JSON lines",
    ExportFormat.CSV: "CSV of node executions",
    ExportFormat.TRACES_JSONL: "ExecutionTrace JSONL (one run per line)",
}

# The run list's filters the form knows how to show; any other name the run list gains
# (traces/filters.py) gets a plain text box, so the form never lags behind the list.
FILTER_LABELS = {
    "status": "Status",
    "node": "Ran node",
    "error_type": "Error type",
    "thread_id": "Thread",
    "started_after": "Started after",
    "started_before": "Started before",
    "graph_name": "Graph",
    "last": "Started in the last",
    "q": "Search",
}
FILTER_PLACEHOLDERS = {
    "started_after": "2026-11-25 or 2026-11-25T10:00",
    "started_before": "2026-11-25 or 2026-11-25T10:00",
    "last": "30m, 24h, 7d or 2w",
    "q": "id, graph, node or error text",
    "node": "planner",
    "thread_id": "thread id",
}


def _filter_fields(request: HttpRequest, project: Project) -> list[dict[str, Any]]:
    """The run list's filters as form fields, labelled in words. The graph is one select
    (the run list's ``graph_name``); the API's older ``graph`` filter is not offered twice."""
    fields = []
    for name in FILTER_NAMES:
        field: dict[str, Any] = {
            "name": name,
            "label": FILTER_LABELS.get(name, name.replace("_", " ").capitalize()),
            "value": request.GET.get(name, "")
            or (request.GET.get("graph", "") if name == "graph_name" else ""),
            "kind": "text",
            "placeholder": FILTER_PLACEHOLDERS.get(name, ""),
        }
        if name == "status":
            field["kind"] = "select"
            field["choices"] = RunStatus.values
        elif name == "graph_name":
            field["kind"] = "select"
            field["choices"] = list(
                Run.objects.filter(project=project)
                .exclude(graph_name="")
                .order_by("graph_name")
                .values_list("graph_name", flat=True)
                .distinct()[:200]
            )
        fields.append(field)
    return fields


@login_required
def exports_page(request: HttpRequest, slug: str) -> HttpResponse:
    found = member_project(request, slug)
    exports.sweep_expired()
    can_export = permissions.user_can(found, request.user, permissions.REVIEW)
    page_data = {
        "project": found.slug,
        "ws_path": exports_socket_path(found),
        "api": links.api("api:exports", project=found.slug),
        "export_url": links.template("api:export", project=found.slug, id="uuid"),
        "can_export": can_export,
        "exports": exports.recent_exports(found),
    }
    context = {
        "project": found,
        "section": "exports",
        "can_export": can_export,
        "formats": [(f.value, f.value, FORMAT_HELP[f]) for f in ExportFormat],
        "filter_fields": _filter_fields(request, found),
        "groups": FailureGroup.objects.filter(project=found).order_by("-last_seen")[:200],
        "initial": {
            "group": request.GET.get("group", ""),
            "verdict": request.GET.get("verdict", ""),
            "nodes": request.GET.get("nodes", ""),
            "execution_ids": request.GET.get("execution_ids", ""),
            "format": request.GET.get("format", ExportFormat.TRAINING_EXAMPLES),
        },
        "verdicts": [("", "All steps"), ("good", "Good"), ("bad", "Bad"), ("any", "Any verdict")],
        "page_data": page_data,
    }
    return render(request, "visualizer/exports.html", context)
