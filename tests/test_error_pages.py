"""Errors as a user meets them: 404, 403 (a refused form) and 500 pages in the app's own
layout with a way back, never Django's debug pages; the API keeps its JSON errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.template.loader import render_to_string
from django.test import Client

from traces.models import Project

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_the_apps_404_with_a_way_back(member: Any, project: Project) -> None:
    client = Client()
    client.force_login(member)

    response = client.get("/projects/acme/runs/no-such-run/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "<h1>Not found</h1>" in html
    assert 'class="topbar"' in html  # the app's layout, signed in
    assert 'href="/">Back to your projects</a>' in html
    assert "URLconf" not in html  # not Django's debug page


def test_an_unknown_api_url_is_still_json() -> None:
    response = Client().get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"detail": "no such URL: /api/v1/nothing-here"}


def test_a_form_without_its_csrf_token_gets_the_apps_403(member: Any, project: Project) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)

    response = client.post("/projects/acme/settings/", {"action": "create_key"})

    assert response.status_code == 403
    html = response.content.decode()
    assert "This form could not be sent" in html
    assert "Back to your projects" in html


def test_the_500_page_renders_without_a_request() -> None:
    html = render_to_string("500.html")

    assert "Something went wrong" in html
    assert 'href="/">Back to your projects</a>' in html
