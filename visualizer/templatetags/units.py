"""Numbers, durations and times as every page writes them (``static/visualizer/format.js``
has the same rules for what the browser builds; ``tests/visualizer/test_units.py`` checks
that both give the same text):

- ``{{ n|number }}``: 1,073,630;
- ``{{ ms|duration }}``: 850 ms, 1.23 s, 12.3 s, 14 min 55 s, 2 h 5 min;
- ``{{ when|time_tag }}`` / ``{{ when|time_tag:"short" }}``: a ``<time>`` element with the
  ISO instant, its text in UTC until format.js rewrites it in the reader's timezone.
- ``{{ started|elapsed_tag }}``: the time elapsed since then, ticking in the browser.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

_STYLES = {"seconds": "%Y-%m-%d %H:%M:%S", "minutes": "%Y-%m-%d %H:%M", "short": "%m-%d %H:%M"}


@register.filter
def number(value: object) -> str:
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(value)


@register.filter
def duration(value: object) -> str:
    try:
        ms = max(0, _round_half_up(float(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60000:
        return f"{_fixed(ms / 1000, 2 if ms < 10000 else 1)} s"
    s = _round_half_up(ms / 1000)
    h, m = s // 3600, (s % 3600) // 60
    return f"{h:,} h {m} min" if h else f"{m} min {s % 60} s"


@register.filter
def time_tag(value: datetime | None, style: str = "seconds") -> SafeString | str:
    if value is None:
        return "—"
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}"{}>{}</time>',
        utc.isoformat().replace("+00:00", "Z"),
        format_html(' data-style="{}"', style) if style != "seconds" else "",
        utc.strftime(_STYLES.get(style, _STYLES["seconds"])),
    )


@register.filter
def elapsed_tag(value: datetime | None) -> SafeString | str:
    if value is None:
        return "—"
    since = value.astimezone(UTC)
    ms = (datetime.now(UTC) - since).total_seconds() * 1000
    return format_html(
        '<span class="elapsed" data-since="{}" title="running: the time so far">{}</span>',
        since.isoformat().replace("+00:00", "Z"),
        duration(ms),
    )


def _round_half_up(x: float) -> int:
    """Math.round: halves go up (Python's round() goes to the even neighbour)."""
    return math.floor(x + 0.5)


def _fixed(x: float, digits: int) -> str:
    """Number.prototype.toFixed for the values a duration has (ms / 1000)."""
    return f"{x:.{digits}f}"
