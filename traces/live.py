"""Live runs: a producer streams events while the run executes.

``apply_events`` stores the events of a batch it has not seen (by ``seq``) and applies them
to the run's rows (steps, errors, and the summary columns by ``traces/summary.py``'s
rule); ``traces/ingest.py``'s ``ingest_events`` is the workflow around it (transaction,
failure grouping, publishing after commit). ``replay`` gives back stored events after a
seq, for a websocket that (re)connects. The database is the source of truth; the channel
layer may lose messages.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from django.db import models
from django.utils import timezone

from . import bulk, zstd
from .fields import parse_time
from .models import Project, Run, RunError, RunEvent, RunStatus, Step, graph_name_of
from .parsing import ParsedEvent
from .store import ERROR_COLUMNS, STEP_COLUMNS, Snapshots, error_row, load_states, step_row
from .summary import Summary
from .trace import (
    EVENT_STATE_FIELDS,
    UNSET,
    ErrorTrace,
    NodeExecution,
    RunFinished,
    RunStarted,
)

# The fields of each event's data that hold a state (stored as snapshots).

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
    applied, changed = _drive([_store(run, before, events, Snapshots(project), now)])[0]
    if changed:
        bulk.update_fields(run, changed)
    return applied


def apply_many(
    project: Project, batches: list[tuple[str, list[ParsedEvent]]], snapshots: Snapshots
) -> list[Applied]:
    """``apply_events`` for the batches of several runs (distinct execution ids), their
    run rows locked, created and updated in one statement each rather than one a run (the
    OTLP receiver's live runs). ``snapshots``: shared with other runs the caller writes."""
    now = timezone.now()
    ids = sorted({execution_id for execution_id, _ in batches})
    if len(ids) != len(batches):
        raise ValueError("apply_many: two batches share an execution_id")
    runs: dict[str, Run] = {}
    for start in range(0, len(ids), bulk.CHUNK):
        # Locked in execution id order, so two writers of overlapping runs queue.
        for run in (
            Run.objects.select_for_update()
            .filter(project=project, execution_id__in=ids[start : start + bulk.CHUNK])
            .order_by("execution_id")
        ):
            run.project = project
            runs[run.execution_id] = run
    before = {i: (run.started_at, run.graph_name) for i, run in runs.items()}
    new = [
        Run(
            project=project,
            execution_id=i,
            status=RunStatus.RUNNING,
            started_at=now,
            last_event_at=now,
        )
        for i in ids
        if i not in runs
    ]
    Run.objects.bulk_create(new)
    runs.update((run.execution_id, run) for run in new)
    stored = _drive(
        [_store(runs[i], before.get(i), events, snapshots, now) for i, events in batches]
    )
    applied: list[Applied] = []
    touched: list[Run] = []
    fields: set[str] = set()
    for one, changed in stored:
        applied.append(one)
        if changed:
            touched.append(one.run)
            fields.update(changed)
    if touched:
        # Every field any run changed, for all of them: the rows are locked and each
        # instance holds its row's current values, so a field one run did not change is
        # written back as it was.
        Run.objects.bulk_create(
            touched,
            update_conflicts=True,
            unique_fields=["project", "execution_id"],
            update_fields=sorted(fields),
        )
    return applied


# Storing one run's batch is a generator (``_store``) that yields the rows it inserts,
# table by table, and is sent back the keys of the rows that were new (the events' seqs,
# the steps' positions); ``_drive`` runs several in step, one statement per table for
# all of them.
Insert = tuple[str, list[tuple[Any, ...]]]  # a table ("events", "steps", "errors"), rows
Stored = tuple[Applied, list[str]]  # what was applied, the Run fields to write back
Stages = Generator[Insert, set[Any], Stored]

_TABLES: dict[str, tuple[type[models.Model], Sequence[str], tuple[str, str] | None]] = {
    "events": (RunEvent, EVENT_COLUMNS, ("run_id", "seq")),
    "steps": (Step, STEP_COLUMNS, ("run_id", "position")),
    "errors": (RunError, ERROR_COLUMNS, None),
}


def _drive(stages: list[Stages]) -> list[Stored]:
    """Run the generators of several runs' batches (of distinct runs) to their ends: the
    rows they yield for one table go in one statement, and each is sent the keys of its
    own rows inserted."""
    results: dict[int, Stored] = {}
    waiting: dict[int, Insert] = {}
    for number, stage in enumerate(stages):
        waiting[number] = next(stage)
    while waiting:
        table = next(iter(waiting.values()))[0]
        these = [n for n, (t, _) in waiting.items() if t == table]
        rows = [row for n in these for row in waiting[n][1]]
        model, columns, unique = _TABLES[table]
        new: dict[int, set[Any]] = {}
        if unique is None:
            bulk.insert_rows(model, columns, rows)
        else:
            # (run_id, key) of each row inserted; column 0 of every row is its run's id.
            for run_id, key in bulk.insert_new_rows(
                model, columns, rows, unique=unique, returning=unique
            ):
                new.setdefault(run_id, set()).add(key)
        for n in these:
            request_rows = waiting.pop(n)[1]
            run_id = request_rows[0][0] if request_rows else None
            try:
                waiting[n] = stages[n].send(new.get(run_id, set()) if run_id else set())
            except StopIteration as done:
                results[n] = done.value
    return [results[n] for n in range(len(stages))]


def _store(
    run: Run,
    before: tuple[datetime, str] | None,
    events: list[ParsedEvent],
    snapshots: Snapshots,
    now: datetime,
) -> Stages:
    """Store and apply to ``run`` (locked) the events it has not stored (as ``_drive``
    runs it); returns what was applied and the Run fields to write back (the caller
    writes them)."""
    unique: dict[int, ParsedEvent] = {}
    for event in events:
        unique.setdefault(event.seq, event)  # a seq repeated inside one batch counts once
    candidates = [unique[seq] for seq in sorted(unique)]

    digests = [
        {name: snapshots.add(getattr(e.data, name)) for name in EVENT_STATE_FIELDS.get(e.type, ())}
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
    inserted = yield "events", event_rows
    kept = [i for i, e in enumerate(candidates) if e.seq in inserted]
    fresh = [candidates[i] for i in kept]
    if not fresh:
        return Applied(run, [], before, []), []
    digests = [digests[i] for i in kept]

    changed, steps = yield from _apply(run, fresh, digests, snapshots)
    run.last_seq = max(run.last_seq, fresh[-1].seq)
    # The row is locked (select_for_update), so the count read with it is current.
    run.event_count += len(fresh)
    run.last_event_at = now
    run.updated_at = now
    # A live batch clears the digest, so a complete trace posted later (store.save_trace)
    # is never taken for one already stored: it replaces everything.
    run.trace_digest = ""
    changed += ["last_seq", "event_count", "last_event_at", "updated_at", "trace_digest"]
    return Applied(run, fresh, before, steps), changed


def _apply(
    run: Run,
    events: list[ParsedEvent],
    digests: list[dict[str, str | None]],
    snapshots: Snapshots,
) -> Generator[Insert, set[Any], tuple[list[str], list[tuple[str, int, int]]]]:
    """Apply events to the run's rows (as part of ``_store``); returns the Run fields it
    changed and the node and stored duration and tokens of each step it inserted."""
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
    new_steps = yield "steps", rows
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
        yield "errors", errors
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
                # A state that only the events of a run since replaced by a whole trace
                # named is not seen as in use by the retention purge, which may have
                # deleted it: the event is replayed without it (the run's steps hold the
                # trace that replaced them).
                data[name] = states.get(snapshot_id)
            yield {"seq": row.seq, "type": row.type, "data": data}
        after = rows[-1].seq
        sent += len(rows)
