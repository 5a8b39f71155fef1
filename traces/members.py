"""Project administration: members and their roles, API keys.

Only an ``admin`` of the project may call the writing functions (the pages and the API
check ``permissions.MANAGE`` first). Every change is logged as project ``Activity``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from .errors import InputError
from .fields import iso
from .models import Activity, ApiKey, KeyScope, Membership, Project, Role
from .permissions import actor_user


def _log(project: Project, actor: Any, verb: str, **detail: Any) -> None:
    if actor_user(actor) is None and actor is not None:  # an API key: logged by its name
        detail["via"] = str(actor.username)
    Activity.objects.create(project=project, actor=actor_user(actor), verb=verb, detail=detail)


def _role(value: Any) -> Role:
    if value not in Role.values:
        raise InputError("role", f"expected one of {', '.join(Role.values)}, got {value!r}")
    return Role(value)


def _admins_left(project: Project, without: Membership) -> bool:
    others = project.memberships.filter(role=Role.ADMIN).exclude(pk=without.pk)
    return others.exists()


def add_member(project: Project, actor: Any, username: Any, role: Any) -> Membership:
    """Give an existing user a role in the project (or change it if they are a member)."""
    if not isinstance(username, str) or not username:
        raise InputError("username", "expected the username of an existing user")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InputError("username", f"no user named {username!r}")
    new_role = _role(role)
    existing = project.memberships.filter(user=user).first()
    if existing is not None:
        return set_role(project, actor, existing, new_role)
    membership = Membership.objects.create(project=project, user=user, role=new_role)
    _log(project, actor, "member_added", username=username, role=new_role.value)
    return membership


@transaction.atomic
def set_role(project: Project, actor: Any, membership: Membership, role: Any) -> Membership:
    new_role = _role(role)
    old = membership.role
    if old == new_role:
        return membership
    # Lock the admins so two concurrent demotions cannot leave the project without one.
    list(project.memberships.select_for_update().filter(role=Role.ADMIN))
    if old == Role.ADMIN and not _admins_left(project, membership):
        raise InputError("role", "a project keeps at least one admin")
    membership.role = new_role
    membership.save(update_fields=["role"])
    _log(project, actor, "role_changed", username=membership.user.username, old=old, new=new_role)
    return membership


@transaction.atomic
def remove_member(project: Project, actor: Any, membership: Membership) -> None:
    list(project.memberships.select_for_update().filter(role=Role.ADMIN))
    if membership.role == Role.ADMIN and not _admins_left(project, membership):
        raise InputError("username", "a project keeps at least one admin")
    username = membership.user.username
    membership.delete()
    _log(project, actor, "member_removed", username=username)


def issue_key(
    project: Project, actor: Any, name: Any, scope: Any = KeyScope.WRITE
) -> tuple[ApiKey, str]:
    if not isinstance(name, str) or len(name) > 100:
        raise InputError("name", "expected a string of at most 100 characters")
    if scope not in KeyScope.values:
        allowed = ", ".join(KeyScope.values)
        raise InputError("scope", f"expected one of {allowed}, got {scope!r}")
    key, raw = ApiKey.issue(project, name=name, scope=scope)
    _log(project, actor, "api_key_created", prefix=key.prefix, name=name, scope=scope)
    return key, raw


def revoke_key(project: Project, actor: Any, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoke()
        _log(project, actor, "api_key_revoked", prefix=key.prefix, name=key.name)


def member_summary(membership: Membership) -> dict[str, Any]:
    return {"username": membership.user.username, "role": membership.role}


def key_summary(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }
