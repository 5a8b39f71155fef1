"""API key scopes: a ``read`` key reads, ``write`` also ingests and reviews, ``admin``
also manages; the scope is chosen at creation (API, command) and enforced by the API."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from traces.models import ApiKey, KeyScope, Membership, Project, Role

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "dashflow"
pytestmark = pytest.mark.django_db


def client_for(project: Project, scope: str) -> APIClient:
    _, raw = ApiKey.issue(project, name=scope, scope=scope)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def post_trace(api: APIClient) -> int:
    body = (FIXTURES / "research_agent_success.json").read_bytes()
    status: int = api.post("/api/v1/traces", body, content_type="application/json").status_code
    return status


def test_a_read_key_reads_but_cannot_ingest_review_or_manage() -> None:
    project = Project.objects.create(slug="p", name="p")
    assert post_trace(client_for(project, KeyScope.WRITE)) == 201
    reader = client_for(project, KeyScope.READ)
    assert reader.get("/api/v1/runs").status_code == 200
    refused = reader.post(
        "/api/v1/traces",
        (FIXTURES / "tool_timeout_failure.json").read_bytes(),
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert "scope is read; ingestion needs write" in refused.json()["detail"]
    events = reader.post("/api/v1/runs/x/events", {"events": []}, format="json")
    assert events.status_code == 403
    run_id = reader.get("/api/v1/runs").json()["results"][0]["execution_id"]
    review = reader.patch(f"/api/v1/runs/{run_id}/review", {"status": "reviewed"}, format="json")
    assert review.status_code == 403
    assert reader.get("/api/v1/api-keys").status_code == 403


def test_a_write_key_ingests_and_reviews_but_does_not_manage() -> None:
    project = Project.objects.create(slug="p", name="p")
    writer = client_for(project, KeyScope.WRITE)
    assert post_trace(writer) == 201
    run_id = writer.get("/api/v1/runs").json()["results"][0]["execution_id"]
    review = writer.patch(f"/api/v1/runs/{run_id}/review", {"status": "reviewed"}, format="json")
    assert review.status_code == 200
    assert writer.get("/api/v1/api-keys").status_code == 403


def test_an_admin_key_manages_keys_and_issues_them_with_a_scope() -> None:
    project = Project.objects.create(slug="p", name="p")
    admin = client_for(project, KeyScope.ADMIN)
    made = admin.post("/api/v1/api-keys", {"name": "ci", "scope": "read"}, format="json")
    assert made.status_code == 201
    assert made.json()["scope"] == "read"
    assert ApiKey.objects.get(pk=made.json()["id"]).scope == KeyScope.READ
    listed = admin.get("/api/v1/api-keys").json()["results"]
    assert {k["scope"] for k in listed} == {"read", "admin"}


def test_an_unknown_scope_is_a_400_naming_the_field() -> None:
    project = Project.objects.create(slug="p", name="p")
    admin = client_for(project, KeyScope.ADMIN)
    answer = admin.post("/api/v1/api-keys", {"scope": "root"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["path"] == "scope"
    assert "expected one of read, write, admin" in answer.json()["rule"]


def test_a_key_issued_without_a_scope_writes_as_before(django_user_model: object) -> None:
    project = Project.objects.create(slug="p", name="p")
    user = django_user_model.objects.create_user("ann", password="x")  # type: ignore[attr-defined]
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    api = APIClient()
    api.force_authenticate(user)
    made = api.post("/api/v1/api-keys?project=p", {"name": "old"}, format="json")
    assert made.json()["scope"] == "write"


def test_create_api_key_takes_a_scope() -> None:
    out = StringIO()
    call_command("create_api_key", "--project", "cli", "--scope", "read", stdout=out)
    key = ApiKey.objects.get(project__slug="cli")
    assert key.scope == KeyScope.READ
    assert out.getvalue().strip().startswith(key.prefix)
    listing = StringIO()
    call_command("list_api_keys", "--project", "cli", stdout=listing)
    assert listing.getvalue().split()[:3] == [key.prefix, "cli", "read"]


def test_the_settings_page_issues_a_key_with_the_chosen_scope_and_lists_scopes(
    django_user_model: Any,
) -> None:
    project = Project.objects.create(slug="p", name="p")
    admin = django_user_model.objects.create_user("ada", password="pw-ada-123")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    page = Client()
    page.force_login(admin)
    form = page.get("/projects/p/settings/").content.decode()
    # One option per scope, each with what it allows; write (today's keys) preselected.
    assert '<select name="scope" aria-label="key scope">' in form
    assert '<option value="read" >read: reads runs' in form
    assert '<option value="write" selected>write: also ingests' in form
    assert '<option value="admin" >admin: also manages members and API keys' in form

    created = page.post(
        "/projects/p/settings/", {"action": "create_key", "scope": "read"}, follow=True
    )
    assert ApiKey.objects.get(project=project).scope == KeyScope.READ
    html = created.content.decode()
    assert 'id="new-key"' in html
    assert "was created with the read scope." in html
    assert '<span class="badge role scope-read">read</span>' in html
    # Without a scope (an older form), a key writes as before.
    page.post("/projects/p/settings/", {"action": "create_key", "name": "old form"})
    assert ApiKey.objects.get(name="old form").scope == KeyScope.WRITE
    refused = page.post(
        "/projects/p/settings/", {"action": "create_key", "scope": "root"}, follow=True
    )
    assert "scope: expected one of" in refused.content.decode()
    assert ApiKey.objects.filter(project=project).count() == 2
