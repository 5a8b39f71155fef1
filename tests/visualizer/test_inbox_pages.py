"""The inbox page's rows fragment (what its script fetches when an item arrives): the
signed-in user's items only, rendered as on the page; 404 outside the project."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.traces.test_review import add_user, store_failed_run
from traces import review
from traces.models import InboxItem, Project, Role

pytestmark = pytest.mark.django_db


def test_the_rows_fragment_holds_the_users_own_items(
    alice: Client, member: Any, project: Project, other_project: Project
) -> None:
    bob = add_user(project, "bob", Role.MEMBER)
    carol = add_user(project, "carol", Role.MEMBER)
    run = store_failed_run(project)
    review.add_comment(run, bob, "@alice see step 3", review.step_at(run, 3))
    review.add_comment(run, bob, "@carol not for alice")
    mine = InboxItem.objects.get(user=member)

    html = alice.get(reverse("visualizer:inbox-rows", args=["acme"])).content.decode()

    assert html.count("<tr ") == 1
    assert f'data-item="{mine.pk}"' in html
    assert "bob mentioned you on step #3" in html
    assert f'href="/projects/acme/runs/{run.execution_id}/#step=3"' in html
    assert InboxItem.objects.filter(user=carol).count() == 1
    page = alice.get(reverse("visualizer:inbox", args=["acme"])).content.decode()
    assert 'data-rows-url="/projects/acme/inbox/rows.html"' in page
    outside = reverse("visualizer:inbox-rows", args=[other_project.slug])
    assert alice.get(outside).status_code == 404
