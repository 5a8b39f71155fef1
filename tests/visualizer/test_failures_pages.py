"""The failures pages rendered by Django: the group list, a group's page, its live data,
roles (controls for members only, 404 for outsiders), trace strings as text, and the
figure builders."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from tests.visualizer.conftest import page_data
from traces.models import FailureGroup, GroupStatus, Membership, Project, Role
from visualizer.failure_charts import (
    bucket_unit,
    daily_counts,
    fill_buckets,
    occurrences_figure,
)

TIMEOUT_RUN = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"


@pytest.fixture
def timeout_group(api: APIClient, fixtures_dir: Path, project: Project) -> FailureGroup:
    body = json.loads((fixtures_dir / "tool_timeout_failure.json").read_bytes())
    assert api.post("/api/v1/traces", body, format="json").status_code == 201
    return FailureGroup.objects.get(project=project)


def signed_in(project: Project, name: str, role: str) -> Client:
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    Membership.objects.create(project=project, user=user, role=role)
    client = Client()
    assert client.login(username=name, password=f"pw-{name}-123")
    return client


def test_the_list_shows_open_groups_with_their_counts(
    timeout_group: FailureGroup, project: Project
) -> None:
    client = signed_in(project, "vic", Role.VIEWER)

    response = client.get("/projects/acme/failures/")

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-group-id="{timeout_group.pk}"' in html
    assert "Timeout: GET &lt;url&gt; exceeded &lt;num&gt;s" in html
    assert f'href="/projects/acme/failures/{timeout_group.pk}/"' in html
    assert page_data(html, "failures-data")["ws_path"] == "/ws/projects/acme/runs/"


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("", True),
        ("?status=resolved", False),
        ("?status=triaged", True),
        ("?status=all", True),
        ("?status=triaged&node=reader", False),
        ("?status=triaged&error_type=Timeout", True),
        ("?assignee=me", False),
    ],
)
def test_the_list_tabs_and_filters(
    timeout_group: FailureGroup, project: Project, query: str, listed: bool
) -> None:
    FailureGroup.objects.update(status=GroupStatus.TRIAGED)
    client = signed_in(project, "mem", Role.MEMBER)

    html = client.get(f"/projects/acme/failures/{query}").content.decode()

    assert (f'data-group-id="{timeout_group.pk}"' in html) is listed


def test_the_group_page_links_each_run_at_its_failing_step_and_charts_occurrences(
    timeout_group: FailureGroup, project: Project
) -> None:
    client = signed_in(project, "mem", Role.MEMBER)

    response = client.get(f"/projects/acme/failures/{timeout_group.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    data = page_data(html, "group-data")
    assert data["group"]["count"] == 1
    assert data["group"]["run_ids"] == [TIMEOUT_RUN]
    (run,) = data["runs"]
    assert run["url"] == f"/projects/acme/runs/{TIMEOUT_RUN}/#step=4"
    assert run["step_index"] == 4
    bars = data["chart"]["data"][0]
    assert bars["type"] == "bar"
    # The fixture's run is from long ago: the recent default window is empty, all time
    # has it; the breadcrumb names the group.
    assert data["chart_range"] == "7d"
    assert len(bars["y"]) == 7 * 24 + 1
    assert sum(bars["y"]) == 0
    assert '/ <span aria-current="page">Timeout in retriever</span></nav>' in html
    whole = page_data(
        client.get(f"/projects/acme/failures/{timeout_group.pk}/?range=all").content.decode(),
        "group-data",
    )
    assert sum(whole["chart"]["data"][0]["y"]) == 1
    assert whole["data_url"].endswith("data.json?range=all")
    # The most recent failing step, with the run link and the state it received.
    assert f'href="/projects/acme/runs/{TIMEOUT_RUN}/#step=4"' in html
    assert "Step #4 · retriever" in html
    assert "Summarise the 2025 Kafka release notes" in html
    # A member gets the controls, live.
    assert 'id="status-select" name="status">' in html
    assert data["can_edit"] is True
    assert data["csrf_token"]


def test_a_viewer_sees_the_group_without_controls(
    timeout_group: FailureGroup, project: Project
) -> None:
    client = signed_in(project, "vic", Role.VIEWER)

    html = client.get(f"/projects/acme/failures/{timeout_group.pk}/").content.decode()

    assert 'id="status-select" name="status" disabled' in html
    assert "Viewers cannot change groups." in html
    data = page_data(html, "group-data")
    assert (data["can_edit"], data["csrf_token"]) == (False, None)


def test_the_group_data_endpoint_refreshes_count_chart_and_runs(
    timeout_group: FailureGroup, project: Project
) -> None:
    client = signed_in(project, "vic", Role.VIEWER)

    body = client.get(f"/projects/acme/failures/{timeout_group.pk}/data.json").json()

    assert set(body) == {"group", "chart", "chart_range", "runs", "distinct_runs"}
    assert body["distinct_runs"] == 1


def test_every_failures_url_is_404_for_a_user_of_another_project(
    timeout_group: FailureGroup, other_project: Project
) -> None:
    outsider = signed_in(other_project, "eve", Role.ADMIN)

    for url in [
        "/projects/acme/failures/",
        f"/projects/acme/failures/{timeout_group.pk}/",
        f"/projects/acme/failures/{timeout_group.pk}/data.json",
        # The group named under the outsider's own project is not found either.
        f"/projects/other/failures/{timeout_group.pk}/",
        f"/projects/other/failures/{timeout_group.pk}/data.json",
    ]:
        assert outsider.get(url).status_code == 404, url


def test_an_anonymous_visitor_is_sent_to_sign_in(timeout_group: FailureGroup) -> None:
    response = Client().get(f"/projects/acme/failures/{timeout_group.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_trace_strings_are_rendered_as_text(api: APIClient, project: Project) -> None:
    evil = "<script>alert(1)</script>"
    events = [
        {
            "seq": 1,
            "type": "error",
            "data": {"node": "<b>node</b>", "message": evil, "error_type": "<i>T</i>"},
        }
    ]
    assert api.post("/api/v1/runs/x/events", {"events": events}, format="json").status_code == 200
    group = FailureGroup.objects.get()
    client = signed_in(project, "mem", Role.MEMBER)

    for url in ["/projects/acme/failures/", f"/projects/acme/failures/{group.pk}/"]:
        html = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "<b>node</b>" not in html
        assert "&lt;b&gt;node&lt;/b&gt;" in html
        assert "&lt;i&gt;T&lt;/i&gt;" in html


def test_occurrences_are_bucketed_by_hour_for_a_week_and_by_day_beyond() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)

    assert bucket_unit(start, start + timedelta(days=7)) == "hour"
    assert bucket_unit(start, start + timedelta(days=8)) == "day"
    filled = fill_buckets(
        {start: 2, start + timedelta(hours=3): 1}, start, start + timedelta(hours=3), "hour"
    )
    assert [n for _, n in filled] == [2, 0, 0, 1]


def test_the_occurrences_figure_marks_a_regression() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    buckets = [(start, 3), (start + timedelta(days=1), 0), (start + timedelta(days=2), 7)]

    figure = occurrences_figure(buckets, "day", regressed_at=start + timedelta(days=2))

    (bars,) = figure["data"]
    assert bars["y"] == [3, 0, 7]
    assert bars["x"][0] == "2026-03-01T12:00:00+00:00"  # the middle of the day
    assert bars["hovertext"][2] == "2026-03-03: 7 occurrences"
    (line,) = figure["layout"]["shapes"]
    assert line["x0"] == "2026-03-03T00:00:00+00:00"
    assert figure["layout"]["annotations"][0]["text"] == "regressed"
    assert figure["layout"]["yaxis"]["dtick"] == 2
    assert occurrences_figure(buckets, "day")["layout"]["shapes"] == []


def test_daily_counts_end_today() -> None:
    today = date(2026, 3, 14)

    counts = daily_counts({today: 2, date(2026, 3, 1): 5, date(2026, 2, 1): 9}, today, days=14)

    assert counts == [5] + [0] * 12 + [2]
