"""An alert end to end through a real Celery worker process: slow runs are posted, the
evaluation task is sent to a private Redis (no eager mode, no beat), the worker evaluates
the rule, logs the firing with its runs and delivers the signed webhook, with its retry
task, to a receiver on loopback. Without a worker nothing fires, and the test fails."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import redis as redis_client
from celery import Celery
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tests.servers import database_url, redis_server, server_env, wait_for
from tests.traces.test_alerts import Receiver, rule, send, trace, verify
from tests.traces.test_exports_worker import Worker, workers  # noqa: F401 (a fixture)
from traces.models import AlertFiring, AlertKind, DeliveryStatus, Project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver() -> Any:
    server = Receiver([503, 200])  # the first attempt fails: the worker retries it
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_worker_evaluates_the_rules_and_delivers_the_signed_webhook(
    project: Project,
    api: APIClient,
    receiver: Receiver,
    settings: Any,
    workers: list[Worker],  # noqa: F811 (the fixture imported above)
) -> None:
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True  # the rule is saved here, for loopback
    r = rule(project, AlertKind.NODE_P95, node="slow", threshold=100, webhook_url=receiver.url)
    now = timezone.now()
    for i in range(4):
        send(api, trace(f"slow-{i}", now - timedelta(minutes=i), durations={"slow": 450}))

    with redis_server() as redis:
        env = server_env(
            database_url(connection.settings_dict),
            redis.url,
            ALERT_WEBHOOK_ALLOW_PRIVATE="true",
            ALERT_WEBHOOK_BACKOFF="1",
        )
        # The task goes to the worker's broker by name, as beat sends it: this process
        # never runs it (its own Celery app may be eager; this one has no tasks at all).
        sender = Celery(broker=redis.url)
        sender.send_task("traces.tasks.evaluate_alerts")
        # Queued in Redis, and nothing has run it: no firing until a worker takes it.
        assert redis_client.Redis.from_url(redis.url).llen("celery") == 1
        assert not AlertFiring.objects.exists()

        worker = Worker(env, "alerts")
        workers.append(worker)
        worker.wait_ready()
        wait_for(receiver.delivered.is_set, 60, "the webhook from the worker")
        wait_for(
            lambda: AlertFiring.objects.filter(webhook_status=DeliveryStatus.DELIVERED).exists(),
            30,
            "the delivery logged on the firing",
        )
        sender.close()

    firing = AlertFiring.objects.get(rule=r)
    assert firing.value == 450
    assert sorted(firing.execution_ids) == [f"slow-{i}" for i in range(4)]
    assert [a["status"] for a in firing.webhook_attempts] == [503, 200]
    assert len(receiver.requests) == 2
    for headers, body in receiver.requests:
        assert verify(r.secret, headers, body)
    document = json.loads(receiver.requests[-1][1])
    assert document["rule"]["id"] == r.pk
    assert {run["execution_id"] for run in document["runs"]} == {f"slow-{i}" for i in range(4)}
    # The worker ran both tasks: the evaluation and the delivery, retried once.
    log = worker.log()
    assert "traces.tasks.evaluate_alerts" in log
    assert "traces.tasks.deliver_alert_webhook" in log
