"""Which pages may open this site's websockets: Django's CSRF origin rule, at the handshake.

Every socket here is authenticated by the session cookie, and a browser sends that cookie
with a websocket opened by any page, including another site's or one on another port of
the same host (cookies ignore ports). Only the ``Origin`` header tells the site's own
pages from those. So a handshake passes the rule Django applies to a form post
(``CsrfViewMiddleware``), the same in every configuration, debug or not:

- the Origin is the request's own scheme, host and port (``http://`` + its ``Host`` for
  ``ws://``, ``https://`` for ``wss://``), with the host in ``ALLOWED_HOSTS``; or
- it is one of ``CSRF_TRUSTED_ORIGINS`` (which ``settings.py`` starts with ``SITE_URL``'s;
  ``https://*.example.com`` covers subdomains, as in Django).

Anything else is refused with HTTP 403 before a consumer runs: no Origin, ``null``,
another host, the same host on another port or scheme. Browsers always send an Origin with
a websocket; other clients (the tests, the benchmarks) send the site's own. There is no
API-key socket, so no client is exempt.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

log = logging.getLogger(__name__)


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` as Django's ``HttpRequest.get_host`` reads it."""
    hosts: list[str] = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def trusted(origin: str) -> bool:
    """``origin`` is one of ``CSRF_TRUSTED_ORIGINS`` (``*.`` entries cover subdomains)."""
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
        wildcards = [urlsplit(e) for e in settings.CSRF_TRUSTED_ORIGINS if "*" in e]
    except ValueError:
        return False
    return any(
        is_same_domain(parts.netloc, entry.netloc.lstrip("*"))
        for entry in wildcards
        if entry.scheme == parts.scheme
    )


def origin_allowed(origin: str | None, host: str | None, secure: bool) -> bool:
    """May a page of ``origin`` open a socket sent to ``host`` (the ``Host`` header)?"""
    if not origin or origin == "null":
        return False
    if host:
        domain, _port = split_domain_port(host)
        own = f"{'https' if secure else 'http'}://{host}"
        if domain and validate_host(domain, allowed_hosts()) and origin == own:
            return True
    return trusted(origin)


class OriginCheck:
    """ASGI middleware for the websocket router: a handshake whose Origin fails
    ``origin_allowed`` is denied (403) before it reaches a consumer."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        values: dict[bytes, list[str]] = {}
        for name, value in scope.get("headers", []):
            values.setdefault(name, []).append(value.decode("latin1"))
        # Two Origin (or Host) headers are a forgery, not a browser: neither is believed.
        origin = values[b"origin"][0] if len(values.get(b"origin", [])) == 1 else None
        host = values[b"host"][0] if len(values.get(b"host", [])) == 1 else None
        if origin_allowed(origin, host, scope.get("scheme") == "wss"):
            await self.application(scope, receive, send)
            return
        # Logged: a deployment behind a proxy that forgot SITE_URL sees why here.
        log.warning(
            "websocket %s refused: origin %r is not this site's (host %r) nor in "
            "CSRF_TRUSTED_ORIGINS / SITE_URL",
            scope.get("path"),
            origin,
            host,
        )
        # A close before the accept: Daphne answers the handshake 403. (Channels'
        # WebsocketDenier would first open a channel on the layer, for nothing.)
        if (await receive())["type"] == "websocket.connect":
            await send({"type": "websocket.close"})
