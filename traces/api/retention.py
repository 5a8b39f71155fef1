"""Retention API: pin or unpin a run (members), read or set the project's retention
(reads for members, writes for admins). Thin views around ``traces/retention.py``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import retention
from ..errors import InputError
from ..models import Project
from ..permissions import MANAGE, READ, REVIEW
from .request import (
    EXECUTION_ID_PARAM,
    PROJECT_PARAM,
    get_run,
    json_object,
    require_role,
    role_project,
)


class PinSerializer(serializers.Serializer[Any]):
    execution_id = serializers.CharField()
    pinned = serializers.BooleanField(help_text="A pinned run is kept whatever the retention")


class RetentionSerializer(serializers.Serializer[Any]):
    retention_days = serializers.IntegerField(
        allow_null=True,
        min_value=1,
        max_value=retention.MAX_RETENTION_DAYS,
        help_text="Runs started and last written more than this many days ago are deleted "
        "(null: kept forever)",
    )
    expired_runs = serializers.IntegerField(
        help_text="How many runs a purge would delete now (pinned runs are never counted)"
    )


class RetentionPutSerializer(serializers.Serializer[Any]):
    retention_days = serializers.IntegerField(
        allow_null=True, min_value=1, max_value=retention.MAX_RETENTION_DAYS
    )


def pin_body(execution_id: str, pinned: bool) -> dict[str, Any]:
    return {"execution_id": execution_id, "pinned": pinned}


class RunPin(APIView):
    def change(self, request: Request, execution_id: str, pinned: bool) -> Response:
        run = get_run(request, execution_id)
        require_role(request, run.project, REVIEW)
        retention.set_pinned(run, pinned)
        return Response(pin_body(run.execution_id, pinned))

    @extend_schema(
        operation_id="pin_run",
        summary="Pin a run: retention never deletes it (members)",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM],
        request=None,
        responses={200: PinSerializer, 403: OpenApiResponse(description="A viewer")},
    )
    def post(self, request: Request, execution_id: str) -> Response:
        return self.change(request, execution_id, True)

    @extend_schema(
        operation_id="unpin_run",
        summary="Unpin a run: retention deletes it once it is old enough (members)",
        parameters=[PROJECT_PARAM, EXECUTION_ID_PARAM],
        request=None,
        responses={200: PinSerializer, 403: OpenApiResponse(description="A viewer")},
    )
    def delete(self, request: Request, execution_id: str) -> Response:
        return self.change(request, execution_id, False)


def retention_body(project: Project) -> dict[str, Any]:
    return {
        "retention_days": project.retention_days,
        "expired_runs": retention.dry_run_count(project),
    }


class Retention(APIView):
    @extend_schema(
        operation_id="get_retention",
        summary="The project's retention and how many runs a purge would delete now",
        parameters=[PROJECT_PARAM],
        responses={200: RetentionSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(retention_body(role_project(request, READ)))

    @extend_schema(
        operation_id="set_retention",
        summary="Set the project's retention in days, or null to keep runs forever (admins)",
        description="Runs past it are deleted by the next hourly purge, pinned runs excepted.",
        parameters=[PROJECT_PARAM],
        request=RetentionPutSerializer,
        responses={
            200: RetentionSerializer,
            400: OpenApiResponse(description="`retention_days` is not 1 to 36,500 or null"),
            403: OpenApiResponse(description="Not an admin"),
        },
    )
    def put(self, request: Request) -> Response:
        project = role_project(request, MANAGE)
        body = json_object(request)
        unknown = sorted(set(body) - {"retention_days"})
        if unknown:
            raise InputError(unknown[0], "unknown field")
        if "retention_days" not in body:
            raise InputError("retention_days", "required (null keeps runs forever)")
        value = body["retention_days"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError("retention_days", "expected a whole number of days, or null")
        retention.set_retention(project, value)
        return Response(retention_body(project))
