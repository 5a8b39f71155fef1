"""A capture policy applied on every way in (DashFlow JSON, live events, DashStream,
OTLP): each rule kind lands as its marker, and a redacted secret is nowhere in the
stored bytes (every table searched, compressed columns too), the exports or the pages.

The issue's done-when: a project with "redact /api_key and emails" stores no secret.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.traces.capture_support import tables_holding
from tests.traces.test_dashstream_ingest import body_of, frames_of
from tests.traces.test_dashstream_ingest import post as post_frames
from traces import formats, store
from traces.capture_policy import save_policy
from traces.models import (
    ApiKey,
    CaptureAttachment,
    DashStreamCursor,
    ExportFormat,
    KeyScope,
    Membership,
    Project,
    Role,
    Run,
)

pytestmark = pytest.mark.django_db

SECRET = "sk-live-9f8e7d6c5b4a39281706"
EMAIL = "ceo.private@example.com"
LONG = "lorem ipsum dolor sit amet " * 20
DOC = {"pages": ["first page", "second page"]}
POLICY = {
    "rules": [
        {"path": "/api_key", "action": "redact"},
        {"path": "/notes", "action": "truncate", "max_bytes": 32},
        {"path": "/scratch", "action": "drop"},
        {"path": "/document", "action": "attachment"},
        {"metadata": "/session_token", "action": "drop"},
    ],
    "detectors": ["email"],
}


def salted(state: Any) -> Any:
    """A state with every rule's target in it, and an email deep inside."""
    base = state if isinstance(state, dict) else {"value": state}
    return {
        **base,
        "api_key": SECRET,
        "notes": LONG,
        "scratch": {"tmp": 1},
        "document": DOC,
        "messages": [{"role": "user", "content": f"please mail {EMAIL} the report"}],
    }


