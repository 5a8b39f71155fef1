"""The retention API: pin and unpin a run (members; viewers 403, outsiders 404), the
project's retention read by members and set by admins, bad values a 400 naming the field;
a pinned run survives the purge."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.traces.exports_support import trace_of
from tests.traces.test_review import add_user
from tests.traces.test_review_api import client_for
from traces import ingest, retention
from traces.models import ApiKey, KeyScope, Project, Role, Run

RUN = "to-keep"
PIN = f"/api/v1/runs/{RUN}/pin?project=acme"
RETENTION = "/api/v1/retention?project=acme"


@pytest.fixture
def run(project: Project, fixtures_dir: Path) -> Run:
    return ingest.ingest_trace(project, trace_of(fixtures_dir, "research_agent_success", RUN))[0]


@pytest.fixture
def people(project: Project, other_project: Project) -> dict[str, APIClient]:
    return {
        Role.MEMBER: client_for(add_user(project, "mia", Role.MEMBER)),
        Role.VIEWER: client_for(add_user(project, "vic", Role.VIEWER)),
        Role.ADMIN: client_for(add_user(project, "ada", Role.ADMIN)),
        "outsider": client_for(add_user(other_project, "otto", Role.ADMIN)),
    }


def test_a_member_pins_and_unpins_and_the_run_says_so(
    run: Run, people: dict[str, APIClient]
) -> None:
    member = people[Role.MEMBER]

    answer = member.post(PIN)
    assert answer.status_code == 200
    assert answer.json() == {"execution_id": RUN, "pinned": True}
    assert member.get(f"/api/v1/runs/{RUN}?project=acme").json()["pinned"] is True
    run.refresh_from_db()
    assert run.pinned

    assert member.delete(PIN).json() == {"execution_id": RUN, "pinned": False}
    run.refresh_from_db()
    assert not run.pinned


def test_a_viewer_cannot_pin_and_an_outsider_does_not_see_the_run(
    run: Run, people: dict[str, APIClient]
) -> None:
    assert people[Role.VIEWER].post(PIN).status_code == 403
    assert people["outsider"].post(PIN).status_code == 404
    assert people["outsider"].post(f"/api/v1/runs/{RUN}/pin?project=other").status_code == 404
    run.refresh_from_db()
    assert not run.pinned


def test_a_read_key_cannot_pin_a_write_key_can(project: Project, run: Run) -> None:
    for scope, expected in ((KeyScope.READ, 403), (KeyScope.WRITE, 200)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, scope=scope)[1]}")
        assert client.post(f"/api/v1/runs/{RUN}/pin").status_code == expected


def test_a_pinned_run_outlives_its_retention(
    project: Project, run: Run, people: dict[str, APIClient]
) -> None:
    admin = people[Role.ADMIN]
    old = timezone.now() - timedelta(days=3)
    Run.objects.filter(pk=run.pk).update(started_at=old, updated_at=old)

    assert admin.put(RETENTION, {"retention_days": 2}, format="json").json() == {
        "retention_days": 2,
        "expired_runs": 1,
    }
    assert people[Role.MEMBER].post(PIN).status_code == 200
    assert admin.get(RETENTION).json() == {"retention_days": 2, "expired_runs": 0}

    project.refresh_from_db()
    assert retention.purge(project).runs == 0
    assert Run.objects.filter(pk=run.pk).exists()


def test_members_read_the_retention_only_admins_set_it(
    project: Project, people: dict[str, APIClient]
) -> None:
    assert people[Role.VIEWER].get(RETENTION).json() == {
        "retention_days": None,
        "expired_runs": 0,
    }
    refused = people[Role.MEMBER].put(RETENTION, {"retention_days": 5}, format="json")
    assert refused.status_code == 403
    assert people["outsider"].get(RETENTION).status_code == 404
    admin = people[Role.ADMIN]
    assert admin.put(RETENTION, {"retention_days": 5}, format="json").status_code == 200
    assert admin.put(RETENTION, {"retention_days": None}, format="json").json() == {
        "retention_days": None,
        "expired_runs": 0,
    }
    project.refresh_from_db()
    assert project.retention_days is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": "7"}, "retention_days"),
        ({"retention_days": True}, "retention_days"),
        ({"retention_days": 36_501}, "retention_days"),
        ({}, "retention_days"),
        ({"retention_days": 7, "days": 7}, "days"),
    ],
)
def test_a_bad_retention_is_a_400_naming_the_field_and_nothing_changes(
    project: Project, people: dict[str, APIClient], body: dict[str, Any], path: str
) -> None:
    answer = people[Role.ADMIN].put(RETENTION, body, format="json")

    assert answer.status_code == 400
    assert answer.json()["path"] == path
    project.refresh_from_db()
    assert project.retention_days is None
