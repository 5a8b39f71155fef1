"""The home page: the signed-in user's projects, each with its recent runs and failures."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from traces.error_steps import failing_steps
from traces.models import Project, Run, RunStatus


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's projects, each with its recent runs and failures."""
    projects = list(Project.objects.for_user(request.user))
    cards = []
    recent: list[Run] = []
    for project in projects:
        runs = Run.objects.filter(project=project)
        latest = list(runs.select_related("project").order_by("-started_at", "-id")[:8])
        recent += latest
        cards.append(
            {
                "project": project,
                "run_count": runs.count(),
                "failed_count": runs.filter(status=RunStatus.FAILED).count(),
                "recent": latest,
            }
        )
    # A failed run's link opens its failing step.
    context = {"cards": cards, "nav": "projects", "failing_steps": failing_steps(recent)}
    return render(request, "visualizer/home.html", context)
