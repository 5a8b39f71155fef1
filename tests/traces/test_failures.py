"""Failure grouping: the normalisation, fingerprints, recording from both ingestion paths
(idempotent), regression reopen, and the backfill command."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from traces.failures import record_run
from traces.fingerprint import fingerprint, normalize
from traces.models import Activity, Failure, FailureGroup, GroupStatus, Project, Run

TIMEOUT_RUN = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"


@pytest.mark.parametrize(
    ("message", "normalized"),
    [
        ("Timeout: GET https://a/1 exceeded 30s", "Timeout: GET <url> exceeded <num>s"),
        ("Timeout: GET https://b/2 exceeded 31s", "Timeout: GET <url> exceeded <num>s"),
        ("user 550e8400-e29b-41d4-a716-446655440000 not found", "user <uuid> not found"),
        ("commit 3f2a9c1d7e8b is missing", "commit <hex> is missing"),
        ("segfault at 0x7f3a2b", "segfault at <hex>"),
        ("request req_8f3a9c2b failed", "request req_<hex> failed"),
        ("charge ch_3N2b9XkP0qA declined", "charge ch_<id> declined"),
        ("mail to bob.smith@example.com bounced", "mail to <email> bounced"),
        ("missing field 'citations' at 12", "missing field <str> at <num>"),
        ('KeyError: "user_id"', "KeyError: <str>"),
        ("can't open /var/lib/app/data.db", "can't open <path>"),
        ("took 1.5ms for 2,000 tokens", "took <num>ms for <num> tokens"),
        ("connect 10.0.0.1:8080 refused", "connect <ip> refused"),
        ("at 2026-03-02T09:30:00.120+00:00 it failed", "at <date> it failed"),
        ("step 3 of run-42", "step <num> of run-<num>"),
        # Digits inside an identifier name it: they are not values.
        ("RateLimit: model gpt-4o-mini on s3 (utf8, user123)", None),
        ("  spaced \n  out  ", "spaced out"),
    ],
)
def test_normalize_replaces_what_varies_between_occurrences(
    message: str, normalized: str | None
) -> None:
    expected = message if normalized is None else normalized

    assert normalize(message) == expected
    assert normalize(expected) == expected  # idempotent


def test_the_two_timeouts_share_a_fingerprint_and_other_kinds_do_not() -> None:
    a = fingerprint("retriever", "Timeout", "Timeout: GET https://a/1 exceeded 30s")
    b = fingerprint("retriever", "Timeout", "Timeout: GET https://b/2 exceeded 31s")

    assert a == b
    assert len(a) == 64
    # Stable across processes and releases: a stored fingerprint keeps matching.
    assert a == fingerprint("retriever", "Timeout", "Timeout: GET <url> exceeded <num>s")
    assert fingerprint("reader", "Timeout", "Timeout: GET https://a/1 exceeded 30s") != a
    assert fingerprint("retriever", "RateLimit", "Timeout: GET https://a/1 exceeded 30s") != a
    assert fingerprint("retriever", None, "x") == fingerprint("retriever", "", "x")


def load(fixtures_dir: Path, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((fixtures_dir / name).read_bytes())
    return body


def timeout_trace(fixtures_dir: Path, execution_id: str, url: str, secs: int) -> dict[str, Any]:
    """The shared timeout fixture as another run, failing on another URL and duration."""
    trace = load(fixtures_dir, "tool_timeout_failure.json")
    trace["execution_id"] = execution_id
    message = f"Timeout: GET {url} exceeded {secs}s"
    trace["errors"][0]["message"] = message
    trace["nodes_executed"][-1]["error_message"] = message
    return trace


def post_trace(api: APIClient, trace: dict[str, Any]) -> int:
    response = api.post("/api/v1/traces", trace, format="json")
    assert response.status_code in (200, 201), response.content
    return response.status_code


def test_a_failed_trace_makes_one_group_of_its_error_and_failed_step(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    post_trace(api, load(fixtures_dir, "tool_timeout_failure.json"))
    post_trace(api, load(fixtures_dir, "research_agent_success.json"))

    group = FailureGroup.objects.get(project=project)
    assert (group.node, group.error_type) == ("retriever", "Timeout")
    assert group.message == "Timeout: GET <url> exceeded <num>s"
    assert group.sample_message == "Timeout: GET https://example.org/doc/4 exceeded 30s"
    assert group.status == GroupStatus.NEW
    # The ErrorTrace covers the failed step (same execution index): one occurrence.
    assert group.count == 1
    failure = Failure.objects.get(group=group)
    assert (failure.key, failure.step_position) == ("error:0", 4)
    assert failure.run.execution_id == TIMEOUT_RUN
    assert group.first_seen == group.last_seen == failure.seen_at
    assert failure.seen_at.isoformat().startswith("2026-03-02T09:30:")


def test_reposting_the_same_or_an_updated_trace_adds_nothing(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    trace = load(fixtures_dir, "tool_timeout_failure.json")
    assert post_trace(api, trace) == 201
    assert post_trace(api, trace) == 200
    changed = copy.deepcopy(trace)
    changed["metadata"]["note"] = "re-sent with new metadata"  # replaces the rows
    assert post_trace(api, changed) == 200

    group = FailureGroup.objects.get(project=project)
    assert group.count == 1
    assert Failure.objects.count() == 1


def test_similar_failures_of_many_runs_count_in_one_group(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    post_trace(api, timeout_trace(fixtures_dir, "run-a", "https://a/1", 30))
    post_trace(api, timeout_trace(fixtures_dir, "run-b", "https://b/2", 31))
    other = timeout_trace(fixtures_dir, "run-c", "https://c/3", 45)
    other["errors"][0]["error_type"] = "ConnectTimeout"
    post_trace(api, other)

    groups = {g.error_type: g for g in FailureGroup.objects.filter(project=project)}
    assert set(groups) == {"Timeout", "ConnectTimeout"}
    assert groups["Timeout"].count == 2
    assert groups["ConnectTimeout"].count == 1
    assert groups["Timeout"].sample_message in {
        "Timeout: GET https://a/1 exceeded 30s",
        "Timeout: GET https://b/2 exceeded 31s",
    }


def post_events(api: APIClient, run: str, *events: dict[str, Any]) -> None:
    response = api.post(f"/api/v1/runs/{run}/events", {"events": list(events)}, format="json")
    assert response.status_code == 200, response.content


def node(index: int, name: str, **extra: Any) -> dict[str, Any]:
    data = {"node": name, "index": index, "duration_ms": 5, "tokens_used": 1, **extra}
    return data


ERROR = {
    "node": "retriever",
    "message": "Timeout: GET https://x/9 exceeded 60s",
    "error_type": "Timeout",
    "execution_index": 1,
    "timestamp": "2026-03-03T10:00:00.000+00:00",
}


def test_live_events_group_once_however_often_they_are_retried(
    api: APIClient, project: Project
) -> None:
    batch = [
        {"seq": 1, "type": "run_started", "data": {}},
        {"seq": 2, "type": "node_finished", "data": node(0, "planner")},
        {
            "seq": 3,
            "type": "node_finished",
            "data": node(1, "retriever", success=False, error_message=ERROR["message"]),
        },
        {"seq": 4, "type": "error", "data": ERROR},
    ]
    post_events(api, "live-1", *batch)
    post_events(api, "live-1", *batch)  # a retried batch
    post_events(api, "live-1", {"seq": 5, "type": "run_finished", "data": {"completed": False}})

    group = FailureGroup.objects.get(project=project)
    assert group.count == 1
    assert group.message == "Timeout: GET <url> exceeded <num>s"
    assert [f.key for f in Failure.objects.all()] == ["error:0"]


def test_a_failed_step_grouped_live_moves_when_its_error_arrives_later(
    api: APIClient, project: Project
) -> None:
    failed = node(1, "retriever", success=False, error_message=ERROR["message"])
    post_events(api, "live-2", {"seq": 1, "type": "node_finished", "data": failed})
    first = FailureGroup.objects.get(project=project)
    # Its message names the type, so the guess already matches the error's group.
    assert (first.error_type, first.count) == ("Timeout", 1)
    assert Failure.objects.get().key == "step:1"

    post_events(api, "live-2", {"seq": 2, "type": "error", "data": ERROR})

    group = FailureGroup.objects.get(project=project)
    assert group.pk == first.pk
    assert group.count == 1
    assert Failure.objects.get().key == "error:0"


def test_a_transient_group_from_a_live_guess_is_dropped_when_nothing_is_left_in_it(
    api: APIClient, project: Project
) -> None:
    failed = node(1, "retriever", success=False, error_message="connection reset")
    post_events(api, "live-3", {"seq": 1, "type": "node_finished", "data": failed})
    assert FailureGroup.objects.get().error_type == ""

    post_events(api, "live-3", {"seq": 2, "type": "error", "data": ERROR})

    assert [(g.error_type, g.count) for g in FailureGroup.objects.all()] == [("Timeout", 1)]


def test_a_streamed_run_then_its_complete_trace_counts_once(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    trace = load(fixtures_dir, "tool_timeout_failure.json")
    events: list[dict[str, Any]] = [{"seq": 1, "type": "run_started", "data": {}}]
    for n in trace["nodes_executed"]:
        events.append({"seq": len(events) + 1, "type": "node_finished", "data": n})
    events.append({"seq": len(events) + 1, "type": "error", "data": trace["errors"][0]})
    post_events(api, TIMEOUT_RUN, *events)
    assert FailureGroup.objects.get().count == 1

    assert post_trace(api, trace) == 200

    group = FailureGroup.objects.get()
    assert group.count == 1
    assert Failure.objects.get().key == "error:0"


def test_a_run_that_ended_incomplete_without_an_error_is_a_failure_of_its_last_node(
    api: APIClient, project: Project
) -> None:
    post_events(
        api,
        "live-4",
        {"seq": 1, "type": "node_finished", "data": node(0, "planner")},
        {"seq": 2, "type": "node_finished", "data": node(1, "writer")},
        {"seq": 3, "type": "run_finished", "data": {"completed": False}},
    )

    group = FailureGroup.objects.get()
    assert (group.node, group.count) == ("writer", 1)
    assert group.message.startswith("run ended without completing")
    assert Failure.objects.get().key == "run"


def test_a_new_occurrence_of_a_resolved_group_reopens_it_and_logs_a_regression(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    post_trace(api, timeout_trace(fixtures_dir, "run-a", "https://a/1", 30))
    group = FailureGroup.objects.get()
    group.status = GroupStatus.RESOLVED
    group.save()
    post_trace(api, timeout_trace(fixtures_dir, "run-a", "https://a/1", 30))  # same run again
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED
    assert group.regressed_at is None

    post_trace(api, timeout_trace(fixtures_dir, "run-b", "https://b/2", 31))

    group.refresh_from_db()
    assert group.status == GroupStatus.NEW
    assert group.regressed_at is not None
    assert group.count == 2
    (entry,) = Activity.objects.filter(group=group)
    assert entry.verb == "regressed"
    assert entry.actor is None
    assert entry.detail["run"] == "run-b"
    assert (entry.detail["from"], entry.detail["to"]) == ("resolved", "new")


def test_an_ignored_group_stays_ignored(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    post_trace(api, timeout_trace(fixtures_dir, "run-a", "https://a/1", 30))
    FailureGroup.objects.update(status=GroupStatus.IGNORED)

    post_trace(api, timeout_trace(fixtures_dir, "run-b", "https://b/2", 31))

    group = FailureGroup.objects.get()
    assert (group.status, group.count, group.regressed_at) == (GroupStatus.IGNORED, 2, None)


def test_regroup_failures_backfills_the_demo_data_and_is_idempotent(
    project: Project, fixtures_dir: Path
) -> None:
    call_command("seed_demo", runs=60, stdout=io.StringIO())
    demo = Project.objects.get(slug="demo")
    expected = {
        (g.node, g.error_type, g.message, g.count)
        for g in FailureGroup.objects.filter(project=demo)
    }
    failed_runs = Run.objects.filter(project=demo, status="failed").count()
    # The demo's three kinds of failure (plus the fixture's timeout), whatever the numbers.
    assert {(n, t, m) for n, t, m, _ in expected} == {
        ("retriever", "Timeout", "Timeout: GET <url> exceeded <num>s"),
        ("reader", "RateLimit", "RateLimit: <num> from model gpt-4o-mini, retry after <num>s"),
        ("writer", "ValidationError", "ValidationError: answer missing field <str> at <num>"),
    }
    assert sum(c for *_, c in expected) == failed_runs  # one error per failed demo run

    # Wipe the groups as if the data predated them; the command rebuilds the same ones.
    FailureGroup.objects.all().delete()
    out = io.StringIO()
    call_command("regroup_failures", "--project", "demo", stdout=out)
    rebuilt = {
        (g.node, g.error_type, g.message, g.count)
        for g in FailureGroup.objects.filter(project=demo)
    }
    assert rebuilt == expected
    assert "3 groups in all" in out.getvalue()

    before = list(FailureGroup.objects.values_list("pk", "count", "last_seen"))
    out = io.StringIO()
    call_command("regroup_failures", stdout=out)
    assert out.getvalue().startswith("0 group updates")
    assert list(FailureGroup.objects.values_list("pk", "count", "last_seen")) == before


def test_record_run_on_a_run_without_failures_writes_nothing(
    api: APIClient, project: Project, fixtures_dir: Path
) -> None:
    post_trace(api, load(fixtures_dir, "research_agent_success.json"))
    run = Run.objects.get()

    assert record_run(run) == []
    assert not FailureGroup.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_runs_failing_the_same_way_at_once_all_count(project: Project, fixtures_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from traces.parsing import parse_trace
    from traces.store import save_trace

    def distinct_states(trace: dict[str, Any], i: int) -> bytes:
        # Each run its own states: shared snapshots are tests/traces/test_store.py's topic.
        for n in trace["nodes_executed"]:
            for name in ("state_before", "state_after"):
                if isinstance(n[name], dict):
                    n[name]["run"] = i
        trace["errors"][0]["state_at_error"] = {"run": i}
        trace["final_state"] = {"run": i}
        return json.dumps(trace).encode()

    bodies = [
        distinct_states(timeout_trace(fixtures_dir, f"run-{i}", f"https://h/{i}", 30 + i), i)
        for i in range(8)
    ]

    def ingest(body: bytes) -> None:
        try:
            save_trace(project, parse_trace(body))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(ingest, bodies))

    group = FailureGroup.objects.get(project=project)
    assert group.count == 8
    assert Failure.objects.filter(group=group).count() == 8
