"""The management commands: create_api_key, create_user, import_traces, seed_demo."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient

from traces.models import Membership, Project, Role, Run, RunStatus, StateSnapshot, Step

SUCCESS_ID = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"


def run(name: str, *args: str) -> tuple[str, str]:
    """Call a command; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def can_log_in(username: str, password: str) -> bool:
    return Client().login(username=username, password=password)


# -- create_api_key ------------------------------------------------------------------


def test_create_api_key_prints_only_a_key_that_ingests_into_a_new_project(
    db: None, fixtures_dir: Path
) -> None:
    out, _ = run("create_api_key", "--project", "fresh")

    key = out.strip()
    assert out.strip().splitlines() == [key]
    assert key.startswith("dfk_")
    assert " " not in key
    response = key_client(key).post(
        "/api/v1/traces",
        data=(fixtures_dir / "research_agent_success.json").read_bytes(),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert Run.objects.get(execution_id=SUCCESS_ID).project.slug == "fresh"


def test_create_api_key_for_an_existing_project_reads_its_runs(
    project: Project, fixtures_dir: Path
) -> None:
    call_command(
        "import_traces",
        str(fixtures_dir / "research_agent_success.json"),
        "--project",
        "acme",
        stdout=io.StringIO(),
    )

    out, _ = run("create_api_key", "--project", "acme", "--name", "ci")

    assert Project.objects.filter(slug="acme").count() == 1
    response = key_client(out.strip()).get("/api/v1/runs")
    assert response.status_code == 200
    assert [r["execution_id"] for r in response.json()["results"]] == [SUCCESS_ID]
    assert project.api_keys.get().name == "ci"


def test_create_api_key_issues_a_new_key_each_time(db: None) -> None:
    first, _ = run("create_api_key", "--project", "fresh")
    second, _ = run("create_api_key", "--project", "fresh")

    assert first.strip() != second.strip()
    for key in (first.strip(), second.strip()):
        assert key_client(key).get("/api/v1/runs").status_code == 200


# -- create_user ---------------------------------------------------------------------


def test_create_user_without_password_prints_one_that_logs_in(db: None) -> None:
    out, _ = run("create_user", "bob", "--project", "fresh", "--role", "viewer")

    password = out.split()[-1]
    assert len(password) >= 12
    assert can_log_in("bob", password)
    response = Client().post("/login/", {"username": "bob", "password": password})
    assert response.status_code == 302
    membership = Membership.objects.get(user__username="bob")
    assert membership.project.slug == "fresh"
    assert membership.role == Role.VIEWER


def test_create_user_with_password_sets_it_and_prints_no_password(project: Project) -> None:
    out, _ = run(
        "create_user", "carol", "--project", "acme", "--role", "admin", "--password", "pw-carol-123"
    )

    assert "pw-carol-123" not in out
    assert "password" not in out
    assert can_log_in("carol", "pw-carol-123")
    assert Membership.objects.get(user__username="carol", project=project).role == Role.ADMIN


def test_create_user_again_updates_the_role_and_keeps_the_password(db: None) -> None:
    out, _ = run("create_user", "bob", "--project", "fresh", "--role", "viewer")
    password = out.split()[-1]

    again, _ = run("create_user", "bob", "--project", "fresh", "--role", "admin")

    assert password not in again
    assert can_log_in("bob", password)
    assert get_user_model().objects.filter(username="bob").count() == 1
    [membership] = Membership.objects.filter(user__username="bob")
    assert membership.role == Role.ADMIN


def test_create_user_with_a_new_password_replaces_the_old_one(member: Any) -> None:
    run("create_user", "alice", "--project", "acme", "--password", "pw-alice-456")

    assert can_log_in("alice", "pw-alice-456")
    assert not can_log_in("alice", "pw-alice-123")


def test_create_user_adds_a_membership_in_a_second_project(
    member: Any, other_project: Project
) -> None:
    run("create_user", "alice", "--project", "other", "--role", "viewer")

    roles = dict(Membership.objects.filter(user=member).values_list("project__slug", "role"))
    assert roles == {"acme": Role.MEMBER, "other": Role.VIEWER}


def test_create_user_refuses_an_unknown_role(db: None) -> None:
    with pytest.raises(CommandError, match="owner"):
        run("create_user", "bob", "--project", "fresh", "--role", "owner")

    assert not get_user_model().objects.filter(username="bob").exists()


# -- import_traces -------------------------------------------------------------------


def test_import_traces_stores_every_file_of_a_directory(
    db: None, fixtures_dir: Path, fixture_files: list[Path]
) -> None:
    out, _ = run("import_traces", str(fixtures_dir), "--project", "imported")

    project = Project.objects.get(slug="imported")
    expected = {json.loads(f.read_bytes())["execution_id"] for f in fixture_files}
    assert set(Run.objects.filter(project=project).values_list("execution_id", flat=True)) == (
        expected
    )
    for file in fixture_files:
        assert f"{file.name}: " in out
    assert out.count(" stored") == len(fixture_files)


def test_import_traces_of_a_single_file(project: Project, fixtures_dir: Path) -> None:
    out, _ = run(
        "import_traces", str(fixtures_dir / "tool_timeout_failure.json"), "--project", "acme"
    )

    [stored] = Run.objects.filter(project=project)
    assert stored.status == RunStatus.FAILED
    assert stored.node_count == 5
    assert out.strip() == f"tool_timeout_failure.json: {stored.execution_id} stored"


def test_import_traces_twice_adds_nothing(db: None, fixtures_dir: Path) -> None:
    run("import_traces", str(fixtures_dir), "--project", "imported")
    counts = (Run.objects.count(), Step.objects.count(), StateSnapshot.objects.count())

    out, _ = run("import_traces", str(fixtures_dir), "--project", "imported")

    assert (Run.objects.count(), Step.objects.count(), StateSnapshot.objects.count()) == counts
    assert " stored" not in out
    assert out.count(" unchanged") == counts[0]


def test_import_traces_reports_a_changed_trace_as_updated(
    db: None, fixtures_dir: Path, tmp_path: Path
) -> None:
    file = tmp_path / "run.json"
    trace = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    file.write_text(json.dumps(trace))
    run("import_traces", str(file), "--project", "imported")
    trace["nodes_executed"] = trace["nodes_executed"][:4]
    file.write_text(json.dumps(trace))

    out, _ = run("import_traces", str(file), "--project", "imported")

    assert Run.objects.get(execution_id=SUCCESS_ID).node_count == 4
    assert out.strip() == f"run.json: {SUCCESS_ID} updated"


def test_import_traces_names_an_invalid_file_and_keeps_the_valid_ones(
    db: None, fixtures_dir: Path, tmp_path: Path
) -> None:
    shutil.copy(fixtures_dir / "research_agent_success.json", tmp_path / "a_good.json")
    bad = json.loads((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    bad["nodes_executed"][3]["duration_ms"] = "12"
    (tmp_path / "b_bad.json").write_text(json.dumps(bad))
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 of 2 files were not valid traces"):
        call_command(
            "import_traces",
            str(tmp_path),
            "--project",
            "imported",
            stdout=io.StringIO(),
            stderr=err,
        )

    assert "b_bad.json" in err.getvalue()
    assert "$.nodes_executed[3].duration_ms" in err.getvalue()
    assert list(Run.objects.values_list("execution_id", flat=True)) == [SUCCESS_ID]


def test_import_traces_of_a_missing_path_fails(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or directory"):
        run("import_traces", str(tmp_path / "nope.json"), "--project", "imported")

    assert Run.objects.count() == 0


# -- seed_demo -----------------------------------------------------------------------


def test_seed_demo_creates_project_user_and_runs_with_failures(
    db: None, fixture_files: list[Path]
) -> None:
    run("seed_demo")

    project = Project.objects.get(slug="demo")
    assert Membership.objects.get(project=project, user__username="demo").role == Role.ADMIN
    assert can_log_in("demo", "demo")
    runs = Run.objects.filter(project=project)
    assert runs.count() == len(fixture_files) + 60
    fixture_ids = {json.loads(f.read_bytes())["execution_id"] for f in fixture_files}
    assert fixture_ids <= set(runs.values_list("execution_id", flat=True))
    assert runs.filter(status=RunStatus.FAILED).exclude(execution_id__in=fixture_ids).exists()
    assert runs.filter(status=RunStatus.COMPLETED).exclude(execution_id__in=fixture_ids).exists()
    assert runs.exclude(first_error_type="").exclude(execution_id__in=fixture_ids).exists()


def test_seed_demo_twice_adds_no_runs(db: None) -> None:
    run("seed_demo")
    counts = (Run.objects.count(), Step.objects.count(), Project.objects.count())

    run("seed_demo")

    assert (Run.objects.count(), Step.objects.count(), Project.objects.count()) == counts
    assert get_user_model().objects.filter(username="demo").count() == 1
    assert Membership.objects.filter(user__username="demo").count() == 1


def test_seed_demo_demo_user_sees_the_demo_runs(db: None) -> None:
    run("seed_demo", "--runs", "5", "--password", "pw-demo-123")
    client = APIClient()
    assert client.login(username="demo", password="pw-demo-123")

    response = client.get("/api/v1/runs", {"project": "demo", "limit": 500})

    assert response.status_code == 200
    assert len(response.json()["results"]) == Run.objects.filter(project__slug="demo").count()
