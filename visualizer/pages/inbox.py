"""The user's inbox in a project: items newest first (its rows again for its script,
``rows.html``); mark one read, or all."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from traces import inbox

from .access import member_project

PAGE_ITEMS = 200


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
        "items": inbox.items_for(request.user, project)[:PAGE_ITEMS],
    }
    return render(request, "visualizer/inbox.html", context)


@login_required
def inbox_rows(request: HttpRequest, slug: str) -> HttpResponse:
    """The page's rows again, for its script when an item arrives."""
    project = member_project(request, slug)
    context = {"project": project, "items": inbox.items_for(request.user, project)[:PAGE_ITEMS]}
    return render(request, "visualizer/_inbox_rows.html", context)
