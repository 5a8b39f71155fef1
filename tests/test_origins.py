"""Only the site's own pages may open its websockets or post its forms: the Origin is the
request's own scheme, host and port, or a trusted one (``SITE_URL``, ``CSRF_TRUSTED_ORIGINS``),
with debug on (``make run``'s defaults, ``ALLOWED_HOSTS=*``) as with debug off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from websockets.exceptions import InvalidStatus

from dashflow_site.origins import origin_allowed
from tests.servers import (
    HOST,
    Daphne,
    WsClient,
    database_url,
    free_port,
    server_env,
    start_daphnes,
)
from tests.servers import session_cookie as make_cookie
from traces.models import Project

PROXY = "https://dash.example.com"
TRUSTED = ["http://127.0.0.1:8000", "https://dash.example.com", "https://*.corp.example"]


@override_settings(ALLOWED_HOSTS=["*"], CSRF_TRUSTED_ORIGINS=TRUSTED)
@pytest.mark.parametrize(
    ("origin", "host", "secure", "allowed"),
    [
        ("http://127.0.0.1:9000", "127.0.0.1:9000", False, True),  # its own
        ("http://localhost:9000", "localhost:9000", False, True),
        ("https://127.0.0.1:9000", "127.0.0.1:9000", True, True),
        ("http://127.0.0.1:9999", "127.0.0.1:9000", False, False),  # another port
        ("http://127.0.0.1", "127.0.0.1:9000", False, False),
        ("https://127.0.0.1:9000", "127.0.0.1:9000", False, False),  # another scheme
        ("http://127.0.0.1:9000", "127.0.0.1:9000", True, False),
        ("http://evil.example", "127.0.0.1:9000", False, False),
        ("null", "127.0.0.1:9000", False, False),
        (None, "127.0.0.1:9000", False, False),
        ("", "127.0.0.1:9000", False, False),
        ("http://127.0.0.1:9000", None, False, False),
        ("http://127.0.0.1:8000", "127.0.0.1:9000", False, True),  # trusted (SITE_URL)
        ("https://dash.example.com", "127.0.0.1:9000", False, True),  # behind a proxy
        ("http://dash.example.com", "127.0.0.1:9000", False, False),
        ("https://ci.corp.example", "127.0.0.1:9000", False, True),  # *.corp.example
        ("https://corp.example.evil", "127.0.0.1:9000", False, False),
    ],
)
def test_an_origin_is_allowed_only_when_it_is_the_sites_own_or_trusted(
    origin: str | None, host: str | None, secure: bool, allowed: bool
) -> None:
    assert origin_allowed(origin, host, secure) is allowed


@override_settings(ALLOWED_HOSTS=["127.0.0.1"], CSRF_TRUSTED_ORIGINS=[])
def test_the_own_origin_of_a_host_not_allowed_is_refused() -> None:
    # A DNS-rebinding page: its origin matches its Host, but the host is not this site's.
    assert origin_allowed("http://evil.example:8000", "evil.example:8000", False) is False
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", False) is True


@pytest.mark.django_db
@override_settings(CSRF_TRUSTED_ORIGINS=["http://127.0.0.1:8000"])
def test_a_form_post_follows_the_same_origin_rule() -> None:
    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1:9000")
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    form = {"username": "nobody", "password": "x", "csrfmiddlewaretoken": token}

    def post(origin: str) -> int:
        return client.post("/login/", form, HTTP_ORIGIN=origin).status_code

    assert post("http://127.0.0.1:9999") == 403  # the same host on another port
    assert post("null") == 403
    assert post("http://127.0.0.1:9000") == 200  # its own: the form again, wrong password
    assert post("http://127.0.0.1:8000") == 200  # trusted (SITE_URL)


@pytest.fixture(scope="module")
def servers(django_db_setup: None) -> Iterator[dict[str, Daphne]]:
    """Two Daphnes: ``make run``'s defaults (debug, ``ALLOWED_HOSTS`` unset: ``*``) and
    production's (debug off, the default ``ALLOWED_HOSTS``); both reached through a proxy at
    ``SITE_URL`` as well."""
    base = server_env(database_url(connection.settings_dict), SITE_URL=PROXY)
    del base["ALLOWED_HOSTS"]
    debug = {**base, "DEBUG": "true"}
    # The test's own key: the sessions it stores are signed with it.
    production = {**base, "DEBUG": "false", "SECRET_KEY": settings.SECRET_KEY}
    started = start_daphnes(debug, production)
    try:
        yield {"debug": started[0], "production": started[1]}
    finally:
        for server in started:
            print(f"--- daphne on port {server.port} ---\n{server.log_tail()}")
            server.stop()


@pytest.fixture
def cookie(member: Any) -> str:
    return make_cookie(member)


def exports_socket(server: Daphne, cookie: str, origin: str | None) -> WsClient:
    return WsClient(f"ws://{HOST}:{server.port}/ws/projects/acme/exports/", cookie, origin)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["debug", "production"])
def test_a_socket_opens_only_from_the_sites_own_origin(
    servers: dict[str, Daphne], mode: str, project: Project, cookie: str
) -> None:
    server = servers[mode]
    assert server.env.get("ALLOWED_HOSTS") is None
    other_port = free_port()
    refused = {
        "none": None,
        "null": "null",
        "another host": "http://evil.example",
        "another port": f"http://{HOST}:{other_port}",
        "another scheme": f"https://{HOST}:{server.port}",
        "a host without its port": f"http://{HOST}",
    }
    for what, origin in refused.items():
        with pytest.raises(InvalidStatus) as denied:
            exports_socket(server, cookie, origin)
        assert denied.value.response.status_code == 403, what

    for origin in (server.origin, PROXY):
        with exports_socket(server, cookie, origin) as allowed:
            assert allowed.receive() == {"type": "exports", "exports": []}, origin
