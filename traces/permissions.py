"""Who may do what in a project: one rule for pages, the API and websockets.

``viewer`` reads; ``member`` also reviews and comments; ``admin`` also manages members
and API keys. An API key acts for its project with the rights of a member.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from .errors import InputError
from .models import ApiKey, KeyScope, Project, Role, hash_api_key

# Writing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyPrincipal:
    """``request.user`` for a request made with an API key: it acts for one project."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.project = key.project
        self.username = f"api-key:{key.prefix}"

    def __str__(self) -> str:
        return self.username


RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}

# An API key acts in its own project with the rights its scope names.
KEY_ROLES = {KeyScope.READ: Role.VIEWER, KeyScope.WRITE: Role.MEMBER, KeyScope.ADMIN: Role.ADMIN}

READ = Role.VIEWER
REVIEW = Role.MEMBER
MANAGE = Role.ADMIN


def write_refused(key: KeyPrincipal, what: str) -> str | None:
    """Why ``key`` may not do ``what`` (a write: ingest, review, comment), or None when its
    scope allows it; the API and the MCP server answer with this text."""
    if user_can(key.project, key, REVIEW):
        return None
    return f"this API key's scope is {key.key.scope}; {what} needs write"


def has_role(role: str | None, needed: str) -> bool:
    """Whether a member with ``role`` (None: not a member) has at least ``needed``."""
    if role is None:
        return False
    return RANK[Role(role)] >= RANK[Role(needed)]


def actor_user(actor: Any) -> Any:
    """The user row behind an actor (None for an API key, which activity logs by name)."""
    return None if isinstance(actor, KeyPrincipal) else actor


def actor_role(project: Project, actor: Any) -> str | None:
    """The role of a user, or of an API key (a member of its own project only)."""
    if isinstance(actor, KeyPrincipal):
        return KEY_ROLES[KeyScope(actor.key.scope)] if actor.project.pk == project.pk else None
    return project.role_of(actor)


def user_can(project: Project, actor: Any, needed: str) -> bool:
    return has_role(actor_role(project, actor), needed)


def bearer_key(header: str) -> ApiKey | None:
    """The API key of an ``Authorization`` header ``Bearer dfk_...`` (the API's and the MCP
    server's one rule); None when the header is not a bearer one. An empty, unknown or
    revoked key is an ``InputError`` on ``Authorization`` with status 401."""
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    raw = raw.strip()
    if not raw:
        raise InputError("Authorization", "empty bearer token", status=401)
    key = ApiKey.objects.for_hash(hash_api_key(raw))
    if key is None:
        raise InputError("Authorization", "unknown API key", status=401)
    if key.revoked_at is not None:
        raise InputError("Authorization", "this API key was revoked", status=401)
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        key.last_used_at = now
        key.save(update_fields=["last_used_at"])
    return key


def writing_key_project(header: str, what: str) -> Project:
    """The project of an ``Authorization`` header's API key when its scope writes: the
    check of the receivers that take no session (OTLP over HTTP and gRPC). A missing,
    unknown or revoked key is an ``InputError`` with status 401, a read-only one 403."""
    key = bearer_key(header)
    if key is None:
        raise InputError("Authorization", "expected 'Bearer <API key>'", status=401)
    refused = write_refused(KeyPrincipal(key), what)
    if refused is not None:
        raise InputError("Authorization", refused, status=403)
    return key.project
