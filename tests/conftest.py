"""Shared test fixtures: the DashFlow fixture traces, a project, keys and clients."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from traces.models import ApiKey, Membership, Project, Role

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "dashflow"


@pytest.fixture(autouse=True)
def own_throttle_counters(settings: Any) -> None:
    """Each test counts failed sign-ins and API key requests afresh: on Redis the counters
    outlive a test session, and a wrong password tried once per run would otherwise lock
    the test user out on the sixth run within LOGIN_THROTTLE_WINDOW."""
    throttle = {**settings.CACHES["throttle"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    settings.CACHES = {**settings.CACHES, "throttle": throttle}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    # The shared fixtures are part of every checkout's layout (../shared); a missing
    # directory is a broken setup, not a reason to skip.
    assert FIXTURES.is_dir(), f"{FIXTURES} is missing: tests need ../shared beside the project"
    return FIXTURES


@pytest.fixture(scope="session")
def fixture_files(fixtures_dir: Path) -> list[Path]:
    files = sorted(fixtures_dir.glob("*.json"))
    assert len(files) >= 6
    return files


@pytest.fixture
def project(db: None) -> Project:
    return Project.objects.create(slug="acme", name="Acme")


@pytest.fixture
def other_project(db: None) -> Project:
    return Project.objects.create(slug="other", name="Other")


@pytest.fixture
def api_key(project: Project) -> str:
    return ApiKey.issue(project)[1]


@pytest.fixture
def api(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def member(project: Project):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user("alice", password="pw-alice-123")
    Membership.objects.create(project=project, user=user, role=Role.MEMBER)
    return user