def salted_doc(fixtures_dir: Path, name: str, execution_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((fixtures_dir / name).read_text())
    doc = copy.deepcopy(doc)
    doc["execution_id"] = execution_id
    for node in doc["nodes_executed"]:
        node["state_before"] = salted(node.get("state_before"))
        node["state_after"] = salted(node.get("state_after"))
        node["metadata"] = {**node.get("metadata", {}), "session_token": SECRET}
    for error in doc.get("errors", []):
        error["message"] = f"{error['message']} (user {EMAIL})"
    doc["final_state"] = salted(doc.get("final_state"))
    doc["metadata"] = {**doc.get("metadata", {}), "session_token": SECRET, "owner": EMAIL}
    return doc


@pytest.fixture
def policy(project: Project) -> Project:
    save_policy(project, POLICY)
    return project


@pytest.fixture
def viewer(project: Project) -> Client:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("vera", password="pw-vera-123")
    Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    return client


def assert_captured(project: Project, api: APIClient, viewer: Client, execution_id: str) -> None:
    """Each rule's marker in the stored run, and neither secret anywhere."""
    run = Run.objects.get(project=project, execution_id=execution_id)
    trace = store.load_trace(run)
    states = [n.state_after for n in trace.nodes_executed if isinstance(n.state_after, dict)]
    assert states, "the run has no states to check"
    for state in states:
        assert state["api_key"]["$redacted"] == "rules[0]"
        assert len(state["api_key"]["sha256"]) == 16
        assert state["notes"]["$truncated"] == 32
        assert state["notes"]["bytes"] == len(LONG.encode())
        assert LONG.startswith(state["notes"]["head"])
        assert "scratch" not in state
        assert state["document"]["$attachment"]
        assert "[redacted:email:" in state["messages"][0]["content"]
    ident = states[0]["document"]["$attachment"]
    assert CaptureAttachment.objects.filter(project=project, ident=ident).exists()
    fetched = api.get(f"/api/v1/attachments/{ident}")
    assert fetched.status_code == 200, fetched.content
    assert fetched.json()["value"] == DOC

    assert tables_holding(SECRET) == []
    assert tables_holding(EMAIL) == []

    for fmt in ExportFormat.values:
        body = b"".join(chunk for chunk, _ in formats.encode_run(fmt, trace))
        assert SECRET.encode() not in body, fmt
        assert EMAIL.encode() not in body, fmt
        if fmt == ExportFormat.TRACES_JSONL:
            assert b'"$redacted":"rules[0]"' in body  # exports carry the markers as stored
    as_json = api.get(f"/api/v1/runs/{execution_id}/trace").content
    assert b"$redacted" in as_json
    base = f"/projects/{project.slug}/runs/{execution_id}/"
    pages = [
        viewer.get(base),
        *(viewer.get(f"{base}steps/{n.index}.json") for n in trace.nodes_executed),
    ]
    for page in pages:
        assert page.status_code == 200
        assert SECRET.encode() not in page.content
        assert EMAIL.encode() not in page.content


def test_a_posted_trace_is_captured_before_it_is_stored(
    policy: Project, api: APIClient, viewer: Client, fixtures_dir: Path
) -> None:
    doc = salted_doc(fixtures_dir, "tool_timeout_failure.json", "posted")
    response = api.post("/api/v1/traces", doc, format="json")
    assert response.status_code == 201, response.content
    assert_captured(policy, api, viewer, "posted")
    # The same trace again writes nothing: the markers are the same bytes.
    before = Run.objects.get(execution_id="posted").updated_at
    again = api.post("/api/v1/traces", doc, format="json")
    assert again.status_code == 200, again.content
    assert Run.objects.get(execution_id="posted").updated_at == before


def test_live_events_are_captured_before_they_are_stored(
    policy: Project, api: APIClient, viewer: Client, fixtures_dir: Path
) -> None:
    doc = salted_doc(fixtures_dir, "research_agent_success.json", "live")
    events: list[dict[str, Any]] = [
        {
            "seq": 1,
            "type": "run_started",
            "data": {"metadata": doc["metadata"], "initial_state": salted({})},
        }
    ]
    for node in doc["nodes_executed"]:
        events.append({"seq": len(events) + 1, "type": "node_finished", "data": node})
    events.append(
        {
            "seq": len(events) + 1,
            "type": "error",
            "data": {"node": "x", "message": f"failed for {EMAIL}", "state_at_error": salted({})},
        }
    )
    events.append(
        {
            "seq": len(events) + 1,
            "type": "run_finished",
            "data": {"completed": True, "final_state": doc["final_state"]},
        }
    )
    response = api.post("/api/v1/runs/live/events", {"events": events}, format="json")
    assert response.status_code in (200, 201, 202), response.content
    assert_captured(policy, api, viewer, "live")


def test_dashstream_frames_are_captured_with_the_state_the_cursor_holds(
    policy: Project, api: APIClient, viewer: Client, fixtures_dir: Path
) -> None:
    doc = salted_doc(fixtures_dir, "research_agent_success.json", "streamed")
    frames = frames_of(doc)
    # Two requests: the cursor holds the state between them, and must hold it captured.
    half = len(frames) // 2
    for part in (frames[:half], frames[half:]):
        response = post_frames(api, body_of(part))
        assert response.status_code == 200, response.content
        assert tables_holding(SECRET) == []
    assert_captured(policy, api, viewer, "streamed")
    # The patches of the second request applied to the captured state the cursor held,
    # and a producer's state_hash (of its own state) did not mark the run out of sync.
    cursor = DashStreamCursor.objects.get(run__execution_id="streamed")
    assert not cursor.needs_resync, cursor.resync_reason
    run = Run.objects.get(execution_id="streamed")
    want = [n["node"] for n in doc["nodes_executed"]]
    assert [n.node for n in store.load_trace(run).nodes_executed] == want


def test_an_unchanged_policy_stores_what_came(
    project: Project, api: APIClient, fixtures_dir: Path
) -> None:
    doc = salted_doc(fixtures_dir, "research_agent_success.json", "plain")
    assert api.post("/api/v1/traces", doc, format="json").status_code in (200, 201)
    assert tables_holding(SECRET)  # the search finds what is there


def key_client(project: Project, scope: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, scope=scope)[1]}")
    return client


