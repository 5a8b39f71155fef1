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

The limit depends on the route and on the request's credentials:

- the whole-trace route (``UPLOAD_PATH``, ``POST /api/v1/traces``) with an
  ``Authorization: Bearer`` header: ``TRACE_UPLOAD_MAX_BYTES``, once the key is known to
  be live; the other producers' routes (``PRODUCER_PATHS``: live events, DashStream,
  OTLP): ``TRACE_MAX_BODY_BYTES``, on the same condition. A body that
  may be larger than ``REQUEST_MAX_BODY_BYTES`` waits, unread (the socket is paused), while
  the key is looked up in a worker thread; an unknown or revoked key gets the smaller
  limit, so a forged header cannot make the server take in 20 MB (or 256 MB);
- any route with a bearer header or a session cookie: ``REQUEST_MAX_BODY_BYTES`` (the
  session itself is checked by the app, after reading, as is a key on other routes);
- anything else (anonymous): ``ANONYMOUS_MAX_BODY_BYTES``, a login form's worth.

The ingestion routes (``INGEST_PATHS``) take the key's token from its rate limit
(``INGEST_RATE``, ``traces/throttle.py``) here too, before Django's request machinery and
before the body is read: the socket is paused while the bucket is asked (in a worker
thread; it may be Redis), and a request over the rate is answered 429 with
``Retry-After``, its body never read. That answer is held back
``INGEST_THROTTLE_DELAY_MS`` (at most its ``Retry-After``; the socket stays paused, a
timer in the reactor costs nothing): a client that sends again as soon as it is
answered would otherwise keep the one process busy refusing it, thousands of times a
second, and the other keys' requests would wait behind those refusals
(``benchmarks/ingest_rate.py``). A request let
through carries the throttle's mark, so the view takes no second token.

