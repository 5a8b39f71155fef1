"""Request bodies over their route's limit are refused by Daphne before it buffers them
(dashflow_site/bodylimit.py), with a 413 naming the limit, while bodies within it, up to a
20 MB trace by an API key, are served as before (a larger whole trace:
tests/traces/test_large_traces.py)."""

from __future__ import annotations

import gzip
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.servers import HOST, Daphne, daphne, database_url, server_env, session_cookie
from traces.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def exchange(server: Daphne, head: str, chunks: Iterator[bytes] | None = None) -> tuple[bytes, int]:
    """Send ``head`` (the request line and headers), then the ``chunks`` of a body until the
    server answers; the whole answer and how many bytes of ``chunks`` were sent."""
    with socket.create_connection((HOST, server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n")
        sent = 0
        for chunk in chunks or ():
            if select.select([sock], [], [], 0)[0]:
                break  # answered while the body is still coming
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return answer, sent


def endless_chunks() -> Iterator[bytes]:
    """A chunked body's pieces of 64 KB, endless: only the server's answer stops it."""
    piece = b"x" * 65536
    while True:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)


def refused(answer: bytes, setting: str) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"connection: close" in head.lower()
    error: dict[str, Any] = json.loads(body)
    assert error["path"] == "$"
    assert error["rule"].startswith(f"body is larger than {setting}=")
    return error


def test_a_declared_length_over_the_anonymous_limit_is_refused_before_any_body_is_sent(
    server: Daphne,
) -> None:
    # Only the headers go out: the answer cannot have waited for the body. And no
    # "100 Continue" before it, which would invite the client to send the terabyte.
    answer, _ = exchange(
        server,
        "POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000000\r\n"
        "Expect: 100-continue\r\n",
    )
    error = refused(answer, "ANONYMOUS_MAX_BODY_BYTES")
    assert error["rule"] == (
        "body is larger than ANONYMOUS_MAX_BODY_BYTES=65536 bytes (Content-Length: 1000000000000)"
    )


def test_an_anonymous_post_to_the_ingest_route_gets_the_small_limit_not_the_trace_limit(
    server: Daphne,
) -> None:
    answer, _ = exchange(
        server,
        "POST /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MB}\r\n",
    )
    refused(answer, "ANONYMOUS_MAX_BODY_BYTES")


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_once_over(
    server: Daphne, api_key: str
) -> None:
    # Live events: a producer's route with TRACE_MAX_BODY_BYTES (a whole trace's route
    # has its own limit, tests/traces/test_large_traces.py).
    answer, sent = exchange(
        server,
        "POST /api/v1/runs/run-1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Transfer-Encoding: chunked\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {api_key}\r\n",
        chunks=endless_chunks(),
    )
    refused(answer, "TRACE_MAX_BODY_BYTES")
    # Refused at 20 MB; what the client sent past it before seeing the answer is bounded
    # by the sockets' buffers, not by the server's patience.
    assert 20 * MB < sent < 60 * MB


def test_a_forged_key_gets_the_request_limit_not_the_trace_limit(server: Daphne) -> None:
    # The key is looked up before the body is read on: an unknown one gets 1 MB.
    answer, _ = exchange(
        server,
        "POST /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer dfk_forged\r\nContent-Length: {2 * MB}\r\n",
    )
    refused(answer, "REQUEST_MAX_BODY_BYTES")

    answer, sent = exchange(
        server,
        "POST /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        "Authorization: Bearer dfk_forged\r\n",
        chunks=endless_chunks(),
    )
    refused(answer, "REQUEST_MAX_BODY_BYTES")
    assert sent < 20 * MB


def test_a_signed_in_request_gets_the_request_limit(server: Daphne, member: Any) -> None:
    cookie = session_cookie(member)
    answer, _ = exchange(
        server,
        "POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: sessionid={cookie}\r\nContent-Length: {2 * MB}\r\n",
    )
    refused(answer, "REQUEST_MAX_BODY_BYTES")


def test_a_small_anonymous_post_still_reaches_the_app(server: Daphne) -> None:
    response = server.request("POST", "/api/v1/traces", b"{}", {"Content-Type": "application/json"})
    assert response.status in (401, 403), response.body


def test_a_trace_by_a_key_is_stored_and_a_gzipped_one_too(
    server: Daphne, api_key: str, fixtures_dir: Path
) -> None:
    body = (fixtures_dir / "tool_timeout_failure.json").read_bytes()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    response = server.request("POST", "/api/v1/traces", body, headers)
    assert response.status == 201, response.body
    again = server.request(
        "POST", "/api/v1/traces", gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    )
    assert again.status == 200, again.body  # the same trace: stored once, answered 200
    assert Run.objects.count() == 1


def test_a_20_mb_trace_by_a_key_is_stored_and_the_server_keeps_serving(
    server: Daphne, api_key: str, fixtures_dir: Path
) -> None:
    trace = json.loads((fixtures_dir / "research_agent_success.json").read_bytes())
    body = json.dumps(trace).encode()
    # One state large enough to bring the body to just under TRACE_MAX_BODY_BYTES.
    trace["nodes_executed"][0]["state_after"]["notes"] = "n" * (20 * MB - len(body) - 4096)
    body = json.dumps(trace).encode()
    assert 20 * MB - 8192 < len(body) <= 20 * MB
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    response = server.request("POST", "/api/v1/traces", body, headers, timeout=120)
    assert response.status == 201, response.body[:500]
    assert Run.objects.filter(execution_id=trace["execution_id"]).exists()
    assert server.request("GET", "/api/v1/runs", headers=headers).status == 200
