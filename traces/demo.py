"""Realistic generated traces for the demo, the simulator and benchmarks.

A research agent: ``planner`` → (``retriever`` → ``reader`` → ``critic``) N times → ``writer``,
with tools, token counts, a state that grows step by step, and, when asked, a failure
of the kind real runs have (a tool timeout, a rate limit, a bad model output). Each run's
metadata declares the agent's graph (``RESEARCH_SCHEMA``, ``traces/graph_schema.py``).
"""

from __future__ import annotations

import copy
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .trace import ErrorTrace, ExecutionTrace, NodeExecution

QUESTIONS = [
    "How do Rust lifetimes interact with async functions?",
    "Summarise the 2025 Kafka release notes",
    "Compare PostgreSQL logical replication with Debezium",
    "What changed in Python 3.13's free-threaded build?",
    "Explain vector clocks with an example",
    "Which HTTP/3 features matter for mobile clients?",
    "How does Raft handle a leader with a stale log?",
    "Draft a migration plan from Celery to Dramatiq",
]

FAILURES = [
    (
        "retriever",
        "Timeout",
        "Timeout: GET https://example.org/doc/{n} exceeded {s}s",
        ["web_search", "fetch_url"],
    ),
    ("reader", "RateLimit", "RateLimit: 429 from model gpt-4o-mini, retry after {s}s", []),
    ("writer", "ValidationError", "ValidationError: answer missing field 'citations' at {n}", []),
]


# The research agent's declared graph, as DashFlow's graph schema (the run page draws it):
# the critic loops back for more sources, hands a doubtful draft to a human, or lets the
# writer finish. No generated run asks for ``human_review``: the page shows it unvisited.
RESEARCH_SCHEMA: dict[str, Any] = {
    "entry_point": "planner",
    "nodes": [
        {"name": "planner"},
        {"name": "retriever"},
        {"name": "reader"},
        {"name": "critic"},
        {"name": "human_review"},
        {"name": "writer"},
    ],
    "edges": [
        {"from": "planner", "to": "retriever"},
        {"from": "retriever", "to": "reader"},
        {"from": "reader", "to": "critic"},
        {"from": "critic", "to": {"more": "retriever", "doubt": "human_review", "done": "writer"}},
        {"from": "human_review", "to": "writer"},
        {"from": "writer", "to": "__end__"},
    ],
}


def iso(moment: datetime) -> str:
    """DashFlow's timestamp form: RFC 3339 with milliseconds and a numeric offset."""
    return moment.isoformat(timespec="milliseconds")


