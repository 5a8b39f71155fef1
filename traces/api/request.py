"""What every API view takes from a request: the body within the limits, the project and
the requester's role in it, a run of the project, and the parameters the schema documents."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

from ..errors import InputError
from ..models import Project, Run
from ..parsing import Body, decode_body, parse_json, read_stream, too_large
from ..permissions import KeyPrincipal, user_can, write_refused
from ..throttle import checked, ingest_refusal, ingest_refused
from .auth import request_project

M = TypeVar("M", bound=Model)

PROJECT_PARAM = OpenApiParameter(
    "project",
    str,
    description="Project slug. Required with session authentication; an API key is "
    "bound to its project.",
)
EXECUTION_ID_PARAM = OpenApiParameter("execution_id", str, OpenApiParameter.PATH)


def read_body(request: Request | HttpRequest) -> bytes:
    """The raw body, refusing more than the limit without reading it all."""
    limit: int = settings.TRACE_MAX_BODY_BYTES
    declared = _declared(request)
    if declared is not None and declared > limit:
        raise too_large(declared)
    # Read the stream ourselves: request.body would apply Django's own (smaller) cap
    # and answer 400 instead of 413.
    body: bytes = _django(request).read(limit + 1)
    if len(body) > limit:
        raise too_large(None)
    return body


def request_trace(request: Request) -> Body:
    """A whole trace's body (``POST /api/v1/traces``) within ``TRACE_UPLOAD_MAX_BYTES``,
    gzip inflated as it is read: the compressed body and the JSON are each held to the
    limit, and only the JSON is kept (Django spools the body to a file as it arrives)."""
    name = "TRACE_UPLOAD_MAX_BYTES"
    limit: int = settings.TRACE_UPLOAD_MAX_BYTES
    declared = _declared(request)
    if declared is not None and declared > limit:
        raise too_large(declared, name)
    encoding = request.META.get("HTTP_CONTENT_ENCODING")
    if declared is None or declared > _TRIM_ABOVE:
        _release_freed_memory()
    return read_stream(_django(request).read, encoding, name, limit)


def _release_freed_memory() -> None:
    """Give the C heap's free pages back to the system before a large body is read.

    Daphne hands the application a body in 8 KB messages, all queued at once; Django
    has copied them to a file by now, and freed them, but the C allocator keeps the
    freed pages of its heap for later small objects, and the body, read whole next, is
    one new large block: without this the process would peak at the body twice
    (benchmarks/large_ingest.py). ``malloc_trim`` is glibc's; elsewhere nothing is done.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()
# Bodies smaller than this leave too little in the heap to be worth a trim (it walks the
# whole heap: milliseconds on a large one).
_TRIM_ABOVE = 4 * 1024 * 1024


def _declared(request: Request | HttpRequest) -> int | None:
    declared = request.META.get("CONTENT_LENGTH")
    return int(declared) if declared and declared.isdigit() else None


def _django(request: Request | HttpRequest) -> HttpRequest:
    return request._request if isinstance(request, Request) else request


class JSONParser(BaseParser):
    """The API's JSON bodies, through the one parser (``parsing.parse_json``): a bad one
    is an ``InputError`` naming the path and the rule, as everywhere."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit: int = settings.TRACE_MAX_BODY_BYTES
        data: bytes = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise too_large(None)
        return parse_json(data) if data else {}


def key_project(request: Request) -> Project:
    """The project of the request's API key; ingestion takes keys only, not sessions, only
    keys whose scope writes, and each key within its rate (429 with Retry-After), checked
    before the body is read (under Daphne, by Daphne, before the request reaches Django:
    ``traces/throttle.py``)."""
    if not isinstance(request.user, KeyPrincipal):
        raise exceptions.PermissionDenied("ingestion requires an API key (Bearer)")
    refused = write_refused(request.user, "ingestion")
    if refused is not None:
        raise exceptions.PermissionDenied(refused)
    if checked(request.META.get("HTTP_X_DASHFLOW_RATE_CHECKED")):
        return request.user.project  # Daphne took this request's token already
    throttled = ingest_refused(request.user.key.key_hash)
    if throttled is not None:
        raise exceptions.Throttled(throttled.retry_after, ingest_refusal(throttled))
    return request.user.project


def require_role(request: Request, project: Project, needed: str) -> None:
    """403 when the requester (a user or an API key) has less than ``needed`` in
    ``project`` (traces/permissions.py)."""
    if not user_can(project, request.user, needed):
        raise exceptions.PermissionDenied(f"this needs the {needed} role in {project.slug!r}")


def role_project(request: Request, needed: str) -> Project:
    """The request's project, if the requester has ``needed`` in it (403 otherwise)."""
    project = request_project(request)
    require_role(request, project, needed)
    return project


def json_object(request: Request) -> dict[str, Any]:
    """The parsed body, which must be a JSON object."""
    if not isinstance(request.data, dict):
        raise InputError("$", "expected a JSON object")
    return request.data


def request_json(request: Request) -> bytes:
    """The body within the limit, gzip undone."""
    return decode_body(read_body(request), request.META.get("HTTP_CONTENT_ENCODING"))


def one_or_404(rows: QuerySet[M], what: str) -> M:
    """The one row of ``rows`` (already narrowed to the request's project), or a 404 that
    names ``what`` and says no more (the same answer whether it exists elsewhere or not)."""
    found = rows.first()
    if found is None:
        raise exceptions.NotFound(f"{what}: not found")
    return found


def get_run(request: Request, execution_id: str) -> Run:
    project = request_project(request)
    runs = Run.objects.select_related("project").filter(project=project, execution_id=execution_id)
    return one_or_404(runs, f"run {execution_id!r}")
