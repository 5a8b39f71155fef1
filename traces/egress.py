"""The URLs this site calls on a user's behalf (alert webhooks), and calling them safely.

A webhook URL is typed by a project admin, and the worker that posts to it sits inside
the network, so an unchecked URL is a way to reach what only the server can reach
(server-side request forgery): a database, a cloud metadata service, an admin page on
loopback. By default only ``http``/``https`` URLs whose host resolves to global unicast
addresses are called: every address the name resolves to is checked (loopback, private,
link-local, multicast, reserved, unspecified, shared and other non-global ranges are
refused, IPv4 and IPv6, an IPv4-mapped IPv6 address as its IPv4 one).

The check runs twice: when a rule is saved (``check``: a 400 naming ``webhook_url``), and
at each delivery (``post``), which resolves again, checks every address and connects to
the address it checked, so a name that re-resolves elsewhere in between (DNS rebinding)
cannot move the request; TLS still verifies the certificate against the host name.
Redirects are not followed (``http.client`` never does): a 3xx is a failed delivery.

``ALERT_WEBHOOK_ALLOW_PRIVATE`` (off by default) lifts the address check, for receivers
on loopback or a private network (the tests, the demo); the scheme check stays.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from .errors import InputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A URL this site will not call; the message says why."""


def _kind(address: Address) -> str | None:
    """What makes ``address`` one not to call, or None for a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-global"


def _target(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and the request target (path and query) of ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("expected an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("expected a port from 0 to 65535") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, each checked; raises ``Refused`` naming the
    first refused one, ``OSError`` when the name does not resolve."""
    found: list[Address] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])  # drop an IPv6 zone
        if address not in found:
            found.append(address)
    if not settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        for address in found:
            kind = _kind(address)
            if kind is not None:
                raise Refused(
                    f"{host} resolves to {address}, a {kind} address; webhooks go to public"
                    " addresses only (ALERT_WEBHOOK_ALLOW_PRIVATE)"
                )
    return found


def check(url: str, path: str = "webhook_url") -> None:
    """Refuse ``url`` as a webhook: an ``InputError`` at ``path`` saying why."""
    try:
        _, host, port, _ = _target(url)
        resolve(host, port)
    except Refused as exc:
        raise InputError(path, str(exc)) from None
    except OSError as exc:
        raise InputError(path, f"the host does not resolve ({exc})") from None


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to ``url`` connected to an address just resolved and checked; returns
    the HTTP status (a redirect is not followed). Raises ``Refused``, or ``OSError`` when
    no connection could be made."""
    scheme, host, port, target = _target(url)
    addresses = resolve(host, port)
    connection_class = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=timeout)
    # http.client connects to (host, port) through this hook, then (HTTPS) wraps the
    # socket with the host name for SNI and certificate checks: connecting it to the
    # checked addresses pins the request to them whatever DNS answers next.
    connection._create_connection = _pinned(addresses, port)  # type: ignore[attr-defined]
    try:
        connection.request("POST", target, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def _pinned(addresses: list[Address], port: int) -> Callable[..., socket.socket]:
    def connect(_address: Any, timeout: float, source: Any = None) -> socket.socket:
        error: OSError | None = None
        for address in addresses:
            try:
                return socket.create_connection((str(address), port), timeout, source)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    return connect
