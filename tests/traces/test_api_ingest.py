"""POST /api/v1/traces: ingestion, idempotency, limits and bad input.

Every refusal is checked for its status, the JSON path and the rule it names, and for
leaving the database exactly as it was; the next valid request must still succeed.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from traces import dashstream, store
from traces.models import ApiKey, Project, Run, RunError, StateSnapshot, Step
from traces.trace import state_hash

URL = "/api/v1/traces"
SMALL_FIXTURES = [
    "executor_autopersisted",
    "non_object_states",
    "research_agent_success",
    "subgraph_child",
    "tool_timeout_failure",
]
FAILURE_ID = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"
SUCCESS_ID = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"


def load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir / f"{name}.json").read_bytes())
    return data


def encode(trace: dict[str, Any]) -> bytes:
    return json.dumps(trace).encode()


def post(client: APIClient, body: bytes | dict[str, Any], **headers: str) -> Any:
    data = encode(body) if isinstance(body, dict) else body
    return client.post(URL, data=data, content_type="application/json", **headers)


def row_counts() -> dict[str, int]:
    return {
        "runs": Run.objects.count(),
        "steps": Step.objects.count(),
        "errors": RunError.objects.count(),
        "snapshots": StateSnapshot.objects.count(),
    }


def stored_trace(client: APIClient, execution_id: str) -> Any:
    response = client.get(f"/api/v1/runs/{execution_id}/trace")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def assert_refused(response: Any, status: int, path: str, rule: str) -> None:
    """A refusal names the JSON path and the rule, and ``detail`` is both together."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["path"] == path
    assert body["rule"] == rule
    assert body["detail"] == f"{path}: {rule}"


@pytest.fixture
def failure(fixtures_dir: Path) -> dict[str, Any]:
    return load(fixtures_dir, "tool_timeout_failure")


@pytest.fixture
def success(fixtures_dir: Path) -> dict[str, Any]:
    return load(fixtures_dir, "research_agent_success")


@pytest.fixture
def stored_failure(api: APIClient, failure: dict[str, Any]) -> dict[str, Any]:
    """The failure fixture already stored, so a refusal has something it could damage."""
    assert post(api, failure).status_code == 201
    return failure


@pytest.fixture
def lenient_api(api: APIClient) -> APIClient:
    # A server fault becomes a 500 response (as a real client sees it) instead of an
    # exception inside the test, so the assertion shows the status that was answered.
    api.raise_request_exception = False
    return api


def assert_still_serving(client: APIClient, trace: dict[str, Any]) -> None:
    response = post(client, trace)
    assert response.status_code in (200, 201), response.content
    assert stored_trace(client, response.json()["execution_id"]) == trace


# -- storing -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL_FIXTURES)
def test_fixture_trace_is_stored_with_201_and_reads_back_equal(
    api: APIClient, fixtures_dir: Path, project: Project, name: str
) -> None:
    trace = load(fixtures_dir, name)

    response = post(api, trace)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["execution_id"] == trace["execution_id"]
    assert body["created"] is True
    assert body["url"] == f"/api/v1/runs/{trace['execution_id']}"
    run = Run.objects.get(project=project, execution_id=trace["execution_id"])
    assert run.node_count == len(trace["nodes_executed"])
    assert run.error_count == len(trace["errors"])
    assert Step.objects.filter(run=run).count() == len(trace["nodes_executed"])
    assert stored_trace(api, trace["execution_id"]) == trace


def test_long_fixture_trace_of_2000_nodes_is_stored(api: APIClient, fixtures_dir: Path) -> None:
    body = (fixtures_dir / "long_loop_2000.json").read_bytes()
    trace = json.loads(body)

    response = post(api, body)

    assert response.status_code == 201, response.content
    run = Run.objects.get(execution_id=trace["execution_id"])
    assert run.node_count == 2000
    assert Step.objects.filter(run=run).count() == 2000
    assert stored_trace(api, trace["execution_id"]) == trace


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("research_agent_success", "completed"),
        ("tool_timeout_failure", "failed"),
    ],
)
def test_response_status_reflects_the_trace_outcome(
    api: APIClient, fixtures_dir: Path, name: str, status: str
) -> None:
    response = post(api, load(fixtures_dir, name))

    assert response.status_code == 201
    assert response.json()["status"] == status


