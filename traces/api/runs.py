"""The HTTP API (DRF): ingestion and reads. Thin views around ingest.py and store.py."""

from __future__ import annotations

from typing import Any

import msgspec
from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from .. import ingest, store
from ..dashstream_read import read_frames
from ..errors import InputError
from ..filters import SORTS
from ..models import DashStreamCursor
from ..parsing import parse_events, parse_step_index, parse_trace
from ..run_markdown import run_markdown
from ..runlist import RunListing, list_runs
from .auth import request_project
from .render import FastJSONRenderer, MarkdownRenderer, json_errors
from .request import (
    EXECUTION_ID_PARAM,
    PROJECT_PARAM,
    get_run,
    key_project,
    request_json,
    request_trace,
)


class TraceIngest(APIView):
    @extend_schema(
        operation_id="ingest_trace",
        summary="Ingest one ExecutionTrace (DashFlow JSON)",
        description=(
            "Body: one ExecutionTrace exactly as DashFlow's `to_json()` writes it, "
            "optionally `Content-Encoding: gzip`, up to `TRACE_UPLOAD_MAX_BYTES` (256 MB by "
            "default) both as sent and inflated. Requires `Authorization: Bearer <key>`. "
            "Idempotent on `execution_id`: 201 when stored, 200 when already stored. "
            "A trace without `execution_id` gets one, returned in the body."
        ),
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            201: OpenApiResponse(OpenApiTypes.OBJECT, description="Stored"),
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Already stored"),
            400: OpenApiResponse(description="Invalid trace: `path` and `rule` say why"),
            401: OpenApiResponse(description="Missing, unknown or revoked key"),
            413: OpenApiResponse(
                description="Body (or, gzipped, the JSON it inflates to) over "
                "TRACE_UPLOAD_MAX_BYTES"
            ),
        },
    )
    def post(self, request: Request) -> Response:
        project = key_project(request)
        trace = parse_trace(request_trace(request))
        run, created = ingest.ingest_trace(project, trace)
        body = {
            "execution_id": run.execution_id,
            "created": created,
            "status": run.status,
            "url": reverse("api:run", args=[run.execution_id]),
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RunEvents(APIView):
    @extend_schema(
        operation_id="post_run_events",
        summary="Stream a run while it executes: a batch of live events",
        description=(
            'Body: `{"events": [{"seq": n, "type": T, "data": {...}}]}` with T one of '
            "`run_started`, `node_started`, `node_finished` (data: a NodeExecution), `error` "
            "(data: an ErrorTrace), `run_finished`. `seq` counts from 1 per run; a seq already "
            "stored is ignored, so a retried batch is harmless. Requires an API key."
        ),
        parameters=[EXECUTION_ID_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Stored"),
            400: OpenApiResponse(description="Invalid event: `path` and `rule` say why"),
            401: OpenApiResponse(description="Missing, unknown or revoked key"),
        },
    )
    def post(self, request: Request, execution_id: str) -> Response:
        project = key_project(request)
        if len(execution_id) > 200:
            raise InputError("execution_id", "expected at most 200 characters")
        data = request_json(request)
        events = parse_events(data, settings.TRACE_MAX_EVENTS)
        run, new = ingest.ingest_events(project, execution_id, events)
        return Response(
            {
                "execution_id": run.execution_id,
                "accepted": len(new),
                "duplicates": len(events) - len(new),
                "last_seq": run.last_seq,
                "missing_seqs": run.missing_seqs,
                "status": run.status,
            }
        )


def page_links(request: Request, listing: RunListing) -> dict[str, str | None]:
    """``next`` / ``previous`` as absolute URLs: this request's with another cursor."""
    url = request.build_absolute_uri()
    return {
        name: replace_query_param(url, "cursor", cursor) if cursor else None
        for name, cursor in (("next", listing.page.next), ("previous", listing.page.previous))
    }


class RunList(APIView):
    @extend_schema(
        operation_id="list_runs",
        summary="Runs of a project: filtered, sorted, cursor-paged (newest first by default)",
        description=(
            "The same filters and names as the run list page (`/projects/<slug>/runs/`). "
            "`next`/`previous` are links with a keyset `cursor`; a cursor belongs to its "
            "sort. A bad value is a 400 naming the parameter."
        ),
        parameters=[
            PROJECT_PARAM,
            OpenApiParameter("status", str, enum=["running", "completed", "failed"]),
            OpenApiParameter("node", str, description="Runs that executed this node"),
            OpenApiParameter("error_type", str, description="Runs with an error of this type"),
            OpenApiParameter("thread_id", str),
            OpenApiParameter("graph_name", str),
            OpenApiParameter("started_after", OpenApiTypes.DATETIME, description="Inclusive"),
            OpenApiParameter("started_before", OpenApiTypes.DATETIME, description="Exclusive"),
            OpenApiParameter(
                "last", str, description="Started in the last n m/h/d/w, such as `24h`"
            ),
            OpenApiParameter(
                "q",
                str,
                description="Free text over node names, error types and messages, metadata "
                'keys and values, ids; every word (or "quoted phrase") must match',
            ),
            OpenApiParameter("sort", str, enum=list(SORTS), description="Default -started_at"),
            OpenApiParameter("limit", int, description="Page size (default 50, max 500)"),
            OpenApiParameter("cursor", str),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        listing = list_runs(project, request.query_params)
        return Response(
            {**page_links(request, listing), "results": [r.summary() for r in listing.page.runs]}
        )


class RunDetail(APIView):
    renderer_classes = [FastJSONRenderer, MarkdownRenderer]

    @extend_schema(
        operation_id="get_run",
        summary="A run's summary with its node list and errors (no states), or as Markdown",
        description=(
            "`?format=md` (or `Accept: text/markdown`) answers the run as Markdown sized to "
            "paste into a chat or an issue (at most ~8,000 characters whatever the run): the "
            "header, the errors with their steps, the node sequence (a long run is elided in "
            "the middle) and, with `step=N`, what step N changed as JSON Pointer paths. "
            "Errors stay JSON."
        ),
        parameters=[
            PROJECT_PARAM,
            EXECUTION_ID_PARAM,
            OpenApiParameter("format", str, enum=["json", "md"], description="Default json"),
            OpenApiParameter(
                "step",
                int,
                description="With format=md: the step (DashFlow index) whose diff to show",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/markdown"): OpenApiResponse(
                OpenApiTypes.STR, description="The run as Markdown"
            ),
            400: OpenApiResponse(description="`step` is not a step index"),
            404: OpenApiResponse(description="No such run, or no such step"),
        },
    )
    def get(self, request: Request, execution_id: str) -> Response:
        run = get_run(request, execution_id)
        if isinstance(request.accepted_renderer, MarkdownRenderer):
            step = parse_step_index(request.query_params.get("step"))
            return Response(run_markdown(run, step))
        body = run.summary()
        body["nodes"] = [s.summary() for s in run.steps.all()]
        body["errors"] = [e.summary() for e in run.errors.all()]
        stream = DashStreamCursor.objects.filter(run=run).first()
        if stream is not None:
            body["dashstream"] = stream.health()
        return Response(body)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        return json_errors(super().finalize_response(request, response, *args, **kwargs))


DOWNLOAD_PARAM = OpenApiParameter(
    "download",
    bool,
    description="Any value: answer as a file to save (`Content-Disposition: attachment`)",
)


def as_download(request: Request, response: HttpResponse, filename: str) -> HttpResponse:
    """``response`` as an attachment named ``filename`` when the query asks ``download``."""
    if "download" in request.query_params:
        response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


class RunStep(APIView):
    @extend_schema(
        operation_id="get_step",
        summary="One node execution with state_before and state_after",
        parameters=[
            PROJECT_PARAM,
            EXECUTION_ID_PARAM,
            OpenApiParameter("index", int, "path"),
            DOWNLOAD_PARAM,
        ],
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(description="No such step")},
    )
    def get(self, request: Request, execution_id: str, index: int) -> HttpResponse:
        run = get_run(request, execution_id)
        node = store.load_step(run, index)
        if node is None:
            raise exceptions.NotFound(f"step {index} of run {execution_id!r}: not found")
        response = HttpResponse(msgspec.json.encode(node), content_type="application/json")
        return as_download(request, response, f"{execution_id}-step-{index}.json")


class RunTrace(APIView):
    @extend_schema(
        operation_id="get_trace",
        summary="The whole run as an ExecutionTrace in DashFlow JSON",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM, DOWNLOAD_PARAM],
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(description="No such run")},
    )
    def get(self, request: Request, execution_id: str) -> HttpResponse:
        run = get_run(request, execution_id)
        response = HttpResponse(store.load_trace(run).to_json(), content_type="application/json")
        return as_download(request, response, f"{execution_id}.json")


