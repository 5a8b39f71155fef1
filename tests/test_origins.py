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
    daphne,
    database_url,
    free_port,
    server_env,
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


@pytest.fixture(scope="module", params=["debug", "production"])
def server(request: pytest.FixtureRequest, django_db_setup: None) -> Iterator[Daphne]:
    """``make run``'s defaults (debug, ``ALLOWED_HOSTS`` unset: ``*``), then production's
    (debug off, the default ``ALLOWED_HOSTS``); both reached through a proxy at
    ``SITE_URL`` as well."""
    env = server_env(database_url(connection.settings_dict), SITE_URL=PROXY)
    del env["ALLOWED_HOSTS"]
    if request.param == "debug":
        env["DEBUG"] = "true"
    else:
        # The test's own key: the sessions it stores are signed with it.
        env.update(DEBUG="false", SECRET_KEY=settings.SECRET_KEY)
    with daphne(env) as live:
        yield live


@pytest.fixture
def cookie(member: Any) -> str:
    return make_cookie(member)


def exports_socket(server: Daphne, cookie: str, origin: str | None) -> WsClient:
    return WsClient(f"ws://{HOST}:{server.port}/ws/projects/acme/exports/", cookie, origin)


@pytest.mark.django_db(transaction=True)
def test_a_socket_opens_only_from_the_sites_own_origin(
    server: Daphne, project: Project, cookie: str
) -> None:
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
