"""The project's capture policy (admins, and API keys with the admin scope) and the
values its attachment rule kept out of the states (anyone who reads the project)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..capture_policy import load_attachment, parse_policy, policy_json, save_policy
from ..models import Project
from ..permissions import MANAGE, READ, KeyPrincipal, user_can
from .auth import request_project
from .request import PROJECT_PARAM, require_role, role_project


def _admin_project(request: Request) -> Project:
    """The project, if the requester administers it; a key without the admin scope is told
    which scope it has and which one this needs."""
    project = request_project(request)
    user = request.user
    if isinstance(user, KeyPrincipal) and not user_can(project, user, MANAGE):
        raise exceptions.PermissionDenied(
            f"this API key's scope is {user.key.scope}; the capture policy needs the admin "
            "scope (manage.py create_api_key --scope admin)"
        )
    require_role(request, project, MANAGE)
    return project


class CapturePolicyView(APIView):
    @extend_schema(
        operation_id="get_capture_policy",
        summary="The project's capture policy: rules on state paths and metadata keys, "
        "detectors (admins, admin-scope keys)",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        project = _admin_project(request)
        return Response(policy_json(parse_policy(project.capture_policy or None)))

    @extend_schema(
        operation_id="put_capture_policy",
        summary="Replace the capture policy; it applies to what is ingested from now on "
        "(admins, admin-scope keys)",
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="`path` names the field, `rule` what it broke"),
        },
    )
    def put(self, request: Request) -> Response:
        project = _admin_project(request)
        return Response(policy_json(save_policy(project, request.data)))


class AttachmentView(APIView):
    @extend_schema(
        operation_id="get_attachment",
        summary='A value a capture rule kept out of the states (`{"$attachment": id}`)',
        parameters=[PROJECT_PARAM, OpenApiParameter("ident", str, OpenApiParameter.PATH)],
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(description="No such id")},
    )
    def get(self, request: Request, ident: str) -> Response:
        project = role_project(request, READ)
        found = load_attachment(project, ident)
        if found is None:
            raise exceptions.NotFound(f"attachment {ident!r}: not found")
        return Response(found)
