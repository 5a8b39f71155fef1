"""The user's inbox in a project: items newest first; mark one read, or all."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from traces import inbox

from .access import member_project


@login_required
@require_http_methods(["GET", "POST"])
def inbox_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = member_project(request, slug)
    if request.method == "POST":
        item = request.POST.get("item", "")
        if request.POST.get("action") == "read_all":
            inbox.mark_read(request.user, project, None)
        elif item.isascii() and item.isdigit():
            inbox.mark_read(request.user, project, [int(item)])
        else:
            messages.error(request, "item: expected an inbox item id")
        return redirect("visualizer:inbox", project.slug)
    context = {
        "project": project,
        "section": "inbox",
        "items": inbox.items_for(request.user, project)[:200],
    }
    return render(request, "visualizer/inbox.html", context)
