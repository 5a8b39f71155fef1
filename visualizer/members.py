"""Pages of the project's members section (work in progress)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from .views import member_project


@login_required
def members_page(request: HttpRequest, slug: str) -> HttpResponse:
    found = member_project(request, slug)
    return render(
        request, "visualizer/section_stub.html", {"project": found, "section": "settings"}
    )


urlpatterns = [
    path("projects/<slug:slug>/settings/", members_page, name="project-settings"),
]
