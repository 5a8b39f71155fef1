"""Listing and revoking API keys from the command line."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from traces.models import ApiKey, Project


def test_revoked_key_is_refused_and_listed_as_revoked(project: Project, api_key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert client.get("/api/v1/runs").status_code == 200
    out = io.StringIO()

    call_command("revoke_api_key", api_key[:12], stdout=out)

    assert out.getvalue().startswith(f"revoked {api_key[:12]}")
    assert client.get("/api/v1/runs").status_code == 401
    listing = io.StringIO()
    call_command("list_api_keys", "--project", project.slug, stdout=listing)
    assert api_key[:12] in listing.getvalue()
    assert "revoked" in listing.getvalue()
    assert api_key not in listing.getvalue()


def test_revoking_an_unknown_prefix_fails_and_changes_nothing(
    project: Project, api_key: str
) -> None:
    with pytest.raises(CommandError, match="no active API key"):
        call_command("revoke_api_key", "dfk_nothere")
    assert ApiKey.objects.active().count() == 1
