"""What a page may show: a project or run of one of the user's projects, else 404."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from traces.models import Project, Run


def member_project(request: HttpRequest, slug: str) -> Project:
    """The project if the user is a member; 404 otherwise (never say it exists)."""
    found = Project.objects.for_user(request.user).filter(slug=slug).first()
    if found is None:
        raise Http404("no such project")
    return found


def member_run(request: HttpRequest, slug: str, execution_id: str) -> Run:
    """The run of the user's project ``slug``; 404 otherwise."""
    found = member_project(request, slug)
    run = (
        Run.objects.filter(project=found, execution_id=execution_id)
        .select_related("project")
        .first()
    )
    if run is None:
        raise Http404("no such run")
    return run