def test_incomplete_trace_without_end_is_a_running_run(
    api: APIClient, success: dict[str, Any]
) -> None:
    success.update(completed=False, ended_at=None)

    response = post(api, success)

    assert response.status_code == 201
    assert response.json()["status"] == "running"


def test_same_trace_twice_answers_200_and_stores_nothing_more(
    api: APIClient, success: dict[str, Any]
) -> None:
    assert post(api, success).status_code == 201
    before = row_counts()

    response = post(api, success)

    assert response.status_code == 200, response.content
    assert response.json()["created"] is False
    assert response.json()["execution_id"] == SUCCESS_ID
    assert row_counts() == before


def test_changed_trace_for_a_stored_run_replaces_its_steps(
    api: APIClient, success: dict[str, Any]
) -> None:
    assert post(api, success).status_code == 201
    success["nodes_executed"] = success["nodes_executed"][:3]

    response = post(api, success)

    assert response.status_code == 200, response.content
    assert response.json()["created"] is False
    assert Run.objects.count() == 1
    assert Step.objects.count() == 3
    assert stored_trace(api, SUCCESS_ID) == success


def test_same_execution_id_in_another_project_is_a_separate_run(
    api: APIClient, other_project: Project, success: dict[str, Any]
) -> None:
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")

    first = post(api, success)
    second = post(other, success)

    assert (first.status_code, second.status_code) == (201, 201)
    assert Run.objects.filter(execution_id=SUCCESS_ID).count() == 2
    assert Run.objects.filter(project=other_project, execution_id=SUCCESS_ID).exists()


def test_trace_without_execution_id_gets_one_assigned_and_returned(
    api: APIClient, project: Project, success: dict[str, Any]
) -> None:
    del success["execution_id"]

    first = post(api, success)
    second = post(api, success)

    assert (first.status_code, second.status_code) == (201, 201)
    assigned = first.json()["execution_id"]
    assert assigned
    assert assigned != second.json()["execution_id"]
    assert Run.objects.filter(project=project, execution_id=assigned).exists()
    assert stored_trace(api, assigned)["execution_id"] == assigned


def test_null_execution_id_gets_one_assigned(api: APIClient, success: dict[str, Any]) -> None:
    success["execution_id"] = None

    response = post(api, success)

    assert response.status_code == 201
    assigned = response.json()["execution_id"]
    assert isinstance(assigned, str)
    assert assigned
    assert api.get(response.json()["url"]).status_code == 200


def test_states_shared_between_steps_are_stored_once(
    api: APIClient, success: dict[str, Any]
) -> None:
    states = [n[k] for n in success["nodes_executed"] for k in ("state_before", "state_after")]
    states += [e["state_at_error"] for e in success["errors"]]
    states.append(success["final_state"])
    distinct = {state_hash(s) for s in states if s is not None}

    assert post(api, success).status_code == 201

    assert StateSnapshot.objects.count() == len(distinct)
    assert len(distinct) < len([s for s in states if s is not None])


def test_u64_counters_above_2_pow_53_read_back_exactly(
    api: APIClient, success: dict[str, Any]
) -> None:
    success["total_tokens"] = 2**64 - 1
    success["total_duration_ms"] = 2**63
    success["nodes_executed"][0]["tokens_used"] = 2**53 + 1
    success["nodes_executed"][0]["duration_ms"] = 2**63 + 7

    assert post(api, success).status_code == 201

    assert stored_trace(api, SUCCESS_ID) == success


def test_brackets_inside_strings_do_not_count_as_nesting(
    api: APIClient, settings: Any, success: dict[str, Any]
) -> None:
    settings.TRACE_MAX_DEPTH = 10
    success["metadata"]["note"] = "[" * 50 + "{" * 50 + '\\"[[[['

    response = post(api, success)

    assert response.status_code == 201, response.content
    assert stored_trace(api, SUCCESS_ID)["metadata"]["note"] == success["metadata"]["note"]


