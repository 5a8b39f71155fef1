"""The run page's data: what it needs to start, in the shape the websocket then continues,
and what its endpoints (timeline.json, errors.json) answer as the run grows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec
from django.conf import settings
from django.db.models import TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from traces.bulk import raw_rows
from traces.error_steps import error_steps
from traces.errors import InputError
from traces.fields import from_db_u64
from traces.graph_schema import read_graph_schema
from traces.live import replay
from traces.models import EventType, Run, RunStatus

from . import links
from .charts import run_figures
from .routing import run_socket_path
from .timeline import step_offsets, timeline_figure

# The step fields the run page lists, filters and steps through; everything else about a
# step (states, metadata) comes from the step endpoint when it is opened.
LIST_FIELDS = (
    "index",
    "position",
    "node",
    "duration_ms",
    "tokens_used",
    "success",
    "error_message",
    "tools_called",
)


def step_rows(run: Run) -> list[dict[str, Any]]:
    """The run's steps without states, as the figures and the list read them.

    Tuples from the database as it gives them (``bulk.raw_rows``: a third of reading a
    100,000-step run), the two converters that matter applied here; ``tools_called`` read as text
    and decoded in one msgspec call rather than one ``json.loads`` per row: a
    10,000-step run builds in ~60 ms instead of ~700 ms."""
    fields = [f for f in LIST_FIELDS if f != "tools_called"]
    rows = raw_rows(
        run.steps.order_by("position").values_list(
            *fields, "started_at_text", Cast("tools_called", TextField())
        )
    )
    tools = msgspec.json.decode("[" + ",".join(row[-1] or "[]" for row in rows) + "]")
    # u64 columns come wrapped past 2**63 (traces/fields.py), booleans as 0/1 on SQLite.
    return [
        {
            "index": from_db_u64(index),
            "position": position,
            "node": node,
            "duration_ms": from_db_u64(duration),
            "tokens_used": from_db_u64(tokens),
            "success": bool(success),
            "error_message": error,
            "started_at": started,
            "tools_called": called,
        }
        for (index, position, node, duration, tokens, success, error, started, _), called in zip(
            rows, tools, strict=True
        )
    ]


def running_nodes(run: Run, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The node a running run has started and not finished (from its last ``node_started``
    event), with how long it has been running by the server's clock; [] otherwise."""
    if run.status != RunStatus.RUNNING:
        return []
    last = (
        run.events.filter(type=EventType.NODE_STARTED)
        .order_by("-seq")
        .values_list("seq", "received_at")
        .first()
    )
    if last is None:
        return []
    seq, received_at = last
    event = next(replay(run, seq - 1, 1), None)
    if event is None or not isinstance(event["data"], dict):
        return []
    data = event["data"]
    index = data.get("index")
    if not isinstance(index, int) or any(s["index"] == index for s in steps[-50:]):
        return []
    elapsed = (timezone.now() - received_at).total_seconds() * 1000
    return [
        {
            "node": str(data.get("node", "")),
            "index": index,
            "started_at": data.get("started_at"),
            "elapsed_ms": round(max(elapsed, 0)),
        }
    ]


def timeline_window(params: Mapping[str, str]) -> tuple[float, float] | None:
    """``from`` and ``to`` (ms since the run's start) of the window the page zoomed into,
    or None when neither is given."""
    if "from" not in params and "to" not in params:
        return None
    bounds = []
    for name in ("from", "to"):
        try:
            value = float(params[name])
        except (KeyError, ValueError):
            raise InputError(name, "must be a number of ms since the run's start") from None
        if not math.isfinite(value):
            raise InputError(name, "must be finite")
        bounds.append(value)
    if bounds[0] >= bounds[1]:
        raise InputError("from", "must be below to")
    return bounds[0], bounds[1]


def run_figures_of(
    run: Run, window: tuple[float, float] | None = None
) -> dict[str, dict[str, Any]]:
    """The page's figures as they are now, running node included (timeline.json); with a
    ``window`` (ms from the start, what the page zoomed into) only the timeline, over it."""
    steps = step_rows(run)
    running = running_nodes(run, steps)
    if window is not None:
        return {"timeline": timeline_figure(steps, running, window)}
    return run_figures(steps, running, read_graph_schema(run.metadata))


def columns(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, list[Any]]:
    """Rows as one list per field: a 10,000-step list is a third of the size as JSON."""
    return {f: [row[f] for row in rows] for f in fields}


def error_rows(run: Run, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's errors, each with the step it belongs to (``step_index``, the rule of
    ``traces/error_steps.py``)."""
    errors = list(run.errors.all())
    # Only failed steps can own an error that names no step; when every error names its
    # step, a long run's steps need not be gone through at all.
    unnamed = any(e.execution_index is None for e in errors)
    belongs = error_steps(
        ((e.node, e.execution_index) for e in errors),
        ((s["index"], s["node"], False) for s in steps if not s["success"]) if unnamed else (),
    )
    return [
        {**error.summary(), "step_index": index}
        for error, index in zip(errors, belongs, strict=True)
    ]


def run_page_data(run: Run) -> dict[str, Any]:
    """The run's summary, steps (as columns) and errors, its figures, the URLs its script
    asks, and the seq the websocket resumes after."""
    steps = step_rows(run)
    route = (run.project.slug, run.execution_id)
    listed = columns(steps, LIST_FIELDS)
    offsets = step_offsets(steps)
    # Where each step sits on the timeline, to outline the selected one there.
    listed["offset"] = [round(o, 1) for o in offsets]
    return {
        "run": run.summary(),
        "steps": listed,
        # "timeline", "breakdown" and "graph": the same figures timeline.json refetches.
        **run_figures(steps, running_nodes(run, steps), read_graph_schema(run.metadata), offsets),
        "timeline_url": reverse("visualizer:run-timeline", args=route),
        "step_url": links.template("visualizer:run-step", *route, index="int"),
        # "Copy as Markdown": the run, and the run with one step's diff.
        "markdown_url": links.api(
            "api:run", run.execution_id, project=run.project.slug, format="md"
        ),
        "step_markdown_url": links.api(
            "api:run", run.execution_id, project=run.project.slug, format="md", step="{index}"
        ),
        "watch_url": reverse("visualizer:run-watch", args=route),
        "errors_url": reverse("visualizer:run-errors", args=route),
        "errors": error_rows(run, steps),
        # Subscribe first, then fetch: the socket resumes after the last event this page
        # was rendered from; anything newer arrives over the socket (deduplicated by seq).
        "after": run.last_seq,
        "ws_path": run_socket_path(run),
        # While the run is live the script asks this often whether it missed anything.
        "live_check_ms": settings.LIVE_CHECK_EVERY * 1000,
    }


def script_json(value: Any) -> SafeString:
    """``value`` as compact JSON that is safe inside a ``<script type="application/json">``
    element (what ``json_script`` does, with msgspec: ~10x faster on a 10,000-step run)."""
    # The same escapes as json_script (inside <script>, "<" could close the element), with
    # str.replace: str.translate takes ~20x longer on a megabyte.
    text = msgspec.json.encode(value).decode()
    text = text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    # "<", ">" and "&" are escaped just above.
    return mark_safe(text)
