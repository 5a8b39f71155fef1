"""The Content-Security-Policy in a real browser against a real Daphne: every page of the
site (and Swagger UI, and the admin) works under it with nothing blocked, and the
suite's CSP listener (``csp_watch`` in conftest.py, on every browser test) does catch what
the policy blocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env, session_cookie, wait_for
from tests.visualizer.conftest import CspWatch
from traces.ingest import ingest_trace
from traces.models import FailureGroup, Membership, Project, Role
from traces.trace import ExecutionTrace

pytestmark = pytest.mark.django_db(transaction=True)

SUCCESS = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"
FAILURE = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def sign_in_as_admin(page: Page, server: Daphne, project: Project) -> None:
    # A superuser, so that the admin is on the tour too.
    ada = get_user_model().objects.create_superuser("ada", password="pw-ada-12345")
    Membership.objects.create(project=project, user=ada, role=Role.ADMIN)
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie(ada), "url": server.origin}]
    )


def test_every_page_runs_under_the_policy_with_nothing_blocked(
    server: Daphne, page: Page, project: Project, fixtures_dir: Path
) -> None:
    for name in ("research_agent_success.json", "tool_timeout_failure.json"):
        ingest_trace(project, ExecutionTrace.from_json((fixtures_dir / name).read_bytes()))
    group = FailureGroup.objects.filter(project=project).first()
    assert group is not None

    response = page.goto(f"{server.origin}/login/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    expect(page.locator("#id_username")).to_be_visible()

    sign_in_as_admin(page, server, project)
    base = f"{server.origin}/projects/acme"
    # Each page, and what shows that its scripts ran (charts drawn by Plotly included).
    tour = [
        (f"{server.origin}/", "table.runs tbody tr"),
        (f"{base}/runs/", "#run-rows tr"),
        (f"{base}/runs/{FAILURE}/#step=2", "#timeline .main-svg"),
        (f"{base}/compare/?a={SUCCESS}&b={FAILURE}", "#compare-timeline .main-svg"),
        (f"{base}/failures/", "#group-rows tr"),
        (f"{base}/failures/{group.pk}/", "#occurrences .main-svg"),
        (f"{base}/dashboard/", "#chart-runs .main-svg"),
        (f"{base}/review/?tab=unreviewed", "#queue-rows tr"),
        (f"{base}/exports/", "#live-indicator"),
        (f"{base}/settings/", "form"),
        (f"{base}/inbox/", "main"),
        (f"{server.origin}/api/docs/", ".swagger-ui .opblock"),
        (f"{server.origin}/admin/", "#content"),
        (f"{server.origin}/admin/traces/run/", "#result_list"),
    ]
    for url, ready in tour:
        response = page.goto(url)
        assert response is not None, url
        assert response.status == 200, url
        assert "content-security-policy" in response.headers, url
        expect(page.locator(ready).first).to_be_visible()
    # Plotly found the stylesheet and injected no <style> of its own.
    page.goto(f"{base}/dashboard/")
    expect(page.locator("#chart-runs .main-svg").first).to_be_visible()
    assert page.evaluate("document.querySelectorAll('style').length") == 0


def test_the_listener_catches_an_inline_script_and_an_inline_style(
    server: Daphne, page: Page, csp_watch: CspWatch, project: Project
) -> None:
    page.goto(f"{server.origin}/login/")
    expect(page.locator("#id_username")).to_be_visible()
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.append(script);
            const div = document.createElement("div");
            div.innerHTML = '<p style="color: red">styled</p>';
            document.body.append(div);
        }"""
    )
    # Violations are reported as events, after the element is refused.
    blocked = list(
        wait_for(
            lambda: (
                (found := csp_watch.collect())
                and any("script-src" in v for v in found)
                and any("style-src" in v for v in found)
                and found
            ),
            10,
            "both violations to be reported",
        )
    )
    assert page.evaluate("window.injected") is None
    assert page.evaluate("getComputedStyle(document.querySelector('p')).color") != "rgb(255, 0, 0)"
    # Blocked on purpose: the fixture must not fail this test for them.
    assert set(blocked) <= set(csp_watch.take())
