"""The exports API: start an export, follow it, download its file, cancel or delete it.

Thin views around ``traces/exports.py`` (``traces/tasks.py`` queues the task). Reading
and downloading needs the viewer role; starting, cancelling and deleting needs member (an
API key acts as a member of its project). Another project's export is a 404, like
everything of a project one is not in.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import exports, formats, permissions, tasks
from ..errors import InputError
from ..models import Export, ExportFormat, ExportStatus
from .auth import request_project
from .request import PROJECT_PARAM, one_or_404, require_role

EXPORT_ID_PARAM = OpenApiParameter("export_id", OpenApiTypes.UUID, OpenApiParameter.PATH)

EXPORT_EXAMPLE = (
    "`status` is one of queued, running, done, failed, cancelled; `progress` is the percent "
    "of the selected runs written (`runs_done` of `runs_total`); `row_count` the rows "
    "written so far (examples, CSV rows, messages or traces, by format); `size` the file's "
    "bytes; `download_url` is set once done."
)


def get_export(request: Request, export_id: Any) -> Export:
    project = request_project(request)
    exports = Export.objects.select_related("project", "created_by")
    return one_or_404(exports.filter(project=project, pk=export_id), f"export {export_id}")


class ExportList(APIView):
    @extend_schema(
        operation_id="list_exports",
        summary="The project's exports, newest first",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description=EXPORT_EXAMPLE)},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        exports.sweep_expired()
        return Response({"results": exports.recent_exports(project)})

    @extend_schema(
        operation_id="start_export",
        summary="Export the selected runs in the background",
        description=(
            'Body: `{"format": F, "filters": {...}}` with F one of '
            + ", ".join(f"`{f}`" for f in ExportFormat.values)
            + ". `filters` takes the run list's filters (same names: `status`, `node`, "
            "`error_type`, `thread_id`, `started_after`, `started_before`, ...) plus "
            "`graph` (a graph name), `execution_ids` (list), `group` (a failure group id), "
            "`verdict` (`good`, `bad` "
            "or `any`: only reviewed steps) and `nodes` (list: only these nodes' steps). "
            "No filters: every run of the project. Answers 202 with the queued export; "
            "follow it with GET /api/v1/exports/{id} or the project's exports websocket."
        ),
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            202: OpenApiResponse(OpenApiTypes.OBJECT, description=EXPORT_EXAMPLE),
            400: OpenApiResponse(description="Bad format or filter: `path` and `rule` say why"),
            403: OpenApiResponse(description="Viewers cannot start exports"),
        },
    )
    def post(self, request: Request) -> Response:
        project = request_project(request)
        require_role(request, project, permissions.REVIEW)
        body = request.data
        if not isinstance(body, dict):
            raise InputError("body", "expected a JSON object")
        unknown = sorted(set(body) - {"format", "filters"})
        if unknown:
            raise InputError(unknown[0], "unknown field; expected format, filters")
        export = exports.start_export(
            project, request.user, body.get("format"), body.get("filters")
        )
        tasks.queue_export(str(export.pk))
        export.refresh_from_db()
        return Response(exports.export_summary(export), status=status.HTTP_202_ACCEPTED)


class ExportDetail(APIView):
    @extend_schema(
        operation_id="get_export",
        summary="One export: status, progress, rows and size",
        parameters=[PROJECT_PARAM, EXPORT_ID_PARAM],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description=EXPORT_EXAMPLE),
            404: OpenApiResponse(description="No such export"),
        },
    )
    def get(self, request: Request, export_id: Any) -> Response:
        return Response(exports.export_summary(get_export(request, export_id)))

    @extend_schema(
        operation_id="delete_export",
        summary="Cancel a queued or running export; delete a finished one and its file",
        parameters=[PROJECT_PARAM, EXPORT_ID_PARAM],
        responses={
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="Cancelled"),
            204: OpenApiResponse(description="Deleted"),
            403: OpenApiResponse(description="Viewers cannot cancel or delete"),
            404: OpenApiResponse(description="No such export"),
        },
    )
    def delete(self, request: Request, export_id: Any) -> Response:
        export = get_export(request, export_id)
        require_role(request, export.project, permissions.REVIEW)
        if exports.cancel_or_delete(export) == "cancelled":
            export.refresh_from_db()
            return Response(exports.export_summary(export), status=status.HTTP_202_ACCEPTED)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportDownload(APIView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The file has its own type; any Accept header may download it (errors are JSON).
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="download_export",
        summary="The export's file, streamed",
        parameters=[PROJECT_PARAM, EXPORT_ID_PARAM],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such export"),
            409: OpenApiResponse(description="Not done yet"),
        },
    )
    def get(self, request: Request, export_id: Any) -> FileResponse:
        export = get_export(request, export_id)
        if export.status != ExportStatus.DONE:
            raise NotDone(export.status)
        file = exports.final_path(export)
        try:
            handle = file.open("rb")
        except FileNotFoundError:
            raise exceptions.NotFound(f"export {export.pk}: its file is gone") from None
        return FileResponse(
            handle,
            as_attachment=True,
            filename=exports.download_name(export),
            content_type=formats.CONTENT_TYPE.get(export.format, "application/octet-stream"),
        )


class NotDone(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT

    def __init__(self, current: str) -> None:
        super().__init__(f"status: the export is {current}; download it once it is done")
