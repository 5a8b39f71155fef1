"""A page on another port of the same host cannot read a signed-in user's data through a
websocket, in Chromium, with ``make run``'s defaults (debug, ``ALLOWED_HOSTS=*``): the
browser sends the session cookie (cookies ignore ports), the Origin check refuses it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page

from tests.servers import HOST, Daphne, daphne, database_url, server_env
from tests.visualizer.test_browser_live import sign_in
from traces.models import Project

pytestmark = pytest.mark.django_db(transaction=True)

# Opens a socket; resolves with what it saw by its first message or its close.
PROBE = """(url) => new Promise((resolve) => {
  const seen = { opened: false, messages: [], code: null };
  const socket = new WebSocket(url);
  socket.onopen = () => { seen.opened = true; };
  socket.onmessage = (m) => { seen.messages.push(JSON.parse(m.data)); resolve(seen); };
  socket.onclose = (e) => { seen.code = e.code; resolve(seen); };
})"""


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(database_url(connection.settings_dict), DEBUG="true")
    del env["ALLOWED_HOSTS"]  # make run's default: every host
    with daphne(env) as live:
        yield live


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[ThreadingHTTPServer]:
    """Another site on this host: a static page on a port of its own."""
    (tmp_path / "index.html").write_text("<!doctype html><title>elsewhere</title>")
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    with ThreadingHTTPServer((HOST, 0), handler) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        yield site
        site.shutdown()


def test_a_page_on_another_port_cannot_read_through_the_users_socket(
    server: Daphne, page: Page, project: Project, member: Any, elsewhere: ThreadingHTTPServer
) -> None:
    socket_url = f"ws://{HOST}:{server.port}/ws/projects/{project.slug}/exports/"
    sign_in(page, server)
    # From the site's own page the socket reads the user's exports: the cookie works.
    page.goto(f"{server.origin}/projects/{project.slug}/exports/")
    own = page.evaluate(PROBE, socket_url)
    assert own["opened"]
    assert own["messages"][0]["type"] == "exports"

    # The same script on a page served from another port of the same host.
    other = elsewhere.server_address[1]
    page.goto(f"http://{HOST}:{other}/")
    assert page.evaluate("location.origin") == f"http://{HOST}:{other}"
    foreign = page.evaluate(PROBE, socket_url)

    assert foreign == {"opened": False, "messages": [], "code": 1006}
