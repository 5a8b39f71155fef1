"""The dashboard page and its data.json rendered by Django: the figures for the asked
window, links to the run list, 400s naming the parameter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.dashboard_support import add_run, timed_steps
from tests.visualizer.conftest import page_data
from traces.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(project: Project) -> None:
    now = timezone.now()
    add_run(project, "last-week", now - timedelta(days=9), timed_steps("search", [100, 100]))
    add_run(project, "this-week", now - timedelta(days=2), timed_steps("search", [300, 300]))
    add_run(project, "today", now - timedelta(hours=2), timed_steps("plan", [5]), graph_name="b")


def test_the_page_hands_its_script_the_figures_and_the_slower_nodes(
    alice: Client, runs: None
) -> None:
    response = alice.get("/projects/acme/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="active">Dashboard</a>' in html
    data: dict[str, Any] = page_data(html, "dashboard-data")
    assert data["data_url"] == "/projects/acme/dashboard/data.json"
    assert set(data["data"]["figures"]) == {
        "runs",
        "latency",
        "node_tokens",
        "graph_tokens",
        "loops",
    }
    assert data["data"]["totals"]["runs"] == 2
    slower = data["data"]["slower"]
    assert [(r["node"], r["p95_before"], r["p95"]) for r in slower] == [("search", 100.0, 300.0)]
    assert slower[0]["url"].startswith("/projects/acme/runs/?started_after=")


def test_data_json_follows_the_range_and_graph(alice: Client, runs: None) -> None:
    day = alice.get("/projects/acme/dashboard/data.json?last=24h").json()
    assert day["totals"]["runs"] == 1
    # Hours: 24, or 25 when the day does not start on the hour (two partial ones).
    assert len(day["figures"]["runs"]["data"][0]["x"]) in (24, 25)
    other = alice.get("/projects/acme/dashboard/data.json?last=30d&graph_name=b").json()
    assert other["totals"]["runs"] == 1
    assert other["figures"]["latency"]["data"][0]["x"] == ["plan"]
    assert "graph_name=b" in other["totals"]["runs_url"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("last=forever", "last"),
        ("started_after=2026-13-01", "started_after"),
        ("status=x", "status"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    alice: Client, project: Project, query: str, name: str
) -> None:
    response = alice.get(f"/projects/acme/dashboard/data.json?{query}")
    assert response.status_code == 400
    assert response.json()["path"] == name
    page = alice.get(f"/projects/acme/dashboard/?{query}")
    assert page.status_code == 400
    assert f"{name}: " in page.content.decode()