def test_the_policy_api_is_for_admins_and_admin_keys(project: Project) -> None:
    admin = key_client(project, KeyScope.ADMIN)
    assert admin.get("/api/v1/capture-policy").json() == {"rules": [], "detectors": []}
    saved = admin.put("/api/v1/capture-policy", POLICY, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json() == POLICY
    assert admin.get("/api/v1/capture-policy").json() == POLICY
    for scope in (KeyScope.READ, KeyScope.WRITE):
        refused = key_client(project, scope).put("/api/v1/capture-policy", {}, format="json")
        assert refused.status_code == 403
        assert f"scope is {scope}" in refused.json()["detail"]
        assert key_client(project, scope).get("/api/v1/capture-policy").status_code == 403
    project.refresh_from_db()
    assert project.capture_policy == POLICY


def test_a_bad_policy_is_a_400_naming_the_rule_and_keeps_the_old_one(project: Project) -> None:
    admin = key_client(project, KeyScope.ADMIN)
    assert admin.put("/api/v1/capture-policy", POLICY, format="json").status_code == 200
    bad = {"rules": [{"path": "/x", "action": "truncate", "max_bytes": 1}]}
    refused = admin.put("/api/v1/capture-policy", bad, format="json")
    assert refused.status_code == 400
    assert refused.json()["path"] == "$.rules[0].max_bytes"
    assert admin.get("/api/v1/capture-policy").json() == POLICY


OTLP_POLICY = {
    "rules": [
        {"path": "/question", "action": "redact"},
        {"path": "/notes", "action": "drop"},
        {"path": "/messages/*/data/content", "action": "truncate", "max_bytes": 16},
        {"path": "/messages/*/data/tool_calls", "action": "attachment"},
    ],
    "detectors": ["email"],
}


def test_otlp_spans_are_captured_in_the_span_buffer_and_the_run(
    project: Project, api: APIClient, viewer: Client, settings: Any
) -> None:
    from tests.traces.test_otlp import capture, encode_spans
    from tests.traces.test_otlp import post as post_spans

    settings.OTLP_WORKERS = 1
    save_policy(project, OTLP_POLICY)
    spans = capture("openinference", city=EMAIL)
    ended = sorted(spans, key=lambda s: s.end_time_unix_nano)
    root = ended.pop()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project)[1]}")
    # Without the root the run is live and its spans wait in the buffer: stored bytes.
    assert post_spans(client, encode_spans(ended)).status_code == 200
    assert tables_holding(EMAIL) == []
    assert post_spans(client, encode_spans([root])).status_code == 200
    assert tables_holding(EMAIL) == []

    execution_id = spans[0].trace_id.hex()
    trace = store.load_trace(Run.objects.get(project=project, execution_id=execution_id))
    first = trace.nodes_executed[0].state_before
    assert first["question"]["$redacted"] == "rules[0]"
    assert all("notes" not in n.state_before for n in trace.nodes_executed)
    # LangChain's serialized messages: {"type": ..., "data": {"content", "tool_calls"}}.
    messages = [m["data"] for m in trace.nodes_executed[-1].state_before["messages"]]
    calls = messages[1]["tool_calls"]
    assert calls["rule"] == "rules[3]"
    fetched = api.get(f"/api/v1/attachments/{calls['$attachment']}")
    assert fetched.json()["value"][0]["name"] == "lookup_weather"
    answer = messages[2]["content"]  # "sunny in <email>" with the email redacted, then cut
    assert answer["$truncated"] == 16
    assert answer["head"] == "sunny in [redact"
    page = viewer.get(f"/projects/{project.slug}/runs/{execution_id}/")
    assert page.status_code == 200
    assert EMAIL.encode() not in page.content
