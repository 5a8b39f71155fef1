"""``/mcp``: the MCP server over streamable HTTP, each request authenticated by API key.

``dashflow_site/asgi.py`` routes ``/mcp`` here, past Django's middleware (no session, no
CSRF: the key is the credential). A request without a live key is answered 401 before the
SDK sees it; otherwise the key is set in ``server.current_key`` for the tools.

Stateless, JSON responses: each POST is a whole exchange (no session id, no SSE stream),
so any Daphne process can answer any request and nothing is held between requests.

Why a session manager per request: the SDK's ``StreamableHTTPSessionManager`` serves
requests inside the task group its ``run()`` opens, which an ASGI server is meant to enter
once through the lifespan protocol. Daphne does not run the lifespan protocol, so there is
no place to enter it for the process. A manager is cheap (a few objects; the tools and
their schemas belong to the one ``MCPServer``), and in stateless mode one per request is
exactly the lifetime its task group needs: it opens, serves this request, and closes with
it, and a client that goes away cancels only its own.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from ..errors import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE, InputError, database_unavailable
from ..permissions import KeyPrincipal, bearer_key
from .server import current_key, server

log = logging.getLogger(__name__)


def _principal(header: str) -> KeyPrincipal:
    key = bearer_key(header) if header else None
    if key is None:
        raise InputError("Authorization", "required: Bearer <API key of the project>", status=401)
    return KeyPrincipal(key)


async def _refuse(send: Any, error: InputError) -> None:
    body = {"detail": str(error), "path": error.path, "rule": error.rule}
    await _answer(send, error.status, body, (b"www-authenticate", b"Bearer"))


async def _answer(
    send: Any, status: int, body: dict[str, Any], *headers: tuple[bytes, bytes]
) -> None:
    encoded = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})


async def mcp_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI app for ``/mcp``."""
    headers = dict(scope.get("headers") or [])
    header = headers.get(b"authorization", b"").decode("latin-1")
    try:
        principal = await database_sync_to_async(_principal)(header)
    except InputError as exc:
        await _refuse(send, exc)
        return
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("database unavailable: /mcp: %s", exc)
        retry = (b"retry-after", str(DATABASE_RETRY_AFTER).encode())
        await _answer(send, 503, {"detail": DATABASE_UNAVAILABLE}, retry)
        return
    token = current_key.set(principal)
    try:
        manager = StreamableHTTPSessionManager(
            # MCPServer keeps its protocol server private; the manager needs that one.
            server._lowlevel_server,
            json_response=True,
            stateless=True,
        )
        async with manager.run():
            await manager.handle_request(scope, receive, send)
    finally:
        current_key.reset(token)