@pytest.mark.parametrize(
    "note",
    ["C:\\", '\\"', 'say "hi" \\\\', "]]]]}}}}", "\u0000[[", ""],
    ids=[
        "trailing-backslash",
        "escaped-quote",
        "quotes-and-backslashes",
        "closers",
        "nul",
        "empty",
    ],
)
def test_nesting_after_tricky_strings_is_still_counted(
    api: APIClient, settings: Any, success: dict[str, Any], note: str
) -> None:
    settings.TRACE_MAX_DEPTH = 10
    # Strings before the deep part that could fool a scanner into reading it as string
    # content (thread_id and node come before state_before in the body).
    success["thread_id"] = note
    success["nodes_executed"][0]["node"] = note
    success["nodes_executed"][0]["state_before"] = nested(8)
    before = row_counts()

    response = post(api, success)

    assert_refused(response, 400, "$", "nesting is deeper than TRACE_MAX_DEPTH=10")
    assert row_counts() == before


# -- gzip ----------------------------------------------------------------------------


def test_gzip_body_is_inflated_and_stored(api: APIClient, success: dict[str, Any]) -> None:
    response = post(api, gzip.compress(encode(success)), HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 201, response.content
    assert stored_trace(api, SUCCESS_ID) == success


def test_gzip_body_is_counted_against_the_limit_after_inflating(
    api: APIClient, settings: Any, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    settings.TRACE_UPLOAD_MAX_BYTES = 4096
    bomb = gzip.compress(encode(success) + b" " * 200_000)
    assert len(bomb) < 4096
    before = row_counts()

    response = post(api, bomb, HTTP_CONTENT_ENCODING="gzip")

    assert_refused(response, 413, "$", "body is larger than TRACE_UPLOAD_MAX_BYTES=4096 bytes")
    assert row_counts() == before
    assert not Run.objects.filter(execution_id=SUCCESS_ID).exists()


@pytest.mark.parametrize(
    ("body", "rule_start"),
    [
        pytest.param(b"this is not gzip", "body is not valid gzip", id="not-gzip"),
        pytest.param(b"", "gzip body is truncated", id="empty"),
    ],
)
def test_invalid_gzip_is_refused_with_400(
    api: APIClient, stored_failure: dict[str, Any], body: bytes, rule_start: str
) -> None:
    before = row_counts()

    response = post(api, body, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 400, response.content
    assert response.json()["path"] == "Content-Encoding"
    assert response.json()["rule"].startswith(rule_start)
    assert row_counts() == before
    assert_still_serving(api, stored_failure)


def test_truncated_gzip_is_refused_with_400(
    api: APIClient, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    compressed = gzip.compress(encode(success))
    before = row_counts()

    response = post(api, compressed[: len(compressed) // 2], HTTP_CONTENT_ENCODING="gzip")

    assert_refused(response, 400, "Content-Encoding", "gzip body is truncated")
    assert row_counts() == before
    assert_still_serving(api, success)


def test_unsupported_content_encoding_is_refused_with_415(
    api: APIClient, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    before = row_counts()

    response = post(api, encode(success), HTTP_CONTENT_ENCODING="br")

    assert_refused(response, 415, "Content-Encoding", "unsupported 'br'; use gzip or none")
    assert row_counts() == before


# -- body size, depth, node count ----------------------------------------------------


def test_body_over_the_size_limit_is_refused_with_413(
    api: APIClient, settings: Any, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    body = encode(success)
    settings.TRACE_UPLOAD_MAX_BYTES = len(body) - 1
    before = row_counts()

    response = post(api, body)

    assert_refused(
        response,
        413,
        "$",
        f"body is larger than TRACE_UPLOAD_MAX_BYTES={len(body) - 1} bytes (got {len(body)} bytes)",
    )
    assert row_counts() == before
    settings.TRACE_UPLOAD_MAX_BYTES = len(body)
    assert_still_serving(api, success)


def test_body_exactly_at_the_size_limit_is_accepted(
    api: APIClient, settings: Any, success: dict[str, Any]
) -> None:
    body = encode(success)
    settings.TRACE_UPLOAD_MAX_BYTES = len(body)

    response = post(api, body)

    assert response.status_code == 201, response.content


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_deeper_than_the_limit_is_refused_with_400(
    api: APIClient, settings: Any, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    settings.TRACE_MAX_DEPTH = 10
    # The trace object, nodes_executed and the node object are 3 levels; 8 more is 11.
    success["nodes_executed"][0]["state_before"] = nested(8)
    before = row_counts()

    response = post(api, success)

    assert_refused(response, 400, "$", "nesting is deeper than TRACE_MAX_DEPTH=10")
    assert row_counts() == before
    success["nodes_executed"][0]["state_before"] = nested(7)
    assert_still_serving(api, success)


@pytest.mark.parametrize("limit", [None, 400])
def test_a_state_as_deep_as_the_limit_allows_is_shown_and_exported(
    api: APIClient, settings: Any, success: dict[str, Any], member: Any, limit: int | None
) -> None:
    """What validation lets in, every reader can read: the step panel (diff, summary),
    the API, Markdown and the DashStream export all recurse through a state. At the
    default limit and at the largest the settings accept (TRACE_MAX_DEPTH <= 400)."""
    if limit is not None:
        settings.TRACE_MAX_DEPTH = limit

    # The trace object, nodes_executed and the node object are 3 levels.
    def deep(leaf: str) -> Any:
        value: Any = leaf
        for level in range(settings.TRACE_MAX_DEPTH - 3):
            value = [value] if level % 2 else {"k": value}
        return value

    before, after = deep("leaf"), deep("changed")
    success["nodes_executed"][0]["state_before"] = before
    success["nodes_executed"][0]["state_after"] = after
    assert post(api, success).status_code == 201
    client = Client()
    client.force_login(member)

    panel = client.get(f"/projects/acme/runs/{SUCCESS_ID}/steps/0.json")
    assert panel.status_code == 200, panel.content[:300]
    assert panel.json()["changes"], "the deep change is in the diff"
    assert api.get(f"/api/v1/runs/{SUCCESS_ID}/steps/0").status_code == 200
    assert api.get(f"/api/v1/runs/{SUCCESS_ID}?format=md&step=0").status_code == 200
    trace = store.load_trace(Run.objects.get(execution_id=SUCCESS_ID))
    frames = [chunk for chunk, _count in dashstream.encode_file(trace)]
    lines = [chunk for chunk, _count in dashstream.encode_jsonl(trace)]
    assert frames
    assert lines


def test_pathologically_deep_nesting_is_refused_at_the_default_limit(
    api: APIClient, settings: Any, stored_failure: dict[str, Any]
) -> None:
    body = (
        b'{"nodes_executed": [{"node": "a", "duration_ms": 1, "state_before": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}]}"
    )
    before = row_counts()

    response = post(api, body)

    assert_refused(
        response, 400, "$", f"nesting is deeper than TRACE_MAX_DEPTH={settings.TRACE_MAX_DEPTH}"
    )
    assert row_counts() == before
    assert_still_serving(api, stored_failure)


def test_more_nodes_than_the_limit_are_refused_with_400(
    api: APIClient, settings: Any, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    count = len(success["nodes_executed"])
    settings.TRACE_MAX_NODES = count - 1
    before = row_counts()

    response = post(api, success)

    assert_refused(
        response,
        400,
        "$.nodes_executed",
        f"has {count} items, more than TRACE_MAX_NODES={count - 1}",
    )
    assert row_counts() == before
    settings.TRACE_MAX_NODES = count
    assert_still_serving(api, success)


# -- malformed JSON and wrong types --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        pytest.param(b"", "malformed JSON: Input data was truncated", id="empty"),
        pytest.param(
            b'{"nodes_executed": [', "malformed JSON: Input data was truncated", id="truncated"
        ),
        pytest.param(
            b'{"nodes_executed": []} trailing',
            "malformed JSON: JSON is malformed: trailing characters",
            id="trailing-garbage",
        ),
        pytest.param(
            b"nodes_executed=[]",
            "malformed JSON: JSON is malformed: invalid character",
            id="not-json",
        ),
        pytest.param(b"[]", "expected an object, got []", id="array"),
        pytest.param(b"null", "expected an object, got null", id="null"),
    ],
)
def test_malformed_json_is_refused_with_400_at_the_root(
    api: APIClient, stored_failure: dict[str, Any], body: bytes, rule: str
) -> None:
    before = row_counts()

    response = post(api, body)

    # msgspec's message ends with a byte offset; the rule must start with the cause.
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["path"] == "$"
    assert body["rule"].startswith(rule)
    assert body["detail"] == f"$: {body['rule']}"
    assert row_counts() == before
    assert_still_serving(api, stored_failure)


Mutation = Callable[[dict[str, Any]], None]


def node(index: int, **values: Any) -> Mutation:
    return lambda t: t["nodes_executed"][index].update(values)


def top(**values: Any) -> Mutation:
    return lambda t: t.update(values)


def drop(*keys: str | int) -> Mutation:
    def mutate(trace: dict[str, Any]) -> None:
        target: Any = trace
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


BAD_FIELDS = [
    pytest.param(
        node(3, duration_ms="12"),
        "$.nodes_executed[3].duration_ms",
        'expected an unsigned integer, got "12"',
        id="duration-as-string",
    ),
    pytest.param(
        node(1, tokens_used=-1),
        "$.nodes_executed[1].tokens_used",
        "expected an unsigned integer, got -1",
        id="negative-tokens",
    ),
    pytest.param(
        node(2, duration_ms=1.5),
        "$.nodes_executed[2].duration_ms",
        "expected an unsigned integer, got 1.5",
        id="fractional-duration",
    ),
    pytest.param(
        node(4, duration_ms=2**64),
        "$.nodes_executed[4].duration_ms",
        "expected an unsigned 64-bit integer, got 18446744073709551616",
        id="duration-past-u64",
    ),
    pytest.param(
        top(total_tokens=2**64),
        "$.total_tokens",
        "expected an unsigned 64-bit integer, got 18446744073709551616",
        id="total-tokens-past-u64",
    ),
    pytest.param(
        node(0, success="yes"),
        "$.nodes_executed[0].success",
        'expected a boolean, got "yes"',
        id="success-as-string",
    ),
    pytest.param(
        node(0, node=7),
        "$.nodes_executed[0].node",
        "expected a string, got 7",
        id="node-name-as-number",
    ),
    pytest.param(
        node(1, tools_called=["web_search", 1]),
        "$.nodes_executed[1].tools_called[1]",
        "expected a string, got 1",
        id="tool-as-number",
    ),
    pytest.param(
        node(1, metadata=[]),
        "$.nodes_executed[1].metadata",
        "expected an object, got []",
        id="node-metadata-as-array",
    ),
    pytest.param(
        top(completed="true"),
        "$.completed",
        'expected a boolean, got "true"',
        id="completed-as-string",
    ),
    pytest.param(
        top(thread_id=5),
        "$.thread_id",
        "expected a string or null, got 5",
        id="thread-id-as-number",
    ),
    pytest.param(
        top(started_at=20260302),
        "$.started_at",
        "expected a string or null, got 20260302",
        id="started-at-as-number",
    ),
    pytest.param(
        top(metadata=[]),
        "$.metadata",
        "expected an object, got []",
        id="metadata-as-array",
    ),
    pytest.param(
        top(nodes_executed={}),
        "$.nodes_executed",
        "expected an array, got {}",
        id="nodes-as-object",
    ),
    pytest.param(
        top(depth=-1),
        "$.depth",
        "expected an unsigned integer, got -1",
        id="negative-depth",
    ),
    pytest.param(
        top(execution_metrics={"total_duration": {"secs": 1, "nanos": 1_000_000_000}}),
        "$.execution_metrics.total_duration.nanos",
        "expected an integer <= 999999999, got 1000000000",
        id="nanos-past-a-second",
    ),
    pytest.param(
        lambda t: t["errors"][0].update(recoverable="no"),
        "$.errors[0].recoverable",
        'expected a boolean, got "no"',
        id="error-recoverable-as-string",
    ),
]

MISSING_FIELDS = [
    pytest.param(drop("nodes_executed"), "$.nodes_executed", id="nodes_executed"),
    pytest.param(drop("nodes_executed", 2, "node"), "$.nodes_executed[2].node", id="node"),
    pytest.param(
        drop("nodes_executed", 0, "duration_ms"),
        "$.nodes_executed[0].duration_ms",
        id="duration_ms",
    ),
    pytest.param(drop("errors", 0, "message"), "$.errors[0].message", id="error-message"),
    pytest.param(drop("errors", 0, "node"), "$.errors[0].node", id="error-node"),
]


@pytest.mark.parametrize(("mutate", "path", "rule"), BAD_FIELDS)
def test_wrong_type_is_refused_with_400_naming_the_path(
    api: APIClient,
    stored_failure: dict[str, Any],
    success: dict[str, Any],
    mutate: Mutation,
    path: str,
    rule: str,
) -> None:
    # A bad re-send of a stored run: the refusal must not touch what is stored.
    bad = copy.deepcopy(stored_failure)
    mutate(bad)
    before = row_counts()

    response = post(api, bad)

    assert_refused(response, 400, path, rule)
    assert row_counts() == before
    assert stored_trace(api, FAILURE_ID) == stored_failure
    assert_still_serving(api, success)


@pytest.mark.parametrize(("mutate", "path"), MISSING_FIELDS)
def test_missing_required_field_is_refused_with_400_naming_the_path(
    api: APIClient,
    stored_failure: dict[str, Any],
    success: dict[str, Any],
    mutate: Mutation,
    path: str,
) -> None:
    bad = copy.deepcopy(stored_failure)
    mutate(bad)
    before = row_counts()

    response = post(api, bad)

    assert_refused(response, 400, path, "required field is missing")
    assert row_counts() == before
    assert stored_trace(api, FAILURE_ID) == stored_failure
    assert_still_serving(api, success)


def test_unknown_fields_are_ignored_as_dashflow_does(
    api: APIClient, success: dict[str, Any]
) -> None:
    sent = copy.deepcopy(success)
    sent["added_in_a_newer_dashflow"] = {"x": 1}
    sent["nodes_executed"][0]["also_new"] = True

    response = post(api, sent)

    assert response.status_code == 201, response.content
    assert stored_trace(api, SUCCESS_ID) == success


# -- values the database cannot hold -------------------------------------------------

LONG = "x" * 250


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        pytest.param(top(execution_id=LONG), "$.execution_id", id="execution_id"),
        pytest.param(top(thread_id=LONG), "$.thread_id", id="thread_id"),
        pytest.param(node(2, node=LONG), "$.nodes_executed[2].node", id="node"),
        pytest.param(
            lambda t: t["errors"][0].update(error_type=LONG),
            "$.errors[0].error_type",
            id="error_type",
        ),
    ],
)
def test_overlong_string_is_stored_exactly_or_refused_with_400(
    lenient_api: APIClient,
    stored_failure: dict[str, Any],
    success: dict[str, Any],
    mutate: Mutation,
    path: str,
) -> None:
    """250 characters is valid DashFlow JSON; the server may keep it or refuse it with a
    path, but must not fail with a 5xx nor lose what is stored."""
    sent = copy.deepcopy(stored_failure)
    mutate(sent)
    before = row_counts()

    response = post(lenient_api, sent)

    # Whatever the answer, nothing may be half-written: check that first.
    if response.status_code in (200, 201):
        assert stored_trace(lenient_api, sent["execution_id"]) == sent
    else:
        assert row_counts() == before
        assert stored_trace(lenient_api, FAILURE_ID) == stored_failure
    assert_still_serving(lenient_api, success)
    assert response.status_code in (200, 201, 400), response.content
    if response.status_code == 400:
        assert response.json()["path"] == path


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        pytest.param(node(0, node="plan\u0000ner"), "$.nodes_executed[0].node", id="node"),
        pytest.param(
            node(4, error_message="time\u0000out"),
            "$.nodes_executed[4].error_message",
            id="error_message",
        ),
        pytest.param(
            lambda t: t["metadata"].update(note="a\u0000b"), "$.metadata.note", id="metadata"
        ),
        pytest.param(
            lambda t: t["nodes_executed"][1]["metadata"].update(note="a\u0000b"),
            "$.nodes_executed[1].metadata.note",
            id="node-metadata",
        ),
    ],
)
def test_nul_character_in_a_string_is_stored_exactly_or_refused_with_400(
    lenient_api: APIClient,
    stored_failure: dict[str, Any],
    success: dict[str, Any],
    mutate: Mutation,
    path: str,
) -> None:
    """``\\u0000`` is valid JSON (and valid in a Rust String); PostgreSQL text and jsonb
    cannot hold it, so the server must store it some other way or refuse it by path."""
    sent = copy.deepcopy(stored_failure)
    mutate(sent)
    before = row_counts()

    response = post(lenient_api, sent)

    if response.status_code in (200, 201):
        assert stored_trace(lenient_api, FAILURE_ID) == sent
    else:
        assert row_counts() == before
        assert stored_trace(lenient_api, FAILURE_ID) == stored_failure
    assert_still_serving(lenient_api, success)
    assert response.status_code in (200, 201, 400), response.content
    if response.status_code == 400:
        assert response.json()["path"] == path


def test_nul_character_inside_a_state_round_trips(api: APIClient, success: dict[str, Any]) -> None:
    success["nodes_executed"][0]["state_before"] = {"text": "a\u0000b"}

    assert post(api, success).status_code == 201

    assert stored_trace(api, SUCCESS_ID) == success


@pytest.mark.parametrize("execution_id", ["runs/2026/1", "run?id=1", ""])
def test_returned_url_of_a_stored_run_reaches_it(
    api: APIClient, success: dict[str, Any], execution_id: str
) -> None:
    """The ``url`` in the answer must lead to the run; an id the read API cannot address
    would have to be refused instead."""
    success["execution_id"] = execution_id

    response = post(api, success)

    if response.status_code == 400:
        assert response.json()["path"] == "$.execution_id"
        assert Run.objects.count() == 0
    else:
        assert response.status_code == 201, response.content
        found = api.get(response.json()["url"])
        assert found.status_code == 200, found.content
        assert found.json()["execution_id"] == execution_id


# -- authentication ------------------------------------------------------------------


def test_request_without_a_key_is_refused_with_401(
    db: None, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    before = row_counts()

    response = post(APIClient(), success)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert row_counts() == before


def test_unknown_key_is_refused_with_401(
    api: APIClient, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer dfk_not-a-key-anyone-was-given")
    before = row_counts()

    response = post(client, success)

    assert response.status_code == 401
    assert response.json()["detail"] == "Authorization: unknown API key"
    assert row_counts() == before
    assert_still_serving(api, success)


def test_revoked_key_is_refused_with_401(
    api: APIClient, api_key: str, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    ApiKey.objects.get(prefix=api_key[:12]).revoke()
    before = row_counts()

    response = post(api, success)

    assert response.status_code == 401
    assert response.json()["detail"] == "Authorization: this API key was revoked"
    assert row_counts() == before


def test_signed_in_user_without_a_key_cannot_ingest(
    member: Any, stored_failure: dict[str, Any], success: dict[str, Any]
) -> None:
    client = APIClient()
    assert client.login(username="alice", password="pw-alice-123")
    before = row_counts()

    response = post(client, success)

    assert response.status_code == 403
    assert "API key" in response.json()["detail"]
    assert row_counts() == before


def test_key_stores_runs_in_its_own_project_only(
    api: APIClient, project: Project, other_project: Project, success: dict[str, Any]
) -> None:
    assert post(api, success).status_code == 201

    assert Run.objects.get(execution_id=SUCCESS_ID).project == project
    assert not Run.objects.filter(project=other_project).exists()
