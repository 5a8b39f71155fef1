"""JSON rendering and error bodies for the API.

msgspec encodes large states ~25x faster than DRF's stock renderer (json.dumps through
its encoder hooks); every error body is ``{"detail", "path", "rule"}`` where a path exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from django.http import Http404
from django.http.response import HttpResponseBase
from rest_framework import exceptions, status
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE, InputError, database_unavailable

log = logging.getLogger(__name__)

R = TypeVar("R", bound=HttpResponseBase)


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


def json_errors(response: R) -> R:
    """An error answer in JSON whichever format was asked for: a client of ``?format=md``
    or ``?format=csv`` still gets the one error body (``{"detail", "path", "rule"}``) it
    can parse, as the schema says. (A streamed answer is no error: it passes as it is.)"""
    if (
        isinstance(response, Response)
        and response.exception
        and isinstance(response.accepted_renderer, TextRenderer)
    ):
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


# The one error body, in the OpenAPI schema (``document_errors``).
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "path": {"type": "string", "description": "The field or parameter refused"},
        "rule": {"type": "string", "description": "The rule it broke"},
    },
    "required": ["detail"],
}
# What any operation may answer besides its own responses: the checks every view makes
# (the API key or session, the project, the role, the input), with the one error body.
ERROR_RESPONSES = {
    "400": "Invalid input: `path` names the field or parameter, `rule` the rule it broke",
    "401": "Not signed in, or a missing, unknown or revoked API key",
    "403": "The role (or the API key's scope) in the project does not allow it",
    "404": "No such project for the requester, or nothing of that id in it",
}


def document_errors(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents the error answers
    every view can give (``ERROR_RESPONSES``), and every error answer has the one error
    body, so the schema says what the API answers (Schemathesis checks it)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_RESPONSES.items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code.startswith(("4", "5")) and not response.get("content"):
                    response["content"] = body
    return result
