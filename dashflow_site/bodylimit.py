"""Request body limits, enforced where Daphne receives a body, before it is buffered.

Daphne does not stream a request body to the application. Twisted's HTTP parser, under
Daphne's ``WebRequest``, writes the whole body to a temporary file first; only then does
Daphne start the application and put the body, all of it at once, in the application's
queue. A limit checked by the application (``traces/api/request.py``) therefore comes
after the server has taken the body into memory: three anonymous 300 MB posts grew one
process by ~300 MB. So the limit is checked where the body arrives. Twisted hands the
request its headers (``gotLength``) and then each piece of the body
(``handleContentChunk``); ``LimitedRequest`` refuses a declared ``Content-Length`` over the
route's limit at the headers, reading none of the body, and counts the pieces of a chunked
(or under-declared) body, refusing as soon as they pass it.

The limit depends on the route and on whether the request carries credentials, which is
all that can be known before reading (checking a key or a session takes the database):

- the producers' routes (``PRODUCER_PATHS``) with an ``Authorization: Bearer`` header:
  ``TRACE_MAX_BODY_BYTES`` (a whole trace);
- any route with a bearer header or a session cookie: ``REQUEST_MAX_BODY_BYTES``;
- anything else (anonymous): ``ANONYMOUS_MAX_BODY_BYTES``, a login form's worth.

A refusal is a 413 in the API's error shape (``{"detail", "path", "rule"}``), written at
once with ``Connection: close``. What the client still sends is read and thrown away for
``LINGER_SECONDS`` (as nginx's lingering close does), so that a client still sending sees
the answer rather than a connection reset; then the connection is dropped.

Daphne builds its HTTP factory when it starts serving, after importing the application,
so ``install()`` (called by ``asgi.py``) swaps in ``LimitedHTTPFactory`` for every way
Daphne is started (``daphne``, ``manage.py runserver``). HTTP/2 is not covered (Daphne
serves it only with Twisted's optional ``http2`` extra, which is not installed).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any
from urllib.parse import unquote

from django.conf import settings

from traces.errors import InputError

# The producers' endpoints: API-key only, JSON in and out, never a browser session.
PRODUCER_PATHS = re.compile(r"^/api/v1/(?:traces|runs/[^/]+/events)$")

# Seconds a refused request's remaining body is read and discarded before the connection
# is dropped.
LINGER_SECONDS = 2.0


def body_limit(path: str, authorization: bytes | None, has_session: bool) -> tuple[str, int]:
    """The setting that bounds a request body to ``path``, and its value."""
    bearer = authorization is not None and authorization[:7].lower() == b"bearer "
    if bearer and PRODUCER_PATHS.match(path):
        return "TRACE_MAX_BODY_BYTES", settings.TRACE_MAX_BODY_BYTES
    if bearer or has_session:
        return "REQUEST_MAX_BODY_BYTES", settings.REQUEST_MAX_BODY_BYTES
    return "ANONYMOUS_MAX_BODY_BYTES", settings.ANONYMOUS_MAX_BODY_BYTES


def refusal(name: str, limit: int, declared: int | None) -> bytes:
    """A 413 response, whole, in the API's error shape, closing the connection."""
    got = f" (Content-Length: {declared})" if declared is not None else ""
    error = InputError("$", f"body is larger than {name}={limit} bytes{got}", status=413)
    body = json.dumps({"detail": str(error), "path": error.path, "rule": error.rule}).encode()
    head = (
        "HTTP/1.1 413 Content Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def install() -> None:
    """Serve HTTP with ``LimitedRequest`` when running under Daphne (a no-op otherwise)."""
    server = sys.modules.get("daphne.server")
    if server is None:
        return
    server.HTTPFactory = _factory()  # type: ignore[attr-defined]


def _factory() -> type:
    """Daphne's HTTP factory with ``LimitedRequest``; built only under Daphne, whose
    modules install a Twisted reactor when imported."""
    from daphne.http_protocol import HTTPFactory, WebRequest
    from twisted.internet import reactor as twisted_reactor

    # Twisted's reactor module stands for the installed reactor; its stubs type neither.
    reactor: Any = twisted_reactor

    class LimitedRequest(WebRequest):  # type: ignore[misc]
        """Daphne's request, refusing a body over its route's limit as it arrives."""

        limit_name = ""
        limit = 0
        received = 0
        refused = False
        linger: Any = None

        def gotLength(self, length: int | None) -> None:
            super().gotLength(length)
            # Twisted has parsed the request line and every header by now, not the body.
            raw_path = self.channel._path.split(b"?", 1)[0]
            path = unquote(raw_path.decode("ascii", "replace"))
            cookie = settings.SESSION_COOKIE_NAME.encode()
            self.limit_name, self.limit = body_limit(
                path,
                self.requestHeaders.getRawHeaders(b"authorization", [None])[0],
                cookie in self.received_cookies,
            )
            if length is not None and length > self.limit:
                # No "100 Continue" after the answer: the client must not send the body.
                self.requestHeaders.removeHeader(b"expect")
                self.refuse(length)

        def handleContentChunk(self, data: bytes) -> None:
            if self.refused:
                return
            self.received += len(data)
            if self.received > self.limit:
                self.refuse(None)
                return
            super().handleContentChunk(data)

        def refuse(self, declared: int | None) -> None:
            self.refused = True
            channel = self.channel
            channel.persistent = False
            transport = channel.transport
            transport.write(refusal(self.limit_name, self.limit, declared))
            transport.loseWriteConnection()
            self.linger = reactor.callLater(LINGER_SECONDS, transport.abortConnection)

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
            # The whole (refused) body arrived within the linger: it was answered already.
            if not self.refused:
                super().requestReceived(command, path, version)

        def connectionLost(self, reason: Any) -> None:
            if self.refused and self.linger.active():
                self.linger.cancel()
            super().connectionLost(reason)

    class LimitedHTTPFactory(HTTPFactory):  # type: ignore[misc]
        def buildProtocol(self, addr: Any) -> Any:
            protocol = super().buildProtocol(addr)
            protocol.requestFactory = LimitedRequest
            return protocol

    return LimitedHTTPFactory
