"""API-key authentication for DRF, and resolving the project a request is about."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from ..errors import InputError
from ..models import ApiKey, Project
from ..permissions import KeyPrincipal, bearer_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer dfk_...``. A missing header defers to the next method."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        try:
            key = bearer_key(header)
        except InputError as exc:
            raise exceptions.AuthenticationFailed(f"{exc.path}: {exc.rule}") from None
        if key is None:
            return None
        return KeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def request_project(request: Request) -> Project:
    """The project a request is scoped to.

    An API key is bound to its project (``?project=`` may name it, nothing else); a
    signed-in user names a project they belong to with ``?project=<slug>``. Anything else
    is a 404, so a request never learns whether another project exists.
    """
    slug = request.query_params.get("project")
    user: Any = request.user
    if isinstance(user, KeyPrincipal):
        if slug and slug != user.project.slug:
            raise exceptions.NotFound(f"project {slug!r}: not found")
        return user.project
    if not slug:
        raise InputError("project", "required: name the project with ?project=<slug>")
    project = Project.objects.for_user(user).filter(slug=slug).first()
    if project is None:
        raise exceptions.NotFound(f"project {slug!r}: not found")
    return project


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describes the API key to drf-spectacular (an HTTP bearer scheme)."""

    target_class = "traces.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A project API key: `manage.py create_api_key --project <slug>`.",
        }
