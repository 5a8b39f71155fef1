"""What makes two failures the same failure: a message with what varies between
occurrences (numbers, ids, URLs, emails, paths, quoted values) replaced by placeholders,
so "Timeout: GET https://a/1 exceeded 30s" and "Timeout: GET https://b/2 exceeded 31s"
read alike, and the group key built from it (``traces/failures.py`` groups by it)."""

from __future__ import annotations

import hashlib
import re

MESSAGE_MAX_CHARS = 2000

_UNITS = (
    r"(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?"
    r"|b|kb|mb|gb|tb|kib|mib|gib|k|x|px|%)"
)

# Order matters: the specific patterns (a URL contains numbers and a path) run first, and
# each placeholder contains no character a later pattern matches.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{},;]+"), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    # Quoted values: an opening quote not inside a word (so "can't" is left alone).
    (re.compile(r"(?<![\w\\])'(?:[^'\\\n]|\\.)*'(?!\w)"), "<str>"),
    (re.compile(r'(?<![\w\\])"(?:[^"\\\n]|\\.)*"(?!\w)'), "<str>"),
    (re.compile(r"(?<![\w\\])`[^`\n]*`(?!\w)"), "<str>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<date>",
    ),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    # Absolute paths of two or more segments (Unix, ~/, ./), and Windows paths.
    (re.compile(r"(?<![\w/:.<])(?:~|\.{1,2})?(?:/[\w.@+~-]+){2,}/?"), "<path>"),
    (re.compile(r"\b[A-Za-z]:\\[^\s'\"]*"), "<path>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
]
# Hex ids (git SHAs, trace ids): 8+ hex digits with at least one digit and one letter,
# not inside a longer alphanumeric token ("req_8f3a9c2b" -> "req_<hex>").
_HEX = re.compile(
    r"(?<![A-Za-z0-9])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}(?![A-Za-z0-9])"
)
# Other opaque ids: 10+ letters and digits with at least two digits ("ch_3N2b9XkP0q").
_ID = re.compile(
    r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*\d[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{10,}(?![A-Za-z0-9])"
)
# Numbers as tokens, with a unit kept ("30s" -> "<num>s"); digits inside an identifier
# ("gpt-4o", "utf8", "user123") are part of its name and stay.
_NUMBER = re.compile(
    rf"(?<![A-Za-z0-9.])\d+(?:[.,]\d+)*(?={_UNITS}?(?![A-Za-z0-9]))", re.IGNORECASE
)
_SPACE = re.compile(r"\s+")
# "Timeout: GET ..." -> "Timeout": a failed step's message often starts with its type.
_TYPE_PREFIX = re.compile(r"^([A-Z][A-Za-z0-9_.]{1,80}):\s")


def normalize(message: str) -> str:
    """``message`` with what varies between occurrences replaced by placeholders
    (``<url>``, ``<email>``, ``<str>``, ``<uuid>``, ``<date>``, ``<ip>``, ``<path>``,
    ``<hex>``, ``<id>``, ``<num>``) and whitespace collapsed. Idempotent."""
    text = message[:MESSAGE_MAX_CHARS]
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    text = _HEX.sub("<hex>", text)
    text = _ID.sub("<id>", text)
    text = _NUMBER.sub("<num>", text)
    return _SPACE.sub(" ", text).strip()


def fingerprint(node: str, error_type: str | None, message: str) -> str:
    """The group key: SHA-256 of the node, the error type and the normalised message."""
    key = "\x1f".join([node, error_type or "", normalize(message)])
    return hashlib.sha256(key.encode()).hexdigest()


def infer_error_type(message: str) -> str:
    """The type a message names in front ("Timeout: ..." -> "Timeout"), else ""."""
    found = _TYPE_PREFIX.match(message)
    return found.group(1) if found else ""
