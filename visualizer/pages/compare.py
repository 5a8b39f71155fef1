"""The compare page (``/projects/<slug>/compare/?a=<id>&b=<id>``): two runs of the
project aligned step by step, the first step where their states diverge, and, on
demand, the state diff of one aligned pair (``compare/pair.json``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from traces import compare
from traces.errors import InputError
from traces.models import Project, Run

from ..compare_data import compare_page_data
from ..run_data import script_json
from ..stepview import pair_view
from .access import member_project


def _run(project: Project, execution_id: str, name: str) -> Run:
    found = (
        Run.objects.filter(project=project, execution_id=execution_id)
        .select_related("project")
        .first()
    )
    if found is None:
        raise Http404(f"{name}: no such run")
    return found


def _refused(exc: InputError) -> JsonResponse:
    return JsonResponse(
        {"detail": f"{exc.path}: {exc.rule}", "path": exc.path, "rule": exc.rule},
        status=exc.status,
    )


@login_required
def compare_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = member_project(request, slug)
    context: dict[str, Any] = {"project": project, "nav": "runs", "values": request.GET}
    try:
        a_id, b_id, _ = compare.parse_request(request.GET)
    except InputError as exc:
        # Without both ids the page is the form that asks for them.
        context["error"] = {"field": exc.path, "rule": exc.rule} if request.GET else None
        return render(
            request, "visualizer/compare.html", context, status=400 if request.GET else 200
        )
    run_a, run_b = _run(project, a_id, "a"), _run(project, b_id, "b")
    data = compare_page_data(run_a, run_b, compare.compare(run_a, run_b))
    sides = [("a", run_a), ("b", run_b)]
    context.update(sides=sides, data=data, page_json=script_json(data))
    return render(request, "visualizer/compare.html", context)


@login_required
def compare_pair(request: HttpRequest, slug: str) -> JsonResponse:
    """``?a=&b=&ai=&bi=&at=before|after``: run a's state at its step ``ai`` against run
    b's at its step ``bi`` (DashFlow indexes), as the step panel shows a diff."""
    project = member_project(request, slug)
    try:
        a_id, b_id, _ = compare.parse_request(request.GET)
        indexes = [_index(request.GET.get(name, ""), name) for name in ("ai", "bi")]
        at = request.GET.get("at", "after")
        if at not in ("before", "after"):
            raise InputError("at", f"expected before or after, got {at[:20]!r}")
    except InputError as exc:
        return _refused(exc)
    run_a, run_b = _run(project, a_id, "a"), _run(project, b_id, "b")
    step_a, step_b = run_a.step(indexes[0]), run_b.step(indexes[1])
    if step_a is None or step_b is None:
        raise Http404("no such step")
    return JsonResponse(pair_view(run_a, step_a, run_b, step_b, at))


def _index(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise InputError(name, f"expected a step index, got {text[:20]!r}")
    return int(text)
