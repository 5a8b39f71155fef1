"""Under Daphne the ingestion rate limit is applied where the request's headers arrive
(dashflow_site/bodylimit.py), before Django and before the body is read: a key over its
rate is answered 429 at once even for a body it has not sent, and a request let through
takes one token, not two (the view trusts Daphne's mark)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.servers import HOST, Daphne, Response, daphne, database_url, server_env
from traces.models import ApiKey, Project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    # The throttle's cache is Redis when the suite runs with it (its Lua bucket), else
    # the server's memory; the keys are new in every run.
    env = server_env(
        database_url(connection.settings_dict),
        os.environ.get("REDIS_URL") or None,
        INGEST_RATE="1",
        INGEST_BURST="2",
        INGEST_THROTTLE_DELAY_MS="0",  # the held 429 has a test (and a server) of its own
    )
    with daphne(env) as live:
        yield live


def ingest(server: Daphne, key: str, body: bytes) -> Response:
    return server.request(
        "POST",
        "/api/v1/traces",
        body,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def headers_only(server: Daphne, key: str, declared: int) -> bytes:
    """Send a POST's headers declaring ``declared`` bytes and none of the body; the answer
    (b"" if none came within 10 s: the server waits for the body)."""
    with socket.create_connection((HOST, server.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/v1/traces HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
        )
        sock.settimeout(10)
        answer = b""
        try:
            while more := sock.recv(65536):
                answer += more
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def test_a_key_over_its_rate_is_answered_429_by_daphne_before_its_body_is_read(
    server: Daphne, project: Project, fixtures_dir: Path
) -> None:
    key, other = ApiKey.issue(project)[1], ApiKey.issue(project)[1]
    body = (fixtures_dir / "research_agent_success.json").read_bytes()
    # The burst of two: each request takes one token (Daphne's), not a second in the view.
    assert [ingest(server, key, body).status for _ in range(2)] == [201, 200]

    answer = b""
    for _ in range(5):  # a token comes back every second: on a slow machine, try again
        refused = next(
            (r for r in (ingest(server, key, body) for _ in range(20)) if r.status == 429), None
        )
        assert refused is not None, "never over the rate"
        error = refused.json()
        assert error["path"] == "Authorization"  # Daphne's answer (the view's names none)
        assert "INGEST_RATE" in error["detail"]
        assert "1 requests per second" in error["detail"]
        assert int(refused.header("Retry-After") or 0) >= 1
        # 15 MB declared, none of it sent: the answer cannot have waited for the body.
        answer = headers_only(server, key, 15 * 1024 * 1024)
        if answer:
            break
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 "), answer[:300]
    assert b"retry-after: " in head.lower()
    assert json.loads(rest)["rule"] == "INGEST_RATE"

    # Another key has a bucket of its own.
    assert ingest(server, other, body).status == 200


def test_a_429_is_held_back_so_a_client_that_retries_at_once_is_slowed_down(
    project: Project, fixtures_dir: Path
) -> None:
    # A flooding client sends again as soon as it is answered: held 0.7 s, its refusals
    # cost a timer each instead of keeping the process busy (benchmarks/ingest_rate.py).
    env = server_env(
        database_url(connection.settings_dict),
        os.environ.get("REDIS_URL") or None,
        INGEST_RATE="1",
        INGEST_BURST="1",
        INGEST_THROTTLE_DELAY_MS="700",
    )
    key, other = ApiKey.issue(project)[1], ApiKey.issue(project)[1]
    body = (fixtures_dir / "research_agent_success.json").read_bytes()
    with daphne(env) as server:
        assert ingest(server, key, body).status == 201
        refused = None
        for _ in range(5):  # a token comes back every second: on a slow machine, try again
            started = time.monotonic()
            answer = ingest(server, key, body)
            if answer.status == 429:
                refused = time.monotonic() - started
                break
        assert refused is not None, "never over the rate"
        # A lower bound only: a loaded machine can make it later, never earlier.
        assert refused >= 0.65
        assert ingest(server, other, body).status == 200
