"""The failure-group API: list, read, and change a group's status and assignee.

Thin views around traces/failures.py; roles come from traces/permissions.py (a viewer
reads; a member, an admin or an API key changes; anyone else gets 404).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import failure_json, failures
from ..errors import InputError
from ..models import FailureGroup, GroupStatus, Project
from ..permissions import REVIEW, KeyPrincipal
from .auth import request_project
from .request import PROJECT_PARAM, one_or_404, require_role


class FailureGroupOut(serializers.Serializer[Any]):
    """The schema of a group (the body is built by ``failure_json.group_summary``)."""

    id = serializers.IntegerField()
    fingerprint = serializers.CharField(help_text="SHA-256 of node, error type, message")
    node = serializers.CharField()
    error_type = serializers.CharField(help_text='"" when the failure named no type')
    message = serializers.CharField(
        help_text="The normalised message: numbers, ids, URLs, emails, paths and quoted "
        "values replaced by placeholders such as <num> and <url>"
    )
    sample_message = serializers.CharField(help_text="The latest raw message")
    count = serializers.IntegerField(help_text="Occurrences (errors, failed steps, runs)")
    status = serializers.ChoiceField(choices=GroupStatus.choices)
    assignee = serializers.CharField(allow_null=True, help_text="Username, or null")
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    regressed_at = serializers.DateTimeField(
        allow_null=True, help_text="When a new occurrence last reopened it after resolving"
    )
    run_ids = serializers.ListField(
        child=serializers.CharField(),
        help_text=f"Execution ids of the affected runs, most recent first, at most "
        f"{failure_json.RUN_IDS_CAP}",
    )


class FailureGroupPage(serializers.Serializer[Any]):
    """The schema of one page of groups (``GroupPagination``'s answer)."""

    next = serializers.URLField(allow_null=True, help_text="The next page, or null")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null")
    results = FailureGroupOut(many=True)


class FailureGroupPatch(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=GroupStatus.choices, required=False)
    assignee = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="Username of a project member, or null to unassign",
    )


class GroupPagination(CursorPagination):
    ordering = ("-last_seen", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


GROUP_ID_PARAM = OpenApiParameter("group_id", int, OpenApiParameter.PATH)


def filtered_groups(request: Request, project: Project) -> QuerySet[FailureGroup]:
    """The project's groups narrowed by the query's filters; a bad value is a 400."""
    params = request.query_params
    groups = FailureGroup.objects.filter(project=project).select_related("assignee")
    status = failure_json.parse_status(params.get("status"))
    if status:
        groups = groups.filter(status=status)
    assignee: Any = params.get("assignee") or None
    if assignee == "me":
        if isinstance(request.user, KeyPrincipal):
            raise InputError("assignee", "'me' needs a signed-in user, not an API key")
        assignee = request.user
    return failure_json.filter_groups(
        groups, params.get("node"), params.get("error_type"), assignee
    )


def get_group(request: Request, group_id: int) -> FailureGroup:
    project = request_project(request)
    groups = FailureGroup.objects.filter(project=project, pk=group_id)
    return one_or_404(groups.select_related("assignee", "project"), f"failure group {group_id}")


def parse_patch(data: Any) -> dict[str, Any]:
    """The fields to change; unknown fields and bad values are 400s naming the field."""
    if not isinstance(data, dict):
        raise InputError("$", "expected an object")
    unknown = sorted(set(data) - {"status", "assignee"})
    if unknown:
        raise InputError(unknown[0], "unknown field: only status and assignee can change")
    if not data:
        raise InputError("$", "name status and/or assignee")
    patch = FailureGroupPatch(data=data)
    if not patch.is_valid():
        field, messages = next(iter(patch.errors.items()))
        raise InputError(field, messages[0])
    return dict(patch.validated_data)


class FailureGroupList(APIView):
    @extend_schema(
        operation_id="list_failure_groups",
        summary="Failure groups of a project, most recently seen first (cursor pagination)",
        parameters=[
            PROJECT_PARAM,
            OpenApiParameter("status", str, enum=GroupStatus.values),
            OpenApiParameter("node", str),
            OpenApiParameter("error_type", str),
            OpenApiParameter(
                "assignee", str, description="A username, or `me` (signed-in users only)"
            ),
            OpenApiParameter("limit", int, description="Page size (default 50, max 500)"),
            OpenApiParameter("cursor", str),
        ],
        responses={200: FailureGroupPage},
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        groups = filtered_groups(request, project)
        paginator = GroupPagination()
        page = paginator.paginate_queryset(groups, request, view=self)
        assert page is not None
        return paginator.get_paginated_response(failure_json.summaries(page))


class FailureGroupDetail(APIView):
    @extend_schema(
        operation_id="get_failure_group",
        summary="One failure group",
        parameters=[PROJECT_PARAM, GROUP_ID_PARAM],
        responses={200: FailureGroupOut, 404: OpenApiResponse(description="No such group")},
    )
    def get(self, request: Request, group_id: int) -> Response:
        group = get_group(request, group_id)
        return Response(failure_json.summaries([group])[0])

    @extend_schema(
        operation_id="update_failure_group",
        summary="Change a group's status and/or assignee (members and API keys)",
        description="Each change is written to the group's activity log (who, from, to) "
        "and pushed to the project's open failure pages.",
        parameters=[PROJECT_PARAM, GROUP_ID_PARAM],
        request=FailureGroupPatch,
        responses={
            200: FailureGroupOut,
            400: OpenApiResponse(description="`path` names the field"),
            403: OpenApiResponse(description="A viewer cannot change groups"),
            404: OpenApiResponse(description="No such group"),
        },
    )
    def patch(self, request: Request, group_id: int) -> Response:
        group = get_group(request, group_id)
        require_role(request, group.project, REVIEW)
        changes = parse_patch(request.data)
        group = failures.change_group(
            group,
            request.user,
            status=changes.get("status"),
            assignee=changes.get("assignee"),
            set_assignee="assignee" in changes,
        )
        return Response(failure_json.summaries([group])[0])
