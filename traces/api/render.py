"""JSON rendering and error bodies for the API.

msgspec encodes large states ~25x faster than DRF's stock renderer (json.dumps through
its encoder hooks); every error body is ``{"detail", "path", "rule"}`` where a path exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE, InputError, database_unavailable

log = logging.getLogger(__name__)


def _default(value: Any) -> Any:
    # DRF's lazy strings (error messages) and anything else str()-able.
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_default)


class FastJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        return _encoder.encode(data)


class TextRenderer(BaseRenderer):
    """A text format the view answers itself (Markdown, CSV): a ``str`` is the body; an
    error body that comes through is its ``detail`` as plain text."""

    charset = "utf-8"

    def render(self, data: Any, *args: Any, **kwargs: Any) -> bytes:
        if isinstance(data, str):
            return data.encode()
        detail = data.get("detail", "") if isinstance(data, dict) else data
        return str(detail).encode()


class MarkdownRenderer(TextRenderer):
    """``?format=md`` (or ``Accept: text/markdown``): a run as Markdown
    (``traces/run_markdown.py``)."""

    media_type = "text/markdown"
    format = "md"


def json_errors(response: Response) -> Response:
    """An error answer in JSON whichever format was asked for: a client of ``?format=md``
    still gets the one error body (``{"detail", "path", "rule"}``) it can parse."""
    if response.exception and isinstance(response.accepted_renderer, MarkdownRenderer):
        response.accepted_renderer = FastJSONRenderer()
        response.accepted_media_type = FastJSONRenderer.media_type
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InputError):
        return Response({"detail": str(exc), "path": exc.path, "rule": exc.rule}, status=exc.status)
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        # Query-parameter errors: {"status": ["..."]} -> name the first field and rule.
        field, messages = next(iter(exc.detail.items()))
        rule = messages[0] if isinstance(messages, list) else messages
        response = Response(
            {"detail": f"{field}: {rule}", "path": str(field), "rule": str(rule)},
            status=status.HTTP_400_BAD_REQUEST,
        )
        return response
    if database_unavailable(exc):
        # Logged with the request and the cause (the server's side), answered as a retry.
        request = context.get("request")
        where = f"{request.method} {request.path}" if request is not None else "?"
        log.warning("database unavailable: %s: %s", where, exc)
        return Response(
            {"detail": DATABASE_UNAVAILABLE},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    return drf_exception_handler(exc, context)
