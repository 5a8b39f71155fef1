"""Alert rules: what each kind measures over its window, de-duplication, the webhook's
signature, and an alert firing end to end to a webhook receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from dashflow_site.celery import app as celery_app
from traces import alerts, tasks, webhooks
from traces.alert_measures import measure
from traces.models import (
    AlertFiring,
    AlertKind,
    AlertRule,
    DeliveryStatus,
    FailureGroup,
    GroupStatus,
    InboxItem,
    Membership,
    Project,
    Role,
)
from traces.percentiles import percentile


def just_now() -> datetime:
    """A start a second ago: a trace ends 5 ms after its start, and its failure is seen
    then, so one started "now" could end after the evaluation that follows at once (whose
    window ends at its own now) and be left out of it."""
    return timezone.now() - timedelta(seconds=1)


def trace(
    execution_id: str,
    started: datetime,
    *,
    failed: bool = False,
    durations: dict[str, int] | None = None,
    error: str = "boom",
) -> dict[str, Any]:
    """A small valid trace: a step per node of ``durations``, the last failing when asked."""
    stamp = started.isoformat(timespec="milliseconds")
    durations = durations or {"work": 5}
    nodes = [
        {
            "node": node,
            "duration_ms": ms,
            "state_before": {"n": i},
            "state_after": {"n": i + 1},
            "success": not (failed and i == len(durations) - 1),
            "error_message": error if failed and i == len(durations) - 1 else None,
            "index": i,
            "started_at": stamp,
        }
        for i, (node, ms) in enumerate(durations.items())
    ]
    last = nodes[-1]["node"]
    return {
        "thread_id": "t",
        "execution_id": execution_id,
        "nodes_executed": nodes,
        "total_duration_ms": sum(durations.values()),
        "errors": (
            [{"node": last, "message": error, "error_type": "Boom", "execution_index": 0}]
            if failed
            else []
        ),
        "completed": not failed,
        "started_at": stamp,
        "ended_at": (started + timedelta(milliseconds=5)).isoformat(timespec="milliseconds"),
        "final_state": {"n": 1},
        "metadata": {"graph_name": "agent"},
    }


def send(api: APIClient, body: dict[str, Any]) -> None:
    response = api.post("/api/v1/traces", body, format="json")
    assert response.status_code in (200, 201), response.content


def rule(project: Project, kind: str, **fields: Any) -> AlertRule:
    return alerts.create_rule(project, {"name": kind, "kind": kind, **fields})


@pytest.fixture
def admin(project: Project) -> Any:
    user = get_user_model().objects.create_user("ada", password="pw-ada-12345")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    return user


# --- what each kind measures ------------------------------------------------------------


@pytest.mark.django_db
def test_failure_rate_counts_finished_runs_in_the_window(project: Project, api: APIClient) -> None:
    now = timezone.now()
    send(api, trace("old-fail", now - timedelta(hours=3), failed=True))  # outside the window
    send(api, trace("ok-1", now - timedelta(minutes=5)))
    send(api, trace("ok-2", now - timedelta(minutes=4)))
    send(api, trace("fail-1", now - timedelta(minutes=3), failed=True))
    r = rule(project, AlertKind.FAILURE_RATE, threshold=0.3, window_minutes=60)
    found = measure(r, now)
    assert found.value == pytest.approx(1 / 3)
    assert found.breached
    assert found.execution_ids == ["fail-1"]
    r.threshold = 0.5
    assert not measure(r, now).breached


@pytest.mark.django_db
def test_percentile_matches_percentile_cont() -> None:
    assert percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    assert percentile([7], 0.95) == 7
    assert percentile([10, 20], 0.5) == 15


@pytest.mark.django_db
def test_node_p95_is_the_interpolated_percentile_of_the_nodes_steps(
    project: Project, api: APIClient
) -> None:
    now = timezone.now()
    for i in range(1, 21):  # "slow" takes 10, 20, ..., 200 ms; "fast" stays at 1 ms
        started = now - timedelta(minutes=30 - i)
        send(api, trace(f"run-{i:02d}", started, durations={"fast": 1, "slow": i * 10}))
    send(api, trace("old", now - timedelta(days=2), durations={"fast": 1, "slow": 10_000}))
    r = rule(project, AlertKind.NODE_P95, node="slow", threshold=180, window_minutes=60)
    found = measure(r, now)
    # 20 values 10..200: position 0.95 * 19 = 18.05 -> 190 + 0.05 * 10 (the same on both DBs).
    assert found.value == pytest.approx(190.5)
    assert found.breached
    assert found.execution_ids == ["run-20", "run-19"]  # the steps above 180 ms, slowest first
    r.threshold = 191
    assert not measure(r, now).breached
    assert measure(rule(project, AlertKind.NODE_P95, node="fast"), now).value == 1


@pytest.mark.django_db
def test_new_failure_group_fires_once_per_group(project: Project, api: APIClient) -> None:
    now = timezone.now()
    send(api, trace("a", now - timedelta(minutes=2), failed=True, error="disk full"))
    r = rule(project, AlertKind.NEW_FAILURE_GROUP, window_minutes=60)
    first = alerts.evaluate_rule(r.pk)
    assert first is not None
    assert first.value == 1
    assert first.execution_ids == ["a"]
    send(api, trace("b", just_now(), failed=True, error="disk full"))  # same group
    assert alerts.evaluate_rule(r.pk) is None
    send(api, trace("c", just_now(), failed=True, error="quota exceeded"))  # a new group
    second = alerts.evaluate_rule(r.pk)
    assert second is not None
    assert second.execution_ids == ["c"]


@pytest.mark.django_db
def test_regression_fires_when_a_resolved_group_fails_again(
    project: Project, api: APIClient
) -> None:
    send(api, trace("a", timezone.now() - timedelta(minutes=5), failed=True))
    r = rule(project, AlertKind.REGRESSION, window_minutes=60)
    assert alerts.evaluate_rule(r.pk) is None
    FailureGroup.objects.filter(project=project).update(status=GroupStatus.RESOLVED)
    send(api, trace("b", just_now(), failed=True))
    firing = alerts.evaluate_rule(r.pk)
    assert firing is not None
    assert firing.execution_ids[0] == "b"
    assert alerts.evaluate_rule(r.pk) is None


@pytest.mark.django_db
def test_a_threshold_rule_stays_quiet_while_breached_and_fires_again_after_clearing(
    project: Project, api: APIClient, member: Any
) -> None:
    now = timezone.now()
    send(api, trace("f1", now - timedelta(minutes=5), failed=True))
    r = rule(project, AlertKind.FAILURE_RATE, threshold=0.5, window_minutes=10)
    assert alerts.evaluate_rule(r.pk, now) is not None
    assert alerts.evaluate_rule(r.pk, now + timedelta(minutes=1)) is None  # still breached
    assert alerts.evaluate_rule(r.pk, now + timedelta(minutes=30)) is None  # empty: clears
    r.refresh_from_db()
    assert not r.breached
    send(api, trace("f2", now + timedelta(minutes=31), failed=True))
    assert alerts.evaluate_rule(r.pk, now + timedelta(minutes=32)) is not None
    assert AlertFiring.objects.filter(rule=r).count() == 2
    assert InboxItem.objects.filter(user=member, firing__rule=r).count() == 2


@pytest.mark.django_db
def test_a_disabled_rule_does_not_fire(project: Project, api: APIClient) -> None:
    send(api, trace("f1", just_now(), failed=True))
    r = rule(project, AlertKind.FAILURE_RATE, enabled=False)
    assert alerts.evaluate_rule(r.pk) is None
    assert tasks.evaluate_alerts() == 0


# --- the API ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_rules_api_refuses_bad_fields_by_name(project: Project, admin: Any) -> None:
    client = APIClient()
    client.force_authenticate(admin)
    url = f"/api/v1/alert-rules?project={project.slug}"
    cases = [
        ({"name": "x", "kind": "nope"}, "kind"),
        ({"name": "x", "kind": "node_p95", "threshold": 5}, "node"),
        ({"name": "x", "kind": "failure_rate", "threshold": 2}, "threshold"),
        ({"name": "x", "kind": "failure_rate", "window_minutes": 0}, "window_minutes"),
        ({"name": "x", "kind": "failure_rate", "webhook_url": "file:///etc/passwd"}, "webhook_url"),
        ({"kind": "failure_rate"}, "name"),
        ({"name": "x", "kind": "failure_rate", "colour": 1}, "colour"),
    ]
    for body, field in cases:
        response = client.post(url, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["path"] == field
    created = client.post(url, {"name": "p95", "kind": "node_p95", "node": "slow"}, format="json")
    assert created.status_code == 201
    assert len(created.json()["secret"]) == 64
    rule_url = f"/api/v1/alert-rules/{created.json()['id']}?project={project.slug}"
    assert client.patch(rule_url, {"enabled": False}, format="json").json()["enabled"] is False


@pytest.mark.django_db
def test_members_read_rules_without_secrets_and_cannot_write(project: Project, member: Any) -> None:
    rule(project, AlertKind.FAILURE_RATE)
    client = APIClient()
    client.force_authenticate(member)
    url = f"/api/v1/alert-rules?project={project.slug}"
    listed = client.get(url).json()["results"]
    assert len(listed) == 1
    assert "secret" not in listed[0]
    assert client.post(url, {"name": "x", "kind": "regression"}, format="json").status_code == 403


# --- the webhook ------------------------------------------------------------------------


def test_the_signature_is_the_hmac_of_the_body() -> None:
    body = b'{"event":"alert.fired"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert webhooks.sign("s3cret", body) == f"sha256={expected}"


class Receiver:
    """An HTTP server on 127.0.0.1 (a free port) that answers with the next of
    ``statuses`` (the last one repeats) and records each request."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[Message, bytes]] = []  # header names: any case
        self.delivered = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.headers, body))
                code = receiver.statuses[min(len(receiver.requests), len(receiver.statuses)) - 1]
                self.send_response(code)
                self.end_headers()
                if code < 300:
                    receiver.delivered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture(autouse=True)
