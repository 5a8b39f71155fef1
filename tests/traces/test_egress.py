"""Webhook URLs and server-side request forgery (traces/egress.py): by default a rule's
URL must be http(s) and resolve to public addresses only, checked when the rule is saved
and again at delivery, which connects to the address it checked and follows no redirect."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.traces.test_alerts import Receiver, just_now, rule, send, tasks_in_process, trace
from traces import egress, tasks
from traces.models import AlertFiring, AlertKind, DeliveryStatus, Project

REFUSED = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://[fd00::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://100.64.0.1/hook", "non-global"),
]


@pytest.fixture
def admin_api(project: Project) -> APIClient:
    from django.contrib.auth import get_user_model

    from traces.models import Membership, Role

    user = get_user_model().objects.create_user("ada", password="pw-ada-12345")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    client = APIClient()
    client.force_authenticate(user)
    return client


def create(client: APIClient, project: Project, url: str) -> Any:
    body = {"name": "x", "kind": "failure_rate", "webhook_url": url}
    return client.post(f"/api/v1/alert-rules?project={project.slug}", body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_a_webhook_to_a_non_public_address_is_refused_naming_the_field(
    admin_api: APIClient, project: Project, url: str, kind: str
) -> None:
    response = create(admin_api, project, url)

    assert response.status_code == 400
    assert response.json()["path"] == "webhook_url"
    assert f"a {kind} address" in response.json()["rule"]
    assert "ALERT_WEBHOOK_ALLOW_PRIVATE" in response.json()["rule"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "gopher://example.com/", "http:///x"]
)
def test_a_webhook_url_that_is_not_http_is_refused(
    admin_api: APIClient, project: Project, url: str, settings: Any
) -> None:
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True  # the scheme is checked whatever the setting
    response = create(admin_api, project, url)

    assert response.status_code == 400
    assert response.json()["path"] == "webhook_url"
    assert "http:// or https://" in response.json()["rule"]


@pytest.mark.django_db
def test_a_public_address_is_accepted_and_the_setting_lets_loopback_through(
    admin_api: APIClient, project: Project, settings: Any
) -> None:
    # An address literal: accepted without asking DNS.
    assert create(admin_api, project, "https://93.184.215.14/hook").status_code == 201
    assert create(admin_api, project, "http://[2606:4700::1111]/hook").status_code == 201

    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    assert create(admin_api, project, "http://127.0.0.1:9/hook").status_code == 201


@pytest.fixture
def receiver() -> Any:
    server = Receiver([200])
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures(tasks_in_process.__name__)
def test_delivery_checks_the_address_again(
    project: Project, api: APIClient, settings: Any, receiver: Receiver
) -> None:
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    r = rule(project, AlertKind.FAILURE_RATE, webhook_url=receiver.url)
    # The URL was fine when saved; by delivery it is not (the setting stands in for a
    # name that now resolves to a private address).
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    send(api, trace("f", just_now(), failed=True))

    tasks.evaluate_alerts.apply()

    firing = AlertFiring.objects.get(rule=r)
    assert firing.webhook_status == DeliveryStatus.FAILED
    assert len(firing.webhook_attempts) == 1  # refused, not retried
    assert "a loopback address" in firing.webhook_attempts[0]["error"]
    assert receiver.requests == []


def test_delivery_connects_to_the_address_it_checked(
    monkeypatch: pytest.MonkeyPatch, settings: Any, receiver: Receiver
) -> None:
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        # A name that resolves to the receiver once, then somewhere else (DNS rebinding).
        if host != "hooks.test":
            return real(host, *args, **kwargs)
        answers.append(host)
        address = "127.0.0.1" if len(answers) == 1 else "192.0.2.1"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    status = egress.post(f"http://hooks.test:{port}/hook", b"{}", {}, timeout=5)

    assert status == 200
    assert len(answers) == 1  # resolved once; the connection went to that answer
    assert receiver.requests[0][0]["Host"] == f"hooks.test:{port}"


def test_a_redirect_is_not_followed(settings: Any) -> None:
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    server = Receiver([302])
    server.thread.start()
    try:
        assert egress.post(server.url, b"{}", {}, timeout=5) == 302
        assert len(server.requests) == 1
    finally:
        server.server.shutdown()
        server.server.server_close()
