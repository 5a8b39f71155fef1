"""The review queue page and the run page's review panel, per role."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.traces.test_review import add_user, store_failed_run
from traces import review
from traces.models import FailureGroup, GroupStatus, Project, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(project: Project, other_project: Project) -> dict[str, Any]:
    return {
        "alice": add_user(project, "alice", Role.MEMBER),
        "bob": add_user(project, "bob", Role.MEMBER),
        "vera": add_user(project, "vera", Role.VIEWER),
        "otto": add_user(other_project, "otto", Role.ADMIN),
    }


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> int:
    return html.count('<tr data-kind="')


def test_the_queues_list_unreviewed_failures_my_assignments_and_new_groups(
    project: Project, people: dict[str, Any]
) -> None:
    first = store_failed_run(project, "fail-1", minute=10)
    second = store_failed_run(project, "fail-2", minute=20)
    done = store_failed_run(project, "fail-3", minute=30)
    review.update_review(done, people["bob"], status="reviewed")
    review.update_review(second, people["bob"], assignee="alice")
    # Ingestion grouped the three failures already; this test sets up groups of its own.
    FailureGroup.objects.filter(project=project).delete()
    now = timezone.now()
    FailureGroup.objects.create(
        project=project, fingerprint="f1", node="retriever", error_type="Timeout",
        message="Timeout: GET <url> exceeded <n>s", count=3, first_seen=now, last_seen=now,
    )  # fmt: skip
    FailureGroup.objects.create(
        project=project, fingerprint="f2", node="writer", error_type="Parse",
        message="bad json", count=1, first_seen=now, last_seen=now, status=GroupStatus.TRIAGED,
    )  # fmt: skip
    alice = signed_in(people["alice"])

    page = alice.get("/projects/acme/review/").content.decode()  # assigned first when any
    assert 'aria-current="page" data-tab="assigned"' in page
    assert rows(page) == 1
    assert 'data-key="fail-2"' in page

    page = alice.get("/projects/acme/review/?tab=unreviewed").content.decode()
    assert rows(page) == 2
    # Newest first; the reviewed run is not in the queue.
    assert page.index('data-key="fail-2"') < page.index('data-key="fail-1"')
    assert 'data-key="fail-3"' not in page
    assert ">alice</td>" in page  # fail-2's assignee shows in its row

    page = alice.get("/projects/acme/review/?tab=groups").content.decode()
    assert rows(page) == 1
    assert "Timeout: GET &lt;url&gt; exceeded &lt;n&gt;s" in page
    assert (
        f'data-url="/projects/acme/failures/{FailureGroup.objects.get(fingerprint="f1").pk}/"'
        in page
    )

    bob = signed_in(people["bob"]).get("/projects/acme/review/").content.decode()
    assert "Nothing is assigned to you." not in bob  # falls back to unreviewed failures
    assert rows(bob) == 2
    assert first.execution_id in bob


def test_a_viewer_sees_the_queue_read_only(project: Project, people: dict[str, Any]) -> None:
    store_failed_run(project, "fail-1")
    page = signed_in(people["vera"]).get("/projects/acme/review/?tab=unreviewed").content.decode()
    assert rows(page) == 1
    assert ">read-only</span>" in page
    assert "assign to me" not in page
    assert '"can_review": false' in page


def test_a_viewer_gets_the_run_pages_review_controls_disabled_from_the_start(
    project: Project, people: dict[str, Any]
) -> None:
    run = store_failed_run(project, "fail-1")
    url = f"/projects/acme/runs/{run.execution_id}/"
    viewer = signed_in(people["vera"]).get(url).content.decode()
    member = signed_in(people["alice"]).get(url).content.decode()

    viewers_note = 'disabled title="Viewers read; members review"'
    assert viewer.count(viewers_note) == 6  # three statuses, good, bad, clear
    assert member.count(viewers_note) == 0
    assert '<span id="review-readonly" class="badge" title=' in viewer
    assert '<span id="review-readonly" class="badge" hidden title=' in member


def test_outsiders_get_404_and_signed_out_users_sign_in(
    project: Project, people: dict[str, Any]
) -> None:
    run = store_failed_run(project)
    otto = signed_in(people["otto"])
    assert otto.get("/projects/acme/review/").status_code == 404
    assert otto.get(f"/projects/acme/runs/{run.execution_id}/").status_code == 404
    response = Client().get("/projects/acme/review/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_run_page_carries_the_review_panel_and_its_script(
    project: Project, people: dict[str, Any]
) -> None:
    run = store_failed_run(project)
    page = signed_in(people["alice"]).get(f"/projects/acme/runs/{run.execution_id}/").content
    html = page.decode()
    assert 'id="review-panel"' in html
    assert f'data-execution-id="{run.execution_id}"' in html
    assert 'data-username="alice"' in html
    assert "visualizer/review.js" in html
