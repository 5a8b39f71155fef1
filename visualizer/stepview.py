"""The step panel's view model: one node execution, its states and what it changed."""

from __future__ import annotations

from typing import Any

import msgspec
from django.conf import settings

from traces.capture import markers_in
from traces.chat import transcript
from traces.diffview import state_summary, summarize
from traces.jsondiff import collapse, diff
from traces.models import Run, RunError, Step
from traces.store import load_states
from traces.watch import watch

from . import links

# Values in the diff list are shown collapsed past this many characters; "show all"
# expands one to at most VALUE_FULL_CHARS, and a step sends at most VALUE_FULL_BUDGET
# characters of expansions (past that, the state view and the download have them).
VALUE_PREVIEW_CHARS = 240
VALUE_FULL_CHARS = 20_000
VALUE_FULL_BUDGET = 200_000


def state_view(value: Any) -> dict[str, Any]:
    """A state as the panel shows it: the value itself, which the page draws as a tree
    (``static/visualizer/jsontree.js``), or only its size and largest entries when it
    is over STATE_INLINE_MAX_BYTES (the page then offers the download link)."""
    raw = msgspec.json.encode(value)
    if len(raw) > settings.STATE_INLINE_MAX_BYTES:
        return {
            "present": value is not None,
            "too_large": True,
            "bytes": len(raw),
            "summary": state_summary(value),
        }
    return {"present": value is not None, "too_large": False, "bytes": len(raw), "value": value}


def state_text(value: Any) -> str:
    """A state as indented JSON text, key order as stored (the failure group page)."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


def _shown(value: Any, budget: list[int]) -> dict[str, Any]:
    """A diff value collapsed for the list, with its longer form when it was cut and the
    step's expansion budget (a one-item list, spent in place) allows."""
    shown: dict[str, Any] = dict(collapse(value, VALUE_PREVIEW_CHARS))
    if shown["truncated"] and budget[0] > 0:
        full = collapse(value, VALUE_FULL_CHARS)
        budget[0] -= len(full["text"])
        shown["full"] = full["text"]
    return shown


def step_view(run: Run, step: Step) -> dict[str, Any]:
    """Everything the step panel shows for ``step``; states are read for this step only."""
    # A failed step usually wrote no state after; the error's state at the time of failure
    # stands in for it, so the panel still shows what changed before the node failed.
    after_id = step.state_after_id
    compared_with = "state after"
    if after_id is None and not step.success and step.state_before_id is not None:
        after_id = state_at_error_id(run, step)
        compared_with = "state at error"
    states = load_states(run.project_id, [step.state_before_id, after_id])
    before = states.get(step.state_before_id) if step.state_before_id else None
    after = states.get(after_id) if after_id else None
    both = step.state_before_id is not None and after_id is not None
    return {
        "step": step.summary(),
        "parallel_with": parallel_with(step.metadata),
        "compared_with": compared_with if after_id is not None else None,
        **diff_view(before, after, both),
        "capture": capture_view(run, step, before, after),
        "download_url": links.api(
            "api:step", run.execution_id, step.index, project=run.project.slug, download="1"
        ),
    }


def capture_view(run: Run, step: Step, before: Any, after: Any) -> list[dict[str, Any]]:
    """What the capture policy left in this step (its markers and detector tokens, with
    the rule of each): the step panel's "capture" note; an attachment has its API link."""
    found = [
        {**m, "state": side}
        for side, state in (("before", before), ("after", after))
        for m in markers_in(state)
    ]
    found += [{**m, "state": "metadata"} for m in markers_in(step.metadata)]
    found += [{**m, "state": "error"} for m in markers_in(step.error_message or "")]
    for entry in found:
        if entry["action"] == "attachment" and isinstance(entry.get("attachment"), str):
            entry["url"] = links.api(
                "api:attachment", entry["attachment"], project=run.project.slug
            )
    return found[:200]


def state_at_error_id(run: Run, step: Step) -> int | None:
    """The state recorded with the error of ``step`` (a failed one), if any: an error that
    names this step, or one of its node that names none while this is the node's latest
    failed step (``traces/error_steps.py``'s rule)."""
    errors = RunError.objects.filter(
        run=run, node=step.node, state_at_error__isnull=False
    ).order_by("-position")
    for execution_index, state_id in errors.values_list("execution_index", "state_at_error_id"):
        if execution_index == step.index:
            return int(state_id)
        if execution_index is None:
            later_failure = Step.objects.filter(
                run=run, node=step.node, success=False, index__gt=step.index
            ).exists()
            return None if later_failure else int(state_id)
    return None


def parallel_with(metadata: Any) -> list[str]:
    """The nodes that ran in the same superstep as this one, as a LangGraph run records
    them (metadata ``parallel_with``, ``dashflow_producer.langgraph``); [] otherwise."""
    names = metadata.get("parallel_with") if isinstance(metadata, dict) else None
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str)][:20]


def diff_view(before: Any, after: Any, both: bool) -> dict[str, Any]:
    """Two states and the changes from one to the other as the step panel
    (``static/visualizer/steppanel.js``) shows them; no changes unless ``both`` exist."""
    changes = diff(before, after) if both else []
    budget = [VALUE_FULL_BUDGET]
    return {
        "state_before": state_view(before),
        "state_after": state_view(after),
        "has_both_states": both,
        # The chat messages of the state the step left (else the one it received).
        "transcript": transcript(after, changes) if after is not None else transcript(before),
        "summary": summarize(changes),
        "changes": [
            {
                "op": c.op,
                "path": c.path,
                "before": _shown(c.before, budget) if c.has_before else None,
                "after": _shown(c.after, budget) if c.has_after else None,
            }
            for c in changes
        ],
    }


def pair_view(run_a: Run, step_a: Step, run_b: Run, step_b: Step, at: str) -> dict[str, Any]:
    """Two aligned steps of two runs for the compare page's panel: run a's state ``at``
    (``"before"`` or ``"after"`` the step) against run b's, as the step panel shows one
    step's before and after. Two states are read, whatever the runs' length."""
    field = "state_before_id" if at == "before" else "state_after_id"
    id_a, id_b = getattr(step_a, field), getattr(step_b, field)
    state_a = load_states(run_a.project_id, [id_a]).get(id_a) if id_a else None
    state_b = load_states(run_b.project_id, [id_b]).get(id_b) if id_b else None
    return {
        "step": step_a.summary(),
        "step_b": step_b.summary(),
        "at": at,
        **diff_view(state_a, state_b, id_a is not None and id_b is not None),
        "download_url": links.api(
            "api:step", run_a.execution_id, step_a.index, project=run_a.project.slug, download="1"
        ),
        "download_url_b": links.api(
            "api:step", run_b.execution_id, step_b.index, project=run_b.project.slug, download="1"
        ),
    }


def watch_view(run: Run, pointer: str) -> dict[str, Any]:
    """One JSON path through the whole run: the steps that changed it, with the value each
    left, and the first and last of them ("which node wrote this?")."""
    watched = watch(run, pointer)
    return {
        "pointer": pointer,
        "changes": [
            {
                "index": c["index"],
                "node": c["node"],
                "found": c["found"],
                "value": collapse(c["value"], VALUE_PREVIEW_CHARS) if c["found"] else None,
            }
            for c in watched["changes"]
        ],
        "steps_seen": watched["steps_seen"],
        "first_changed": watched["first_changed"],
        "last_changed": watched["last_changed"],
    }
