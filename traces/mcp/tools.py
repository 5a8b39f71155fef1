"""What each MCP tool does, as plain functions of the caller's API key and the arguments.

Each function reads through the domain functions the API and the pages use and returns
a small JSON-able dict; ``traces/mcp/server.py`` registers them (schema, description,
error mapping, the size guard). A refusal is an ``InputError`` whose ``path`` names the
argument; a run or group of another project is "not found", as in the API.

Answers are bounded by construction: lists are short pages with a cursor or an offset,
every free-text field is cut with ``collapse`` (an ending "…" marks a cut), and long
sequences fill a character budget and say where to go on from (``next_offset``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import msgspec
from django.db.models import OuterRef, Q, Subquery

from .. import compare, failure_json, failures, review, runlist, store
from ..diffview import state_summary, summarize, value_at
from ..errors import InputError
from ..fields import from_db_u64
from ..jsondiff import collapse, diff
from ..models import Failure, FailureGroup, Run, Step
from ..permissions import KeyPrincipal, write_refused
from ..run_markdown import run_markdown
from ..trace import NodeExecution
from ..watch import watch

# No answer is longer than this many characters of JSON (server.py checks every one).
ANSWER_MAX_CHARS = 20_000
# A long sequence (steps, changes, matches) fills this much of an answer, then pages.
SEQUENCE_BUDGET = 12_000
# Free text and JSON values inside lists are cut to these many characters.
TEXT_CHARS = 300
VALUE_CHARS = 200
# A state this short (as JSON) is shown whole in get_step; a longer one by its keys.
STATE_INLINE_CHARS = 2_000
# get_step(path=...) reads a value in slices of this many characters.
SLICE_CHARS = 4_000
MAX_RUNS = 20
MAX_GROUPS = 20
MAX_ERRORS = 10
MAX_OCCURRENCES = 20
GROUP_RUN_IDS = 3
# The run:// resource, as Markdown.
RESOURCE_MAX_CHARS = 8_000


def text(value: str | None, max_chars: int = TEXT_CHARS) -> str | None:
    """Free text cut to ``max_chars`` (a cut ends with "…")."""
    if value is None or len(value) <= max_chars:
        return value
    return value[: max_chars - 1] + "…"


def shown(value: Any, max_chars: int = VALUE_CHARS) -> str:
    """A JSON value as compact JSON text, cut to ``max_chars``."""
    return collapse(value, max_chars)["text"]


def fill(items: Iterable[Any], budget: int = SEQUENCE_BUDGET) -> tuple[list[Any], bool]:
    """The leading items whose compact JSON fits in ``budget`` characters (at least one),
    and whether any were left out."""
    taken: list[Any] = []
    used = 0
    for item in items:
        size = len(msgspec.json.encode(item)) + 1
        if taken and used + size > budget:
            return taken, True
        taken.append(item)
        used += size
    return taken, False


def check_limit(limit: int, most: int) -> int:
    if not 1 <= limit <= most:
        raise InputError("limit", f"expected an integer from 1 to {most}, got {limit}")
    return limit


def check_offset(offset: int) -> int:
    if offset < 0:
        raise InputError("offset", f"expected 0 or more, got {offset}")
    return offset


def project_run(key: KeyPrincipal, execution_id: str) -> Run:
    """The run of the key's project; any other is "not found" (the API's 404 rule)."""
    run = (
        Run.objects.select_related("project")
        .filter(project=key.project, execution_id=execution_id)
        .first()
    )
    if run is None:
        raise InputError("execution_id", f"run {execution_id!r}: not found", status=404)
    return run


def require_write(key: KeyPrincipal, tool: str) -> None:
    refused = write_refused(key, tool)
    if refused is not None:
        raise InputError("api_key", refused, status=403)


def run_row(run: Run) -> dict[str, Any]:
    """A run as a list shows it."""
    return {
        "execution_id": run.execution_id,
        "graph_name": run.graph_name,
        "status": run.status,
        "started_at": run.started_at_text,
        "duration_ms": run.duration_ms,
        "total_tokens": run.total_tokens,
        "node_count": run.node_count,
        "error_count": run.error_count,
        "first_error": text(run.first_error or None, 160),
        "first_error_node": run.first_error_node or None,
    }


def list_runs(key: KeyPrincipal, filters: dict[str, str | None], limit: int) -> dict[str, Any]:
    params = {name: value for name, value in filters.items() if value}
    params["limit"] = str(check_limit(limit, MAX_RUNS))
    listing = runlist.list_runs(key.project, params)
    return {
        "runs": [run_row(r) for r in listing.page.runs],
        "next_cursor": listing.page.next,
    }


def _step_rows(run: Run) -> Iterator[tuple[int, str, int, int, bool, str | None]]:
    fields = ("index", "node", "duration_ms", "tokens_used", "success", "error_message")
    yield from run.steps.order_by("position").values_list(*fields)


def get_run(key: KeyPrincipal, execution_id: str, offset: int) -> dict[str, Any]:
    run = project_run(key, execution_id)
    check_offset(offset)
    body = run.summary()
    body["metadata"] = shown(body["metadata"], TEXT_CHARS)
    body["first_error"] = text(body["first_error"])
    errors = list(run.errors.all()[:MAX_ERRORS])
    body["errors"] = [
        {
            "node": e.node,
            "error_type": e.error_type,
            "message": text(e.message),
            "step_index": e.execution_index,
            "recoverable": e.recoverable,
            "retry_attempted": e.retry_attempted,
            "context": text(e.context, VALUE_CHARS),
        }
        for e in errors
    ]
    per_node: dict[str, dict[str, int]] = {}
    rows: list[list[Any]] = []
    for position, (index, node, ms, tokens, ok, error) in enumerate(_step_rows(run)):
        stats = per_node.setdefault(node, {"steps": 0, "duration_ms": 0, "tokens": 0, "failed": 0})
        stats["steps"] += 1
        stats["duration_ms"] += ms
        stats["tokens"] += tokens
        stats["failed"] += 0 if ok else 1
        if position >= offset:
            rows.append([index, text(node, 60), ms, tokens, ok, text(error, 120)])
    # Most time first: where a slow or looping run spent it.
    ranked = sorted(per_node.items(), key=lambda item: -item[1]["duration_ms"])
    body["nodes"] = [{"node": text(name, 60), **stats} for name, stats in ranked[:30]]
    page, more = fill(rows, SEQUENCE_BUDGET - len(msgspec.json.encode(body)) // 2)
    body["steps"] = {
        "columns": ["index", "node", "duration_ms", "tokens_used", "success", "error"],
        "rows": page,
        "next_offset": offset + len(page) if more else None,
    }
    return body


def _load_step(run: Run, index: int) -> NodeExecution:
    node = store.load_step(run, index)
    if node is None:
        raise InputError("index", f"run {run.execution_id!r} has no step {index}", status=404)
    return node


def _state(value: Any) -> Any:
    raw = msgspec.json.encode(value)
    if len(raw) <= STATE_INLINE_CHARS:
        return value
    return {"elided": True, "chars": len(raw), "summary": state_summary(value)}


def _change_value(value: Any) -> dict[str, Any]:
    cut = collapse(value, VALUE_CHARS)
    if cut["truncated"]:
        return {"text": cut["text"], "elided": True, "chars": cut["length"]}
    return {"text": cut["text"]}


def get_step(
    key: KeyPrincipal, execution_id: str, index: int, path: str | None, offset: int
) -> dict[str, Any]:
    run = project_run(key, execution_id)
    check_offset(offset)
    node = _load_step(run, index)
    if path is not None:
        return _step_value(node, path, offset)
    both = node.state_before is not None and node.state_after is not None
    changes = diff(node.state_before, node.state_after) if both else []
    entries = [
        {
            "op": c.op,
            "path": c.path,
            **({"before": _change_value(c.before)} if c.has_before else {}),
            **({"after": _change_value(c.after)} if c.has_after else {}),
        }
        for c in changes[offset:]
    ]
    page, more = fill(entries, SEQUENCE_BUDGET // 2)
    return {
        "index": node.index,
        "node": node.node,
        "duration_ms": node.duration_ms,
        "tokens_used": node.tokens_used,
        "success": node.success,
        "error_message": text(node.error_message, 1_000),
        "tools_called": shown(node.tools_called, TEXT_CHARS),
        "metadata": shown(node.metadata, TEXT_CHARS),
        "state_before": _state(node.state_before),
        "state_after": _state(node.state_after),
        "diff_summary": summarize(changes),
        "changes": page,
        "next_offset": offset + len(page) if more else None,
        "note": "Values marked elided are cut: call get_step with path set to the change's "
        "path (and offset to page) to read one whole.",
    }


def compare_runs(key: KeyPrincipal, a: str, b: str, offset: int) -> dict[str, Any]:
    """Two runs aligned by (node, occurrence) (``traces/compare.py``): counts, the first
    divergence with run a's state against run b's there (changes cut as in get_step), and
    the aligned rows from ``offset`` as ``[node, occurrence, kind, a_index, b_index,
    same_state]`` within a budget."""
    check_offset(offset)
    runs = {}
    for name, execution_id in (("a", a), ("b", b)):
        try:
            runs[name] = project_run(key, execution_id)
        except InputError as exc:
            raise InputError(name, exc.rule, exc.status) from None
    found = compare.compare(runs["a"], runs["b"])
    body = compare.comparison_json(runs["a"], runs["b"], found, (offset, compare.ROWS_MAX))
    div = body["divergence"]
    if div is not None:
        field = "state_before" if div["at"] == "before" else "state_after"
        state_a = getattr(_load_step(runs["a"], div["a_index"]), field)
        state_b = getattr(_load_step(runs["b"], div["b_index"]), field)
        changes = diff(state_a, state_b) if state_a is not None and state_b is not None else []
        entries = [
            {
                "op": c.op,
                "path": c.path,
                **({"a": _change_value(c.before)} if c.has_before else {}),
                **({"b": _change_value(c.after)} if c.has_after else {}),
            }
            for c in changes
        ]
        div["changes"], div["changes_cut"] = fill(entries, SEQUENCE_BUDGET // 3)
        div["states_present"] = {"a": state_a is not None, "b": state_b is not None}
    rows = (
        [
            r["node"],
            r["occurrence"],
            r["kind"],
            r["a"] and r["a"]["index"],
            r["b"] and r["b"]["index"],
            r["same_state"],
        ]
        for r in body["rows"]
    )
    page, more = fill(rows, SEQUENCE_BUDGET // 3)
    return {
        "a": run_row(runs["a"]),
        "b": run_row(runs["b"]),
        "counts": body["counts"],
        "divergence": div,
        "row_count": body["row_count"],
        "rows": page,
        "next_offset": offset + len(page) if more else None,
    }


def _step_value(node: NodeExecution, path: str, offset: int) -> dict[str, Any]:
    body: dict[str, Any] = {"index": node.index, "node": node.node, "path": path}
    for name, state in (("before", node.state_before), ("after", node.state_after)):
        try:
            found, value = value_at(state, path)
        except ValueError as exc:
            raise InputError("path", str(exc)) from None
        if not found:
            body[name] = {"found": False}
            continue
        whole = msgspec.json.encode(value).decode()
        part = whole[offset : offset + SLICE_CHARS]
        end = offset + len(part)
        body[name] = {
            "found": True,
            "chars": len(whole),
            "offset": offset,
            "text": part,
            "next_offset": end if end < len(whole) else None,
        }
    return body


def _steps(run: Run, with_states: bool) -> list[tuple[int, NodeExecution]]:
    """The run's steps with their indices (stored steps always have one)."""
    nodes = store.load_trace(run, with_states=with_states).nodes_executed
    return [
        (n.index if isinstance(n.index, int) else position, n) for position, n in enumerate(nodes)
    ]


