"""Live runs: a producer streams events while the run executes.

``apply_events`` stores the events of a batch it has not seen (by ``seq``) and applies them
to the run's rows (steps, errors, and the summary columns by ``traces/summary.py``'s
rule); ``traces/ingest.py``'s ``ingest_events`` is the workflow around it (transaction,
failure grouping, publishing after commit). ``replay`` gives back stored events after a
seq, for a websocket that (re)connects. The database is the source of truth; the channel
layer may lose messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from django.utils import timezone

from . import bulk, zstd
from .fields import parse_time
from .models import EventType, Project, Run, RunError, RunEvent, RunStatus, Step, graph_name_of
from .parsing import ParsedEvent
from .store import ERROR_COLUMNS, STEP_COLUMNS, Snapshots, error_row, load_states, step_row
from .summary import Summary
from .trace import (
    UNSET,
    ErrorTrace,
    NodeExecution,
    RunFinished,
    RunStarted,
)

# The fields of each event's data that hold a state (stored as snapshots).
STATE_FIELDS: dict[str, tuple[str, ...]] = {
    EventType.RUN_STARTED: ("initial_state",),
    EventType.NODE_FINISHED: ("state_before", "state_after"),
    EventType.ERROR: ("state_at_error",),
    EventType.RUN_FINISHED: ("final_state",),
}

EVENT_COLUMNS = ("run_id", "seq", "type", "data", "states", "received_at")

_json = msgspec.json.Encoder()


class Applied(NamedTuple):
    run: Run  # its row locked until the transaction ends
    events: list[ParsedEvent]  # the new ones
    before: tuple[datetime, str] | None  # the run's start and graph before (None: new run)
    steps: list[tuple[str, int, int]]  # node, stored duration, tokens of each step inserted


def apply_events(project: Project, execution_id: str, events: list[ParsedEvent]) -> Applied:
    """Store and apply the events not stored yet; returns the run (its row locked until the
    transaction ends), the new events and what the dashboard's rollups need to know
    (``Applied``). Call it inside a transaction.

    A repeated seq is a no-op, so a retried batch is harmless. Events are applied in seq
    order within the batch; a later batch may fill gaps left by an earlier one.
    """
    now = timezone.now()
    run = Run.objects.lock(project, execution_id)
    before = None if run is None else (run.started_at, run.graph_name)
    if run is None:
        run = Run.objects.create(
            project=project,
            execution_id=execution_id,
            status=RunStatus.RUNNING,
            started_at=now,
            last_event_at=now,
        )
    unique: dict[int, ParsedEvent] = {}
    for event in events:
        unique.setdefault(event.seq, event)  # a seq repeated inside one batch counts once
    candidates = [unique[seq] for seq in sorted(unique)]

    snapshots = Snapshots(project)
    digests = [
        {name: snapshots.add(getattr(e.data, name)) for name in STATE_FIELDS.get(e.type, ())}
        for e in candidates
    ]
    snapshots.resolve()
    event_rows: list[tuple[Any, ...]] = []
    for event, fields in zip(candidates, digests, strict=True):
        states = {name: snapshots.id_for(d) for name, d in fields.items() if d is not None}
        stripped = msgspec.structs.replace(event.data, **dict.fromkeys(fields))
        event_rows.append(
            (
                run.pk,
                event.seq,
                event.type,
                zstd.compress(_json.encode(stripped)),
                _json.encode(states).decode(),
                now,
            )
        )
    # The unique (run, seq) constraint decides what is new: a stored seq is skipped in the
    # same statement that inserts the rest, with no look-up first.
    inserted = bulk.insert_new_rows(
        RunEvent, EVENT_COLUMNS, event_rows, unique=("run_id", "seq"), returning="seq"
    )
    kept = [i for i, e in enumerate(candidates) if e.seq in inserted]
    fresh = [candidates[i] for i in kept]
    if not fresh:
        return Applied(run, [], before, [])
    digests = [digests[i] for i in kept]

    changed, steps = _apply(run, fresh, digests, snapshots)
    run.last_seq = max(run.last_seq, fresh[-1].seq)
    # The row is locked (select_for_update), so the count read with it is current.
    run.event_count += len(fresh)
    run.last_event_at = now
    run.updated_at = now
    # A live batch clears the digest, so a complete trace posted later (store.save_trace)
    # is never taken for one already stored: it replaces everything.
    run.trace_digest = ""
    bulk.update_fields(
        run, [*changed, "last_seq", "event_count", "last_event_at", "updated_at", "trace_digest"]
    )
    return Applied(run, fresh, before, steps)


def _apply(
    run: Run,
    events: list[ParsedEvent],
    digests: list[dict[str, str | None]],
    snapshots: Snapshots,
) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Apply events to the run's rows; returns the Run fields it changed and the node and
    stored duration and tokens of each step it inserted."""
    changed: list[str] = []
    summary = Summary.of_run(run)
    # Steps first: the unique (run, position) constraint says which are new (the same step
    # again under another seq keeps the first), and only those count in the summary.
    positions: dict[int, int] = {}  # event number -> position
    rows: list[tuple[Any, ...]] = []
    next_position = run.node_count
    for number, (event, fields) in enumerate(zip(events, digests, strict=True)):
        data = event.data
        if isinstance(data, NodeExecution):
            if data.index is UNSET:  # without an index a node takes the next position
                position = next_position
                next_position += 1
            else:
                position = int(data.index)
            positions[number] = position
            before, after = fields.get("state_before"), fields.get("state_after")
            rows.append(
                step_row(run.pk, position, data, snapshots.id_for(before), snapshots.id_for(after))
            )
    new_steps = bulk.insert_new_rows(
        Step, STEP_COLUMNS, rows, unique=("run_id", "position"), returning="position"
    )
    inserted: dict[int, tuple[str, int, int]] = {}  # position -> node, duration, tokens
    for row in rows:
        if row[1] in new_steps:
            inserted.setdefault(row[1], (row[3], row[5], row[6]))  # the first row wins
    error_position = run.error_count
    errors: list[tuple[Any, ...]] = []
    applied: list[Any] = []  # the parts the summary takes, in order
    for number, (event, fields) in enumerate(zip(events, digests, strict=True)):
        data = event.data
        if isinstance(data, RunStarted):
            run.thread_id = data.thread_id
            run.parent_execution_id = data.parent_execution_id
            run.root_execution_id = data.root_execution_id
            run.depth = data.depth
            run.started_at_text = data.started_at
            run.started_at = parse_time(data.started_at) or run.started_at
            run.metadata = data.metadata
            run.graph_name = graph_name_of(data.metadata)
            changed += _STARTED_FIELDS
            applied.append(data)
        elif isinstance(data, NodeExecution):
            if positions[number] not in new_steps:
                continue
            new_steps.discard(positions[number])  # a position twice in one batch counts once
            summary.node(data)
            applied.append(data)
        elif isinstance(data, ErrorTrace):
            errors.append(
                error_row(
                    run.pk, error_position, data, snapshots.id_for(fields.get("state_at_error"))
                )
            )
            error_position += 1
            summary.error(data)
            applied.append(data)
        elif isinstance(data, RunFinished):
            run.final_state_id = snapshots.id_for(fields.get("final_state"))
            changed.append("final_state")
            summary.finish(data.completed, data.ended_at)
            summary.totals(data.total_duration_ms, data.total_tokens)
    if errors:
        bulk.insert_rows(RunError, ERROR_COLUMNS, errors)
    # The run list's free-text search: what these events add.
    summary.search(run.execution_id, applied)
    return changed + summary.write(run), list(inserted.values())


_STARTED_FIELDS = [
    "thread_id",
    "parent_execution_id",
    "root_execution_id",
    "depth",
    "started_at_text",
    "started_at",
    "metadata",
    "graph_name",
]


def replay(run: Run, after: int, limit: int) -> Iterator[dict[str, Any]]:
    """Stored events with ``seq > after`` in seq order, as sent, at most ``limit``."""
    batch = 200
    sent = 0
    while sent < limit:
        rows = list(
            RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[
                : min(batch, limit - sent)
            ]
        )
        if not rows:
            return
        ids = [i for row in rows for i in row.states.values()]
        states = load_states(run.project_id, ids)
        for row in rows:
            data = msgspec.json.decode(zstd.decompress(bytes(row.data)))
            for name, snapshot_id in row.states.items():
                data[name] = states[snapshot_id]
            yield {"seq": row.seq, "type": row.type, "data": data}
        after = rows[-1].seq
        sent += len(rows)