A refusal is a 413 (or 429) in the API's error shape (``{"detail", "path", "rule"}``),
written at once with ``Connection: close``. What the client still sends is read and thrown
away for ``LINGER_SECONDS`` (as nginx's lingering close does), so that a client still
sending sees the answer rather than a connection reset; then the connection is dropped.

Daphne builds its HTTP factory when it starts serving, after importing the application,
so ``install()`` (called by ``asgi.py``) swaps in ``LimitedHTTPFactory`` for every way
Daphne is started (``daphne``, ``manage.py runserver``). HTTP/2 is not covered (Daphne
serves it only with Twisted's optional ``http2`` extra, which is not installed).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any
from urllib.parse import unquote

from channels.db import database_sync_to_async
from django.conf import settings

from traces import throttle
from traces.errors import InputError
from traces.permissions import bearer_key

# The producers' endpoints: API-key only, JSON in and out, never a browser session.
PRODUCER_PATHS = re.compile(r"^(?:/api/v1/(?:traces|dashstream|runs/[^/]+/events)|/v1/traces)$")
# The one route that takes a whole trace, with its own, larger limit.
UPLOAD_PATH = "/api/v1/traces"
# The routes whose requests take a token of their key's ingestion rate (api/request.py
# key_project); OTLP has its own bound (OTLP_MAX_OPEN_TRACES).
INGEST_PATHS = re.compile(r"^/api/v1/(?:traces|dashstream|runs/[^/]+/events)$")

# Seconds a refused request's remaining body is read and discarded before the connection
# is dropped.
LINGER_SECONDS = 2.0


def body_limit(path: str, authorization: bytes | None, has_session: bool) -> tuple[str, int]:
    """The setting that bounds a request body to ``path``, and its value."""
    bearer = authorization is not None and authorization[:7].lower() == b"bearer "
    if bearer and path == UPLOAD_PATH:
        return "TRACE_UPLOAD_MAX_BYTES", settings.TRACE_UPLOAD_MAX_BYTES
    if bearer and PRODUCER_PATHS.match(path):
        return "TRACE_MAX_BODY_BYTES", settings.TRACE_MAX_BODY_BYTES
    if bearer or has_session:
        return "REQUEST_MAX_BODY_BYTES", settings.REQUEST_MAX_BODY_BYTES
    return "ANONYMOUS_MAX_BODY_BYTES", settings.ANONYMOUS_MAX_BODY_BYTES


def live_key(authorization: bytes) -> bool:
    """Whether the bearer header names a live API key (which ingestion checks again)."""
    try:
        return bearer_key(authorization.decode("latin-1")) is not None
    except InputError:
        return False


def admission(
    authorization: bytes, check_key: bool, check_rate: bool
) -> tuple[throttle.Refused | None, bool]:
    """What the worker thread finds out before a request's body is read: whether the key
    is over its ingestion rate (a token is taken otherwise), and whether it is live."""
    header = authorization.decode("latin-1")
    if check_rate:
        refused = throttle.header_refused(header)
        if refused is not None:
            return refused, False
    return None, live_key(authorization) if check_key else True


def refusal(name: str, limit: int, declared: int | None) -> bytes:
    """A 413 response, whole, in the API's error shape, closing the connection."""
    got = f" (Content-Length: {declared})" if declared is not None else ""
    error = InputError("$", f"body is larger than {name}={limit} bytes{got}", status=413)
    return _answer("413 Content Too Large", str(error), error.path, error.rule)


def rate_refusal(refused: throttle.Refused) -> bytes:
    """A 429 response, whole, as the view answers it, with ``Retry-After``."""
    detail = throttle.ingest_refusal(refused)
    return _answer(
        "429 Too Many Requests",
        detail,
        "Authorization",
        refused.limit,
        f"Retry-After: {refused.retry_after}\r\n",
    )


def _answer(status: str, detail: str, path: str, rule: str, extra: str = "") -> bytes:
    body = json.dumps({"detail": detail, "path": path, "rule": rule}).encode()
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: application/json\r\n"
        f"{extra}"
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
        verifying = False
        waiting: tuple[bytes, bytes, bytes] | None = None
        declared: int | None = None
        linger: Any = None

        def gotLength(self, length: int | None) -> None:
            super().gotLength(length)
            # Twisted has parsed the request line and every header by now, not the body.
            raw_path = self.channel._path.split(b"?", 1)[0]
            path = unquote(raw_path.decode("ascii", "replace"))
            cookie = settings.SESSION_COOKIE_NAME.encode()
            authorization = self.requestHeaders.getRawHeaders(b"authorization", [None])[0]
            # Only this process sets the throttle's mark, and only after taking a token.
            self.requestHeaders.removeHeader(throttle.CHECKED_HEADER.encode())
            self.declared = length
            self.limit_name, self.limit = body_limit(
                path, authorization, cookie in self.received_cookies
            )
            if length is not None and length > self.limit:
                # No "100 Continue" after the answer: the client must not send the body.
                self.requestHeaders.removeHeader(b"expect")
                self.refuse(refusal(self.limit_name, self.limit, length))
                return
            check_key = self.limit > settings.REQUEST_MAX_BODY_BYTES and (
                length is None or length > settings.REQUEST_MAX_BODY_BYTES
            )
            check_rate = (
                authorization is not None
                and authorization[:7].lower() == b"bearer "
                and bool(settings.INGEST_RATE)
                and INGEST_PATHS.match(path) is not None
            )
            if check_key or check_rate:
                # Read on only once the key is known (and within its rate): what arrived
                # with the headers is kept (a socket read's worth), the rest waits in the
                # client's buffers, and the request is not handed to Django meanwhile.
                self.verifying = True
                self.channel.transport.pauseProducing()
                lookup = database_sync_to_async(admission, thread_sensitive=False)
                asyncio.ensure_future(
                    lookup(authorization, check_key, check_rate)
                ).add_done_callback(self.verified)

        def verified(self, lookup: asyncio.Future[tuple[throttle.Refused | None, bool]]) -> None:
            self.verifying = False
            if self.channel is None or self.refused:
                return  # gone, or refused meanwhile
            if lookup.exception() is None:
                over_rate, live = lookup.result()
                if over_rate is not None:
                    delay = min(settings.INGEST_THROTTLE_DELAY_MS / 1000, over_rate.retry_after)
                    self.linger = reactor.callLater(delay, self.refuse, rate_refusal(over_rate))
                    return
                self.requestHeaders.setRawHeaders(
                    throttle.CHECKED_HEADER.encode(), [throttle.CHECKED_TOKEN.encode()]
                )
                if not live:
                    self.limit_name = "REQUEST_MAX_BODY_BYTES"
                    self.limit = settings.REQUEST_MAX_BODY_BYTES
                    if max(self.declared or 0, self.received) > self.limit:
                        self.refuse(refusal(self.limit_name, self.limit, self.declared))
                        return
            # A failed lookup (the database or the cache is down) leaves both checks to
            # the app, which takes the token itself (no mark).
            self.channel.transport.resumeProducing()
            waiting, self.waiting = self.waiting, None
            if waiting is not None:
                super().requestReceived(*waiting)

        def handleContentChunk(self, data: bytes) -> None:
            if self.refused:
                return
            self.received += len(data)
            if self.received > self.limit:
                self.refuse(refusal(self.limit_name, self.limit, None))
                return
            super().handleContentChunk(data)

        def refuse(self, answer: bytes) -> None:
            if self.refused or self.channel is None:
                return  # answered already, or the client went while its 429 was held
            self.refused = True
            channel = self.channel
            channel.persistent = False
            transport = channel.transport
            transport.resumeProducing()  # paused for a lookup: discard what still comes
            transport.write(answer)
            transport.loseWriteConnection()
            self.linger = reactor.callLater(LINGER_SECONDS, transport.abortConnection)

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
            if self.refused:
                return  # the whole (refused) body arrived within the linger: answered
            if self.verifying:
                # The whole body came with the headers: it waits for the verdict.
                self.waiting = (command, path, version)
                return
            super().requestReceived(command, path, version)

        def connectionLost(self, reason: Any) -> None:
            if self.linger is not None and self.linger.active():
                self.linger.cancel()  # the lingering close, or a held 429
            super().connectionLost(reason)

    class LimitedHTTPFactory(HTTPFactory):  # type: ignore[misc]
        def buildProtocol(self, addr: Any) -> Any:
            protocol = super().buildProtocol(addr)
            protocol.requestFactory = LimitedRequest
            return protocol

    return LimitedHTTPFactory
