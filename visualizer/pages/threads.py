"""A thread's page: its runs oldest first and the conversation across them, a page of
runs at a time (``?before=<execution_id>`` for older ones)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from traces.error_steps import failing_steps
from traces.errors import InputError
from traces.threads import thread_page as read_thread

from .access import member_project


@login_required
def thread_page(request: HttpRequest, slug: str, thread_id: str) -> HttpResponse:
    project = member_project(request, slug)
    try:
        page = read_thread(project, thread_id, request.GET.get("before"))
    except InputError as exc:
        # A cursor that names no run of the thread: there is no such page.
        raise Http404(f"{exc.path}: {exc.rule}") from exc
    if page is None:
        raise Http404("no such thread")
    url = reverse("visualizer:thread", args=[project.slug, thread_id])
    context = {
        "project": project,
        "nav": "runs",
        "page": page,
        "runs": [turn.run for turn in page.turns],
        "failing_steps": failing_steps([turn.run for turn in page.turns]),
        "thread_url": url,
        "older_url": f"{url}?{urlencode({'before': page.older})}" if page.older else "",
        "runs_url": reverse("visualizer:runs", args=[project.slug])
        + "?"
        + urlencode({"thread_id": thread_id}),
    }
    return render(request, "visualizer/thread.html", context)
