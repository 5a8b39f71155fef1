"""The read API: runs list (filters, cursor pagination), run detail, steps, whole trace,
project scoping for API keys and sessions, and the OpenAPI schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from traces.models import ApiKey, Membership, Project, Role

SMALL_FIXTURES = [
    "executor_autopersisted",
    "non_object_states",
    "research_agent_success",
    "subgraph_child",
    "tool_timeout_failure",
]
IDS = {
    "executor_autopersisted": "7f3c2a9e-5b1d-4c8e-9a0f-2d6e8b4c1a77",
    "research_agent_success": "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01",
    "tool_timeout_failure": "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02",
    "subgraph_child": "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a03",
    "non_object_states": "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a04",
}
FAILURE_ID = IDS["tool_timeout_failure"]
SUCCESS_ID = IDS["research_agent_success"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir / f"{name}.json").read_bytes())
    return data


def ingest(client: APIClient, trace: dict[str, Any]) -> None:
    response = client.post(
        "/api/v1/traces", data=json.dumps(trace), content_type="application/json"
    )
    assert response.status_code == 201, response.content


def make_trace(
    execution_id: str, started: datetime, *, failed: bool = False, thread_id: str = "t"
) -> dict[str, Any]:
    """A small valid trace: one node, failing with a ``Boom`` error when asked."""
    stamp = started.isoformat(timespec="milliseconds")
    return {
        "thread_id": thread_id,
        "execution_id": execution_id,
        "nodes_executed": [
            {
                "node": "work",
                "duration_ms": 5,
                "state_before": {"n": 0},
                "state_after": None if failed else {"n": 1},
                "success": not failed,
                "error_message": "boom" if failed else None,
                "index": 0,
                "started_at": stamp,
            }
        ],
        "total_duration_ms": 5,
        "errors": (
            [{"node": "work", "message": "boom", "error_type": "Boom", "execution_index": 0}]
            if failed
            else []
        ),
        "completed": not failed,
        "started_at": stamp,
        "ended_at": (started + timedelta(milliseconds=5)).isoformat(timespec="milliseconds"),
        "final_state": {"n": 1},
        "metadata": {},
    }


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["execution_id"] for r in response.json()["results"]]


def walk(client: APIClient, url: str, params: dict[str, Any]) -> list[list[str]]:
    """Follow ``next`` links from the first page; the execution ids page by page."""
    pages = []
    response = client.get(url, params)
    while True:
        pages.append(ids(response))
        following = response.json()["next"]
        if following is None:
            return pages
        response = client.get(following)


@pytest.fixture
def fixtures(api: APIClient, fixtures_dir: Path) -> dict[str, dict[str, Any]]:
    """The small fixture traces, ingested into ``project``."""
    traces = {name: load(fixtures_dir, name) for name in SMALL_FIXTURES}
    for trace in traces.values():
        ingest(api, trace)
    return traces


@pytest.fixture
def other_api(other_project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    return client


@pytest.fixture
def session(member: Any) -> APIClient:
    """Alice, a member of ``project`` only, signed in."""
    client = APIClient()
    assert client.login(username="alice", password="pw-alice-123")
    return client


@pytest.fixture
def stranger(other_project: Project) -> APIClient:
    """Mallory, a member of ``other_project`` only, signed in."""
    user = get_user_model().objects.create_user("mallory", password="pw-mallory-123")
    Membership.objects.create(project=other_project, user=user, role=Role.ADMIN)
    client = APIClient()
    assert client.login(username="mallory", password="pw-mallory-123")
    return client


# -- list ----------------------------------------------------------------------------


def test_list_shows_runs_newest_first_with_pagination_links(
    api: APIClient, project: Project
) -> None:
    starts = {f"run-{i}": T0 + timedelta(minutes=m) for i, m in enumerate([5, 1, 9, 3, 7])}
    for execution_id, started in starts.items():
        ingest(api, make_trace(execution_id, started))

    response = api.get("/api/v1/runs")

    assert set(response.json()) >= {"next", "previous", "results"}
    assert ids(response) == sorted(starts, key=starts.__getitem__, reverse=True)
    assert response.json()["next"] is None
    assert response.json()["previous"] is None


def test_list_summary_describes_the_run_without_states(
    api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    trace = fixtures["tool_timeout_failure"]

    results = api.get("/api/v1/runs").json()["results"]

    summary = next(r for r in results if r["execution_id"] == FAILURE_ID)
    assert summary["project"] == "acme"
    assert summary["status"] == "failed"
    assert summary["completed"] is False
    assert summary["thread_id"] == "session-43"
    assert summary["started_at"] == trace["started_at"]
    assert summary["ended_at"] == trace["ended_at"]
    assert summary["duration_ms"] == trace["total_duration_ms"]
    assert summary["total_tokens"] == trace["total_tokens"]
    assert summary["node_count"] == 5
    assert summary["error_count"] == 1
    assert summary["first_error"] == trace["errors"][0]["message"]
    assert summary["first_error_type"] == "Timeout"
    assert summary["first_error_node"] == "retriever"
    assert summary["metadata"] == trace["metadata"]
    assert not {"nodes", "nodes_executed", "final_state", "state_before"} & set(summary)


def test_list_shows_only_the_keys_project(
    api: APIClient, other_api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    ingest(other_api, make_trace("other-run", T0))

    mine = ids(api.get("/api/v1/runs"))
    theirs = ids(other_api.get("/api/v1/runs"))

    assert sorted(mine) == sorted(IDS.values())
    assert theirs == ["other-run"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, {"tool_timeout_failure"}),
        (
            {"status": "completed"},
            {
                "executor_autopersisted",
                "non_object_states",
                "research_agent_success",
                "subgraph_child",
            },
        ),
        ({"status": "running"}, set()),
        (
            {"node": "writer"},
            {"executor_autopersisted", "research_agent_success", "subgraph_child"},
        ),
        ({"node": "tokenize"}, {"non_object_states"}),
        ({"node": "no-such-node"}, set()),
        ({"error_type": "Timeout"}, {"tool_timeout_failure"}),
        ({"error_type": "RateLimit"}, set()),
        ({"thread_id": "session-42"}, {"research_agent_success", "subgraph_child"}),
        ({"started_after": "2026-03-02T09:30:01Z"}, {"subgraph_child"}),
        # started_after includes its instant; started_before excludes its instant.
        ({"started_after": "2026-03-02T09:30:02.120Z"}, {"subgraph_child"}),
        ({"started_before": "2026-03-02T09:30:02.120Z"}, set(SMALL_FIXTURES) - {"subgraph_child"}),
        ({"started_after": "2026-03-02T10:30:01+01:00"}, {"subgraph_child"}),
        ({"started_after": "2026-03-02T09:30:01"}, {"subgraph_child"}),
        ({"started_after": "2026-03-02"}, set(SMALL_FIXTURES)),
        ({"started_after": "2026-03-03"}, set()),
        ({"started_before": "2026-03-02"}, set()),
        (
            {"thread_id": "session-42", "node": "critic"},
            {"research_agent_success", "subgraph_child"},
        ),
        ({"status": "failed", "node": "writer"}, set()),
        (
            {
                "status": "completed",
                "thread_id": "session-42",
                "started_after": "2026-03-02T09:30:01Z",
            },
            {"subgraph_child"},
        ),
    ],
)
def test_list_filters_select_matching_runs(
    api: APIClient,
    fixtures: dict[str, dict[str, Any]],
    params: dict[str, str],
    expected: set[str],
) -> None:
    response = api.get("/api/v1/runs", params)

    assert set(ids(response)) == {IDS[name] for name in expected}
    assert len(ids(response)) == len(expected)


def test_node_filter_lists_a_run_once_however_often_the_node_ran(
    api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    # The research agent visits "reader" three times.
    assert ids(api.get("/api/v1/runs", {"node": "reader"})).count(SUCCESS_ID) == 1


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("status", "bogus"),
        ("status", "FAILED"),
        ("started_after", "yesterday"),
        ("started_before", "03/02/2026"),
        # Well-formed but impossible dates: still the client's mistake, not a server fault.
        ("started_after", "2026-13-01"),
        ("started_before", "2026-02-30T10:00:00"),
    ],
)
def test_bad_filter_value_is_a_400_naming_the_parameter(
    api: APIClient, fixtures: dict[str, dict[str, Any]], param: str, value: str
) -> None:
    if param == "status":
        rule = f"expected one of running, completed, failed, got {value!r}"
    else:
        rule = f"expected an ISO 8601 date or time, got {value!r}"
    api.raise_request_exception = False

    response = api.get("/api/v1/runs", {param: value})

    assert response.status_code == 400, response.content
    assert response.json() == {"detail": f"{param}: {rule}", "path": param, "rule": rule}


def test_cursor_pagination_walks_every_run_once_in_order(api: APIClient, project: Project) -> None:
    starts = [T0 + timedelta(seconds=37 * i, milliseconds=i) for i in range(7)]
    for i, started in enumerate(starts):
        ingest(api, make_trace(f"run-{i}", started))

    pages = walk(api, "/api/v1/runs", {"limit": 3})

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == [f"run-{i}" for i in reversed(range(7))]


def test_cursor_pagination_with_equal_start_times_skips_and_repeats_nothing(
    api: APIClient, project: Project
) -> None:
    for i in range(7):
        ingest(api, make_trace(f"tie-{i}", T0))

    pages = walk(api, "/api/v1/runs", {"limit": 2})

    flat = [i for page in pages for i in page]
    assert sorted(flat) == sorted(f"tie-{i}" for i in range(7))
    assert len(flat) == 7


def test_previous_link_leads_back_to_the_first_page(api: APIClient, project: Project) -> None:
    for i in range(5):
        ingest(api, make_trace(f"run-{i}", T0 + timedelta(minutes=i)))
    first = api.get("/api/v1/runs", {"limit": 2})
    second = api.get(first.json()["next"])

    back = api.get(second.json()["previous"])

    assert ids(back) == ids(first) == ["run-4", "run-3"]
    assert ids(second) == ["run-2", "run-1"]


def test_filters_apply_on_every_page(api: APIClient, project: Project) -> None:
    for i in range(9):
        ingest(api, make_trace(f"run-{i}", T0 + timedelta(minutes=i), failed=i % 2 == 0))

    pages = walk(api, "/api/v1/runs", {"status": "failed", "limit": 2})

    assert [i for page in pages for i in page] == ["run-8", "run-6", "run-4", "run-2", "run-0"]


def test_limit_sets_the_page_size(api: APIClient, fixtures: dict[str, dict[str, Any]]) -> None:
    response = api.get("/api/v1/runs", {"limit": 1})

    assert len(ids(response)) == 1
    assert response.json()["next"] is not None


# -- one run -------------------------------------------------------------------------


def test_run_detail_lists_nodes_and_errors_without_states(
    api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    trace = fixtures["tool_timeout_failure"]

    response = api.get(f"/api/v1/runs/{FAILURE_ID}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["execution_id"] == FAILURE_ID
    assert body["status"] == "failed"
    assert body["node_count"] == 5
    assert [n["node"] for n in body["nodes"]] == [n["node"] for n in trace["nodes_executed"]]
    assert [n["index"] for n in body["nodes"]] == [0, 1, 2, 3, 4]
    last = body["nodes"][4]
    assert last["success"] is False
    assert last["error_message"] == trace["nodes_executed"][4]["error_message"]
    assert last["tools_called"] == ["web_search", "fetch_url"]
    assert last["duration_ms"] == trace["nodes_executed"][4]["duration_ms"]
    for step in body["nodes"]:
        assert "state_before" not in step
        assert "state_after" not in step
    [error] = body["errors"]
    expected = trace["errors"][0]
    assert error["node"] == "retriever"
    assert error["error_type"] == "Timeout"
    assert error["message"] == expected["message"]
    assert error["execution_index"] == 4
    assert error["retry_attempted"] is True
    assert error["context"] == expected["context"]
    assert "state_at_error" not in error


def test_run_detail_of_a_subgraph_names_its_parent(
    api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    body = api.get(f"/api/v1/runs/{IDS['subgraph_child']}").json()

    assert body["parent_execution_id"] == SUCCESS_ID
    assert body["root_execution_id"] == SUCCESS_ID
    assert body["depth"] == 1


def test_unknown_run_is_404(api: APIClient, fixtures: dict[str, dict[str, Any]]) -> None:
    for url in (
        "/api/v1/runs/no-such-run",
        "/api/v1/runs/no-such-run/steps/0",
        "/api/v1/runs/no-such-run/trace",
    ):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json()["detail"] == "run 'no-such-run': not found"


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("research_agent_success", 3),
        ("research_agent_success", 10),
        ("tool_timeout_failure", 4),
        ("non_object_states", 0),
        ("non_object_states", 1),
    ],
)
def test_step_is_the_node_execution_with_its_states(
    api: APIClient, fixtures: dict[str, dict[str, Any]], name: str, index: int
) -> None:
    expected = fixtures[name]["nodes_executed"][index]

    response = api.get(f"/api/v1/runs/{IDS[name]}/steps/{index}")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == expected


def test_a_step_or_trace_asked_as_a_download_is_an_attachment(
    api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    plain = api.get(f"/api/v1/runs/{FAILURE_ID}/steps/3")
    step = api.get(f"/api/v1/runs/{FAILURE_ID}/steps/3?download=1")
    trace = api.get(f"/api/v1/runs/{FAILURE_ID}/trace?download=1")

    assert "Content-Disposition" not in plain
    assert step["Content-Disposition"] == f'attachment; filename="{FAILURE_ID}-step-3.json"'
    assert step.content == plain.content
    assert trace["Content-Disposition"] == f'attachment; filename="{FAILURE_ID}.json"'


@pytest.mark.parametrize("index", [5, 99, 2**63, 2**64, 2**64 + 3])
def test_step_index_past_the_run_is_404(
    api: APIClient, fixtures: dict[str, dict[str, Any]], index: int
) -> None:
    api.raise_request_exception = False

    response = api.get(f"/api/v1/runs/{FAILURE_ID}/steps/{index}")

    assert response.status_code == 404, response.content
    assert response.json()["detail"] == f"step {index} of run {FAILURE_ID!r}: not found"


@pytest.mark.parametrize("name", SMALL_FIXTURES)
def test_trace_equals_the_ingested_fixture(
    api: APIClient, fixtures: dict[str, dict[str, Any]], name: str
) -> None:
    response = api.get(f"/api/v1/runs/{IDS[name]}/trace")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    trace = json.loads(response.content)
    assert trace == fixtures[name]
    # DashFlow's field order, and absent optional fields stay absent.
    assert list(trace) == list(fixtures[name])


def test_long_trace_reads_back_equal_and_its_last_step_is_reachable(
    api: APIClient, fixtures_dir: Path
) -> None:
    trace = load(fixtures_dir, "long_loop_2000")
    ingest(api, trace)

    whole = api.get(f"/api/v1/runs/{trace['execution_id']}/trace")
    last = api.get(f"/api/v1/runs/{trace['execution_id']}/steps/1999")

    assert json.loads(whole.content) == trace
    assert json.loads(last.content) == trace["nodes_executed"][1999]


# -- scoping -------------------------------------------------------------------------


def run_urls(execution_id: str) -> list[str]:
    return [
        f"/api/v1/runs/{execution_id}",
        f"/api/v1/runs/{execution_id}/steps/0",
        f"/api/v1/runs/{execution_id}/trace",
    ]


def test_key_of_another_project_gets_404_for_a_run(
    other_api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    for url in run_urls(SUCCESS_ID):
        response = other_api.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"detail": f"run {SUCCESS_ID!r}: not found"}


def test_key_naming_another_project_gets_404(
    api: APIClient, other_project: Project, fixtures: dict[str, dict[str, Any]]
) -> None:
    for url in ["/api/v1/runs", *run_urls(SUCCESS_ID)]:
        response = api.get(url, {"project": "other"})
        assert response.status_code == 404, url
        assert response.json() == {"detail": "project 'other': not found"}


def test_key_naming_its_own_project_reads_normally(
    api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    assert sorted(ids(api.get("/api/v1/runs", {"project": "acme"}))) == sorted(IDS.values())
    for url in run_urls(SUCCESS_ID):
        assert api.get(url, {"project": "acme"}).status_code == 200, url


def test_member_session_reads_the_project_it_names(
    session: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    listed = session.get("/api/v1/runs", {"project": "acme", "status": "failed"})
    step = session.get(f"/api/v1/runs/{SUCCESS_ID}/steps/3", {"project": "acme"})
    trace = session.get(f"/api/v1/runs/{SUCCESS_ID}/trace", {"project": "acme"})
    detail = session.get(f"/api/v1/runs/{SUCCESS_ID}", {"project": "acme"})

    assert ids(listed) == [FAILURE_ID]
    assert json.loads(step.content) == fixtures["research_agent_success"]["nodes_executed"][3]
    assert json.loads(trace.content) == fixtures["research_agent_success"]
    assert detail.json()["node_count"] == 11


def test_viewer_session_can_read(project: Project, fixtures: dict[str, dict[str, Any]]) -> None:
    user = get_user_model().objects.create_user("vera", password="pw-vera-123")
    Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    client = APIClient()
    assert client.login(username="vera", password="pw-vera-123")

    assert sorted(ids(client.get("/api/v1/runs", {"project": "acme"}))) == sorted(IDS.values())


@pytest.mark.parametrize("url", ["/api/v1/runs", *run_urls(SUCCESS_ID)])
def test_session_without_project_parameter_is_400(
    session: APIClient, fixtures: dict[str, dict[str, Any]], url: str
) -> None:
    response = session.get(url)

    assert response.status_code == 400
    assert response.json()["path"] == "project"
    assert response.json()["rule"] == "required: name the project with ?project=<slug>"


@pytest.mark.parametrize("url", ["/api/v1/runs", *run_urls(SUCCESS_ID)])
def test_non_member_gets_the_same_404_as_for_a_missing_project(
    stranger: APIClient, fixtures: dict[str, dict[str, Any]], url: str
) -> None:
    existing = stranger.get(url, {"project": "acme"})
    missing = stranger.get(url, {"project": "nope"})

    assert existing.status_code == missing.status_code == 404
    assert existing.json() == {"detail": "project 'acme': not found"}
    assert missing.json() == {"detail": "project 'nope': not found"}


def test_member_cannot_reach_another_projects_run_through_their_own_project(
    session: APIClient, other_api: APIClient, fixtures: dict[str, dict[str, Any]]
) -> None:
    ingest(other_api, make_trace("their-run", T0))

    for url in run_urls("their-run"):
        assert session.get(url, {"project": "acme"}).status_code == 404, url
        assert session.get(url, {"project": "other"}).status_code == 404, url
    assert "their-run" not in ids(session.get("/api/v1/runs", {"project": "acme"}))


@pytest.mark.parametrize("url", ["/api/v1/runs", *run_urls(SUCCESS_ID)])
def test_anonymous_request_is_401(fixtures: dict[str, dict[str, Any]], url: str) -> None:
    response = APIClient().get(url, {"project": "acme"})

    assert response.status_code == 401
    assert SUCCESS_ID not in response.content.decode()


def test_revoked_key_cannot_read(
    api: APIClient, api_key: str, fixtures: dict[str, dict[str, Any]]
) -> None:
    ApiKey.objects.get(prefix=api_key[:12]).revoke()

    response = api.get("/api/v1/runs")

    assert response.status_code == 401
    assert response.json()["detail"] == "Authorization: this API key was revoked"


# -- schema --------------------------------------------------------------------------


def test_openapi_schema_describes_every_api_path(db: None) -> None:
    response = APIClient().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = schema["paths"]
    assert "post" in paths["/api/v1/traces"]
    for path in (
        "/api/v1/runs",
        "/api/v1/runs/{execution_id}",
        "/api/v1/runs/{execution_id}/steps/{index}",
        "/api/v1/runs/{execution_id}/trace",
    ):
        assert "get" in paths[path], path
    list_params = {p["name"] for p in paths["/api/v1/runs"]["get"]["parameters"]}
    assert list_params >= {
        "project",
        "status",
        "node",
        "error_type",
        "thread_id",
        "started_after",
        "started_before",
        "limit",
        "cursor",
    }
    assert set(paths["/api/v1/traces"]["post"]["responses"]) >= {"200", "201", "400", "401", "413"}
    schemes = schema["components"]["securitySchemes"].values()
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes)


def test_openapi_schema_is_served_as_yaml_by_default(db: None) -> None:
    response = APIClient().get("/api/schema/")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")
    assert b"/api/v1/runs/{execution_id}/steps/{index}:" in response.content
