"""``{{ run.execution_id|short_id }}``: an id short enough for a list, still telling runs
apart that share a prefix (a timestamp or a graph name): its start and its end."""

from __future__ import annotations

from django import template

register = template.Library()

# Ids up to this long are shown whole; longer ones as HEAD…TAIL (static/visualizer/dom.js
# shortId() is the same rule for rows built in the browser).
WHOLE = 16
HEAD = 9
TAIL = 6


@register.filter
def short_id(value: object) -> str:
    text = str(value)
    return text if len(text) <= WHOLE else f"{text[:HEAD]}…{text[-TAIL:]}"