def research_run(
    rng: random.Random,
    *,
    started: datetime,
    loops: int = 2,
    fail: bool = False,
    thread_id: str | None = None,
    graph_name: str = "research-agent",
    slower: dict[str, int] | None = None,
) -> ExecutionTrace:
    """One run of the research agent; with ``fail`` it stops at an error; ``slower`` adds
    milliseconds to each step of the nodes it names."""
    question = rng.choice(QUESTIONS)
    state: dict[str, Any] = {
        "question": question,
        "plan": [],
        "documents": [],
        "notes": [],
        "messages": [{"role": "user", "content": question}],
        "iteration": 0,
        "answer": None,
    }
    failure = rng.choice(FAILURES) if fail else None
    fail_at_loop = rng.randrange(loops) if failure and failure[0] != "writer" else None
    nodes: list[NodeExecution] = []
    errors: list[ErrorTrace] = []
    clock = started
    order = ["planner"]
    for _ in range(loops):
        order += ["retriever", "reader", "critic"]
    order.append("writer")

    loop = -1
    for name in order:
        if name == "retriever":
            loop += 1
        before = copy.deepcopy(state)
        duration = {"planner": 350, "retriever": 420, "reader": 850, "critic": 300, "writer": 1200}[
            name
        ] + rng.randrange(-80, 400)
        duration += (slower or {}).get(name, 0)
        tokens = {"planner": 410, "retriever": 0, "reader": 1200, "critic": 380, "writer": 1600}[
            name
        ] + rng.randrange(0, 300)
        tools: list[str] = []
        if name == "planner":
            state["plan"] = ["search background", "read top sources", "draft answer"]
            state["messages"].append({"role": "assistant", "content": "Plan: 3 steps."})
        elif name == "retriever":
            tools = ["web_search", "fetch_url"]
            n = len(state["documents"]) + 1
            state["documents"].append(
                {"url": f"https://example.org/doc/{n}", "score": round(rng.uniform(0.5, 0.95), 3)}
            )
        elif name == "reader":
            state["notes"].append(f"note {len(state['notes']) + 1} on {question[:24]}")
        elif name == "critic":
            state["iteration"] += 1
            state["messages"].append(
                {"role": "assistant", "content": f"critique #{state['iteration']}"}
            )
        elif name == "writer":
            state["answer"] = f"Answer to '{question}' citing {len(state['documents'])} sources."
            state["messages"].append({"role": "assistant", "content": state["answer"]})

        failing = (
            failure is not None
            and name == failure[0]
            and (name == "writer" or loop == fail_at_loop)
        )
        if failing:
            assert failure is not None
            node_name, error_type, template, tools = failure
            message = template.format(n=rng.randrange(1, 99), s=rng.choice([30, 31, 45, 60]))
            state = before  # the failing node wrote nothing
            nodes.append(
                NodeExecution(
                    node=name,
                    duration_ms=duration,
                    tokens_used=0,
                    state_before=before,
                    state_after=None,
                    tools_called=tools,
                    success=False,
                    error_message=message,
                    index=len(nodes),
                    started_at=iso(clock),
                )
            )
            errors.append(
                ErrorTrace(
                    node=name,
                    message=message,
                    error_type=error_type,
                    state_at_error=before,
                    timestamp=iso(clock + timedelta(milliseconds=duration)),
                    execution_index=len(nodes) - 1,
                    recoverable=False,
                    retry_attempted=error_type != "ValidationError",
                    context=f"at tools::{node_name}::call\nat graph::run_node",
                )
            )
            clock += timedelta(milliseconds=duration)
            break
        nodes.append(
            NodeExecution(
                node=name,
                duration_ms=duration,
                tokens_used=tokens,
                state_before=before,
                state_after=copy.deepcopy(state),
                tools_called=tools,
                success=True,
                index=len(nodes),
                started_at=iso(clock),
                metadata={"model": "gpt-4o-mini"} if tokens else {},
            )
        )
        clock += timedelta(milliseconds=duration + rng.randrange(1, 12))

    return ExecutionTrace(
        thread_id=thread_id,
        execution_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        nodes_executed=nodes,
        total_duration_ms=int((clock - started).total_seconds() * 1000),
        total_tokens=sum(n.tokens_used for n in nodes),
        errors=errors,
        completed=not errors,
        started_at=iso(started),
        ended_at=iso(clock),
        final_state=state,
        metadata={
            "graph_name": graph_name,
            "app_version": "1.4.2",
            "environment": "demo",
            "graph_schema": RESEARCH_SCHEMA,
        },
    )


# The demo's story for the dashboard: the retriever got slower this week (a new search
# backend), so "slower than the period before" and a node_p95 alert have something to find.
SLOWER_THIS_WEEK = {"retriever": 700}


def demo_runs(count: int, seed: int = 7, now: datetime | None = None) -> list[ExecutionTrace]:
    """``count`` runs over the last two weeks (most in the last three days), about one in
    five failing; the retriever is slower in the last seven days (``SLOWER_THIS_WEEK``)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    runs = []
    for i in range(count):
        days = 3 if i % 3 else 14
        started = now - timedelta(minutes=rng.randrange(5, days * 24 * 60))
        this_week = now - started < timedelta(days=7)
        runs.append(
            research_run(
                rng,
                started=started,
                loops=rng.randint(1, 4),
                fail=rng.random() < 0.22,
                thread_id=f"session-{rng.randrange(100, 130)}",
                graph_name=rng.choice(["research-agent", "research-agent", "support-triage"]),
                slower=SLOWER_THIS_WEEK if this_week else None,
            )
        )
        del i
    return runs
