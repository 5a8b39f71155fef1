"""A PostgreSQL restart under load, against a real Daphne on a private PostgreSQL:
while the database is down every request that needs it is answered 503 with Retry-After
(JSON for the API, the app's own page for browsers), never 500; once it is back the very
first request works (pooled connections are checked before use), POST /login/ included."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.servers import (
    ROOT,
    Daphne,
    PostgresServer,
    Response,
    daphne,
    postgres_server,
    server_env,
)

PASSWORD = "pw-olga-12345"
CONCURRENCY = 8


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"manage.py {args[0]}: {done.stdout}{done.stderr}"
    return done.stdout


class Browser:
    """Cookies and the CSRF token of one browser, over ``Daphne.request``."""

    def __init__(self, server: Daphne) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}
        form = self.request("GET", "/login/")  # needs no database: anonymous, no session
        assert form.status == 200
        found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form.body)
        assert found, "no CSRF token in the sign-in form"
        self.csrf = found.group(1).decode()

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode({**form, "csrfmiddlewaretoken": self.csrf}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = self.server.request(method, path, body, headers)
        assert response.headers is not None
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response

    def sign_in(self) -> Response:
        return self.request("POST", "/login/", {"username": "olga", "password": PASSWORD})


Stack = tuple[PostgresServer, Daphne, str, bytes]


@pytest.fixture
def stack(fixtures_dir: Path) -> Iterator[Stack]:
    with postgres_server() as pg:
        # A short pool timeout: a request waits this long for a connection that cannot
        # come before it is answered 503 (the default, 10 s, only makes the test longer).
        env = server_env(pg.url, DATABASE_POOL_TIMEOUT="2", LOG_LEVEL="WARNING")
        manage(env, "migrate", "--noinput")
        manage(env, "create_user", "olga", "--project", "acme", "--password", PASSWORD)
        key = manage(env, "create_api_key", "--project", "acme").strip()
        trace = (fixtures_dir / "research_agent_success.json").read_bytes()
        with daphne(env) as server:
            yield pg, server, key, trace


def test_a_database_restart_is_answered_503_then_the_first_request_after_works(
    stack: Stack,
) -> None:
    pg, server, key, trace = stack
    auth = {"Authorization": f"Bearer {key}"}
    signed_in = Browser(server)
    assert signed_in.sign_in().status == 302
    assert signed_in.request("GET", "/projects/acme/").status == 200
    assert server.request("POST", "/api/v1/traces", trace, auth).status == 201

    def api_read() -> Response:
        return server.request("GET", "/api/v1/runs", headers=auth)

    def ingest() -> Response:
        return server.request("POST", "/api/v1/traces", trace, auth)

    def page() -> Response:
        return signed_in.request("GET", "/projects/acme/")

    def login() -> Response:
        return Browser(server).sign_in()

    def mcp() -> Response:
        headers = {**auth, "Accept": "application/json, text/event-stream"}
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        return server.request("POST", "/mcp", call, headers)

    kinds: list[Callable[[], Response]] = [api_read, ingest, page, login, mcp]

    def load(rounds: int) -> list[tuple[str, Response]]:
        calls = [kind for kind in kinds for _ in range(rounds)]
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return list(
                zip([c.__name__ for c in calls], pool.map(lambda c: c(), calls), strict=True)
            )

    # Fill the pool with connections that a restart will break.
    assert {r.status for _, r in load(2)} <= {200, 302}

    # A restart while the server is idle: the first request after it works, and so does
    # every request of a burst, though each pooled connection was cut.
    pg.stop()
    pg.start()
    started = time.monotonic()
    assert api_read().status == 200
    print(f"idle restart: first request answered in {time.monotonic() - started:.2f} s")
    after_idle = load(2)
    assert [(k, r.status) for k, r in after_idle if r.status not in (200, 302)] == []

    # Down under load: 503 with Retry-After for every request that needs the database.
    pg.stop()
    down = load(3)
    for kind, response in down:
        assert response.status == 503, (kind, response.status, response.body[:300])
        assert response.header("Retry-After") == "5", kind
        if kind in ("api_read", "ingest", "mcp"):
            assert (response.header("Content-Type") or "").startswith("application/json"), kind
            assert b"database is unavailable" in response.json()["detail"].encode()
        else:
            assert (response.header("Content-Type") or "").startswith("text/html"), kind
            assert b"Temporarily unavailable" in response.body, kind

    pg.start()
    started = time.monotonic()
    # The first request after the restart, a sign-in, already works.
    first = Browser(server).sign_in()
    assert first.status == 302, first.body[:300]
    print(f"back after an outage: first request answered in {time.monotonic() - started:.2f} s")
    # And so does each of the pool's connections under load, none failing once.
    after = load(3)
    assert [(k, r.status) for k, r in after if r.status not in (200, 302)] == []
    assert "Traceback" not in server.log_tail(400)
