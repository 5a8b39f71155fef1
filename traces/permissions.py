"""Who may do what in a project: one rule for pages, the API and websockets.

``viewer`` reads; ``member`` also reviews and comments; ``admin`` also manages members
and API keys. An API key acts for its project with the rights of a member.
"""

from __future__ import annotations

from typing import Any

from .models import Project, Role

RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}

READ = Role.VIEWER
REVIEW = Role.MEMBER
MANAGE = Role.ADMIN


def has_role(role: str | None, needed: str) -> bool:
    """Whether a member with ``role`` (None: not a member) has at least ``needed``."""
    if role is None:
        return False
    return RANK[Role(role)] >= RANK[Role(needed)]


def user_can(project: Project, user: Any, needed: str) -> bool:
    return has_role(project.role_of(user), needed)
