"""The run page, and the JSON its script asks for as the run grows or the user looks
closer: figures (``timeline.json``), a step (``steps/<n>.json``), a watched path
(``watch.json``) and the errors with their steps (``errors.json``); the header's pin form
(``pin``: members keep the run whatever the project's retention)."""

from __future__ import annotations

from typing import Any

import msgspec
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from traces import retention
from traces.compare import last_success, previous_in_thread
from traces.errors import InputError
from traces.models import DashStreamCursor, Run, RunStatus
from traces.permissions import REVIEW, user_can

from .. import links
from ..run_data import (
    error_rows,
    run_figures_of,
    run_page_data,
    script_json,
    step_rows,
    timeline_window,
)
from ..stepview import step_view, watch_view
from .access import member_run


def review_urls(run: Run) -> dict[str, str]:
    """The review API URLs the run page's review panel calls (its ``data-*-url``)."""
    eid, slug = run.execution_id, run.project.slug
    return {
        "review": links.api("api:run-review", eid, project=slug),
        "comments": links.api("api:run-comments", eid, project=slug),
        "activity": links.api("api:run-activity", eid, project=slug),
        "verdict": links.template("api:step-verdict", eid, project=slug, index="int"),
        "comment": links.template("api:comment", project=slug, id="int"),
    }


def compare_choices(run: Run) -> list[tuple[str, Run]]:
    """The "Compare with…" menu: for a failed run the nearest successful run of its
    graph first, then the previous run of its thread."""
    choices = []
    if run.status == RunStatus.FAILED and (good := last_success(run)) is not None:
        choices.append(("last success", good))
    if (previous := previous_in_thread(run)) is not None:
        choices.append(("previous run in this thread", previous))
    return choices


@login_required
def run_page(request: HttpRequest, slug: str, execution_id: str) -> HttpResponse:
    run = member_run(request, slug, execution_id)
    runs = Run.objects.filter(project=run.project).select_related("project")
    data = run_page_data(run)
    context: dict[str, Any] = {
        # Subgraph hierarchy and the conversation (thread) this run belongs to.
        "parent": (
            runs.filter(execution_id=run.parent_execution_id).first()
            if run.parent_execution_id
            else None
        ),
        "children": list(runs.filter(parent_execution_id=run.execution_id)[:20]),
        "thread_runs": (
            list(
                runs.filter(thread_id=run.thread_id)
                .exclude(pk=run.pk)
                .order_by("-started_at", "-id")[:10]
            )
            if run.thread_id
            else []
        ),
        "project": run.project,
        "run": run,
        "compare_with": compare_choices(run),
        # A run DashStream delivered: gaps, late arrivals and a lost sync, shown in the head.
        "stream": DashStreamCursor.objects.filter(run=run).first(),
        "nav": "runs",
        # The review panel shares the page's one socket (static/visualizer/live.js).
        "ws_path": data["ws_path"],
        "review_urls": review_urls(run),
        # Viewers see the review controls disabled from the start, not only once the
        # review has loaded (static/visualizer/review.js keeps them so).
        "can_review": user_can(run.project, request.user, REVIEW),
        "page_json": script_json(data),
    }
    return render(request, "visualizer/run.html", context)


@login_required
@require_POST
def run_pin(request: HttpRequest, slug: str, execution_id: str) -> HttpResponse:
    """Pin (``pinned=1``) or unpin the run, then back to its page; members and up."""
    run = member_run(request, slug, execution_id)
    if not user_can(run.project, request.user, REVIEW):
        return HttpResponseForbidden("only a member of this project can pin its runs")
    retention.set_pinned(run, request.POST.get("pinned") == "1")
    return redirect("visualizer:run", run.project.slug, run.execution_id)


@login_required
def run_timeline(request: HttpRequest, slug: str, execution_id: str) -> JsonResponse:
    """The run page's figures (timeline, breakdown, graph), for a run growing live; with
    ``?from=<ms>&to=<ms>`` only the timeline, over that window (the page zoomed in)."""
    run = member_run(request, slug, execution_id)
    try:
        window = timeline_window(request.GET)
    except InputError as exc:
        return JsonResponse(
            {"detail": f"{exc.path}: {exc.rule}", "path": exc.path, "rule": exc.rule}, status=400
        )
    return JsonResponse(run_figures_of(run, window))


@login_required
def run_errors(request: HttpRequest, slug: str, execution_id: str) -> JsonResponse:
    """The run's errors, each with the step it belongs to, for a run growing live."""
    run = member_run(request, slug, execution_id)
    return JsonResponse({"errors": error_rows(run, step_rows(run))})


@login_required
def run_step(request: HttpRequest, slug: str, execution_id: str, index: int) -> JsonResponse:
    """One step for the step panel: its states and the diff between them."""
    run = member_run(request, slug, execution_id)
    step = run.step(index)
    if step is None:
        raise Http404("no such step")
    return JsonResponse(step_view(run, step))


@login_required
def run_watch(request: HttpRequest, slug: str, execution_id: str) -> HttpResponse:
    """``?path=<JSON Pointer>`` through every step of the run."""
    run = member_run(request, slug, execution_id)
    pointer = request.GET.get("path", "")
    try:
        # msgspec, not JsonResponse's json.dumps: a path a 100,000-step run changes at
        # every third step answers 33,000 changes (3.7 MB) in a tenth of the time.
        view = msgspec.json.encode(watch_view(run, pointer))
        return HttpResponse(view, content_type="application/json")
    except ValueError as exc:
        return JsonResponse(
            {"detail": f"path: {exc}", "path": "path", "rule": str(exc)}, status=400
        )
