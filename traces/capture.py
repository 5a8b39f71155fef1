"""Applying a project's capture policy (``traces/capture_policy.py``) to what ingestion is
about to store, before anything is stored.

Every way in goes through one ``Capture`` (``for_project``): ``traces/ingest.py`` applies it
to a whole trace (``trace``) and to live events (``event``), DashStream's held state
(``state``, ``metadata``, ``text``) and OTLP's buffered spans (``traces/otlp.py``) too.
The values it writes instead of what it removes are plain JSON objects (markers) that
every reader shows as they are, and exports carry:

- redact: ``{"$redacted": "rules[0]", "sha256": "<16 hex>"}``; the digest is an HMAC keyed
  per project (``SECRET_KEY`` and the project's id), so two equal values look equal and a
  change shows as a change in a diff, while a short secret cannot be found by hashing
  guesses;
- truncate: ``{"$truncated": 2048, "bytes": N, "head": "<valid UTF-8 prefix>", "rule": ..}``
  (a value that is not a string is cut in its JSON text: still never broken JSON);
- attachment: ``{"$attachment": "<id>", "bytes": N, "rule": ..}``: the value is kept in a
  ``CaptureAttachment`` row, out of the state blob, fetched on demand;
- drop: the key (or array item) is gone.

Detectors scan every string of states, metadata and error texts (an error message is
stored, searched and shown, so a secret in it must go too) and replace each match inside
the string by ``[redacted:<detector>:<16 hex>]``. Object keys are not scanned: they are
field names, and a rule names them. Detectors run before the rules, so a truncated head
never holds what a detector would have taken. A marker is never touched again, so applying
a policy twice changes nothing (the OTLP buffer and then the run ingestion both apply it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from django.conf import settings

from .capture_policy import WILDCARD, Policy, Rule, parse_policy
from .parsing import ParsedEvent
from .trace import EVENT_STATE_FIELDS, ErrorTrace, ExecutionTrace, NodeExecution, canonical_json

MARKER_KEYS = ("$redacted", "$truncated", "$attachment")
# The per-request cache of scanned strings: at most this many, each at most this long.
_CACHE_ENTRIES, _CACHE_STRING = 100_000, 4096
_DROP = object()

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SECRET = re.compile(
    # Bearer tokens and the key shapes of common providers (and our own dfk_ keys); a bare
    # random string is not flagged, which keeps ids and digests readable.
    r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]{16,}=*"
    r"|\bsk-[A-Za-z0-9_-]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bdfk_[A-Za-z0-9_-]{20,}"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
)
_SECRET_HINTS = ("bearer", "sk-", "gh", "xox", "akia", "aiza", "dfk_", "eyj")
# An email is found from its "@" (a literal the regex engine searches for fast), then its
# parts around it, each bounded by RFC 5321's lengths: a long string costs one pass, not
# a try at every position.
_EMAIL_AT = re.compile(r"@(?=[A-Za-z0-9-])")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}")
_DIGIT = re.compile(r"\d")

Span = tuple[int, int, str]


def _emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    found = []
    for at in _EMAIL_AT.finditer(text):
        i = at.start()
        local = _EMAIL_LOCAL.search(text, max(0, i - 64), i)
        domain = _EMAIL_DOMAIN.match(text, i + 1)
        if local is not None and domain is not None:
            found.append((local.start(), domain.end(), "email"))
    return found


def _secrets(text: str) -> list[Span]:
    lowered = text.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return []
    return [(m.start(), m.end(), "secret") for m in _SECRET.finditer(text)]


def _cards(text: str) -> list[Span]:
    if _DIGIT.search(text) is None:
        return []
    return [
        (m.start(), m.end(), "card")
        for m in _CARD.finditer(text)
        if luhn(re.sub(r"\D", "", m.group(0)))
    ]


DETECTORS: dict[str, Callable[[str], list[Span]]] = {
    "email": _emails,
    "secret": _secrets,
    "card": _cards,
}
TOKEN = re.compile(r"\[redacted:(email|secret|card):[0-9a-f]{16}\]")


def luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn check (card numbers do; most numbers not)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and (
        "$redacted" in value or "$truncated" in value or "$attachment" in value
    )


class Note(msgspec.Struct, frozen=True):
    """What the policy did at one place: the rule (``rules[0]`` or ``detector:email``)."""

    where: str
    rule: str
    action: str


class Capture:
    """One request's application of a policy: the notes of what it did and the
    attachments to store (id → canonical JSON bytes)."""

    def __init__(self, policy: Policy, key: bytes) -> None:
        self.policy = policy
        self.key = key
        self.notes: list[Note] = []
        self.attachments: dict[str, bytes] = {}
        self._state_rules = policy.state_rules()
        self._meta_rules = policy.metadata_rules()
        self._detectors = [DETECTORS[n] for n in policy.detectors]
        # A run's states repeat the same strings step after step (a chat's messages): each
        # distinct string is scanned once per request. Bounded; long strings are not kept.
        self._scanned: dict[str, str] = {}

    def digest(self, data: bytes) -> str:
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    # -- values -------------------------------------------------------------------------

    def state(self, value: Any, where: str = "$") -> Any:
        """A state with the detectors and the state rules applied (a new value; the
        argument is never changed). A state still undecoded (``msgspec.Raw``: a trace
        parsed from a body, ``parsing.parse_trace``) is decoded, applied and encoded again
        here, one at a time, so a large trace never has all its states decoded at once."""
        if isinstance(value, msgspec.Raw):
            applied = self._apply(msgspec.json.decode(value), self._state_rules, where)
            return msgspec.Raw(msgspec.json.encode(applied))
        return self._apply(value, self._state_rules, where)

    def metadata(self, value: dict[str, Any], where: str = "$") -> dict[str, Any]:
        out = self._apply(value, self._meta_rules, where)
        return out if isinstance(out, dict) else {}

    def text(self, value: str | None, where: str = "$") -> str | None:
        """A free text (an error message) with the detectors applied."""
        return value if value is None else self._scan(value, where)

    def detect(self, value: Any, where: str = "$") -> Any:
        """Any JSON value with the detectors applied to its strings (no rules)."""
        return self._detect(value, where) if self._detectors else value

    def _apply(self, value: Any, rules: tuple[Rule, ...], where: str) -> Any:
        if self._detectors:
            value = self._detect(value, where)
        for rule in rules:
            found = self._at(value, rule, 0, where)
            value = None if found is _DROP else found
        return value

    def _detect(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return self._scan(value, where)
        if isinstance(value, dict):
            if is_marker(value):
                return value
            new: dict[str, Any] | None = None
            for key, item in value.items():
                done = self._detect(item, where)
                if done is not item:
                    new = dict(value) if new is None else new
                    new[key] = done
            return value if new is None else new
        if isinstance(value, list):
            items: list[Any] | None = None
            for i, item in enumerate(value):
                done = self._detect(item, where)
                if done is not item:
                    items = list(value) if items is None else items
                    items[i] = done
            return value if items is None else items
        return value

    def _scan(self, text: str, where: str) -> str:
        if not self._detectors:
            return text
        known = self._scanned.get(text)
        if known is not None:
            return known
        spans = sorted(span for find in self._detectors for span in find(text))
        done = text
        if spans:
            parts, pos = [], 0
            for start, end, detector in spans:
                if start < pos:
                    continue  # inside what another detector took
                parts += [text[pos:start], self._token(detector, text[start:end], where)]
                pos = end
            done = "".join([*parts, text[pos:]])
        if len(text) <= _CACHE_STRING and len(self._scanned) < _CACHE_ENTRIES:
            self._scanned[text] = done
        return done

    def _token(self, detector: str, found: str, where: str) -> str:
        self.notes.append(Note(where, f"detector:{detector}", "redact"))
        return f"[redacted:{detector}:{self.digest(found.encode())[:16]}]"

    def _at(self, value: Any, rule: Rule, depth: int, where: str) -> Any:
        """``value`` with ``rule`` applied below it from segment ``depth`` (copy on write)."""
        if is_marker(value):
            return value
        if depth == len(rule.segments):
            return self._act(value, rule, where)
        segment = rule.segments[depth]
        if isinstance(value, dict):
            keys = list(value) if segment == WILDCARD else [segment] if segment in value else []
            new: dict[str, Any] | None = None
            for key in keys:
                done = self._at(value[key], rule, depth + 1, where)
                if done is not value[key]:
                    new = dict(value) if new is None else new
                    if done is _DROP:
                        del new[key]
                    else:
                        new[key] = done
            return value if new is None else new
        if isinstance(value, list):
            if segment == WILDCARD:
                indices: Iterator[int] = iter(range(len(value)))
            elif segment.isdigit() and int(segment) < len(value):
                indices = iter([int(segment)])
            else:
                return value
            items: list[Any] | None = None
            for i in indices:
                done = self._at(value[i], rule, depth + 1, where)
                if done is not value[i]:
                    items = list(value) if items is None else items
                    items[i] = done
            if items is None:
                return value
            return [v for v in items if v is not _DROP]
        return value

    def _act(self, value: Any, rule: Rule, where: str) -> Any:
        data = value.encode() if isinstance(value, str) else canonical_json(value)
        if rule.action == "truncate":
            if len(data) <= rule.max_bytes:
                return value
            head = data[: rule.max_bytes].decode("utf-8", "ignore")
            marker: Any = {
                "$truncated": rule.max_bytes,
                "bytes": len(data),
                "head": head,
                "rule": rule.label,
            }
        elif rule.action == "redact":
            marker = {"$redacted": rule.label, "sha256": self.digest(data)[:16]}
        elif rule.action == "attachment":
            stored = canonical_json(value)
            ident = self.digest(stored)[:32]
            self.attachments[ident] = stored
            marker = {"$attachment": ident, "bytes": len(stored), "rule": rule.label}
        else:
            marker = _DROP
        self.notes.append(Note(where, rule.label, rule.action))
        return marker

    # -- the canonical types ------------------------------------------------------------

    def node(self, node: NodeExecution, where: str) -> NodeExecution:
        return msgspec.structs.replace(
            node,
            state_before=self.state(node.state_before, f"{where}.state_before"),
            state_after=self.state(node.state_after, f"{where}.state_after"),
            error_message=self.text(node.error_message, f"{where}.error_message"),
            metadata=self.metadata(node.metadata, f"{where}.metadata"),
        )

    def error(self, error: ErrorTrace, where: str) -> ErrorTrace:
        return msgspec.structs.replace(
            error,
            message=self.text(error.message, f"{where}.message") or "",
            context=self.text(error.context, f"{where}.context"),
            state_at_error=self.state(error.state_at_error, f"{where}.state_at_error"),
            metadata=self.metadata(error.metadata, f"{where}.metadata"),
        )

    def trace(self, trace: ExecutionTrace) -> ExecutionTrace:
        """A whole trace with the policy applied to every state, metadata and error text."""
        return msgspec.structs.replace(
            trace,
            nodes_executed=[
                self.node(n, f"$.nodes_executed[{i}]") for i, n in enumerate(trace.nodes_executed)
            ],
            errors=[self.error(e, f"$.errors[{i}]") for i, e in enumerate(trace.errors)],
            final_state=self.state(trace.final_state, "$.final_state"),
            metadata=self.metadata(trace.metadata, "$.metadata"),
        )

    def event(self, event: ParsedEvent) -> ParsedEvent:
        """A live event with the policy applied to its states, metadata and texts."""
        data, where = event.data, f"$.events[seq={event.seq}].data"
        if isinstance(data, NodeExecution):
            data = self.node(data, where)
        elif isinstance(data, ErrorTrace):
            data = self.error(data, where)
        else:
            changes: dict[str, Any] = {}
            for name in EVENT_STATE_FIELDS.get(event.type, ()):
                changes[name] = self.state(getattr(data, name), f"{where}.{name}")
            if hasattr(data, "metadata"):
                changes["metadata"] = self.metadata(data.metadata, f"{where}.metadata")
            data = msgspec.structs.replace(data, **changes) if changes else data
        return ParsedEvent(event.seq, event.type, data)


def project_key(project_id: int) -> bytes:
    """The project's HMAC key for marker digests: derived from ``SECRET_KEY``, so it is
    never stored beside the data it protects."""
    return hmac.new(
        settings.SECRET_KEY.encode(), f"capture:{project_id}".encode(), hashlib.sha256
    ).digest()


def for_project(project: Any) -> Capture | None:
    """The project's capture, or None when its policy does nothing (the common case costs
    nothing). ``project.capture_policy`` was validated when it was saved."""
    policy = parse_policy(project.capture_policy or None)
    return None if policy.empty else Capture(policy, project_key(project.pk))


def apply_to(
    capture: Capture | None, items: list[Any], one: Callable[[Capture, Any], Any]
) -> list[Any]:
    """``items`` each passed through ``one`` when there is a capture, else as they are."""
    return items if capture is None else [one(capture, item) for item in items]


def markers_in(value: Any, pointer: str = "") -> list[dict[str, Any]]:
    """Every marker and detector token in a stored value, with its JSON Pointer: what the
    step panel lists ("redacted by rules[0]"), bounded to the first 200."""
    found: list[dict[str, Any]] = []
    _find(value, pointer, found)
    return found[:200]


def _find(value: Any, pointer: str, found: list[dict[str, Any]]) -> None:
    if len(found) >= 200:
        return
    if is_marker(value):
        kind = next(k for k in MARKER_KEYS if k in value)[1:]
        rule = value.get("rule") if kind != "redacted" else value.get("$redacted")
        entry = {"path": pointer or "/", "action": kind, "rule": rule}
        if kind == "attachment":
            entry.update(attachment=value.get("$attachment"), bytes=value.get("bytes"))
        if kind == "truncated":
            entry.update(bytes=value.get("bytes"), kept=value.get("$truncated"))
        found.append(entry)
    elif isinstance(value, dict):
        for key, item in value.items():
            _find(item, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}", found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _find(item, f"{pointer}/{i}", found)
    elif isinstance(value, str):
        for match in TOKEN.finditer(value):
            found.append(
                {"path": pointer or "/", "action": "redacted", "rule": f"detector:{match[1]}"}
            )