class DashStreamIngest(APIView):
    @extend_schema(
        operation_id="ingest_dashstream",
        summary="Ingest DashStream frames (DashFlow's streaming protocol)",
        description=(
            "Body: one frame (`Content-Type: application/x-protobuf`: `0x00` + protobuf, "
            "`0x01` + zstd(protobuf), or a legacy unframed message) or many "
            "(`application/x-dashstream-frames`: each preceded by its length as 4 bytes "
            "big-endian, as a `dashstream` export writes them); optionally "
            "`Content-Encoding: gzip`. GRAPH_START opens a live run, node events and state "
            "diffs stream into it, GRAPH_END completes it. Duplicates (message id, or thread "
            "and sequence) are dropped; gaps and reorders are counted. A frame over 10 MB "
            "(compressed or not) is a 413 and an undecodable one a 400 naming the frame, "
            "after the body's good frames are stored. Requires an API key."
        ),
        request={
            "application/x-protobuf": OpenApiTypes.BINARY,
            "application/x-dashstream-frames": OpenApiTypes.BINARY,
        },
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Stored"),
            400: OpenApiResponse(description="A frame that is not a DashStream message"),
            401: OpenApiResponse(description="Missing, unknown or revoked key"),
            413: OpenApiResponse(description="A frame over 10 MB, or the body over the limit"),
            415: OpenApiResponse(description="Another Content-Type or Content-Encoding"),
        },
    )
    def post(self, request: Request) -> Response:
        project = key_project(request)
        body = request_json(request)
        frames = read_frames(body, request.content_type or "")
        intake, touched = ingest.ingest_dashstream(project, frames.messages)
        refused = min(
            (e for e in (frames.error, intake.error) if e is not None),
            key=lambda e: _frame_number(e.path),
            default=None,
        )
        if refused is not None:
            kept = len({index for index, _ in frames.messages}) - (intake.error is not None)
            raise InputError(
                refused.path,
                f"{refused.rule} (the body's other {max(kept, 0)} decodable frame(s) were stored)",
                refused.status,
            )
        return Response(
            {
                "frames": len(frames.messages),
                "accepted": intake.accepted,
                "duplicates": intake.duplicates,
                "unmatched": intake.unmatched,
                "runs": [
                    {
                        "execution_id": run.execution_id,
                        "status": run.status,
                        "url": reverse("api:run", args=[run.execution_id]),
                        **stream.cursor.health(),
                    }
                    for run, stream in touched
                ],
            }
        )


def _frame_number(path: str) -> int:
    digits = path.removeprefix("$.frames[").split("]", 1)[0]
    return int(digits) if digits.isdigit() else -1
