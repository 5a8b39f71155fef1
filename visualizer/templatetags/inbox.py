"""``{% inbox_link project section %}``: the navigation's Inbox link with the user's unread
count, and the project socket its script listens on for new items."""

from __future__ import annotations

from typing import Any

from django import template

from traces.inbox import unread_count
from traces.models import Project

from ..routing import project_socket_path

register = template.Library()


@register.inclusion_tag("visualizer/_inbox_link.html", takes_context=True)
def inbox_link(context: template.Context, project: Project, section: str = "") -> dict[str, Any]:
    user = context["request"].user
    return {
        "project": project,
        "active": section == "inbox",
        "unread": unread_count(user, project),
        "ws_path": project_socket_path(project),
    }
