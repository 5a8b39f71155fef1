"""A project's capture policy as validated input: what ingestion must drop, redact,
truncate or keep aside as an attachment, and which detectors scan every string.

The policy is JSON (``Project.capture_policy``, ``PUT /api/v1/capture-policy``, the
settings page)::

    {"rules": [{"path": "/api_key", "action": "redact"},
               {"path": "/messages/*/content", "action": "truncate", "max_bytes": 2048},
               {"metadata": "/user/email", "action": "drop"}],
     "detectors": ["email", "secret", "card"]}

A rule names either ``path`` (a JSON Pointer into every state: a step's state before and
after, an error's state, the initial and final state) or ``metadata`` (a JSON Pointer into
every metadata object: the run's, each step's, each error's); a segment ``*`` matches every
key of an object and every item of an array. ``parse_policy`` is the one validation: a
refusal is an ``InputError`` naming the field (``$.rules[1].max_bytes``) and the rule.
``traces/capture.py`` applies a parsed policy.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import zstd
from .errors import InputError
from .models import CaptureAttachment

ACTIONS = ("drop", "redact", "truncate", "attachment")
DETECTORS = ("email", "secret", "card")
MAX_RULES = 100
MAX_POINTER = 1000
# Below 16 bytes a truncated head says nothing; above 16 MB it is not a truncation.
MIN_TRUNCATE, MAX_TRUNCATE = 16, 16 * 1024 * 1024
WILDCARD = "*"


class Rule(msgspec.Struct, frozen=True):
    """One rule: ``on`` is ``"path"`` (states) or ``"metadata"``; ``segments`` the pointer
    split and unescaped; ``label`` how markers and the run page name it (``rules[0]``)."""

    on: str
    pointer: str
    segments: tuple[str, ...]
    action: str
    max_bytes: int
    label: str


class Policy(msgspec.Struct, frozen=True):
    rules: tuple[Rule, ...] = ()
    detectors: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.rules and not self.detectors

    def state_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.on == "path")

    def metadata_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.on == "metadata")


EMPTY = Policy()


def parse_pointer(pointer: Any, where: str) -> tuple[str, ...]:
    """RFC 6901 pointer text as unescaped segments; ``*`` stays a wildcard segment."""
    if not isinstance(pointer, str):
        raise InputError(where, "expected a JSON Pointer string such as '/messages/*/content'")
    if "\x00" in pointer:
        raise InputError(where, "a NUL character cannot be stored")
    if not pointer.startswith("/") or len(pointer) > MAX_POINTER:
        raise InputError(
            where,
            f"expected a JSON Pointer starting with '/' of at most {MAX_POINTER} characters, "
            f"got {pointer[:80]!r}",
        )
    segments = []
    for raw in pointer[1:].split("/"):
        if "~" in raw.replace("~0", "").replace("~1", ""):
            raise InputError(where, f"bad escape in segment {raw!r}: '~' must be '~0' or '~1'")
        segments.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(segments)


def parse_policy(data: Any, prefix: str = "$") -> Policy:
    """Validate a policy given as plain JSON (``{}`` or ``null``: capture everything)."""
    if data is None:
        return EMPTY
    if not isinstance(data, dict):
        raise InputError(prefix, "expected an object with 'rules' and 'detectors'")
    unknown = sorted(set(data) - {"rules", "detectors"})
    if unknown:
        raise InputError(f"{prefix}.{unknown[0]}", "unknown field; expected rules, detectors")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise InputError(f"{prefix}.rules", "expected an array")
    if len(raw_rules) > MAX_RULES:
        raise InputError(f"{prefix}.rules", f"has {len(raw_rules)} rules, more than {MAX_RULES}")
    rules = tuple(_rule(raw, f"{prefix}.rules[{i}]", i) for i, raw in enumerate(raw_rules))
    raw_detectors = data.get("detectors", [])
    if not isinstance(raw_detectors, list):
        raise InputError(f"{prefix}.detectors", "expected an array")
    for i, name in enumerate(raw_detectors):
        if name not in DETECTORS:
            raise InputError(
                f"{prefix}.detectors[{i}]",
                f"unknown detector {name!r}; expected one of {', '.join(DETECTORS)}",
            )
    return Policy(rules, tuple(dict.fromkeys(raw_detectors)))


def _rule(raw: Any, where: str, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise InputError(where, "expected an object with 'path' or 'metadata', and 'action'")
    unknown = sorted(set(raw) - {"path", "metadata", "action", "max_bytes"})
    if unknown:
        raise InputError(
            f"{where}.{unknown[0]}", "unknown field; expected path, metadata, action, max_bytes"
        )
    if ("path" in raw) == ("metadata" in raw):
        raise InputError(where, "expected exactly one of 'path' (states) or 'metadata'")
    on = "path" if "path" in raw else "metadata"
    segments = parse_pointer(raw[on], f"{where}.{on}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise InputError(
            f"{where}.action", f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
        )
    max_bytes = raw.get("max_bytes")
    if action == "truncate":
        if (
            not isinstance(max_bytes, int)
            or isinstance(max_bytes, bool)
            or not MIN_TRUNCATE <= max_bytes <= MAX_TRUNCATE
        ):
            raise InputError(
                f"{where}.max_bytes",
                f"expected an integer from {MIN_TRUNCATE} to {MAX_TRUNCATE} for truncate",
            )
    elif max_bytes is not None:
        raise InputError(f"{where}.max_bytes", "only a truncate rule takes max_bytes")
    return Rule(on, raw[on], segments, action, max_bytes or 0, f"rules[{index}]")


def policy_json(policy: Policy) -> dict[str, Any]:
    """The policy as the API answers it and the settings page shows it."""
    rules: list[dict[str, Any]] = []
    for rule in policy.rules:
        out: dict[str, Any] = {rule.on: rule.pointer, "action": rule.action}
        if rule.action == "truncate":
            out["max_bytes"] = rule.max_bytes
        rules.append(out)
    return {"rules": rules, "detectors": list(policy.detectors)}


def save_policy(project: Any, data: Any) -> Policy:
    """Validate ``data`` and make it ``project``'s policy (the API and the settings page);
    a refused policy leaves the stored one as it was. Runs stored before keep what they
    had: the policy applies to what arrives from now on."""
    policy = parse_policy(data)
    project.capture_policy = policy_json(policy)
    project.save(update_fields=["capture_policy"])
    return policy


def load_attachment(project: Any, ident: str) -> dict[str, Any] | None:
    """``{"id", "bytes", "value"}``: the value an ``{"$attachment": ident}`` marker stands
    for in ``project``; None when there is no such attachment."""
    row = CaptureAttachment.objects.filter(project=project, ident=ident).first()
    if row is None:
        return None
    value = msgspec.json.decode(zstd.decompress(bytes(row.data)))
    return {"id": ident, "bytes": row.size, "value": value}
