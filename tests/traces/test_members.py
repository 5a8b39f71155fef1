"""Project administration: members, roles and API keys, through the API and the page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from traces.models import Activity, ApiKey, Membership, Project, Role


def user_in(project: Project, name: str, role: str) -> Any:
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    Membership.objects.create(project=project, user=user, role=role)
    return user


def api_as(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin(project: Project) -> Any:
    return user_in(project, "ada", Role.ADMIN)


@pytest.fixture
def outsider(other_project: Project) -> Any:
    return user_in(other_project, "eve", Role.ADMIN)


def test_admin_adds_a_member_changes_the_role_and_removes_them(
    project: Project, admin: Any
) -> None:
    get_user_model().objects.create_user("bob", password="pw-bob-123")
    client = api_as(admin)
    added = client.post(
        "/api/v1/members?project=acme", {"username": "bob", "role": "viewer"}, format="json"
    )
    assert added.status_code == 201, added.content
    assert added.json() == {"username": "bob", "role": "viewer"}
    changed = client.patch("/api/v1/members/bob?project=acme", {"role": "member"}, format="json")
    assert changed.json()["role"] == "member"
    assert client.delete("/api/v1/members/bob?project=acme").status_code == 204
    listed = client.get("/api/v1/members?project=acme").json()["results"]
    assert listed == [{"username": "ada", "role": "admin"}]
    verbs = list(Activity.objects.filter(project=project).values_list("verb", flat=True))
    assert sorted(verbs) == ["member_added", "member_removed", "role_changed"]


def test_the_last_admin_cannot_be_demoted_or_removed(project: Project, admin: Any) -> None:
    client = api_as(admin)
    demote = client.patch("/api/v1/members/ada?project=acme", {"role": "member"}, format="json")
    assert demote.status_code == 400
    assert demote.json()["path"] == "role"
    assert client.delete("/api/v1/members/ada?project=acme").status_code == 400
    assert Membership.objects.get(user=admin).role == Role.ADMIN


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"username": "nobody", "role": "member"}, "username"),
        ({"username": "ada", "role": "owner"}, "role"),
        ({"role": "member"}, "username"),
    ],
)
def test_bad_member_input_names_the_field(
    project: Project, admin: Any, body: dict[str, str], path: str
) -> None:
    response = api_as(admin).post("/api/v1/members?project=acme", body, format="json")
    assert response.status_code == 400
    assert response.json()["path"] == path


def test_admin_issues_a_key_that_works_once_shown_and_revokes_it(
    project: Project, admin: Any
) -> None:
    client = api_as(admin)
    created = client.post("/api/v1/api-keys?project=acme", {"name": "ci"}, format="json").json()
    raw = created["key"]
    assert raw.startswith("dfk_")
    assert created["prefix"] == raw[:12]
    listed = client.get("/api/v1/api-keys?project=acme").json()["results"]
    assert [k["name"] for k in listed] == ["ci"]
    assert "key" not in listed[0]
    producer = APIClient()
    producer.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert producer.get("/api/v1/runs").status_code == 200
    assert client.delete(f"/api/v1/api-keys/{created['id']}?project=acme").status_code == 204
    assert producer.get("/api/v1/runs").status_code == 401


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_viewers_and_members_read_members_but_manage_nothing(project: Project, role: str) -> None:
    get_user_model().objects.create_user("bob", password="pw-bob-123")
    client = api_as(user_in(project, "val", role))
    assert client.get("/api/v1/members?project=acme").status_code == 200
    assert client.get("/api/v1/api-keys?project=acme").status_code == 403
    added = client.post("/api/v1/members?project=acme", {"username": "bob"}, format="json")
    assert added.status_code == 403
    assert client.post("/api/v1/api-keys?project=acme", {}, format="json").status_code == 403
    assert not Membership.objects.filter(user__username="bob").exists()
    assert not ApiKey.objects.exists()


def test_an_api_key_never_manages_its_project(project: Project, api: APIClient) -> None:
    assert api.get("/api/v1/members").status_code == 200
    assert api.get("/api/v1/api-keys").status_code == 403
    assert api.post("/api/v1/api-keys", {}, format="json").status_code == 403


def test_an_outsider_gets_404_on_every_settings_url(
    project: Project, admin: Any, outsider: Any
) -> None:
    key = ApiKey.issue(project)[0]
    client = api_as(outsider)
    for method, url in [
        ("get", "/api/v1/members?project=acme"),
        ("post", "/api/v1/members?project=acme"),
        ("patch", "/api/v1/members/ada?project=acme"),
        ("delete", "/api/v1/members/ada?project=acme"),
        ("get", "/api/v1/api-keys?project=acme"),
        ("post", "/api/v1/api-keys?project=acme"),
        ("delete", f"/api/v1/api-keys/{key.pk}?project=acme"),
    ]:
        assert getattr(client, method)(url, {}, format="json").status_code == 404, (method, url)
    page = Client()
    page.force_login(outsider)
    assert page.get("/projects/acme/settings/").status_code == 404
    assert page.post("/projects/acme/settings/", {"action": "create_key"}).status_code == 404
    assert ApiKey.objects.filter(project=project).count() == 1


def test_the_settings_page_lets_an_admin_manage_and_shows_a_new_key_once(
    project: Project, admin: Any
) -> None:
    get_user_model().objects.create_user("bob", password="pw-bob-123")
    page = Client()
    page.force_login(admin)
    added = page.post(
        "/projects/acme/settings/",
        {"action": "add_member", "username": "bob", "role": "viewer"},
        follow=True,
    )
    assert "bob is now viewer." in added.content.decode()
    created = page.post("/projects/acme/settings/", {"action": "create_key", "name": "<b>x</b>"})
    # Post, then redirect: reloading the page that shows the key creates no second one.
    assert created.status_code == 302
    html = page.get(created["Location"]).content.decode()
    raw = ApiKey.objects.get(project=project)
    assert 'id="new-key"' in html
    assert raw.prefix in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>x</b>" not in html
    again = page.get("/projects/acme/settings/").content.decode()
    assert 'id="new-key"' not in again
    assert ApiKey.objects.filter(project=project).count() == 1
    # The activity log says what happened, in words.
    assert "added bob as viewer" in again
    assert "created the API key &lt;b&gt;x&lt;/b&gt; (" in again
    assert "memberadded" not in again
    bad = page.post(
        "/projects/acme/settings/", {"action": "add_member", "username": "zed"}, follow=True
    )
    assert "username: no user named" in bad.content.decode()


def test_a_viewer_sees_members_read_only_and_cannot_post(project: Project, admin: Any) -> None:
    viewer = user_in(project, "val", Role.VIEWER)
    page = Client()
    page.force_login(viewer)
    html = page.get("/projects/acme/settings/").content.decode()
    assert "ada" in html
    assert "Create key" not in html
    assert "<select" not in html
    assert page.post("/projects/acme/settings/", {"action": "create_key"}).status_code == 403
    assert not ApiKey.objects.exists()
