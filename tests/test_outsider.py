"""A user of another project tries every URL of this one: always 404, never a leak.

The URLs are read from the resolver, so a page or endpoint added later is covered (and a
new kind of URL parameter fails here until this test knows how to fill it).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from traces import zstd
from traces.ingest import ingest_trace
from traces.models import (
    AlertKind,
    AlertRule,
    ApiKey,
    CaptureAttachment,
    Comment,
    Export,
    ExportFormat,
    FailureGroup,
    Membership,
    Project,
    Role,
)
from traces.parsing import parse_trace

METHODS = ("get", "post", "put", "patch", "delete")
# The producers' endpoints take an API key only: any signed-in user is refused alike.
PRODUCER = {"api/v1/traces", "api/v1/dashstream", "api/v1/runs/<str:execution_id>/events"}


def patterns(resolvers: list[Any] | None = None, prefix: str = "") -> list[str]:
    found = []
    for entry in resolvers if resolvers is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            found += patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.append(prefix + str(entry.pattern))
    return [p for p in found if p.startswith(("projects/<slug:slug>/", "api/v1/"))]


@pytest.fixture
def acme(project: Project, fixtures_dir: Path) -> dict[str, str]:
    """Everything a URL of project acme can name, owned by acme."""
    ada = get_user_model().objects.create_user("ada", password="pw-ada-123")
    Membership.objects.create(project=project, user=ada, role=Role.ADMIN)
    trace = parse_trace((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    run, _ = ingest_trace(project, trace)
    group = FailureGroup.objects.filter(project=project).first()
    assert group is not None, "a failed run is grouped"
    comment = Comment.objects.create(run=run, author=ada, body="mine")
    export = Export.objects.create(project=project, format=ExportFormat.CSV, created_by=ada)
    key = ApiKey.issue(project)[0]
    attachment = CaptureAttachment.objects.create(
        project=project, ident="a" * 32, run=run, size=2, data=zstd.compress(b"{}")
    )
    rule = AlertRule.objects.create(project=project, name="mine", kind=AlertKind.REGRESSION)
    return {
        "slug": project.slug,
        "execution_id": run.execution_id,
        "index": "0",
        "group_id": str(group.pk),
        "id": str(comment.pk),
        "export_id": str(export.pk),
        "key_id": str(key.pk),
        "rule_id": str(rule.pk),
        "ident": attachment.ident,
        "username": "ada",
        "thread_id": str(run.thread_id),
    }


def fill(pattern: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{pattern}: teach this test a value for <{name}>"
        return values[name]

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, pattern)


@pytest.fixture
def outsider(other_project: Project) -> Any:
    eve = get_user_model().objects.create_user("eve", password="pw-eve-123")
    Membership.objects.create(project=other_project, user=eve, role=Role.ADMIN)
    return eve


def test_every_url_of_a_project_answers_404_to_a_member_of_another(
    acme: dict[str, str], outsider: Any
) -> None:
    client = Client()
    client.force_login(outsider)
    urls = patterns()
    assert len(urls) > 20
    for pattern in urls:
        url = fill(pattern, acme)
        if pattern.startswith("api/"):
            url += "?project=acme"
        for method in METHODS:
            response = getattr(client, method)(url, content_type="application/json", data={})
            allowed = {404, 405}  # 405: this URL takes no such method, for anyone
            if pattern in PRODUCER:
                allowed = {401, 403, 405}
            assert response.status_code in allowed, (method, url, response.status_code)
            body = response.content.decode(errors="replace")
            assert acme["execution_id"] not in body or response.status_code == 404, (method, url)
            assert "mine" not in body


def test_every_url_with_an_id_answers_404_to_another_projects_api_key(
    acme: dict[str, str], other_project: Project
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    with_ids = [p for p in patterns() if p.startswith("api/") and "<" in p]
    assert with_ids
    for pattern in with_ids:
        url = fill(pattern, acme)
        for method in METHODS:
            if pattern in PRODUCER:
                continue  # posting events under an id creates that run in the key's project
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code in (403, 404, 405), (method, url, response.status_code)
            if response.status_code == 403:  # admin-only, refused before any look-up
                assert pattern.startswith(
                    ("api/v1/members", "api/v1/api-keys", "api/v1/alert-rules")
                ), url
    # ... and naming the project outright is refused the same way
    assert client.get("/api/v1/runs?project=acme").status_code == 404


def test_the_fixture_covers_every_parameter(acme: dict[str, str]) -> None:
    for pattern in patterns():
        fill(pattern, acme)
    assert uuid.UUID(acme["export_id"])
