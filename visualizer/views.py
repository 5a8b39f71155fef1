"""Server-rendered pages. Each reads through ``traces`` and shapes one template."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from traces.errors import InputError
from traces.models import Project, Run, RunStatus

from .live import run_figures_of, run_page_data, script_json, timeline_window
from .runlist import run_list_page
from .stepview import step_view, watch_view


def member_project(request: HttpRequest, slug: str) -> Project:
    """The project if the user is a member; 404 otherwise (never say it exists)."""
    found = Project.objects.for_user(request.user).filter(slug=slug).first()
    if found is None:
        raise Http404("no such project")
    return found


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's projects, each with its recent runs and failures."""
    projects = list(Project.objects.for_user(request.user))
    cards = []
    for project in projects:
        runs = Run.objects.filter(project=project)
        cards.append(
            {
                "project": project,
                "run_count": runs.count(),
                "failed_count": runs.filter(status=RunStatus.FAILED).count(),
                "recent": list(runs.select_related("project").order_by("-started_at", "-id")[:8]),
            }
        )
    return render(request, "visualizer/home.html", {"cards": cards, "nav": "projects"})


@login_required
def project(request: HttpRequest, slug: str) -> HttpResponse:
    """The run list: filters, sort and cursor in the query string, so a view is a link."""
    found = member_project(request, slug)
    context, status = run_list_page(found, request.GET)
    context.update(project=found, nav="runs")
    return render(request, "visualizer/project.html", context, status=status)


def member_run(request: HttpRequest, slug: str, execution_id: str) -> Run:
    found = member_project(request, slug)
    run = (
        Run.objects.filter(project=found, execution_id=execution_id)
        .select_related("project")
        .first()
    )
    if run is None:
        raise Http404("no such run")
    return run


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
def run_step(request: HttpRequest, slug: str, execution_id: str, index: int) -> JsonResponse:
    """One step for the step panel: its states and the diff between them."""
    run = member_run(request, slug, execution_id)
    step = run.step(index)
    if step is None:
        raise Http404("no such step")
    return JsonResponse(step_view(run, step))


@login_required
def run_watch(request: HttpRequest, slug: str, execution_id: str) -> JsonResponse:
    """``?path=<JSON Pointer>`` through every step of the run."""
    run = member_run(request, slug, execution_id)
    pointer = request.GET.get("path", "")
    try:
        return JsonResponse(watch_view(run, pointer))
    except ValueError as exc:
        return JsonResponse(
            {"detail": f"path: {exc}", "path": "path", "rule": str(exc)}, status=400
        )


@login_required
def run_page(request: HttpRequest, slug: str, execution_id: str) -> HttpResponse:
    run = member_run(request, slug, execution_id)
    runs = Run.objects.filter(project=run.project).select_related("project")
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
        "nav": "runs",
        "page_json": script_json(run_page_data(run)),
    }
    return render(request, "visualizer/run.html", context)
