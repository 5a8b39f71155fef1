"""Rate limits (traces/throttle.py): sign-ins per username and per address, ingestion per
API key. The counters are real: the ``throttle`` cache is Redis when REDIS_URL is set
(the Lua token bucket) and this process's memory otherwise. Time is the module's clock,
advanced by the tests instead of sleeping; names and addresses are new in every test, so
counters left in Redis by an earlier run never meet these."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from traces import throttle
from traces.models import ApiKey, Project

WINDOW = 900


class Clock:
    def __init__(self) -> None:
        # Just after the start of a window (windows are aligned to multiples of it).
        self.now = float(WINDOW * 2_000_000 + 1)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Clock:
    settings.LOGIN_THROTTLE_WINDOW = WINDOW
    settings.LOGIN_MAX_FAILURES_PER_USER = 5
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 20
    # A fast hash: the default costs a second a sign-in on a loaded machine, and these
    # tests sign in hundreds of times (what they count is attempts, not hashing).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    fake = Clock()
    monkeypatch.setattr(throttle, "clock", fake)
    return fake


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def address() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


@pytest.fixture
def user(db: None, clock: Clock) -> tuple[str, str]:
    name, password = unique("user"), "right-password-123"
    get_user_model().objects.create_user(name, password=password)
    return name, password


def sign_in(username: str, password: str, remote: str) -> Any:
    return Client(REMOTE_ADDR=remote).post("/login/", {"username": username, "password": password})


def test_after_five_failures_even_the_right_password_is_refused_until_the_window_passes(
    clock: Clock, user: tuple[str, str]
) -> None:
    name, password = user
    # 200 wrong passwords, each from a new address: the per-username limit holds alone.
    statuses = [sign_in(name, "wrong", address()).status_code for _ in range(200)]
    assert statuses[:5] == [200] * 5  # the form again, "did not match"
    assert set(statuses[5:]) == {429}

    refused = sign_in(name, password, address())
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) == WINDOW - 1
    assert b"Too many failed sign-ins" in refused.content
    assert "_auth_user_id" not in refused.wsgi_request.session

    clock.advance(WINDOW - 2)
    assert sign_in(name, password, address()).status_code == 429
    clock.advance(2)
    accepted = sign_in(name, password, address())
    assert accepted.status_code == 302, accepted.content
    assert accepted.wsgi_request.user.get_username() == name


def test_the_username_limit_ignores_case(clock: Clock, user: tuple[str, str]) -> None:
    name, password = user
    for _ in range(5):
        sign_in(name.upper(), "wrong", address())
    assert sign_in(name, password, address()).status_code == 429


def test_twenty_failures_from_one_address_refuse_it_but_not_another(
    clock: Clock, user: tuple[str, str]
) -> None:
    name, password = user
    attacker = address()
    statuses = [sign_in(unique("guess"), "wrong", attacker).status_code for _ in range(25)]
    assert statuses[:20] == [200] * 20
    assert set(statuses[20:]) == {429}
    # The right password of a real user, from that address: refused; from another: in.
    assert sign_in(name, password, attacker).status_code == 429
    assert sign_in(name, password, address()).status_code == 302


def test_a_successful_sign_in_clears_the_usernames_failures(
    clock: Clock, user: tuple[str, str]
) -> None:
    name, password = user
    for _ in range(4):
        assert sign_in(name, "wrong", address()).status_code == 200
    assert sign_in(name, password, address()).status_code == 302
    # Cleared: four more failures do not reach the limit of five.
    for _ in range(4):
        assert sign_in(name, "wrong", address()).status_code == 200
    assert sign_in(name, password, address()).status_code == 302


def test_the_throttled_page_is_the_sign_in_form_with_the_reason(
    clock: Clock, user: tuple[str, str]
) -> None:
    name, _ = user
    for _ in range(5):
        sign_in(name, "wrong", address())
    page = sign_in(name, "wrong", address())
    assert page.status_code == 429
    html = page.content.decode()
    assert 'name="password"' in html
    assert "Try again in 899 seconds" in html
    assert "did not match" not in html


# --- Ingestion per API key ------------------------------------------------------------


@pytest.fixture
def keys(project: Project, settings: Any, clock: Clock) -> tuple[APIClient, APIClient]:
    settings.INGEST_RATE = 2
    settings.INGEST_BURST = 3
    clients = []
    for _ in range(2):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project)[1]}")
        clients.append(client)
    return clients[0], clients[1]


@pytest.fixture
def ingest(fixtures_dir: Path) -> Callable[[APIClient], Any]:
    body = (fixtures_dir / "research_agent_success.json").read_bytes()

    def post(client: APIClient) -> Any:
        return client.post("/api/v1/traces", data=body, content_type="application/json")

    return post


def test_a_key_over_its_rate_gets_429_while_another_key_is_served(
    clock: Clock, keys: tuple[APIClient, APIClient], ingest: Callable[[APIClient], Any]
) -> None:
    a, b = keys
    assert [ingest(a).status_code for _ in range(3)] == [201, 200, 200]  # the burst
    refused = ingest(a)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"  # one token comes back every 0.5 s
    detail = refused.json()["detail"]
    assert "INGEST_RATE" in detail
    assert "2 requests per second" in detail
    assert "bursts of 3" in detail
    # Key B has a bucket of its own.
    assert [ingest(b).status_code for _ in range(3)] == [200, 200, 200]
    assert ingest(b).status_code == 429

    clock.advance(0.5)  # one token back for each
    assert ingest(a).status_code == 200
    assert ingest(a).status_code == 429
    clock.advance(1.5)  # three back: a full bucket, never more
    assert [ingest(a).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_rate_limit_is_checked_before_the_body_is_parsed(
    clock: Clock, keys: tuple[APIClient, APIClient], ingest: Callable[[APIClient], Any]
) -> None:
    a, _ = keys
    for _ in range(3):
        ingest(a)
    # A refused request costs no parsing: even a body that is not JSON answers 429.
    response = a.post("/api/v1/traces", data=b"\xff not json", content_type="application/json")
    assert response.status_code == 429


def test_a_zero_rate_turns_the_limit_off(
    clock: Clock,
    keys: tuple[APIClient, APIClient],
    ingest: Callable[[APIClient], Any],
    settings: Any,
) -> None:
    settings.INGEST_RATE = 0
    a, _ = keys
    assert {ingest(a).status_code for _ in range(10)} == {201, 200}
