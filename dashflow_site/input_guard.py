"""The one guard for text the views did not parse themselves: the path, the query string,
form bodies, cookies and headers.

PostgreSQL cannot hold a NUL character in text, and Django hands one on from ``%00`` in a
URL, a query parameter or a form field; it also replaces invalid UTF-8 in them silently.
So every request is checked here, once, before any view (or the session lookup) sees it:
a NUL or invalid UTF-8 is a 400 naming the field and the rule, JSON under ``/api/`` (the
API's error body) and the app's 400 page elsewhere; a websocket handshake is refused
(``websocket_text_guard``). JSON bodies are the parsers' part (``traces/parsing.py``); MCP
tool arguments the MCP server's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
from channels.security.websocket import WebsocketDenier
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.decorators import sync_and_async_middleware

from traces.errors import InputError
from traces.parsing import check_form_encoded, check_text

FORM = "application/x-www-form-urlencoded"


def check_url(path: str, raw_path: bytes | None, query: bytes | str) -> None:
    """A URL's path (as decoded, and as sent when the server passes it) and query."""
    if raw_path is not None:
        try:
            unquote_to_bytes(raw_path).decode()
        except UnicodeDecodeError:
            raise InputError("path", "is not valid UTF-8") from None
    check_text("path", path)
    check_form_encoded(query, "query string")


def refusal(request: HttpRequest) -> InputError | None:
    """The first input of ``request`` that is not text PostgreSQL can hold, if any."""
    try:
        raw_path = getattr(request, "scope", {}).get("raw_path")
        check_url(request.path, raw_path, request.META.get("QUERY_STRING", ""))
        for name, value in request.META.items():
            if name.startswith("HTTP_"):
                check_text(name[5:].replace("_", "-").title(), value)
        content_type = request.META.get("CONTENT_TYPE", "")
        if request.method == "POST" and content_type.startswith(FORM):
            check_form_encoded(request.body, "body")
        elif request.method == "POST" and content_type.startswith("multipart/form-data"):
            for name, values in request.POST.lists():
                for value in [name, *values]:
                    check_text(name, value)
    except InputError as exc:
        return exc
    return None


def refused(request: HttpRequest, error: InputError) -> HttpResponse:
    if request.path.startswith("/api/"):
        body = msgspec.json.encode({"detail": str(error), "path": error.path, "rule": error.rule})
        return HttpResponse(body, status=error.status, content_type="application/json")
    return render(request, "400.html", {"error": error}, status=error.status)


@sync_and_async_middleware
def text_input_guard(
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    """Answer 400 to a request carrying a NUL or invalid UTF-8 (see the module's doc).

    Async-capable, so it costs the producers' endpoints no hop to a thread
    (``dashflow_site/asgi.py``)."""
    if iscoroutinefunction(get_response):

        async def guard_async(request: HttpRequest) -> HttpResponse:
            error = refusal(request)
            if error is not None:
                return refused(request, error)
            response: Awaitable[HttpResponse] = get_response(request)
            return await response

        return guard_async

    def guard(request: HttpRequest) -> HttpResponse:
        error = refusal(request)
        if error is not None:
            return refused(request, error)
        response: HttpResponse = get_response(request)
        return response

    return guard


def websocket_text_guard(app: Any) -> Any:
    """The same rule for a websocket handshake: a NUL or invalid UTF-8 in its path, query
    string or headers is refused (403) before a consumer looks anything up."""

    async def guard(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            check_url(scope["path"], scope.get("raw_path"), scope.get("query_string", b""))
            for name, value in scope.get("headers", []):
                check_text(name.decode("latin-1"), value.decode("latin-1"))
        except InputError:
            await WebsocketDenier.as_asgi()(scope, receive, send)
            return
        await app(scope, receive, send)

    return guard
