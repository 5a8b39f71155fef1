"""What the run page needs to start, in the shape the websocket then continues."""

from __future__ import annotations

from typing import Any

from traces.models import Run

from .charts import run_figures


def run_page_data(run: Run) -> dict[str, Any]:
    """The run's summary, steps and errors, and the seq the websocket resumes after."""
    steps = [s.summary() for s in run.steps.all()]
    return {
        "run": run.summary(),
        "steps": steps,
        # "timeline", "breakdown" and "graph": the same figures timeline.json refetches.
        **run_figures(steps),
        "timeline_url": f"/projects/{run.project.slug}/runs/{run.execution_id}/timeline.json",
        "step_url": f"/projects/{run.project.slug}/runs/{run.execution_id}/steps/",
        "watch_url": f"/projects/{run.project.slug}/runs/{run.execution_id}/watch.json",
        "errors": [e.summary() for e in run.errors.all()],
        # Subscribe first, then fetch: the socket resumes after the last event this page
        # was rendered from; anything newer arrives over the socket (deduplicated by seq).
        "after": run.last_seq,
        "ws_path": f"/ws/runs/{run.execution_id}/?project={run.project.slug}",
    }
