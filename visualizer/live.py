"""What the run page needs to start, in the shape the websocket then continues."""

from __future__ import annotations

from typing import Any

from traces.models import Run


def step_row(step: Any) -> dict[str, Any]:
    """A step as the page lists it: the fields of a ``node_finished`` event but states."""
    return {
        "index": step.index,
        "node": step.node,
        "started_at": step.started_at_text,
        "duration_ms": step.duration_ms,
        "tokens_used": step.tokens_used,
        "tools_called": step.tools_called,
        "success": step.success,
        "error_message": step.error_message,
    }


def run_page_data(run: Run) -> dict[str, Any]:
    """The run's summary, steps and errors, and the seq the websocket resumes after."""
    return {
        "run": run.summary(),
        "steps": [step_row(s) for s in run.steps.all()],
        "errors": [
            {
                "node": e.node,
                "message": e.message,
                "error_type": e.error_type,
                "execution_index": e.execution_index,
            }
            for e in run.errors.all()
        ],
        # Subscribe first, then fetch: the socket resumes after the last event this page
        # was rendered from; anything newer arrives over the socket (deduplicated by seq).
        "after": run.last_seq,
        "ws_path": f"/ws/runs/{run.execution_id}/?project={run.project.slug}",
    }
