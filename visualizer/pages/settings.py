"""The project's settings page: members and roles, API keys, alert rules and their recent
firings, run retention and how many runs it would delete now (admins change them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from traces import alerts, members, retention
from traces.capture_policy import parse_policy, policy_json, save_policy
from traces.error_steps import failing_steps
from traces.errors import InputError
from traces.models import (
    Activity,
    AlertFiring,
    AlertKind,
    KeyScope,
    Membership,
    Project,
    Role,
    Run,
)
from traces.permissions import MANAGE, has_role

from .. import links
from .access import member_project

# The scope select's options: what a key of each scope may do (traces/permissions.py maps
# a scope to the role of the same rights).
KEY_SCOPES = (
    (KeyScope.READ, "read: reads runs, failures, reviews and exports (a viewer's rights)"),
    (KeyScope.WRITE, "write: also ingests traces and events, reviews, exports (a member's)"),
    (KeyScope.ADMIN, "admin: also manages members and API keys (an admin's)"),
)

# The rule kinds and what their threshold means (traces/alert_measures.py).
ALERT_KINDS = (
    (AlertKind.FAILURE_RATE, "failure rate above a fraction (0.2 = 20 %) of finished runs"),
    (AlertKind.NODE_P95, "p95 duration of a node above a threshold in ms"),
    (AlertKind.NEW_FAILURE_GROUP, "more than threshold new failure groups (0: any)"),
    (AlertKind.REGRESSION, "more than threshold regressed failure groups (0: any)"),
)

# What the activity log says for each admin action, from the entry's detail.
ADMIN_VERBS: dict[str, Callable[[dict[str, Any]], str]] = {
    "member_added": lambda d: f"added {d.get('username')} as {d.get('role')}",
    "member_removed": lambda d: f"removed {d.get('username')}",
    "role_changed": lambda d: (
        f"changed {d.get('username')}'s role from {d.get('old')} to {d.get('new')}"
    ),
    "api_key_created": lambda d: (
        f"created the API key {d.get('name') or d.get('prefix')} ({d.get('prefix')}…"
        + (f", {d['scope']} scope)" if d.get("scope") else ")")
    ),
    "api_key_revoked": lambda d: (
        f"revoked the API key {d.get('name') or d.get('prefix')} ({d.get('prefix')}…)"
    ),
}
# The capture policy form's example (the README's), and where a refused policy waits to be
# shown again in its form, with its error, after the redirect.
CAPTURE_EXAMPLE = {
    "rules": [
        {"path": "/api_key", "action": "redact"},
        {"path": "/messages/*/content", "action": "truncate", "max_bytes": 2048},
    ],
    "detectors": ["email", "secret", "card"],
}
CAPTURE_SESSION = "settings_capture_policy"
# A new key's secret is shown once, on the page the create redirects to (never re-posted).
NEW_KEY_SESSION = "settings_new_key"


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = member_project(request, slug)
    is_admin = has_role(project.role_of(request.user), MANAGE)
    if request.method == "POST":
        if not is_admin:
            return HttpResponseForbidden("only an admin of this project can change its settings")
        try:
            issued = _apply(request, project)
        except InputError as exc:
            messages.error(request, f"{exc.path}: {exc.rule}")
        else:
            if issued is not None:
                request.session[NEW_KEY_SESSION] = {"project": project.pk, "key": issued}
        # Post, then redirect: a reload shows the page again instead of acting twice.
        return redirect("visualizer:settings", project.slug)
    shown = request.session.pop(NEW_KEY_SESSION, None)
    new_key = shown["key"] if shown and shown.get("project") == project.pk and is_admin else None
    context = {
        "project": project,
        "section": "settings",
        "is_admin": is_admin,
        "roles": Role.choices,
        "key_scopes": KEY_SCOPES,
        "default_scope": KeyScope.WRITE,
        "memberships": project.memberships.select_related("user").order_by("user__username"),
        "keys": project.api_keys.order_by("revoked_at", "-created_at") if is_admin else [],
        "new_key": new_key,
        "activity": _activity(project) if is_admin else [],
        "alert_kinds": ALERT_KINDS,
        "alert_rules": project.alert_rules.all(),
        "firings": firing_rows(project, alerts.recent_firings(project)),
        "capture": _capture_context(request, project) if is_admin else None,
        "expired_runs": retention.dry_run_count(project),
    }
    return render(request, "visualizer/settings.html", context)


def _row_id(request: HttpRequest, name: str) -> int:
    """The row a form names (a hidden field); not a number is a 400, not a 500."""
    raw = request.POST.get(name, "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InputError(name, f"expected a row id, got {raw[:40]!r}")
    return int(raw)


def firing_rows(
    project: Project, firings: list[AlertFiring]
) -> list[tuple[AlertFiring, list[tuple[str, str]]]]:
    """Each firing with its runs' links; a failed run's opens its failing step."""
    ids = {e for f in firings for e in f.execution_ids}
    runs = list(Run.objects.filter(project=project, execution_id__in=ids)) if ids else []
    failing = failing_steps(runs)
    step_of = {r.execution_id: failing.get(r.pk) for r in runs}
    return [
        (f, [(e, links.run_page(project.slug, e, step_of.get(e))) for e in f.execution_ids])
        for f in firings
    ]


def _activity(project: Project) -> list[Activity]:
    """The latest admin actions, each with ``text``: what was done, in words."""
    entries = list(
        Activity.objects.filter(project=project, verb__in=ADMIN_VERBS)
        .select_related("actor")
        .order_by("-created_at", "-id")[:20]
    )
    for entry in entries:
        entry.text = ADMIN_VERBS[entry.verb](entry.detail or {})  # type: ignore[attr-defined]
    return entries


def _apply(request: HttpRequest, project: Project) -> str | None:
    """Carry out one form's action; returns a newly issued key to show once."""
    action = request.POST.get("action")
    actor = request.user
    if action == "add_member":
        m = members.add_member(
            project, actor, request.POST.get("username", "").strip(), request.POST.get("role")
        )
        messages.success(request, f"{m.user.username} is now {m.role}.")
    elif action in ("set_role", "remove_member"):
        membership = Membership.objects.filter(
            project=project, pk=_row_id(request, "membership")
        ).first()
        if membership is None:
            raise InputError("membership", "no such member")
        if action == "set_role":
            members.set_role(project, actor, membership, request.POST.get("role"))
            messages.success(request, f"{membership.user.username} is now {membership.role}.")
        else:
            members.remove_member(project, actor, membership)
            messages.success(request, f"{membership.user.username} was removed.")
    elif action == "create_key":
        key, raw = members.issue_key(
            project,
            actor,
            request.POST.get("name", "").strip(),
            request.POST.get("scope", KeyScope.WRITE),
        )
        messages.success(request, f"Key {key.prefix}… was created with the {key.scope} scope.")
        return raw
    elif action == "revoke_key":
        key_row = project.api_keys.filter(pk=_row_id(request, "key")).first()
        if key_row is None:
            raise InputError("key", "no such API key")
        members.revoke_key(project, actor, key_row)
        messages.success(request, f"Key {key_row.prefix}… was revoked.")
    elif action == "create_rule":
        fields = ("name", "kind", "threshold", "window_minutes", "node", "graph_name")
        body = {f: request.POST.get(f, "") for f in fields}
        body["webhook_url"] = request.POST.get("webhook_url", "")
        created = alerts.create_rule(project, {k: v for k, v in body.items() if v != ""})
        messages.success(request, f"Alert rule {created.name!r} was created.")
    elif action == "save_capture_policy":
        _save_capture_policy(request, project)
    elif action in ("enable_rule", "disable_rule", "delete_rule"):
        rule = project.alert_rules.filter(pk=_row_id(request, "rule")).first()
        if rule is None:
            raise InputError("rule", "no such alert rule")
        if action == "delete_rule":
            rule.delete()
            messages.success(request, f"Alert rule {rule.name!r} was deleted.")
        else:
            alerts.update_rule(rule, {"enabled": action == "enable_rule"})
            messages.success(request, f"Alert rule {rule.name!r} is {action[:-5]}d.")
    elif action == "set_retention":
        days = retention.set_retention(project, request.POST.get("retention_days"))
        kept = f"for {days} day{'s' if days != 1 else ''}" if days else "forever"
        messages.success(request, f"Runs are now kept {kept}.")
    else:
        raise InputError("action", f"unknown action {action!r}")
    return None


def _save_capture_policy(request: HttpRequest, project: Project) -> None:
    """Save the posted policy (JSON text); a refused one goes back to its form with the
    error (the session carries both over the redirect) and the stored policy stays."""
    text = request.POST.get("policy", "")
    try:
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise InputError("policy", f"not JSON: {exc}") from None
        policy = save_policy(project, data)
    except InputError as exc:
        request.session[CAPTURE_SESSION] = {
            "project": project.pk,
            "text": text[:100_000],
            "error": f"{exc.path}: {exc.rule}",
        }
        return
    count = len(policy.rules)
    messages.success(
        request,
        f"Capture policy saved: {count} rule{'s' if count != 1 else ''}, "
        f"detectors: {', '.join(policy.detectors) or 'none'}.",
    )


def _capture_context(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The capture policy form: the stored policy as indented JSON, or a refused one
    shown again with its error."""
    example = json.dumps(CAPTURE_EXAMPLE, indent=2)
    refused = request.session.pop(CAPTURE_SESSION, None)
    if refused and refused.get("project") == project.pk:
        return {"text": refused["text"], "error": refused["error"], "example": example}
    stored = policy_json(parse_policy(project.capture_policy or None))
    return {"text": json.dumps(stored, indent=2), "error": None, "example": example}
