"""The step panel's view model: one node execution, its states and what it changed."""

from __future__ import annotations

from typing import Any

import msgspec
from django.conf import settings

from traces.models import Run, Step
from traces.store import load_states

from .diff import collapse, diff, summarize

# Values in the diff list are shown collapsed past this many characters.
VALUE_PREVIEW_CHARS = 240


def state_view(value: Any) -> dict[str, Any]:
    """A state as the panel shows it: pretty JSON text, or only its size when it is over
    STATE_INLINE_MAX_BYTES (the page then offers the download link)."""
    raw = msgspec.json.encode(value)
    if len(raw) > settings.STATE_INLINE_MAX_BYTES:
        return {"present": value is not None, "too_large": True, "bytes": len(raw)}
    text = msgspec.json.format(raw, indent=2).decode()
    return {"present": value is not None, "too_large": False, "bytes": len(raw), "text": text}


def step_view(run: Run, step: Step) -> dict[str, Any]:
    """Everything the step panel shows for ``step``; states are read for this step only."""
    states = load_states(run.project_id, [step.state_before_id, step.state_after_id])
    before = states.get(step.state_before_id) if step.state_before_id else None
    after = states.get(step.state_after_id) if step.state_after_id else None
    both = step.state_before_id is not None and step.state_after_id is not None
    changes = diff(before, after) if both else []
    return {
        "step": step.summary(),
        "state_before": state_view(before),
        "state_after": state_view(after),
        "has_both_states": both,
        "summary": summarize(changes),
        "changes": [
            {
                "op": c.op,
                "path": c.path,
                "before": collapse(c.before, VALUE_PREVIEW_CHARS) if c.has_before else None,
                "after": collapse(c.after, VALUE_PREVIEW_CHARS) if c.has_after else None,
            }
            for c in changes
        ],
        "download_url": (
            f"/api/v1/runs/{run.execution_id}/steps/{step.index}?project={run.project.slug}"
        ),
    }
