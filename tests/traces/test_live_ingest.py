"""The live events endpoint in-process: validation (a 400 naming the path and the rule,
nothing stored), applying events to the run's rows, and totals."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from traces.models import Run, RunEvent, Step

RUN = "live-in-process"


def post(api: APIClient, events: list[dict[str, Any]], execution_id: str = RUN) -> Any:
    return api.post(f"/api/v1/runs/{execution_id}/events", {"events": events}, format="json")


def node(index: int, tokens: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "node": f"n{index}",
        "index": index,
        "duration_ms": 5,
        "tokens_used": tokens,
        "state_before": {"i": index},
        "state_after": {"i": index + 1},
        **extra,
    }


@pytest.mark.parametrize(
    ("events", "path", "rule"),
    [
        (
            [{"seq": 0, "type": "node_started", "data": {"node": "a", "index": 0}}],
            "$.events[0].seq",
            "expected an integer >= 1, got 0",
        ),
        (
            [{"seq": 1, "type": "node_exploded", "data": {}}],
            "$.events[0].type",
            "expected one of run_started, node_started, node_finished, error, run_finished,"
            " got 'node_exploded'",
        ),
        (
            [{"seq": 1, "type": "node_finished", "data": {"node": "a", "duration_ms": "5"}}],
            "$.events[0].data.duration_ms",
            'expected an unsigned integer, got "5"',
        ),
        (
            [{"seq": 1, "type": "node_started", "data": {"index": 0}}],
            "$.events[0].data.node",
            "required field is missing",
        ),
        (
            [{"seq": 1, "type": "error", "data": {"node": "a"}}],
            "$.events[0].data.message",
            "required field is missing",
        ),
        (
            [{"seq": 1, "type": "run_finished", "data": {"completed": "yes"}}],
            "$.events[0].data.completed",
            'expected a boolean, got "yes"',
        ),
        # The ranges and the NUL rule of a whole trace hold for its live parts too.
        (
            [{"seq": 1, "type": "node_started", "data": {"node": "a", "index": 10**400}}],
            "$.events[0].data.index",
            "expected an unsigned 64-bit integer, got 10000000000000000000... (401 digits)",
        ),
        (
            [{"seq": 1, "type": "run_started", "data": {"depth": 2**64}}],
            "$.events[0].data.depth",
            f"expected an unsigned 64-bit integer, got {2**64}",
        ),
        (
            [
                {
                    "seq": 1,
                    "type": "run_finished",
                    "data": {"completed": True, "total_tokens": 2**64},
                }
            ],
            "$.events[0].data.total_tokens",
            None,
        ),
        (
            [{"seq": 1, "type": "node_started", "data": {"node": "a\x00", "index": 0}}],
            "$.events[0].data.node",
            "contains a NUL character (\\u0000), allowed only in states",
        ),
        (
            [{"seq": 1, "type": "run_started", "data": {"metadata": {"k": ["\x00"]}}}],
            "$.events[0].data.metadata.k[0]",
            None,
        ),
        (
            [{"seq": 1, "type": "error", "data": {"node": "a", "message": "x\x00"}}],
            "$.events[0].data.message",
            None,
        ),
    ],
)
def test_a_bad_event_is_a_400_naming_the_path_and_nothing_is_stored(
    api: APIClient, events: list[dict[str, Any]], path: str, rule: str | None
) -> None:
    good = {"seq": 2, "type": "node_started", "data": {"node": "b", "index": 1}}

    response = post(api, [*events, good])

    assert response.status_code == 400, response.content
    assert response.json()["path"] == path
    if rule is not None:
        assert response.json()["rule"] == rule
    assert not Run.objects.filter(execution_id=RUN).exists()
    assert RunEvent.objects.count() == 0
    assert post(api, [good]).status_code == 200


def test_a_state_deeper_than_the_trace_limit_is_a_400(api: APIClient, settings: Any) -> None:
    # The step panel and the DashStream export read states recursively: a live event is
    # held to TRACE_MAX_DEPTH as a whole trace is, before it is decoded.
    deep: Any = 1
    for _ in range(250):
        deep = {"k": deep}

    response = post(api, [{"seq": 1, "type": "node_finished", "data": node(0, state_after=deep)}])

    assert response.status_code == 400, response.content
    assert response.json()["path"] == "$"
    assert f"TRACE_MAX_DEPTH={settings.TRACE_MAX_DEPTH}" in response.json()["rule"]
    assert not Run.objects.filter(execution_id=RUN).exists()


def test_a_nul_inside_a_state_is_kept(api: APIClient) -> None:
    event = {"seq": 1, "type": "node_finished", "data": node(0, state_after={"k": "a\x00b"})}

    assert post(api, [event]).status_code == 200
    step = api.get(f"/api/v1/runs/{RUN}/steps/0").json()
    assert step["state_after"] == {"k": "a\x00b"}


def test_a_body_that_is_not_utf8_is_a_400(api: APIClient) -> None:
    body = b'{"events": [{"seq": 1, "type": "run_started", "data": {"thread_id": "\xff"}}]}'

    response = api.post(f"/api/v1/runs/{RUN}/events", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "$: is not valid UTF-8 (JSON text must be UTF-8)",
        "path": "$",
        "rule": "is not valid UTF-8 (JSON text must be UTF-8)",
    }


def test_events_without_a_list_are_a_400(api: APIClient) -> None:
    response = api.post(f"/api/v1/runs/{RUN}/events", {"events": {}}, format="json")

    assert response.status_code == 400
    assert response.json()["path"] == "$.events"


def test_more_events_than_the_limit_are_a_400(api: APIClient, settings: Any) -> None:
    settings.TRACE_MAX_EVENTS = 3
    events = [
        {"seq": s, "type": "node_started", "data": {"node": "a", "index": s}} for s in range(1, 5)
    ]

    response = post(api, events)

    assert response.status_code == 400
    assert response.json()["path"] == "$.events"
    assert "TRACE_MAX_EVENTS=3" in response.json()["rule"]


def test_streamed_nodes_become_steps_with_their_states(api: APIClient) -> None:
    response = post(
        api,
        [
            {
                "seq": 1,
                "type": "run_started",
                "data": {"thread_id": "t-1", "metadata": {"graph_name": "g"}},
            },
            {"seq": 2, "type": "node_finished", "data": node(0)},
            {
                "seq": 3,
                "type": "node_finished",
                "data": node(1, success=False, error_message="boom"),
            },
        ],
    )

    assert response.status_code == 200
    assert response.json()["accepted"] == 3
    run = Run.objects.get(execution_id=RUN)
    assert (run.thread_id, run.graph_name, run.status) == ("t-1", "g", "failed")
    assert run.first_error == "boom"
    assert list(Step.objects.filter(run=run).values_list("node", flat=True)) == ["n0", "n1"]
    step = api.get(f"/api/v1/runs/{RUN}/steps/1").json()
    assert (step["state_before"], step["state_after"]) == ({"i": 1}, {"i": 2})


def test_run_finished_without_totals_keeps_the_tokens_the_nodes_added_up(api: APIClient) -> None:
    post(api, [{"seq": 1, "type": "node_finished", "data": node(0, tokens=70)}])
    post(api, [{"seq": 2, "type": "node_finished", "data": node(1, tokens=50)}])

    post(api, [{"seq": 3, "type": "run_finished", "data": {"completed": True}}])

    run = Run.objects.get(execution_id=RUN)
    assert run.total_tokens == 120
    assert run.status == "completed"


def test_run_finished_with_totals_sets_them(api: APIClient) -> None:
    post(api, [{"seq": 1, "type": "node_finished", "data": node(0, tokens=70)}])

    post(
        api,
        [
            {
                "seq": 2,
                "type": "run_finished",
                "data": {"completed": True, "total_tokens": 99, "total_duration_ms": 1234},
            }
        ],
    )

    run = Run.objects.get(execution_id=RUN)
    assert (run.total_tokens, run.duration_ms) == (99, 1234)


def test_an_execution_id_too_long_for_storage_is_a_400(api: APIClient) -> None:
    response = post(
        api,
        [{"seq": 1, "type": "node_started", "data": {"node": "a", "index": 0}}],
        execution_id="x" * 201,
    )

    assert response.status_code == 400
    assert response.json()["path"] == "execution_id"
    assert Run.objects.count() == 0


def test_live_ingestion_needs_an_api_key(member: Any) -> None:
    client = APIClient()
    client.force_login(member)

    response = post(client, [{"seq": 1, "type": "node_started", "data": {"node": "a", "index": 0}}])

    assert response.status_code == 403
