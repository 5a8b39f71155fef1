"""Retention on the pages: the settings page's retention form (admins set it; bad values
are refused naming the field) and its dry-run count; the run page's pin form (members;
viewers see the state and get 403); the pinned marker in the run list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from tests.traces.exports_support import trace_of
from tests.traces.test_review import add_user
from tests.visualizer.test_review_pages import signed_in
from traces import ingest
from traces.models import Project, Role, Run

pytestmark = pytest.mark.django_db

SETTINGS = "/projects/acme/settings/"


@pytest.fixture
def people(project: Project, other_project: Project) -> dict[str, Client]:
    return {
        "admin": signed_in(add_user(project, "ada", Role.ADMIN)),
        "member": signed_in(add_user(project, "mia", Role.MEMBER)),
        "viewer": signed_in(add_user(project, "vic", Role.VIEWER)),
        "outsider": signed_in(add_user(other_project, "otto", Role.ADMIN)),
    }


@pytest.fixture
def runs(project: Project, fixtures_dir: Path) -> list[Run]:
    stored = [
        ingest.ingest_trace(project, trace_of(fixtures_dir, "research_agent_success", f"r{i}"))[0]
        for i in range(3)
    ]
    old = timezone.now() - timedelta(days=40)
    Run.objects.filter(pk__in=[r.pk for r in stored[:2]]).update(started_at=old, updated_at=old)
    return stored


def test_an_admin_sets_the_retention_and_sees_the_dry_run_count(
    project: Project, people: dict[str, Client], runs: list[Run]
) -> None:
    admin = people["admin"]
    assert "Runs are kept forever." in admin.get(SETTINGS).content.decode()

    answer = admin.post(SETTINGS, {"action": "set_retention", "retention_days": "30"}, follow=True)

    page = answer.content.decode()
    assert "Runs are now kept for 30 days." in page
    assert "Runs are kept for <strong>30</strong> days." in page
    assert "<strong>2</strong> runs would be deleted now." in page
    project.refresh_from_db()
    assert project.retention_days == 30
    assert Run.objects.filter(project=project).count() == 3  # counted, not deleted

    admin.post(SETTINGS, {"action": "set_retention", "retention_days": ""})
    project.refresh_from_db()
    assert project.retention_days is None


def test_a_bad_retention_is_refused_naming_the_field(
    project: Project, people: dict[str, Client]
) -> None:
    answer = people["admin"].post(
        SETTINGS, {"action": "set_retention", "retention_days": "0"}, follow=True
    )
    assert "retention_days: must be between 1 and 36500 days" in answer.content.decode()
    project.refresh_from_db()
    assert project.retention_days is None


def test_only_admins_get_the_retention_form(project: Project, people: dict[str, Client]) -> None:
    member = people["member"]
    page = member.get(SETTINGS).content.decode()
    assert 'id="retention"' in page
    assert 'id="retention-form"' not in page
    refused = member.post(SETTINGS, {"action": "set_retention", "retention_days": "3"})
    assert refused.status_code == 403
    project.refresh_from_db()
    assert project.retention_days is None


def test_a_member_pins_from_the_run_page_and_the_run_list_marks_it(
    people: dict[str, Client], runs: list[Run]
) -> None:
    member = people["member"]
    page = "/projects/acme/runs/r0/"
    assert 'name="pinned" value="1"' in member.get(page).content.decode()

    answer = member.post(f"{page}pin", {"pinned": "1"})

    assert answer.status_code == 302
    assert answer["Location"] == page
    runs[0].refresh_from_db()
    assert runs[0].pinned
    html = member.get(page).content.decode()
    assert 'id="run-pinned" class="badge pinned"' in html
    assert 'name="pinned" value="0"' in html
    listing = member.get("/projects/acme/runs/").content.decode()
    assert listing.count('class="badge pinned"') == 1

    member.post(f"{page}pin", {"pinned": "0"})
    runs[0].refresh_from_db()
    assert not runs[0].pinned


def test_a_viewer_sees_the_pin_state_but_cannot_pin(
    people: dict[str, Client], runs: list[Run]
) -> None:
    viewer = people["viewer"]
    page = viewer.get("/projects/acme/runs/r1/").content.decode()
    assert 'id="run-pin"' not in page
    assert "not pinned" in page
    assert viewer.post("/projects/acme/runs/r1/pin", {"pinned": "1"}).status_code == 403
    assert people["outsider"].post("/projects/acme/runs/r1/pin", {"pinned": "1"}).status_code == 404
    runs[1].refresh_from_db()
    assert not runs[1].pinned
