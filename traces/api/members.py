"""Project administration API: members and API keys (admins only; reads for members)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import members
from ..models import ApiKey, KeyScope, Membership, Project
from ..permissions import MANAGE, READ
from .request import PROJECT_PARAM, json_object, one_or_404, role_project


def _membership(project: Project, username: str) -> Membership:
    memberships = project.memberships.select_related("user")
    return one_or_404(memberships.filter(user__username=username), f"member {username!r}")


class MemberList(APIView):
    @extend_schema(
        operation_id="list_members",
        summary="The project's members and roles",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        project = role_project(request, READ)
        rows = project.memberships.select_related("user").order_by("user__username")
        return Response({"results": [members.member_summary(m) for m in rows]})

    @extend_schema(
        operation_id="add_member",
        summary="Add an existing user with a role, or change their role (admins)",
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="`path`, `rule`")},
    )
    def post(self, request: Request) -> Response:
        project = role_project(request, MANAGE)
        body = json_object(request)
        membership = members.add_member(
            project, request.user, body.get("username"), body.get("role", "member")
        )
        return Response(members.member_summary(membership), status=status.HTTP_201_CREATED)


class MemberDetail(APIView):
    @extend_schema(
        operation_id="update_member",
        summary="Change a member's role (admins)",
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT},
    )
    def patch(self, request: Request, username: str) -> Response:
        project = role_project(request, MANAGE)
        membership = _membership(project, username)
        members.set_role(project, request.user, membership, json_object(request).get("role"))
        return Response(members.member_summary(membership))

    @extend_schema(
        operation_id="remove_member",
        summary="Remove a member (admins)",
        parameters=[PROJECT_PARAM],
        responses={204: None},
    )
    def delete(self, request: Request, username: str) -> Response:
        project = role_project(request, MANAGE)
        members.remove_member(project, request.user, _membership(project, username))
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyList(APIView):
    @extend_schema(
        operation_id="list_api_keys",
        summary="The project's API keys, without the keys (admins)",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        project = role_project(request, MANAGE)
        keys = project.api_keys.order_by("-created_at")
        return Response({"results": [members.key_summary(k) for k in keys]})

    @extend_schema(
        operation_id="create_api_key",
        summary="Issue a key; the response is the only time the key is shown (admins)",
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        project = role_project(request, MANAGE)
        body = json_object(request)
        key, raw = members.issue_key(
            project, request.user, body.get("name", ""), body.get("scope", KeyScope.WRITE)
        )
        return Response({**members.key_summary(key), "key": raw}, status=status.HTTP_201_CREATED)


class KeyDetail(APIView):
    @extend_schema(
        operation_id="revoke_api_key",
        summary="Revoke a key (admins)",
        parameters=[PROJECT_PARAM],
        responses={204: None},
    )
    def delete(self, request: Request, key_id: int) -> Response:
        project = role_project(request, MANAGE)
        key = one_or_404(ApiKey.objects.filter(project=project, pk=key_id), f"API key {key_id}")
        members.revoke_key(project, request.user, key)
        return Response(status=status.HTTP_204_NO_CONTENT)
