"""The run list's filters, sorts and keyset cursor, through the API and the page alike:
the same parameter names give the same runs in the same order on both."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from datetime import timezone as tz
from html import unescape
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from traces import parsing
from traces.filters import extend_search_text, parse_run_filter, search_terms
from traces.ingest import ingest_events
from traces.models import Membership, Project, Role, Run

NOW = timezone.now().replace(microsecond=0)
FAR_EAST = tz(timedelta(hours=18, minutes=50))  # an offset Python takes, PostgreSQL not


def trace(
    execution_id: str,
    started: datetime,
    *,
    graph: str = "research-agent",
    thread: str = "t-1",
    nodes: tuple[str, ...] = ("planner", "writer"),
    error: tuple[str, str, str] | None = None,  # (node, error_type, message)
    metadata: dict[str, Any] | None = None,
    duration: int = 100,
    tokens: int = 10,
) -> dict[str, Any]:
    stamp = started.isoformat(timespec="milliseconds")
    steps = [
        {
            "node": node,
            "duration_ms": duration // len(nodes),
            "tokens_used": tokens // len(nodes),
            "state_before": {"i": i},
            "state_after": {"i": i + 1},
            "success": not (error and error[0] == node),
            "error_message": error[2] if error and error[0] == node else None,
            "index": i,
            "started_at": stamp,
        }
        for i, node in enumerate(nodes)
    ]
    return {
        "thread_id": thread,
        "execution_id": execution_id,
        "nodes_executed": steps,
        "total_duration_ms": duration,
        "total_tokens": tokens,
        "errors": (
            [{"node": error[0], "message": error[2], "error_type": error[1]}] if error else []
        ),
        "completed": error is None,
        "started_at": stamp,
        "ended_at": (started + timedelta(milliseconds=duration)).isoformat(),
        "final_state": None,
        "metadata": {"graph_name": graph, **(metadata or {})},
    }


def ingest(api: APIClient, body: dict[str, Any]) -> None:
    response = api.post("/api/v1/traces", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content


RUNS = [
    trace(
        "r-fresh",
        NOW - timedelta(minutes=20),
        graph="support-triage",
        thread="t-9",
        nodes=("classify", "retriever", "draft_reply"),
        metadata={"tenant": "Globex", "model": "gpt-4o-mini"},
        duration=900,
        tokens=70,
    ),
    trace(
        "r-hours",
        NOW - timedelta(hours=5),
        nodes=("planner", "retriever", "critic", "writer"),
        error=("retriever", "Timeout", "Timeout: GET https://example.org/doc/7 exceeded 30s"),
        metadata={"tenant": "acme", "user_id": "u-4242"},
        duration=3000,
        tokens=40,
    ),
    trace(
        "r-days",
        NOW - timedelta(days=3),
        graph="support-triage",
        nodes=("classify", "guardrail"),
        error=("guardrail", "RateLimit", "RateLimit: 429 from model gpt-4o, retry after 5s"),
        metadata={"tenant": "acme"},
        duration=50,
        tokens=900,
    ),
    trace(
        "r-weeks",
        NOW - timedelta(days=20),
        thread="t-9",
        nodes=("planner", "human_review", "writer"),
        metadata={"tenant": "initech", "release": "1.4.2"},
        duration=3000,
        tokens=300,
    ),
]


@pytest.fixture
def runs(api: APIClient) -> list[str]:
    for body in RUNS:
        ingest(api, body)
    return [r["execution_id"] for r in RUNS]


@pytest.fixture
def alice(member: Any) -> Client:
    client = Client()
    assert client.login(username="alice", password="pw-alice-123")
    return client


def api_ids(api: APIClient, params: dict[str, str]) -> list[str]:
    response = api.get("/api/v1/runs", params)
    assert response.status_code == 200, response.content
    return [r["execution_id"] for r in response.json()["results"]]


def page_ids(client: Client, params: dict[str, str]) -> list[str]:
    response = client.get("/projects/acme/runs/", params)
    assert response.status_code == 200, response.content
    return [r.execution_id for r in response.context["runs"]]


FILTERS = [
    ({"graph_name": "support-triage"}, ["r-fresh", "r-days"]),
    ({"graph_name": "nope"}, []),
    ({"last": "1h"}, ["r-fresh"]),
    ({"last": "24h"}, ["r-fresh", "r-hours"]),
    ({"last": "7d"}, ["r-fresh", "r-hours", "r-days"]),
    ({"last": "90m"}, ["r-fresh"]),
    ({"last": "4w"}, ["r-fresh", "r-hours", "r-days", "r-weeks"]),
    ({"status": "failed"}, ["r-hours", "r-days"]),
    ({"node": "human_review"}, ["r-weeks"]),
    ({"error_type": "RateLimit"}, ["r-days"]),
    ({"thread_id": "t-9"}, ["r-fresh", "r-weeks"]),
    ({"started_after": (NOW - timedelta(days=4)).isoformat()}, ["r-fresh", "r-hours", "r-days"]),
    ({"started_before": (NOW - timedelta(days=4)).isoformat()}, ["r-weeks"]),
    # A UTC offset PostgreSQL would refuse (past 15:59) is the same instant in UTC.
    (
        {"started_after": (NOW - timedelta(days=4)).astimezone(FAR_EAST).isoformat()},
        ["r-fresh", "r-hours", "r-days"],
    ),
    # Free text: node names, error types and messages, metadata values and keys, ids.
    ({"q": "guardrail"}, ["r-days"]),
    ({"q": "retr"}, ["r-fresh", "r-hours", "r-days"]),  # retriever, "retry after"
    ({"q": "exceeded 30s"}, ["r-hours"]),
    ({"q": "429"}, ["r-days"]),
    ({"q": "timeout"}, ["r-hours"]),
    ({"q": "GLOBEX"}, ["r-fresh"]),
    ({"q": "u-4242"}, ["r-hours"]),
    ({"q": "release"}, ["r-weeks"]),
    ({"q": "tenant=acme"}, ["r-hours", "r-days"]),
    ({"q": "r-week"}, ["r-weeks"]),
    ({"q": "gpt-4o"}, ["r-fresh", "r-days"]),
    # Every term must match; a quoted phrase is one term.
    ({"q": "acme timeout"}, ["r-hours"]),
    ({"q": '"retry after"'}, ["r-days"]),
    ({"q": '"after retry"'}, []),
    ({"q": "acme nothing-like-this"}, []),
    # Filters combine.
    ({"graph_name": "support-triage", "status": "failed"}, ["r-days"]),
    ({"q": "acme", "last": "24h"}, ["r-hours"]),
    # Empty values are no filter.
    ({"q": "", "status": "", "last": ""}, ["r-fresh", "r-hours", "r-days", "r-weeks"]),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS)
def test_each_filter_selects_the_same_runs_in_the_api_and_on_the_page(
    api: APIClient, alice: Client, runs: list[str], params: dict[str, str], expected: list[str]
) -> None:
    assert api_ids(api, params) == expected
    assert page_ids(alice, params) == expected


SORTS = [
    ("-started_at", ["r-fresh", "r-hours", "r-days", "r-weeks"]),
    ("started_at", ["r-weeks", "r-days", "r-hours", "r-fresh"]),
    # r-hours and r-weeks tie on 3000 ms: the tiebreak is the id, the same way round.
    ("-duration_ms", ["r-weeks", "r-hours", "r-fresh", "r-days"]),
    ("duration_ms", ["r-days", "r-fresh", "r-hours", "r-weeks"]),
    ("-total_tokens", ["r-days", "r-weeks", "r-fresh", "r-hours"]),
    ("total_tokens", ["r-hours", "r-fresh", "r-weeks", "r-days"]),
]


@pytest.mark.parametrize(("sort", "expected"), SORTS)
def test_each_sort_orders_the_api_and_the_page_alike(
    api: APIClient, alice: Client, runs: list[str], sort: str, expected: list[str]
) -> None:
    assert api_ids(api, {"sort": sort}) == expected
    assert page_ids(alice, {"sort": sort}) == expected


def test_a_sort_applies_after_the_filters(api: APIClient, alice: Client, runs: list[str]) -> None:
    params = {"q": "acme", "sort": "-total_tokens"}
    assert api_ids(api, params) == page_ids(alice, params) == ["r-days", "r-hours"]


# -- cursor pagination --------------------------------------------------------------------


def many_ties(api: APIClient, count: int = 9) -> list[str]:
    """Runs with few distinct durations and tokens and the same start: ties everywhere."""
    for i in range(count):
        body = trace(f"tie-{i}", NOW - timedelta(hours=1), duration=100 * (i % 3), tokens=7)
        ingest(api, body)
    return [f"tie-{i}" for i in range(count)]


def walk_api(api: APIClient, params: dict[str, str]) -> list[list[str]]:
    pages = []
    response = api.get("/api/v1/runs", params)
    while True:
        assert response.status_code == 200, response.content
        pages.append([r["execution_id"] for r in response.json()["results"]])
        following = response.json()["next"]
        if following is None:
            return pages
        response = api.get(following)


def next_link(response: Any) -> str | None:
    found = re.search(r'href="([^"]+)" rel="next"', response.content.decode())
    return unescape(found[1]) if found else None


def walk_page(client: Client, params: dict[str, str]) -> list[list[str]]:
    pages = []
    response = client.get("/projects/acme/runs/", params)
    while True:
        assert response.status_code == 200, response.content
        pages.append([r.execution_id for r in response.context["runs"]])
        following = next_link(response)
        if following is None:
            return pages
        assert following == response.context["next_url"]
        response = client.get(f"/projects/acme/runs/{following}")


@pytest.mark.parametrize("sort", ["-started_at", "started_at", "-duration_ms", "duration_ms"])
@pytest.mark.parametrize("size", ["1", "4"])
def test_cursor_walks_every_run_once_in_sort_order_across_ties(
    api: APIClient, alice: Client, project: Project, sort: str, size: str
) -> None:
    names = many_ties(api)
    ids = {r.execution_id: r.pk for r in Run.objects.all()}
    field = {"started_at": "started_at", "duration_ms": "duration_ms"}[sort.lstrip("-")]
    values = {r.execution_id: getattr(r, field) for r in Run.objects.all()}
    expected = sorted(names, key=lambda n: (values[n], ids[n]), reverse=sort.startswith("-"))

    api_pages = walk_api(api, {"sort": sort, "limit": size})
    page_pages = walk_page(alice, {"sort": sort, "limit": size})

    assert [i for p in api_pages for i in p] == expected
    assert [i for p in page_pages for i in p] == expected
    assert all(len(p) == int(size) for p in api_pages[:-1])
    assert api_pages == page_pages


def test_previous_walks_back_through_the_same_pages(api: APIClient, project: Project) -> None:
    many_ties(api, 7)
    forward = []
    response = api.get("/api/v1/runs", {"sort": "-duration_ms", "limit": 2})
    while True:
        forward.append(response)
        if response.json()["next"] is None:
            break
        response = api.get(response.json()["next"])

    back = [forward[-1].json()["results"]]
    response = forward[-1]
    while response.json()["previous"] is not None:
        response = api.get(response.json()["previous"])
        back.append(response.json()["results"])

    assert back[::-1] == [r.json()["results"] for r in forward]
    assert forward[0].json()["previous"] is None


def test_a_run_arriving_mid_walk_neither_repeats_nor_skips_older_runs(
    api: APIClient, project: Project
) -> None:
    names = many_ties(api, 6)
    first = api.get("/api/v1/runs", {"limit": 3})
    ingest(api, trace("newcomer", NOW))  # newer than everything: belongs before page 1

    seen = [r["execution_id"] for r in first.json()["results"]]
    response = api.get(first.json()["next"])
    while True:
        seen += [r["execution_id"] for r in response.json()["results"]]
        if response.json()["next"] is None:
            break
        response = api.get(response.json()["next"])

    assert sorted(seen) == sorted(names)


# -- bad input ----------------------------------------------------------------------------

BAD = [
    (
        "sort",
        "bogus",
        "expected one of -started_at, started_at, -duration_ms, duration_ms, "
        "-total_tokens, total_tokens, got 'bogus'",
    ),
    ("sort", "-id", None),
    ("last", "yesterday", "expected a number and m, h, d or w (such as 24h), got 'yesterday'"),
    ("last", "0h", None),
    ("last", "24", None),
    ("limit", "0", "expected an integer from 1 to 500"),
    ("limit", "501", "expected an integer from 1 to 500"),
    ("limit", "ten", "expected an integer from 1 to 500"),
    ("cursor", "not-a-cursor", "not a cursor of this list (follow a next/previous link)"),
    ("q", "x" * 201, "expected at most 200 characters"),
    ("q", "a b c d e f g h i", "expected at most 8 terms"),
    ("status", "stale", None),
    ("started_after", "last tuesday", None),
    (
        "started_before",
        "0001-01-01T00:00:00+01:00",
        "expected a time from year 1 to 9999, got '0001-01-01T00:00:00+01:00'",
    ),
    ("node", "n" * 201, "expected at most 200 characters"),
]


@pytest.mark.parametrize(("param", "value", "rule"), BAD)
def test_a_bad_value_is_a_400_naming_it_in_the_api_and_a_message_on_the_page(
    api: APIClient, alice: Client, runs: list[str], param: str, value: str, rule: str | None
) -> None:
    api.raise_request_exception = False

    response = api.get("/api/v1/runs", {param: value})

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["path"] == param
    assert body["detail"] == f"{param}: {body['rule']}"
    if rule is not None:
        assert body["rule"] == rule

    page = alice.get("/projects/acme/runs/", {param: value})
    assert page.status_code == 400
    assert page.context["error"] == {"field": param, "rule": body["rule"]}
    assert 'id="filter-error"' in page.content.decode()
    assert page.context["runs"] == []


def test_a_cursor_of_another_sort_is_refused(api: APIClient, runs: list[str]) -> None:
    first = api.get("/api/v1/runs", {"limit": 1, "sort": "-duration_ms"})
    cursor = first.json()["next"].split("cursor=")[1].split("&")[0]

    response = api.get("/api/v1/runs", {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["path"] == "cursor"
    assert "made for sort '-duration_ms'" in response.json()["rule"]


@pytest.mark.parametrize(
    "payload", [["-started_at", "not a time", 1, 0], ["-duration_ms", "7", 1, 0], "x", [1, 2]]
)
def test_a_tampered_cursor_is_a_400(api: APIClient, runs: list[str], payload: Any) -> None:
    sort = payload[0] if isinstance(payload, list) and isinstance(payload[0], str) else None
    raw = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    params = {"cursor": raw, **({"sort": sort} if sort else {})}

    response = api.get("/api/v1/runs", params)

    assert response.status_code == 400, response.content
    assert response.json()["path"] == "cursor"


# -- who sees what ------------------------------------------------------------------------


def test_an_outsider_gets_404_from_the_page_and_the_api(
    runs: list[str], other_project: Any
) -> None:
    user = get_user_model().objects.create_user("mallory", password="pw-mallory-123")
    Membership.objects.create(project=other_project, user=user, role=Role.ADMIN)
    client = APIClient()
    assert client.login(username="mallory", password="pw-mallory-123")

    page = client.get("/projects/acme/runs/", {"q": "acme"})
    api = client.get("/api/v1/runs", {"project": "acme", "q": "acme"})

    assert page.status_code == 404
    assert api.status_code == 404
    assert "r-hours" not in page.content.decode() + api.content.decode()


def test_a_viewer_lists_with_filters_through_a_session(project: Project, runs: list[str]) -> None:
    user = get_user_model().objects.create_user("vic", password="pw-vic-12345")
    Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    client = APIClient()
    assert client.login(username="vic", password="pw-vic-12345")

    response = client.get("/api/v1/runs", {"project": "acme", "q": "guardrail"})

    assert [r["execution_id"] for r in response.json()["results"]] == ["r-days"]


# -- the search column --------------------------------------------------------------------


def test_a_streamed_run_is_found_by_what_its_events_said(project: Project) -> None:
    events = parsing.parse_events(
        json.dumps(
            {
                "events": [
                    {
                        "seq": 1,
                        "type": "run_started",
                        "data": {"thread_id": "s-77", "metadata": {"customer": "Wonka Ltd"}},
                    },
                    {
                        "seq": 2,
                        "type": "node_finished",
                        "data": {"node": "oompa", "index": 0, "duration_ms": 5, "tokens_used": 1},
                    },
                    {
                        "seq": 3,
                        "type": "error",
                        "data": {
                            "node": "oompa",
                            "message": "Chocolate river overflow",
                            "error_type": "Overflow",
                        },
                    },
                ]
            }
        ).encode(),
        100,
    )
    ingest_events(project, "live-1", events[:2])
    ingest_events(project, "live-1", events[2:])

    def found(q: str) -> bool:
        return parse_run_filter({"q": q}).apply(Run.objects.all()).exists()

    assert all(found(q) for q in ["oompa", "wonka", "customer", "river overflow", "s-77", "live-1"])
    assert found("overflow")
    assert not found("vermicious")


def test_a_complete_trace_replaces_what_streaming_wrote(api: APIClient, project: Project) -> None:
    events = parsing.parse_events(
        json.dumps(
            {
                "events": [
                    {
                        "seq": 1,
                        "type": "node_finished",
                        "data": {"node": "draft", "index": 0, "duration_ms": 5, "tokens_used": 1},
                    }
                ]
            }
        ).encode(),
        10,
    )
    ingest_events(project, "r-1", events)
    body = json.dumps(trace("r-1", NOW, nodes=("final_node",)))
    response = api.post("/api/v1/traces", data=body, content_type="application/json")
    assert response.status_code == 200, response.content  # the streamed run, completed

    run = Run.objects.get(execution_id="r-1")
    assert "final_node" in run.search_text.split("\n")
    assert "draft" not in run.search_text.split("\n")


def test_search_text_keeps_distinct_lowercased_lines_within_its_cap() -> None:
    text = extend_search_text("", ["Planner", "planner", "  Two   words ", None, ""])
    assert text == "planner\ntwo words"
    assert extend_search_text(text, ["PLANNER", "x" * 5000]) == text + "\n" + "x" * 300
    long = extend_search_text("", [f"node-{i}" for i in range(5000)])
    assert len(long) <= 4000


def test_search_terms_are_words_or_quoted_phrases() -> None:
    assert search_terms('Timeout "Retry After" 429') == ["timeout", "retry after", "429"]
    assert search_terms('  ""  ') == []


def test_last_resolves_to_a_moment_before_now() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_run_filter({"last": "90m"}, now).since == now - timedelta(minutes=90)
    assert parse_run_filter({"last": "2w"}, now).since == now - timedelta(weeks=2)
    assert parse_run_filter({"last": "2w"}, now).params() == {"last": "2w"}
