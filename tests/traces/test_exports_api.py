"""The exports API: start (202), follow, download, cancel and delete; 400s that name the
field; another project's export is a 404; viewers read and download, members export."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tests.traces.exports_support import (
    eager,
    expected_file,
    export_dir,
    files,
    jsonl_ids,
    store_runs,
)
from traces import exports
from traces.models import ApiKey, Export, ExportStatus, Membership, Project, Role, Run

__all__ = ["eager", "export_dir"]  # fixtures, used by name

pytestmark = pytest.mark.usefixtures("eager", "export_dir")


@pytest.fixture
def runs(project: Project, fixtures_dir: Path) -> dict[str, Run]:
    return store_runs(project, fixtures_dir)


def start(client: APIClient, body: Any, capture: Any, query: str = "") -> Any:
    """POST an export; the task runs when the request's transaction commits."""
    with capture(execute=True):
        response = client.post(f"/api/v1/exports{query}", body, format="json")
    return response


def signed_in(project: Project, name: str, role: str | None) -> APIClient:
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    if role is not None:
        Membership.objects.create(project=project, user=user, role=role)
    client = APIClient()
    assert client.login(username=name, password=f"pw-{name}-123")
    return client


def test_post_answers_202_queued_and_the_export_finishes_with_the_file(
    api: APIClient,
    runs: dict[str, Run],
    django_capture_on_commit_callbacks: Any,
    export_dir: Path,
) -> None:
    response = start(api, {"format": "csv", "filters": {}}, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["download_url"] is None

    detail = api.get(f"/api/v1/exports/{body['id']}").json()
    ordered = sorted(runs.values(), key=lambda r: (r.started_at, r.pk))
    expected, rows = expected_file("csv", ordered)
    assert detail["status"] == "done"
    assert detail["progress"] == 100
    assert (detail["runs_done"], detail["runs_total"]) == (4, 4)
    assert detail["row_count"] == rows == sum(r.node_count for r in runs.values())
    assert detail["size"] == len(expected)
    assert detail["download_url"] == f"/api/v1/exports/{body['id']}/download"

    download = api.get(detail["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"].startswith('attachment; filename="acme-csv-')
    assert b"".join(download.streaming_content) == expected
    # One file, under its final name; nothing partial left.
    assert files(export_dir) == [f"{body['id']}.csv"]


def test_empty_filters_export_every_run_of_the_project_only(
    api: APIClient,
    runs: dict[str, Run],
    other_project: Project,
    fixtures_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    store_runs(other_project, fixtures_dir, ["long_loop_2000"])
    response = start(api, {"format": "traces_jsonl"}, django_capture_on_commit_callbacks)
    export_id = response.json()["id"]
    body = b"".join(api.get(f"/api/v1/exports/{export_id}/download").streaming_content)
    assert sorted(jsonl_ids(body)) == sorted(r.execution_id for r in runs.values())


def test_list_shows_the_projects_exports_newest_first(
    api: APIClient, runs: dict[str, Run], django_capture_on_commit_callbacks: Any
) -> None:
    first = start(api, {"format": "csv"}, django_capture_on_commit_callbacks).json()["id"]
    second = start(api, {"format": "traces_jsonl"}, django_capture_on_commit_callbacks).json()["id"]
    listed = api.get("/api/v1/exports").json()["results"]
    assert [e["id"] for e in listed] == [second, first]
    assert [e["status"] for e in listed] == ["done", "done"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"format": "xml"}, "format"),
        ({}, "format"),
        ({"format": "csv", "filters": {"colour": "red"}}, "filters.colour"),
        ({"format": "csv", "filters": {"status": "exploded"}}, "filters.status"),
        ({"format": "csv", "filters": {"started_after": "yesterday"}}, "filters.started_after"),
        ({"format": "csv", "filters": {"status": 3}}, "filters.status"),
        ({"format": "csv", "filters": {"verdict": "meh"}}, "filters.verdict"),
        ({"format": "csv", "filters": {"group": 999999}}, "filters.group"),
        ({"format": "csv", "filters": {"group": "x"}}, "filters.group"),
        ({"format": "csv", "filters": {"execution_ids": ["nope"]}}, "filters.execution_ids"),
        ({"format": "csv", "filters": {"execution_ids": [1, 2]}}, "filters.execution_ids"),
        ({"format": "csv", "filters": {"nodes": {"a": 1}}}, "filters.nodes"),
        ({"format": "csv", "filters": []}, "filters"),
        ({"format": "csv", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored(
    api: APIClient,
    runs: dict[str, Run],
    body: dict[str, Any],
    path: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    response = start(api, body, django_capture_on_commit_callbacks)
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["path"] == path
    assert error["detail"].startswith(f"{path}: ")
    assert not Export.objects.exists()


def test_another_projects_export_is_404_for_keys_and_sessions(
    api: APIClient,
    runs: dict[str, Run],
    other_project: Project,
    django_capture_on_commit_callbacks: Any,
) -> None:
    export_id = start(api, {"format": "csv"}, django_capture_on_commit_callbacks).json()["id"]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    stranger = signed_in(other_project, "mallory", Role.ADMIN)
    for url in (f"/api/v1/exports/{export_id}", f"/api/v1/exports/{export_id}/download"):
        assert other.get(url).status_code == 404
        assert stranger.get(f"{url}?project=other").status_code == 404
        assert stranger.get(f"{url}?project=acme").status_code == 404
    assert other.delete(f"/api/v1/exports/{export_id}").status_code == 404
    assert (
        stranger.post("/api/v1/exports?project=acme", {"format": "csv"}, format="json").status_code
        == 404
    )
    assert other.get("/api/v1/exports").json()["results"] == []
    assert api.get(f"/api/v1/exports/{uuid.uuid4()}").status_code == 404
    assert Export.objects.get().status == ExportStatus.DONE


def test_viewer_reads_and_downloads_but_cannot_start_cancel_or_delete(
    api: APIClient,
    project: Project,
    runs: dict[str, Run],
    django_capture_on_commit_callbacks: Any,
) -> None:
    export_id = start(api, {"format": "csv"}, django_capture_on_commit_callbacks).json()["id"]
    viewer = signed_in(project, "victor", Role.VIEWER)
    assert viewer.get("/api/v1/exports?project=acme").status_code == 200
    assert viewer.get(f"/api/v1/exports/{export_id}?project=acme").json()["status"] == "done"
    download = viewer.get(f"/api/v1/exports/{export_id}/download?project=acme")
    assert download.status_code == 200
    refused = start(viewer, {"format": "csv"}, django_capture_on_commit_callbacks, "?project=acme")
    assert refused.status_code == 403
    assert viewer.delete(f"/api/v1/exports/{export_id}?project=acme").status_code == 403
    assert Export.objects.count() == 1

    member = signed_in(project, "maria", Role.MEMBER)
    started = start(member, {"format": "csv"}, django_capture_on_commit_callbacks, "?project=acme")
    assert started.status_code == 202
    assert Export.objects.get(pk=started.json()["id"]).created_by.username == "maria"
    assert member.delete(f"/api/v1/exports/{export_id}?project=acme").status_code == 204


def test_delete_cancels_a_queued_export_and_its_task_then_does_nothing(
    api: APIClient, project: Project, runs: dict[str, Run], export_dir: Path
) -> None:
    export = Export.objects.create(project=project, format="csv")
    response = api.delete(f"/api/v1/exports/{export.pk}")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert exports.run_export(str(export.pk)) == "skipped"
    export.refresh_from_db()
    assert export.status == ExportStatus.CANCELLED
    assert files(export_dir) == []


def test_delete_removes_a_finished_export_and_its_file(
    api: APIClient,
    runs: dict[str, Run],
    export_dir: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    export_id = start(api, {"format": "csv"}, django_capture_on_commit_callbacks).json()["id"]
    assert (export_dir / f"{export_id}.csv").is_file()
    assert api.delete(f"/api/v1/exports/{export_id}").status_code == 204
    assert not Export.objects.filter(pk=export_id).exists()
    assert files(export_dir) == []
    assert api.get(f"/api/v1/exports/{export_id}").status_code == 404


def test_download_before_done_is_409(api: APIClient, project: Project) -> None:
    export = Export.objects.create(project=project, format="csv", status=ExportStatus.RUNNING)
    response = api.get(f"/api/v1/exports/{export.pk}/download")
    assert response.status_code == 409
    assert "running" in response.json()["detail"]


def test_session_needs_the_project_named(runs: dict[str, Run], member: Any) -> None:
    client = APIClient()
    assert client.login(username="alice", password="pw-alice-123")
    response = client.get("/api/v1/exports")
    assert response.status_code == 400
    assert response.json()["path"] == "project"


def test_the_openapi_schema_documents_the_exports_endpoints(api: APIClient) -> None:
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert set(paths["/api/v1/exports"]) >= {"get", "post"}
    assert set(paths["/api/v1/exports/{export_id}"]) >= {"get", "delete"}
    download = paths["/api/v1/exports/{export_id}/download"]["get"]
    assert "application/octet-stream" in download["responses"]["200"]["content"]
