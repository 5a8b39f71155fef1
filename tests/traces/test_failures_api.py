"""The failure-group API: fields, filters, pagination, PATCH with its activity log, and
roles (viewer reads, member/admin/API key change, a user of another project gets 404)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from traces.failure_json import RUN_IDS_CAP
from traces.models import Activity, ApiKey, FailureGroup, GroupStatus, Membership, Project, Role


def trace(fixtures_dir: Path, execution_id: str, **error: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    body["execution_id"] = execution_id
    body["errors"][0].update(error)
    return body


@pytest.fixture
def groups(api: APIClient, fixtures_dir: Path, project: Project) -> dict[str, FailureGroup]:
    """Two groups in ``acme``: a Timeout in three runs, a RateLimit in one."""
    for i, url in enumerate(["https://a/1", "https://b/2", "https://c/3"]):
        body = trace(fixtures_dir, f"run-{i}", message=f"Timeout: GET {url} exceeded 3{i}s")
        body["errors"][0]["timestamp"] = f"2026-03-0{i + 1}T10:00:00.000+00:00"
        assert api.post("/api/v1/traces", body, format="json").status_code == 201
    body = trace(
        fixtures_dir,
        "run-rl",
        node="reader",
        error_type="RateLimit",
        message="RateLimit: 429, retry after 5s",
        execution_index=None,
    )
    # Without an execution index the error covers the failed steps of its node.
    body["nodes_executed"][-1].update(node="reader", error_message="RateLimit: 429")
    assert api.post("/api/v1/traces", body, format="json").status_code == 201
    return {g.error_type: g for g in FailureGroup.objects.filter(project=project)}


def user_in(project: Project, name: str, role: str | None) -> Any:
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    if role is not None:
        Membership.objects.create(project=project, user=user, role=role)
    return user


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_list_shows_each_group_with_its_fields(
    api: APIClient, groups: dict[str, FailureGroup]
) -> None:
    response = api.get("/api/v1/failure-groups")

    assert response.status_code == 200
    body = response.json()
    assert body["previous"] is None
    timeout, rate = body["results"]  # most recently seen first
    assert set(timeout) >= {
        "id",
        "fingerprint",
        "node",
        "error_type",
        "message",
        "count",
        "status",
        "assignee",
        "first_seen",
        "last_seen",
        "regressed_at",
        "run_ids",
    }
    assert timeout["id"] == groups["Timeout"].pk
    assert timeout["fingerprint"] == groups["Timeout"].fingerprint
    assert (timeout["node"], timeout["error_type"]) == ("retriever", "Timeout")
    assert timeout["message"] == "Timeout: GET <url> exceeded <num>s"
    assert (timeout["count"], timeout["status"], timeout["assignee"]) == (3, "new", None)
    assert timeout["first_seen"].startswith("2026-03-01T10:00:00")
    assert timeout["last_seen"].startswith("2026-03-03T10:00:00")
    assert timeout["regressed_at"] is None
    assert timeout["run_ids"] == ["run-2", "run-1", "run-0"]  # most recent first
    assert (rate["node"], rate["count"], rate["run_ids"]) == ("reader", 1, ["run-rl"])


def test_run_ids_are_capped(api: APIClient, fixtures_dir: Path, project: Project) -> None:
    for i in range(RUN_IDS_CAP + 3):
        response = api.post("/api/v1/traces", trace(fixtures_dir, f"r{i}"), format="json")
        assert response.status_code == 201

    (group,) = api.get("/api/v1/failure-groups").json()["results"]

    assert group["count"] == RUN_IDS_CAP + 3
    assert len(group["run_ids"]) == RUN_IDS_CAP


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=new", ["Timeout", "RateLimit"]),
        ("status=resolved", []),
        ("node=reader", ["RateLimit"]),
        ("error_type=Timeout", ["Timeout"]),
        ("assignee=alice", ["RateLimit"]),
        ("assignee=nobody", []),
    ],
)
def test_the_list_filters(
    api: APIClient, groups: dict[str, FailureGroup], member: Any, query: str, expected: list[str]
) -> None:
    FailureGroup.objects.filter(pk=groups["RateLimit"].pk).update(assignee=member)

    response = api.get(f"/api/v1/failure-groups?{query}")

    assert response.status_code == 200
    assert [g["error_type"] for g in response.json()["results"]] == expected


def test_assignee_me_is_the_signed_in_user(
    groups: dict[str, FailureGroup], member: Any, project: Project
) -> None:
    FailureGroup.objects.filter(pk=groups["Timeout"].pk).update(assignee=member)

    response = client_for(member).get("/api/v1/failure-groups?project=acme&assignee=me")

    assert [g["id"] for g in response.json()["results"]] == [groups["Timeout"].pk]
    assert response.json()["results"][0]["assignee"] == "alice"


@pytest.mark.parametrize(
    ("query", "path"),
    [("status=open", "status"), ("assignee=me", "assignee")],
)
def test_a_bad_filter_is_a_400_naming_it(
    api: APIClient, groups: dict[str, FailureGroup], query: str, path: str
) -> None:
    response = api.get(f"/api/v1/failure-groups?{query}")

    assert response.status_code == 400
    assert response.json()["path"] == path
    assert response.json()["detail"].startswith(f"{path}: ")


def test_the_list_pages_with_a_cursor(api: APIClient, groups: dict[str, FailureGroup]) -> None:
    first = api.get("/api/v1/failure-groups?limit=1").json()
    second = api.get(first["next"]).json()

    assert [g["error_type"] for g in first["results"]] == ["Timeout"]
    assert [g["error_type"] for g in second["results"]] == ["RateLimit"]
    assert second["next"] is None


def test_one_group_by_id(api: APIClient, groups: dict[str, FailureGroup]) -> None:
    group = groups["RateLimit"]

    response = api.get(f"/api/v1/failure-groups/{group.pk}")

    assert response.status_code == 200
    assert response.json()["fingerprint"] == group.fingerprint
    assert api.get("/api/v1/failure-groups/999999").status_code == 404


def test_a_member_triages_and_assigns_and_each_change_is_logged(
    groups: dict[str, FailureGroup], member: Any, project: Project
) -> None:
    bob = user_in(project, "bob", Role.VIEWER)
    group = groups["Timeout"]
    url = f"/api/v1/failure-groups/{group.pk}?project=acme"
    alice = client_for(member)

    response = alice.patch(url, {"status": "triaged", "assignee": "bob"}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["assignee"]) == ("triaged", "bob")
    group.refresh_from_db()
    assert (group.status, group.assignee) == (GroupStatus.TRIAGED, bob)
    entries = {a.verb: a for a in Activity.objects.filter(group=group)}
    assert set(entries) == {"status_changed", "assignee_changed"}
    assert entries["status_changed"].actor == member
    assert entries["status_changed"].detail == {"from": "new", "to": "triaged"}
    assert entries["assignee_changed"].detail == {"from": None, "to": "bob"}

    # The same values again change nothing and log nothing; null unassigns.
    assert alice.patch(url, {"status": "triaged"}, format="json").status_code == 200
    assert Activity.objects.filter(group=group).count() == 2
    response = alice.patch(url, {"assignee": None}, format="json")
    assert response.json()["assignee"] is None
    assert Activity.objects.filter(group=group).first().detail == {"from": "bob", "to": None}


def test_an_api_key_can_resolve_a_group_and_the_log_names_the_key(
    api: APIClient, groups: dict[str, FailureGroup]
) -> None:
    group = groups["Timeout"]

    response = api.patch(f"/api/v1/failure-groups/{group.pk}", {"status": "resolved"}, "json")

    assert response.status_code == 200
    entry = Activity.objects.get(group=group)
    assert entry.actor is None
    assert entry.detail["to"] == "resolved"
    assert entry.detail["via"].startswith("api-key:dfk_")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"status": "done"}, "status"),
        ({"assignee": "mallory"}, "assignee"),  # not a member of the project
        ({"assignee": 7}, "assignee"),
        ({"owner": "alice"}, "owner"),
        ({}, "$"),
        (["resolved"], "$"),
    ],
)
def test_a_bad_patch_is_a_400_naming_the_field_and_changes_nothing(
    api: APIClient,
    groups: dict[str, FailureGroup],
    other_project: Project,
    body: Any,
    path: str,
) -> None:
    user_in(other_project, "mallory", Role.ADMIN)
    group = groups["Timeout"]

    response = api.patch(f"/api/v1/failure-groups/{group.pk}", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["path"] == path
    assert response.json()["rule"]
    group.refresh_from_db()
    assert (group.status, group.assignee_id) == ("new", None)
    assert not Activity.objects.exists()


@pytest.mark.parametrize(
    ("role", "can_patch"),
    [(Role.VIEWER, False), (Role.MEMBER, True), (Role.ADMIN, True)],
)
def test_roles_decide_who_may_change_a_group(
    groups: dict[str, FailureGroup], project: Project, role: str, can_patch: bool
) -> None:
    client = client_for(user_in(project, f"u-{role}", role))
    group = groups["Timeout"]
    url = f"/api/v1/failure-groups/{group.pk}?project=acme"

    assert client.get("/api/v1/failure-groups?project=acme").status_code == 200
    assert client.get(url).status_code == 200
    response = client.patch(url, {"status": "ignored"}, format="json")

    assert response.status_code == (200 if can_patch else 403)
    group.refresh_from_db()
    assert group.status == ("ignored" if can_patch else "new")


def test_a_user_of_another_project_gets_404_on_every_url(
    groups: dict[str, FailureGroup], other_project: Project
) -> None:
    outsider = client_for(user_in(other_project, "eve", Role.ADMIN))
    other_key = APIClient()
    other_key.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    group = groups["Timeout"]

    for client in (outsider, other_key):
        assert client.get("/api/v1/failure-groups?project=acme").status_code == 404
        assert client.get(f"/api/v1/failure-groups/{group.pk}?project=acme").status_code == 404
        response = client.patch(
            f"/api/v1/failure-groups/{group.pk}?project=acme", {"status": "resolved"}, "json"
        )
        assert response.status_code == 404
        # Named by its own project, the group is still not there.
        response = client.patch(
            f"/api/v1/failure-groups/{group.pk}?project=other", {"status": "resolved"}, "json"
        )
        assert response.status_code == 404
    assert other_key.get("/api/v1/failure-groups").json()["results"] == []
    group.refresh_from_db()
    assert group.status == "new"


def test_an_anonymous_request_is_refused(groups: dict[str, FailureGroup]) -> None:
    assert APIClient().get("/api/v1/failure-groups?project=acme").status_code in (401, 403)


def test_the_schema_documents_the_failure_group_api(db: None) -> None:
    out = io.StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )
    schema = json.loads(out.getvalue())

    assert set(schema["paths"]["/api/v1/failure-groups/{group_id}"]) >= {"get", "patch"}
    listed = schema["paths"]["/api/v1/failure-groups"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {
        "project",
        "status",
        "node",
        "error_type",
        "assignee",
        "cursor",
    }
    group = schema["components"]["schemas"]["FailureGroupOut"]["properties"]
    assert f"at most {RUN_IDS_CAP}" in group["run_ids"]["description"]
