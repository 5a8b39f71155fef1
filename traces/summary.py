"""The one rule for a run's summary columns, whether it arrives whole or as live events.

A summary is a fold over the parts of a run in order: each node execution, each error,
and the end. A whole trace (``traces/store.py``) folds all of its parts into an empty
summary; a live batch (``traces/live.py``) folds its new parts into the summary stored
on the run's row. The row holds the whole state of the fold (there is nothing else to
remember), so a run streamed event by event and the same run posted whole end with the
same columns (tests/traces/test_summary.py).

The rule, as DashFlow's ``ExecutionTrace`` means it:

* ``node_count``: the node executions; ``error_count``: the ``ErrorTrace``\\s.
* ``total_tokens``: the nodes' ``tokens_used`` added up, until the run states its own
  total (a whole trace always does; ``run_finished`` may), which then stands; likewise
  ``duration_ms``, which only the run states.
* ``first_error`` / ``first_error_type`` / ``first_error_node``: ``errors[0]`` when the
  run has errors, whatever its ``error_type`` (empty included); else the first failed
  node execution (its ``error_message``, no type). So an error arriving after a failed
  node takes its place, and nothing after the first error does.
* ``status``: ``failed`` once anything failed (an error, a failed node) or the run ended
  incomplete; ``completed`` when it ended complete with nothing failed; ``running`` until
  it ends. A whole trace has ended when it says ``completed`` or has an ``ended_at``; a
  live run when its ``run_finished`` arrives.
* ``completed``, ``ended_at``: as the end says.
* ``search_text``: what the run list's free text matches (format and cap in
  ``traces/filters.py``): the execution id, then per arrival (a whole trace is one) the
  names (thread id, nodes, error nodes and types), the metadata, the messages; a run
  past the cap loses long messages, not names.

Before this module the two paths had a rule each, and they differed on the first error:
live let a later error replace an earlier one with an empty ``error_type``, and let a
later failed node replace a failed node (or an error) with an empty message; the whole
trace kept ``errors[0]`` or the first failed node. Their search texts also held
different items (only live had the error's node) in different orders.

Live events are applied out of order only when a retried batch fills a gap; then
"first" means first to arrive, until the complete trace replaces the run's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from .fields import parse_time
from .filters import _metadata_items, extend_search_text
from .models import Run, RunStatus
from .trace import ErrorTrace, ExecutionTrace, NodeExecution, RunStarted


@dataclass(slots=True)
class Summary:
    """A run's summary columns (the ``Run`` fields of the same names)."""

    status: str = RunStatus.RUNNING
    completed: bool = False
    ended_at: datetime | None = None
    ended_at_text: str | None = None
    duration_ms: int = 0
    total_tokens: int = 0
    node_count: int = 0
    error_count: int = 0
    first_error: str = ""
    first_error_type: str = ""
    first_error_node: str = ""
    search_text: str = ""

    @classmethod
    def of_run(cls, run: Run) -> Summary:
        """The summary stored on ``run``, to fold more parts into."""
        return cls(**{name: getattr(run, name) for name in FIELDS})

    def node(self, node: NodeExecution) -> None:
        self.node_count += 1
        self.total_tokens += node.tokens_used
        if not node.success:
            if self.error_count == 0 and self.status != RunStatus.FAILED:
                # The run's first failure, and no ErrorTrace says more.
                self._first_error(node.error_message or "", "", node.node)
            self.status = RunStatus.FAILED

    def error(self, error: ErrorTrace) -> None:
        if self.error_count == 0:
            self._first_error(error.message, error.error_type or "", error.node)
        self.error_count += 1
        self.status = RunStatus.FAILED

    def finish(self, completed: bool, ended_at: str | None) -> None:
        """The run ended (a whole trace's end, or ``run_finished``)."""
        self.completed = completed
        self.ended_at_text = ended_at
        self.ended_at = parse_time(ended_at)
        if self.status != RunStatus.FAILED:
            self.status = RunStatus.COMPLETED if completed else RunStatus.FAILED

    def totals(self, duration_ms: int | None, total_tokens: int | None) -> None:
        """The totals the run states; None keeps what the parts added up."""
        if duration_ms is not None:
            self.duration_ms = duration_ms
        if total_tokens is not None:
            self.total_tokens = total_tokens

    def search(self, execution_id: str, parts: Sequence[Any]) -> None:
        """Add what ``parts`` (arrived together) are searched by."""
        tiers = [_search_tiers(part) for part in parts]
        self.search_text = extend_search_text(
            self.search_text,
            [execution_id, *(item for tier in range(3) for t in tiers for item in t[tier])],
        )

    def as_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def write(self, run: Run) -> list[str]:
        """Set the summary on ``run``; returns the names of the fields that changed."""
        changed = []
        for name in FIELDS:
            value = getattr(self, name)
            if getattr(run, name) != value:
                setattr(run, name, value)
                changed.append(name)
        return changed

    def _first_error(self, message: str, error_type: str, node: str) -> None:
        self.first_error = message
        self.first_error_type = error_type
        self.first_error_node = node


FIELDS = tuple(f.name for f in fields(Summary))


def of_trace(trace: ExecutionTrace) -> Summary:
    """The summary of a whole trace: all of its parts folded, in order."""
    summary = Summary()
    for node in trace.nodes_executed:
        summary.node(node)
    for error in trace.errors:
        summary.error(error)
    if trace.completed or trace.ended_at is not None:
        summary.finish(trace.completed, trace.ended_at)
    summary.totals(trace.total_duration_ms, trace.total_tokens)
    assert trace.execution_id is not None
    summary.search(trace.execution_id, [trace, *trace.nodes_executed, *trace.errors])
    return summary


def _search_tiers(part: Any) -> tuple[Iterable[str | None], ...]:
    """What one part is searched by: its names, its metadata, its messages."""
    if isinstance(part, ExecutionTrace | RunStarted):
        return (part.thread_id,), _metadata_items(part.metadata), ()
    if isinstance(part, NodeExecution):
        return (part.node,), (), (part.error_message,)
    if isinstance(part, ErrorTrace):
        return (part.node, part.error_type), (), (part.message,)
    return (), (), ()
