"""Server-rendered pages: sign-in, the project list and a project's page."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from traces.models import Project


def test_login_page_renders_the_sign_in_form(db: None) -> None:
    response = Client().get("/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


STRICT_POLICY = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
}


def policy(response: Any) -> set[str]:
    return {part.strip() for part in response["Content-Security-Policy"].split(";")}


def test_pages_carry_the_strict_content_security_policy(alice: Client, project: Project) -> None:
    for response in (Client().get("/login/"), alice.get("/"), alice.get("/projects/acme/runs/")):
        assert response.status_code == 200
        assert policy(response) == STRICT_POLICY


def test_swagger_ui_runs_under_the_same_policy_plus_data_images(db: None) -> None:
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    assert policy(page) == STRICT_POLICY | {"img-src 'self' data:"}
    html = page.content.decode()
    # No inline script or style: the start-up script is a URL of its own.
    assert "<style" not in html
    assert '<script src="/api/docs/?script="></script>' in html
    script = Client().get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_signing_in_with_the_right_password_leads_home(member: Any) -> None:
    client = Client()

    response = client.post("/login/", {"username": "alice", "password": "pw-alice-123"})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_signing_in_with_a_wrong_password_shows_the_form_again(member: Any) -> None:
    response = Client().post("/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "did not match" in response.content.decode()


@pytest.mark.parametrize("url", ["/", "/projects/acme/"])
def test_pages_redirect_an_anonymous_visitor_to_sign_in(project: Project, url: str) -> None:
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


def test_home_lists_only_the_users_projects(
    alice: Client, project: Project, other_project: Project
) -> None:
    response = alice.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/projects/acme/"' in html
    assert "Acme" in html
    assert "/projects/other/" not in html
    assert [card["project"].slug for card in response.context["cards"]] == ["acme"]


def test_home_of_a_user_without_projects_says_so(project: Project) -> None:
    get_user_model().objects.create_user("nobody", password="pw-nobody-123")
    client = Client()
    assert client.login(username="nobody", password="pw-nobody-123")

    response = client.get("/")

    assert response.status_code == 200
    assert "/projects/acme/" not in response.content.decode()
    assert "not a member of any project" in response.content.decode()


def test_home_counts_a_projects_runs_and_failures(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    call_command(
        "import_traces",
        str(fixtures_dir / "research_agent_success.json"),
        "--project",
        "acme",
        stdout=io.StringIO(),
    )
    call_command(
        "import_traces",
        str(fixtures_dir / "tool_timeout_failure.json"),
        "--project",
        "acme",
        stdout=io.StringIO(),
    )

    response = alice.get("/")

    [card] = response.context["cards"]
    assert card["run_count"] == 2
    assert card["failed_count"] == 1
    assert "1 failed" in response.content.decode()


def test_project_page_shows_the_members_project(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    call_command(
        "import_traces",
        str(fixtures_dir / "tool_timeout_failure.json"),
        "--project",
        "acme",
        stdout=io.StringIO(),
    )

    response = alice.get("/projects/acme/")

    assert response.status_code == 200
    assert response.context["project"] == project
    assert [r.execution_id for r in response.context["runs"]] == [
        "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"
    ]


def test_project_page_is_404_for_a_non_member(
    alice: Client, other_project: Project, fixtures_dir: Path
) -> None:
    call_command(
        "import_traces",
        str(fixtures_dir / "tool_timeout_failure.json"),
        "--project",
        "other",
        stdout=io.StringIO(),
    )

    response = alice.get("/projects/other/")

    assert response.status_code == 404
    assert "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02" not in response.content.decode()


def test_project_page_of_a_missing_project_is_404(alice: Client) -> None:
    assert alice.get("/projects/nope/").status_code == 404


def test_run_page_links_the_parent_the_subgraph_children_and_the_thread(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    for name in ("research_agent_success.json", "subgraph_child.json"):
        call_command(
            "import_traces", str(fixtures_dir / name), "--project", "acme", stdout=io.StringIO()
        )
    parent = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"
    child = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a03"

    parent_page = alice.get(f"/projects/acme/runs/{parent}/")
    child_page = alice.get(f"/projects/acme/runs/{child}/")

    assert [r.execution_id for r in parent_page.context["children"]] == [child]
    assert f'href="/projects/acme/runs/{child}/"' in parent_page.content.decode()
    assert child_page.context["parent"].execution_id == parent
    # Both ran in thread session-42.
    assert [r.execution_id for r in child_page.context["thread_runs"]] == [parent]