def receivers_on_loopback(settings: Any) -> None:
    """The receivers here listen on 127.0.0.1, which webhooks refuse by default
    (``traces/egress.py``; tests/traces/test_egress.py tests that)."""
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture(autouse=True)
def tasks_in_process() -> Iterator[None]:
    """The evaluation and webhook tasks run in this process, as the embedded defaults run
    them, whether or not REDIS_URL names a broker (no worker listens to it here); the
    tasks, their retries and the HTTP delivery are the real ones."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(getattr(request, "param", [200]))
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def verify(secret: str, headers: Message, body: bytes) -> bool:
    """What the README tells a receiver to do."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-DashFlow-Signature"])


@pytest.mark.django_db(transaction=True)
def test_an_alert_fires_end_to_end_to_a_webhook_on_loopback(
    project: Project, api: APIClient, member: Any, receiver: Receiver
) -> None:
    r = rule(project, AlertKind.NODE_P95, node="slow", threshold=100, webhook_url=receiver.url)
    now = timezone.now()
    for i in range(5):
        send(api, trace(f"slow-{i}", now - timedelta(minutes=i), durations={"slow": 400}))

    assert tasks.evaluate_alerts.delay().get() == 1  # as the worker (or beat) runs it
    assert receiver.delivered.wait(10)

    headers, body = receiver.requests[0]
    assert verify(r.secret, headers, body)
    document = json.loads(body)
    assert document["sent_at"] == headers["X-DashFlow-Timestamp"]
    assert document["rule"] == {"id": r.pk, "name": "node_p95", "kind": "node_p95", "node": "slow"}
    assert document["firing"]["value"] == 400
    assert document["firing"]["threshold"] == 100
    assert document["window"]["minutes"] == 60
    assert {run["execution_id"] for run in document["runs"]} == {f"slow-{i}" for i in range(5)}
    assert document["runs"][0]["url"].endswith(
        f"/projects/{project.slug}/runs/{document['runs'][0]['execution_id']}/"
    )
    firing = AlertFiring.objects.get(rule=r)
    assert firing.webhook_status == DeliveryStatus.DELIVERED
    assert [a["status"] for a in firing.webhook_attempts] == [200]

    # The member's inbox has it, through the API.
    client = APIClient()
    client.force_authenticate(member)
    listed = client.get(f"/api/v1/inbox?project={project.slug}").json()
    assert listed["unread"] == 1
    assert listed["results"][0]["title"] == "Alert: node_p95"
    marked = client.post(f"/api/v1/inbox/read?project={project.slug}", {"all": True}, format="json")
    assert marked.json() == {"marked": 1, "unread": 0}

    # A second evaluation while the condition holds sends nothing more.
    assert tasks.evaluate_alerts.delay().get() == 0
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("receiver", [[500, 503, 200]], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_a_failing_webhook_is_retried_until_it_answers(
    project: Project, api: APIClient, receiver: Receiver
) -> None:
    r = rule(project, AlertKind.FAILURE_RATE, threshold=0, webhook_url=receiver.url)
    send(api, trace("f", just_now(), failed=True))
    tasks.evaluate_alerts()
    assert receiver.delivered.wait(10)
    firing = AlertFiring.objects.get(rule=r)
    assert [a["status"] for a in firing.webhook_attempts] == [500, 503, 200]
    assert firing.webhook_status == DeliveryStatus.DELIVERED
    bodies = [body for _, body in receiver.requests]
    assert all(verify(r.secret, h, b) for h, b in receiver.requests)
    assert len(bodies) == 3


@pytest.mark.parametrize("receiver", [[404]], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_a_refused_webhook_is_not_retried(
    project: Project, api: APIClient, receiver: Receiver
) -> None:
    r = rule(project, AlertKind.FAILURE_RATE, webhook_url=receiver.url)
    send(api, trace("f", just_now(), failed=True))
    tasks.evaluate_alerts()
    firing = AlertFiring.objects.get(rule=r)
    assert firing.webhook_status == DeliveryStatus.FAILED
    assert [a["status"] for a in firing.webhook_attempts] == [404]


@pytest.mark.django_db(transaction=True)
def test_retries_stop_at_the_limit(project: Project, api: APIClient, settings: Any) -> None:
    settings.ALERT_WEBHOOK_MAX_RETRIES = 2
    # Nothing listens on a port just closed: every attempt is refused.
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    r = rule(project, AlertKind.FAILURE_RATE, webhook_url=f"http://127.0.0.1:{port}/")
    send(api, trace("f", just_now(), failed=True))
    tasks.evaluate_alerts()
    firing = AlertFiring.objects.get(rule=r)
    assert firing.webhook_status == DeliveryStatus.FAILED
    assert len(firing.webhook_attempts) == 3  # the first try and two retries
    assert all(a["error"] for a in firing.webhook_attempts)


# --- the pages --------------------------------------------------------------------------


@pytest.mark.django_db
def test_settings_page_creates_a_rule_and_lists_firings_with_their_runs(
    client: Any, project: Project, api: APIClient, admin: Any
) -> None:
    client.force_login(admin)
    url = f"/projects/{project.slug}/settings/"
    refused = client.post(url, {"action": "create_rule", "name": "x", "kind": "node_p95"})
    assert refused.status_code == 302
    assert not AlertRule.objects.exists()
    client.post(
        url,
        {"action": "create_rule", "name": "failing", "kind": "failure_rate", "threshold": "0.1"},
    )
    r = AlertRule.objects.get()
    assert r.threshold == pytest.approx(0.1)
    send(api, trace("bad-run", just_now(), failed=True))
    assert alerts.evaluate_rule(r.pk) is not None
    page = client.get(url).content.decode()
    # The firing's failed run is linked at its failing step.
    assert f'href="/projects/{project.slug}/runs/bad-run/#step=0"' in page
    assert r.secret in page
    client.post(url, {"action": "disable_rule", "rule": r.pk})
    r.refresh_from_db()
    assert not r.enabled


@pytest.mark.django_db
def test_inbox_page_lists_items_and_marks_them_read(
    client: Any, project: Project, api: APIClient, member: Any
) -> None:
    r = rule(project, AlertKind.FAILURE_RATE)
    send(api, trace("bad-run", just_now(), failed=True))
    alerts.evaluate_rule(r.pk)
    client.force_login(member)
    page = client.get(f"/projects/{project.slug}/inbox/").content.decode()
    assert "Alert: failure_rate" in page
    assert 'id="inbox-unread" class="badge unread">1<' in page
    client.post(f"/projects/{project.slug}/inbox/", {"action": "read_all"})
    page = client.get(f"/projects/{project.slug}/runs/").content.decode()
    assert 'id="inbox-unread" class="badge unread" hidden>0<' in page