def watch_path(key: KeyPrincipal, execution_id: str, path: str, offset: int) -> dict[str, Any]:
    run = project_run(key, execution_id)
    check_offset(offset)
    try:
        # Read path by path, not as whole states: a 100,000-step run (traces/watch.py).
        watched = watch(run, path)
    except ValueError as exc:
        raise InputError("path", str(exc)) from None
    changed = [
        {
            "index": c["index"],
            "node": c["node"],
            "found": c["found"],
            **({"value": _change_value(c["value"])} if c["found"] else {}),
        }
        for c in watched["changes"]
    ]
    page, more = fill(changed[offset:])
    return {
        "path": path,
        "first_changed": watched["first_changed"],
        "last_changed": watched["last_changed"],
        "steps_seen": watched["steps_seen"],
        "changes_total": len(changed),
        "changes": page,
        "next_offset": offset + len(page) if more else None,
    }


def search_steps(
    key: KeyPrincipal,
    execution_id: str,
    node: str | None,
    error: str | None,
    path: str | None,
    value: str | None,
    offset: int,
) -> dict[str, Any]:
    run = project_run(key, execution_id)
    check_offset(offset)
    if not (node or error or path):
        raise InputError("node", "name at least one of node, error or path")
    if value is not None and path is None:
        raise InputError("value", "a value is looked for at a path: name path too")
    steps = _steps(run, with_states=path is not None)
    errors: dict[int, list[str]] = {}
    for e in run.errors.all():
        if e.execution_index is not None:
            errors.setdefault(e.execution_index, []).append(e.message)
    wanted = (value or "").lower()
    matches: list[dict[str, Any]] = []
    for index, step in steps:
        if node and step.node != node:
            continue
        messages = [m for m in [step.error_message, *errors.get(index, [])] if m]
        if error and not any(error.lower() in m.lower() for m in messages):
            continue
        match: dict[str, Any] = {"index": index, "node": step.node, "success": step.success}
        if messages:
            match["error"] = text(messages[0], VALUE_CHARS)
        if path:
            try:
                found, at = value_at(step.state_after, path)
            except ValueError as exc:
                raise InputError("path", str(exc)) from None
            if not found or wanted not in msgspec.json.encode(at).decode().lower():
                continue
            match["value"] = _change_value(at)
        matches.append(match)
    page, more = fill(matches[offset:])
    return {
        "matches_total": len(matches),
        "matches": page,
        "next_offset": offset + len(page) if more else None,
    }


