"""The one error for refused input, raised by domain code and rendered by one handler;
and which server-side errors mean the database is unavailable.

Every input path (trace bodies, live events, query parameters, review and member changes)
raises ``InputError``; ``traces.api.render.exception_handler`` turns it into
``{"detail", "path", "rule"}`` with its status, and the pages show its message.
``database_unavailable`` is the one test for an outage, which the API, ``/mcp`` and the
pages (``dashflow_site/middleware.py``) answer 503 with ``Retry-After``, never 500.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from django.db import InterfaceError, OperationalError

# Seconds a client is told to wait (``Retry-After``) when the database is unavailable.
DATABASE_RETRY_AFTER = 5
DATABASE_UNAVAILABLE = f"the database is unavailable; try again in {DATABASE_RETRY_AFTER} s"


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot serve right now: down or restarting, no
    pooled connection within ``DATABASE_POOL_TIMEOUT``, a connection lost mid-request,
    SQLite locked past its timeout. Django raises these as ``OperationalError`` or
    ``InterfaceError``; a bug (``ProgrammingError``, ``IntegrityError``) is not one."""
    return isinstance(exc, (OperationalError, InterfaceError))


class InputError(ValueError):
    """Input refused by a rule: ``path`` names the field (a JSON path such as
    ``$.nodes_executed[3].duration_ms``, or a parameter name), ``rule`` what it broke, and
    ``status`` the HTTP status an API answers with (400 unless the rule says otherwise:
    413 too large, 415 an unsupported encoding, 404 no such thing, 403 not allowed)."""

    def __init__(self, path: str, rule: str, status: int = 400) -> None:
        super().__init__(f"{path}: {rule}")
        self.path = path
        self.rule = rule
        self.status = status

    _AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
    _TYPE_NAMES = {
        "int": "an unsigned integer",
        "str": "a string",
        "str | null": "a string or null",
        "bool": "a boolean",
        "array": "an array",
        "object": "an object",
        "float": "a number",
        "int | null": "an unsigned integer or null",
    }

    @classmethod
    def from_validation(
        cls, exc: msgspec.ValidationError, source: Any, prefix: str = "$"
    ) -> InputError:
        match = cls._AT.match(str(exc))
        assert match is not None
        msg, path = match.group("msg"), match.group("path") or "$"
        missing = re.match(r"Object missing required field `(.+)`", msg)
        if missing:
            return cls(_join(prefix, f"{path}.{missing.group(1)}"), "required field is missing")
        expected = re.match(r"Expected `(.+?)`(?:, got `(.+)`)?(?: (.*))?$", msg)
        if expected:
            wanted = cls._TYPE_NAMES.get(expected.group(1), expected.group(1))
            bound = expected.group(3)  # such as ">= 0"
            if bound == ">= 0" and expected.group(1) == "int":
                wanted = "an unsigned integer"
            elif bound:
                wanted = f"{wanted.replace('an unsigned', 'an')} {bound}"
            value = _lookup(source, path)
            shown = _show(value) if value is not _MISSING else expected.group(2)
            return cls(_join(prefix, path), f"expected {wanted}, got {shown}")
        # Errors raised in __post_init__ carry "<field>: <rule>".
        own = re.match(r"(.+?): (expected .*)$", msg)
        if own:
            return cls(_join(prefix, f"{path}.{own.group(1)}"), own.group(2))
        return cls(_join(prefix, path), msg[:1].lower() + msg[1:])


_MISSING = object()
# A refused body larger than this is not decoded again to show the bad value: a whole
# large trace decoded to Python objects takes several times its size.
_LOOKUP_MAX_BYTES = 16 * 1024 * 1024
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _join(prefix: str, path: str) -> str:
    return prefix + path[1:] if path.startswith("$") else path


def _lookup(source: Any, path: str) -> Any:
    """The value at a msgspec error path, for the message (only on the error path)."""
    if isinstance(source, (bytes, bytearray, str)):
        if len(source) > _LOOKUP_MAX_BYTES:
            return _MISSING  # the message names msgspec's type instead of the value
        try:
            source = msgspec.json.decode(source)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            # (msgspec reads the keys of fields it ignores without checking their UTF-8.)
            return _MISSING
    value = source
    for key, position in _PART.findall(path[1:]):
        try:
            value = value[key] if key else value[int(position)]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return value


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."
