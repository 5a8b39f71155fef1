"""The run list page: the filter form keeps its values, sort and pager links keep the
filters, the count is capped, trace strings stay text, and the live script is told
whether new runs go in at the top or into a notice."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.traces.test_runlist import NOW, ingest, trace
from traces.filters import parse_run_filter
from traces.models import Project
from traces.runlist import capped_count


@pytest.fixture
def five(api: APIClient) -> list[str]:
    names = []
    for i in range(5):
        ingest(
            api,
            trace(
                f"run-{i}",
                NOW - timedelta(minutes=i),
                graph="g-even" if i % 2 == 0 else "g-odd",
                duration=100 * (5 - i),
                error=("writer", "Boom", "boom") if i == 3 else None,
            ),
        )
        names.append(f"run-{i}")
    return names


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def test_the_form_shows_the_filters_of_the_url(alice: Client, five: list[str]) -> None:
    response = alice.get(
        "/projects/acme/runs/",
        {
            "q": "planner",
            "status": "failed",
            "last": "24h",
            "graph_name": "g-odd",
            "node": "writer",
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="q" value="planner"' in html
    assert '<option value="failed" selected>' in html
    assert '<option value="24h" selected>' in html
    assert 'name="graph_name" value="g-odd"' in html
    assert 'name="node" value="writer"' in html
    assert [r.execution_id for r in response.context["runs"]] == ["run-3"]
    assert "1 run match" in html


def test_sort_links_keep_the_filters_and_flip_the_active_column(
    alice: Client, five: list[str]
) -> None:
    response = alice.get("/projects/acme/runs/", {"graph_name": "g-even", "sort": "-duration_ms"})

    links = {s["field"]: s for s in response.context["sort_links"]}
    assert links["duration_ms"]["active"]
    assert query_of(links["duration_ms"]["url"]) == {
        "graph_name": ["g-even"],
        "sort": ["duration_ms"],
    }
    # Newest first is the default: its link carries no sort parameter.
    assert query_of(links["started_at"]["url"]) == {"graph_name": ["g-even"]}
    assert query_of(links["total_tokens"]["url"])["sort"] == ["-total_tokens"]
    assert 'aria-sort="descending"' in response.content.decode()


def test_pager_links_keep_filters_and_sort_and_add_only_a_cursor(
    alice: Client, five: list[str]
) -> None:
    first = alice.get("/projects/acme/runs/", {"sort": "duration_ms", "limit": "2", "q": "writer"})
    assert first.context["previous_url"] is None
    following = query_of(first.context["next_url"])
    assert set(following) == {"sort", "limit", "q", "cursor"}

    second = alice.get(f"/projects/acme/runs/{first.context['next_url']}")

    assert [r.execution_id for r in first.context["runs"]] == ["run-4", "run-3"]
    assert [r.execution_id for r in second.context["runs"]] == ["run-2", "run-1"]
    back = alice.get(f"/projects/acme/runs/{second.context['previous_url']}")
    assert [r.execution_id for r in back.context["runs"]] == ["run-4", "run-3"]


def test_live_data_says_whether_new_runs_go_on_top(alice: Client, five: list[str]) -> None:
    def data(params: dict[str, str]) -> dict[str, Any]:
        response = alice.get("/projects/acme/runs/", params)
        return dict(response.context["live_data"])

    head = data({"status": "completed"})
    assert head["is_head"]
    assert head["filtered"]
    assert query_of(head["head_url"]) == {
        "project": ["acme"],
        "status": ["completed"],
        "limit": ["50"],
    }
    assert not data({"sort": "-total_tokens"})["is_head"]
    assert data({"sort": "-total_tokens"})["first_page_url"] == "?sort=-total_tokens"
    second = alice.get("/projects/acme/runs/", {"limit": "2"}).context["next_url"]
    paged = alice.get(f"/projects/acme/runs/{second}").context["live_data"]
    assert not paged["is_head"]
    assert not data({})["filtered"]


def test_the_count_stops_at_its_cap(project: Project, five: list[str]) -> None:
    assert capped_count(project, parse_run_filter({}), cap=3) == 3
    assert capped_count(project, parse_run_filter({"graph_name": "g-odd"}), cap=3) == 2


def test_an_empty_result_says_the_filters_match_nothing(alice: Client, five: list[str]) -> None:
    response = alice.get("/projects/acme/runs/", {"q": "nothing-matches-this"})

    assert response.status_code == 200
    assert "No runs match these filters." in response.content.decode()
    assert "0 runs match" in response.content.decode()


def test_trace_strings_in_the_list_are_text_not_markup(alice: Client, api: APIClient) -> None:
    ingest(api, trace("xss", NOW, graph="<script>alert(1)</script>", thread="<b>t</b>"))

    html = alice.get("/projects/acme/runs/", {"q": "<script>"}).content.decode()

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;b&gt;t&lt;/b&gt;" in html
    assert 'name="q" value="&lt;script&gt;"' in html


def test_unknown_parameters_do_not_stick_to_links(alice: Client, five: list[str]) -> None:
    response = alice.get("/projects/acme/runs/", {"limit": "2", "utm_source": "mail"})

    assert "utm_source" not in response.context["next_url"]
    assert all("utm_source" not in s["url"] for s in response.context["sort_links"])
    assert json.dumps(response.context["live_data"]).count("utm_source") == 0