def _group_row(group: FailureGroup, ids: list[str]) -> dict[str, Any]:
    body = failure_json.group_summary(group, ids)
    body["message"] = text(body["message"])
    body["sample_message"] = text(body["sample_message"])
    del body["fingerprint"]
    return body


def _group_cursor(group: FailureGroup) -> str:
    raw = json.dumps([group.last_seen.isoformat(), group.pk])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after_group(cursor: str) -> Q:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        seen, pk = json.loads(raw)
        last_seen = datetime.fromisoformat(seen)
    except (ValueError, TypeError, binascii.Error):
        raise InputError("cursor", "not a cursor of this list (use next_cursor)") from None
    if not isinstance(pk, int):
        raise InputError("cursor", "not a cursor of this list (use next_cursor)")
    return Q(last_seen__lt=last_seen) | Q(last_seen=last_seen, pk__lt=pk)


def list_failure_groups(
    key: KeyPrincipal,
    status: str | None,
    node: str | None,
    error_type: str | None,
    assignee: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    check_limit(limit, MAX_GROUPS)
    groups = FailureGroup.objects.filter(project=key.project).select_related("assignee")
    wanted = failure_json.parse_status(status)
    if wanted:
        groups = groups.filter(status=wanted)
    groups = failure_json.filter_groups(groups, node, error_type, assignee)
    if cursor:
        groups = groups.filter(_after_group(cursor))
    rows = list(groups.order_by("-last_seen", "-id")[: limit + 1])
    page = rows[:limit]
    ids = failure_json.run_ids([g.pk for g in page], GROUP_RUN_IDS)
    return {
        "groups": [_group_row(g, ids[g.pk]) for g in page],
        "next_cursor": _group_cursor(page[-1]) if len(rows) > limit else None,
    }


def _project_group(key: KeyPrincipal, group_id: int) -> FailureGroup:
    group = (
        FailureGroup.objects.filter(project=key.project, pk=group_id)
        .select_related("assignee", "project")
        .first()
    )
    if group is None:
        raise InputError("group_id", f"failure group {group_id}: not found", status=404)
    return group


def get_failure_group(key: KeyPrincipal, group_id: int) -> dict[str, Any]:
    group = _project_group(key, group_id)
    step_index = Step.objects.filter(
        run_id=OuterRef("run_id"), position=OuterRef("step_position")
    ).values("index")[:1]
    latest = (
        Failure.objects.filter(group=group)
        .order_by("-seen_at", "-id")
        .annotate(step_index=Subquery(step_index))
        .values_list("run__execution_id", "run__status", "step_index", "message", "seen_at")
    )
    body = _group_row(group, [])
    del body["run_ids"]
    body["runs_affected"] = Failure.objects.filter(group=group).values("run_id").distinct().count()
    body["occurrences"] = [
        {
            "execution_id": execution_id,
            "run_status": status,
            "step_index": from_db_u64(index),
            "message": text(message, VALUE_CHARS),
            "seen_at": seen.isoformat(),
        }
        for execution_id, status, index, message, seen in latest[:MAX_OCCURRENCES]
    ]
    return body


def update_failure_group(
    key: KeyPrincipal,
    group_id: int,
    status: str | None,
    assignee: str | None,
    unassign: bool,
) -> dict[str, Any]:
    group = _project_group(key, group_id)
    require_write(key, "update_failure_group")
    if status is None and assignee is None and not unassign:
        raise InputError("status", "name status, assignee or unassign")
    if assignee is not None and unassign:
        raise InputError("unassign", "name an assignee or unassign, not both")
    if status is not None and failure_json.parse_status(status) is None:
        raise InputError("status", "expected a status")
    group = failures.change_group(
        group, key, status, assignee, set_assignee=assignee is not None or unassign
    )
    ids = failure_json.run_ids([group.pk], GROUP_RUN_IDS)
    return _group_row(group, ids[group.pk])


def add_comment(
    key: KeyPrincipal, execution_id: str, body: str, index: int | None, path: str | None
) -> dict[str, Any]:
    run = project_run(key, execution_id)
    require_write(key, "add_comment")
    step = review.step_at(run, index) if index is not None else None
    comment = review.add_comment(run, key, body, step, path or "")
    return {
        "id": comment.pk,
        "execution_id": run.execution_id,
        "step_index": step.index if step else None,
        "path": comment.path,
        "mentions": comment.mentions,
        "created_at": comment.created_at.isoformat(),
    }


def run_resource(key: KeyPrincipal, project: str, execution_id: str) -> str:
    """``run://<project>/<execution_id>``: the run as bounded Markdown. Another project's
    slug names nothing, as another project's run does."""
    if project != key.project.slug:
        raise InputError("uri", f"run {execution_id!r}: not found", status=404)
    return run_markdown(project_run(key, execution_id), max_chars=RESOURCE_MAX_CHARS)
