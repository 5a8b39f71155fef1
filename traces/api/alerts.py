"""Alert rules (admins write, members read, the secret is for admins only), their
firings, and the requesting user's inbox."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import alerts, inbox
from ..models import AlertRule, Project
from ..permissions import MANAGE, READ, KeyPrincipal, user_can
from .request import PROJECT_PARAM, json_object, one_or_404, role_project


def _rule(project: Project, rule_id: int) -> AlertRule:
    return one_or_404(project.alert_rules.filter(pk=rule_id), f"alert rule {rule_id}")


class AlertRuleList(APIView):
    @extend_schema(
        operation_id="list_alert_rules",
        summary="The project's alert rules (secrets for admins only)",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        project = role_project(request, READ)
        admin = user_can(project, request.user, MANAGE)
        rules = project.alert_rules.all()
        return Response({"results": [alerts.rule_summary(r, with_secret=admin) for r in rules]})

    @extend_schema(
        operation_id="create_alert_rule",
        summary="Create a rule: name, kind, threshold, window_minutes, node, graph_name, "
        "webhook_url, enabled (admins); the answer holds the webhook secret",
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="`path`, `rule`")},
    )
    def post(self, request: Request) -> Response:
        project = role_project(request, MANAGE)
        rule = alerts.create_rule(project, json_object(request))
        return Response(alerts.rule_summary(rule, with_secret=True), status=status.HTTP_201_CREATED)


class AlertRuleDetail(APIView):
    @extend_schema(
        operation_id="get_alert_rule",
        summary="One rule and its recent firings",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, rule_id: int) -> Response:
        project = role_project(request, READ)
        rule = _rule(project, rule_id)
        admin = user_can(project, request.user, MANAGE)
        firings = rule.firings.select_related("rule__project")[:50]
        return Response(
            {
                **alerts.rule_summary(rule, with_secret=admin),
                "firings": [alerts.firing_summary(f) for f in firings],
            }
        )

    @extend_schema(
        operation_id="update_alert_rule",
        summary="Change a rule's fields (admins)",
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT},
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        project = role_project(request, MANAGE)
        rule = alerts.update_rule(_rule(project, rule_id), json_object(request))
        return Response(alerts.rule_summary(rule, with_secret=True))

    @extend_schema(
        operation_id="delete_alert_rule",
        summary="Delete a rule and its firings (admins)",
        parameters=[PROJECT_PARAM],
        responses={204: None},
    )
    def delete(self, request: Request, rule_id: int) -> Response:
        project = role_project(request, MANAGE)
        _rule(project, rule_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _inbox_user(request: Request) -> Any:
    if isinstance(request.user, KeyPrincipal):
        raise exceptions.PermissionDenied("the inbox is a signed-in user's; API keys have none")
    return request.user


class InboxList(APIView):
    @extend_schema(
        operation_id="list_inbox",
        summary="Your inbox in the project, newest first, and the unread count",
        parameters=[PROJECT_PARAM],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        project = role_project(request, READ)
        user = _inbox_user(request)
        items = inbox.items_for(user, project)[:100]
        return Response(
            {
                "unread": inbox.unread_count(user, project),
                "results": [inbox.item_summary(i) for i in items],
            }
        )


class InboxRead(APIView):
    @extend_schema(
        operation_id="mark_inbox_read",
        summary='Mark items read: {"ids": [...]}, or {"all": true}',
        parameters=[PROJECT_PARAM],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        project = role_project(request, READ)
        user = _inbox_user(request)
        body = json_object(request)
        ids = None if body.get("all") is True else body.get("ids")
        changed = inbox.mark_read(user, project, ids)
        return Response({"marked": changed, "unread": inbox.unread_count(user, project)})
