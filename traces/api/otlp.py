"""``POST /v1/traces``: the OTLP/HTTP trace receiver (the path OpenTelemetry exporters post
to by default), protobuf or JSON, gzip, authenticated by a project API key.

Answers as the OTLP/HTTP specification says: ``ExportTraceServiceResponse`` in the
request's encoding (with ``partial_success`` when some spans were refused), and for a
refused request a ``google.rpc.Status`` with the status code the exporters act on: 400 bad
data, 401 / 403 the key, 413 too large, 415 an unknown content type, 429 / 503 with
``Retry-After`` (retryable). A plain Django view: no session, no CSRF, no DRF renderer.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from .. import otlp
from ..errors import InputError
from ..parsing import decode_body
from ..permissions import writing_key_project
from ..spans import JSON, PROTOBUF, parse_export
from .request import read_body

log = logging.getLogger(__name__)

# The gRPC codes of google.rpc.Status for the HTTP statuses answered here.
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}
DB_RETRY_AFTER = 5


@csrf_exempt
def traces(request: HttpRequest) -> HttpResponse:
    content_type = request.content_type or ""
    as_json = content_type == JSON
    if request.method != "POST":
        response = _status(405, "use POST", as_json)
        response["Allow"] = "POST"
        return response
    try:
        project = writing_key_project(request.headers.get("Authorization", ""), "ingestion")
        if content_type not in (PROTOBUF, JSON):
            # Checked before reading the body: its size is no reason to read it.
            parse_export(b"", content_type)
        body = decode_body(read_body(request), request.headers.get("Content-Encoding"))
        done = otlp.export(project, parse_export(body, content_type))
    except InputError as exc:
        return _status(exc.status, str(exc), as_json)
    except otlp.Busy as exc:
        response = _status(429, str(exc), as_json)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except DatabaseError:
        # The database is down or overloaded: retryable for the exporter, logged for us.
        log.exception("OTLP export failed on the database")
        response = _status(503, "the database is unavailable; retry", as_json)
        response["Retry-After"] = str(DB_RETRY_AFTER)
        return response
    answer = ExportTraceServiceResponse()
    if done.rejected:
        answer.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=done.rejected, error_message=done.error)
        )
    return _message(200, answer, as_json)


def _status(status: int, message: str, as_json: bool) -> HttpResponse:
    return _message(status, Status(code=_GRPC_CODES.get(status, 2), message=message), as_json)


def _message(status: int, message: Message, as_json: bool) -> HttpResponse:
    if as_json:
        body = json_format.MessageToJson(message, indent=None).encode()
        return HttpResponse(body, status=status, content_type=JSON)
    return HttpResponse(message.SerializeToString(), status=status, content_type=PROTOBUF)
