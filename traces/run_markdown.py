"""A run as Markdown, sized to paste into a chat or an issue (or to hand a coding agent).

``run_markdown`` reads the stored rows (no state unless a step is asked for) and writes:
a header (graph, execution id, status, duration, tokens, nodes, start, thread), the
errors with the step each belongs to, the node sequence as a table and, for one step,
what it changed as JSON Pointer paths (``traces/jsondiff.py``).

Whatever the run's size the text stays within ``max_chars``: each part gets a share of
what the parts before it left, long values are cut with a marker, and a long sequence
loses rows in the middle (never the first failing step, the selected one or their
neighbours), with a line saying how many and how to ask for them.

Every string from a trace goes into a code span or a fenced block whose backtick fence is
longer than any run of backticks inside it, so nothing a producer wrote (pipes, stars,
backticks, HTML) can break the table or turn into markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.urls import reverse

from .error_steps import error_steps
from .errors import InputError
from .jsondiff import Change, collapse, diff
from .models import Run
from .store import load_step, load_trace
from .trace import UNSET, ErrorTrace, NodeExecution

DEFAULT_MAX_CHARS = 8_000
# Below this the header and a few rows would not fit.
MIN_MAX_CHARS = 1_500

# Header values and names are cut here (ids and names may be 200 characters).
NAME_CHARS = 80
MESSAGE_CHARS = 300
# A diff value this short stays on its line; a longer one gets a fenced block, cut here.
INLINE_VALUE_CHARS = 80
FENCED_VALUE_CHARS = 600
# Rows kept on each side of the first failing step and of the selected one.
NEIGHBOURS = 2

_BACKTICKS = re.compile(r"`+")


def run_markdown(run: Run, step: int | None = None, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """``run`` as Markdown of at most ``max_chars`` characters; with ``step`` (a DashFlow
    step index) also that step's state diff. Raises ``InputError`` (404) when the run has
    no such step and ``ValueError`` for a ``max_chars`` below ``MIN_MAX_CHARS``."""
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, got {max_chars}")
    selected = None
    if step is not None:
        selected = load_step(run, step)
        if selected is None:
            raise InputError("step", f"run {run.execution_id!r} has no step {step}", status=404)
    trace = load_trace(run, with_states=False)
    nodes = trace.nodes_executed
    parts = [_header(run)]
    # Each part may take a share of what is left; the sequence gets the rest.
    left = max_chars - len(parts[0]) - 2
    if trace.errors:
        parts.append(_errors(trace.errors, nodes, budget=left // 3))
        left -= len(parts[-1]) + 2
    if selected is not None:
        parts.append(_step(selected, budget=left // 2))
        left -= len(parts[-1]) + 2
    selected_position = (
        next(p for p, n in enumerate(nodes) if _index(n, p) == step) if step is not None else None
    )
    parts.append(_sequence(run, nodes, selected_position, budget=left - 1))
    return "\n\n".join(parts) + "\n"


def code(text: str, *, table: bool = False) -> str:
    """``text`` as one inline code span that nothing inside can end early: newlines become
    spaces, the fence is longer than any backtick run inside, and in a table cell a pipe
    is escaped (GFM splits cells before it reads code spans)."""
    text = " ".join(text.splitlines())
    if not text:
        return "(empty)"
    if table:
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    # CommonMark strips one space from each end of a span: pad when the text would lose
    # its own, or would merge its edge backtick with the fence.
    pad = text[0] in "` " or text[-1] in "` "
    return f"{fence} {text} {fence}" if pad else f"{fence}{text}{fence}"


def fenced(text: str, language: str = "", indent: str = "") -> str:
    """``text`` as a fenced block whose fence is longer than any backtick run inside."""
    fence = "`" * max(3, max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    lines = [f"{fence}{language}", *text.splitlines(), fence]
    return "\n".join(indent + line for line in lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _index(node: NodeExecution, position: int) -> int:
    return node.index if node.index is not UNSET else position


def _header(run: Run) -> str:
    title = code(_cut(run.graph_name, NAME_CHARS)) if run.graph_name else "run"
    fields = [
        ("Execution", code(_cut(run.execution_id, NAME_CHARS * 2))),
        ("Status", run.status),
        ("Duration", f"{run.duration_ms:,} ms"),
        ("Tokens", f"{run.total_tokens:,}"),
        ("Nodes", f"{run.node_count:,}"),
        ("Errors", f"{run.error_count:,}"),
        ("Started", code(run.started_at_text or run.started_at.isoformat())),
        ("Thread", code(_cut(run.thread_id, NAME_CHARS * 2)) if run.thread_id else "—"),
    ]
    return f"# Run {title}\n\n" + "\n".join(f"- **{name}:** {value}" for name, value in fields)


def _errors(errors: Sequence[ErrorTrace], nodes: Sequence[NodeExecution], budget: int) -> str:
    steps = error_steps(
        ((e.node, e.execution_index) for e in errors),
        ((_index(n, p), n.node, n.success) for p, n in enumerate(nodes)),
    )
    head = f"## Errors ({len(errors):,})\n"
    lines: list[str] = []
    size = len(head)
    for shown, (error, index) in enumerate(zip(errors, steps, strict=True)):
        where = f"step {index}" if index is not None else "no step"
        kind = code(_cut(error.error_type, NAME_CHARS)) if error.error_type else "error"
        line = (
            f"{shown + 1}. {where} · {code(_cut(error.node, NAME_CHARS))} · {kind}: "
            f"{code(_cut(error.message, MESSAGE_CHARS))}"
        )
        rest = len(errors) - shown
        # Keep room for the line that says how many were left out.
        if size + len(line) + 1 + (60 if rest > 1 else 0) > budget:
            lines.append(f"- … {rest:,} more errors: see the run's page or its JSON")
            break
        lines.append(line)
        size += len(line) + 1
    return head + "\n".join(lines)


def _step(node: NodeExecution, budget: int) -> str:
    index = node.index if node.index is not UNSET else "?"
    outcome = "ok" if node.success else "failed"
    head = [
        f"## Step {index} · {code(_cut(node.node, NAME_CHARS))} · {outcome}",
        "",
        f"{node.duration_ms:,} ms · {node.tokens_used:,} tokens"
        + (
            " · tools: " + ", ".join(code(_cut(t, NAME_CHARS)) for t in node.tools_called[:10])
            if node.tools_called
            else ""
        ),
    ]
    if node.error_message:
        head.append(f"\nError: {code(_cut(node.error_message, MESSAGE_CHARS))}")
    before, after = node.state_before, node.state_after
    if before is None or after is None:
        if before is not None:
            note = "No state after: the node ended without writing one."
        else:
            note = "No states were recorded for this step."
        return "\n".join([*head, "", note])
    changes = diff(before, after)
    if not changes:
        return "\n".join([*head, "", "This step changed nothing in the state."])
    counts = {op: sum(1 for c in changes if c.op == op) for op in ("add", "remove", "replace")}
    title = (
        f"### What it changed ({len(changes):,}: {counts['add']:,} added, "
        f"{counts['remove']:,} removed, {counts['replace']:,} replaced)"
    )
    text = "\n".join([*head, "", title, ""])
    items: list[str] = []
    size = len(text)
    for shown, change in enumerate(changes):
        item = _change(change)
        rest = len(changes) - shown
        if size + len(item) + 1 + (120 if rest > 1 else 0) > budget:
            items.append(
                f"- … {rest:,} more changes left out: the step's JSON "
                "(`/steps/N` in the API) has both states"
            )
            break
        items.append(item)
        size += len(item) + 1
    return text + "\n".join(items)


_VERBS = {"add": "added", "remove": "removed", "replace": "replaced"}


def _change(change: Change) -> str:
    path = code(change.path) if change.path else "(the whole state)"
    line = f"- {_VERBS[change.op]} {path}"
    values = [v for v in (change.before, change.after) if v is not UNSET]
    shown = [collapse(v, FENCED_VALUE_CHARS) for v in values]
    if all(len(s["text"]) <= INLINE_VALUE_CHARS for s in shown):
        return f"{line}: " + " → ".join(code(s["text"]) for s in shown)
    blocks = [line + ":"]
    for label, s in zip(("old", "new") if len(shown) == 2 else ("",), shown, strict=True):
        if label:
            blocks.append(f"  {label}:")
        blocks.append(fenced(s["text"], "json", indent="  "))
        if s["truncated"]:
            blocks.append(f"  (cut: {s['length']:,} characters in all)")
    return "\n".join(blocks)


def _row(node: NodeExecution, position: int, selected: bool) -> str:
    index = f"**{_index(node, position)}**" if selected else str(_index(node, position))
    outcome = "ok" if node.success else "**failed**"
    mark = " ← this step" if selected else ""
    return (
        f"| {index} | {code(_cut(node.node, NAME_CHARS), table=True)} | {node.duration_ms:,} "
        f"| {node.tokens_used:,} | {outcome}{mark} |"
    )


def _sequence(run: Run, nodes: Sequence[NodeExecution], selected: int | None, budget: int) -> str:
    total = len(nodes)
    title = f"## Node sequence ({total:,} steps)"
    if not nodes:
        return f"{title}\n\nNo node has finished yet."
    table_head = "| # | node | ms | tokens | outcome |\n|---:|---|---:|---:|---|"
    url = reverse("api:run", args=[run.execution_id])
    hint = (
        f"Rows left out: {code(f'GET {url}')} lists every step as JSON; add "
        f"{code('?format=md&step=N')} for one step's changes."
    )

    rows = [_row(n, p, p == selected) for p, n in enumerate(nodes)]
    room = budget - len(title) - len(table_head) - len(hint) - 6
    kept = _fit(rows, _must_show(nodes, selected), room)
    lines = [title, "", table_head]
    previous = -1
    for position in [*sorted(kept), total]:
        if position > previous + 1:
            first, last = previous + 1, position - 1
            lines.append(
                _gap(last - first + 1, _index(nodes[first], first), _index(nodes[last], last))
            )
        if position < total:
            lines.append(rows[position])
        previous = position
    text = "\n".join(lines)
    return text + "\n\n" + hint if len(kept) < total else text


def _must_show(nodes: Sequence[NodeExecution], selected: int | None) -> list[int]:
    """Positions a reader needs first: the selected step and where the run first failed,
    then their neighbours, nearest first (so a tight budget keeps both centres)."""
    first_failed = next((p for p, n in enumerate(nodes) if not n.success), None)
    centres = [c for c in (selected, first_failed) if c is not None]
    return [
        position
        for distance in range(NEIGHBOURS + 1)
        for centre in centres
        for position in (centre - distance, centre + distance)
        if 0 <= position < len(nodes)
    ]


def _fit(rows: Sequence[str], must: Sequence[int], room: int) -> set[int]:
    """The positions of ``rows`` to show within ``room`` characters, gap lines included:
    ``must`` first, then the start and the end alternately while they fit."""
    total = len(rows)
    # Indices can be any u64: the longest gap line there can be.
    gap_cost = len(_gap(total, 10**20, 10**20)) + 1
    kept: set[int] = set()
    gaps = 1
    size = gap_cost

    def unkept(position: int) -> bool:
        return 0 <= position < total and position not in kept

    def add(position: int) -> bool:
        nonlocal gaps, size
        # Showing a row splits the gap it was in into the parts left on either side.
        new_gaps = gaps + unkept(position - 1) + unkept(position + 1) - 1
        new_size = size + len(rows[position]) + 1 + (new_gaps - gaps) * gap_cost
        if new_size > room:
            return False
        kept.add(position)
        gaps, size = new_gaps, new_size
        return True

    for position in must:
        if position not in kept:
            add(position)
    for step in range(total):
        for position in (step, total - 1 - step):
            if position not in kept and not add(position):
                return kept
    return kept


def _gap(count: int, first: int, last: int) -> str:
    return f"| … | *{count:,} steps left out (#{first} to #{last})* | | | |"
