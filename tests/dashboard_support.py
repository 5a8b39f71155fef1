"""Runs for the dashboard tests, built as a producer sends them (through ``ingest_trace``)
with the times, durations, tokens and states a test needs to know its answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.trace import ErrorTrace, ExecutionTrace, NodeExecution

# (node, duration_ms, tokens_used, state_before, state_after)
StepSpec = tuple[str, int, int, Any, Any]


def add_run(
    project: Project,
    execution_id: str,
    started_at: datetime,
    steps: list[StepSpec],
    graph_name: str = "agent",
    failed: bool = False,
) -> Run:
    nodes = [
        NodeExecution(node=n, duration_ms=d, tokens_used=t, state_before=b, state_after=a)
        for n, d, t, b, a in steps
    ]
    trace = ExecutionTrace(
        execution_id=execution_id,
        nodes_executed=nodes,
        total_duration_ms=sum(d for _, d, *_ in steps),
        total_tokens=sum(t for _, _, t, *_ in steps),
        completed=not failed,
        started_at=started_at.isoformat(),
        errors=[ErrorTrace(node=steps[-1][0], message="boom")] if failed else [],
        metadata={"graph_name": graph_name},
    )
    return ingest_trace(project, trace)[0]


def timed_steps(node: str, durations: list[int], tokens: int = 0) -> list[StepSpec]:
    """``node`` run once per duration, each visit changing the state."""
    return [(node, d, tokens, {"i": i}, {"i": i + 1}) for i, d in enumerate(durations)]
