"""Server-rendered pages. Each reads through ``traces`` and shapes one template."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from traces.models import Project, Run, RunStatus


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
                "recent": list(runs.order_by("-started_at", "-id")[:8]),
            }
        )
    return render(request, "visualizer/home.html", {"cards": cards})


@login_required
def project(request: HttpRequest, slug: str) -> HttpResponse:
    found = Project.objects.for_user(request.user).filter(slug=slug).first()
    if found is None:
        raise Http404("no such project")
    runs = Run.objects.filter(project=found).order_by("-started_at", "-id")[:100]
    return render(request, "visualizer/project.html", {"project": found, "runs": runs})
