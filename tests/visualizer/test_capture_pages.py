"""The settings page's capture policy form without a browser: admins only; a refused
policy (bad JSON or a broken rule) comes back in its form with the error and leaves the
stored one as it was."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from traces.models import Membership, Project, Role

pytestmark = pytest.mark.django_db

URL = "/projects/acme/settings/"
GOOD = '{"rules": [{"path": "/api_key", "action": "redact"}], "detectors": ["email"]}'


@pytest.fixture
def admin(project: Project) -> Client:
    user = get_user_model().objects.create_user("ada", password="pw-ada-1234")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


def save(client: Client, text: str) -> Any:
    return client.post(URL, {"action": "save_capture_policy", "policy": text}, follow=True)


def test_an_admin_saves_a_policy_and_sees_it_in_the_form(admin: Client, project: Project) -> None:
    page = save(admin, GOOD)
    assert page.status_code == 200
    assert b"Capture policy saved: 1 rule, detectors: email." in page.content
    project.refresh_from_db()
    assert project.capture_policy == {
        "rules": [{"path": "/api_key", "action": "redact"}],
        "detectors": ["email"],
    }
    assert b"&quot;/api_key&quot;" in admin.get(URL).content


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", b"policy: not JSON"),
        ('{"detectors": ["phone"]}', b"$.detectors[0]: unknown detector &#x27;phone&#x27;"),
        (
            '{"rules": [{"path": "/a", "action": "truncate", "max_bytes": 1}]}',
            b"$.rules[0].max_bytes",
        ),
    ],
)
def test_a_refused_policy_comes_back_in_its_form_and_the_stored_one_stays(
    admin: Client, project: Project, text: str, error: bytes
) -> None:
    assert save(admin, GOOD).status_code == 200
    page = save(admin, text)
    assert error in page.content
    assert b'id="capture-policy-error"' in page.content
    project.refresh_from_db()
    assert project.capture_policy["rules"] == [{"path": "/api_key", "action": "redact"}]
    # Shown once: a reload shows the stored policy again.
    assert b'id="capture-policy-error"' not in admin.get(URL).content


def test_a_member_neither_sees_nor_changes_the_policy(member: Any, project: Project) -> None:
    client = Client()
    client.force_login(member)
    assert b"capture-policy" not in client.get(URL).content
    refused = client.post(URL, {"action": "save_capture_policy", "policy": GOOD})
    assert refused.status_code == 403
    project.refresh_from_db()
    assert project.capture_policy == {}
