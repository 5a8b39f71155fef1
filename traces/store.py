"""The one mapping between ``ExecutionTrace`` and the rows in ``traces/models.py``.

``save_trace`` writes a whole trace's rows; ``load_trace`` gives it back equal to what
was saved. Only the mapping lives here: the transaction, failure grouping and the
after-commit push are the ingest workflow's (``traces/ingest.py``), the summary columns'
rule is ``traces/summary.py``'s, and the bulk SQL (COPY on PostgreSQL, ``executemany`` on
SQLite) is ``traces/bulk.py``'s.

Longer than the house's ~400 lines on purpose: the two directions of one mapping (the
column lists, ``step_row`` / ``row_to_node``, ``error_row`` / ``error_to_trace``, the
trace's fields onto ``Run`` and back) stay side by side so they cannot drift apart.
"""

from __future__ import annotations

import gc
import hashlib
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from . import bulk, rollups, summary, zstd
from .fields import from_db_u64, parse_time, to_db_u64
from .models import Project, Run, RunError, RunStatus, StateSnapshot, Step, graph_name_of
from .trace import (
    U64_MAX,
    UNSET,
    ErrorTrace,
    ExecutionMetrics,
    ExecutionTrace,
    NodeExecution,
    PerformanceMetrics,
    convert,
    state_hash,
    state_value,
)

_json = msgspec.json.Encoder()

_CHUNK = bulk.CHUNK  # within SQLite's limit on bound variables


class Snapshots:
    """Collects the distinct states of one trace (or of the many runs one OTLP request
    writes) and resolves them to snapshot ids: ``resolve`` again after more ``add``s looks
    up only the states added since.

    ``add`` is the one place each state of a trace passes on its way to storage: it is
    decoded there (``trace.state_value``: a parsed trace keeps its states as undecoded
    JSON), hashed, encoded and compressed, and only the compressed bytes are kept, so a
    large trace never has all its states decoded, or encoded, at once.
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        # digest -> (JSON size, zstd of the JSON in the producer's key order)
        self._pending: dict[str, tuple[int, bytes]] = {}
        self._ids: dict[str, int] = {}
        self._by_object: dict[int, str] = {}
        # The states hashed (as given, not decoded), kept alive: an id() is only unique
        # while its object lives.
        self._objects: list[Any] = []

    def add(self, state: Any) -> str | None:
        if state is None:
            return None
        # The same object often appears twice (a step's state_after is the next step's
        # state_before after a round trip through the live API); hash it once.
        key = id(state)
        digest = self._by_object.get(key)
        if digest is None:
            value = state_value(state)
            digest = state_hash(value)
            self._by_object[key] = digest
            self._objects.append(state)
            if digest not in self._pending:
                data = _json.encode(value)
                self._pending[digest] = (len(data), StateSnapshot.compress(data))
        return digest

    def resolve(self) -> dict[str, int]:
        """Insert the snapshots the project lacks; return digest -> id for all of them."""
        digests = [d for d in self._pending if d not in self._ids]
        if not digests:
            return self._ids
        if connection.vendor == "postgresql":
            # One round trip finds the stored ids and draws ids for the rest from the
            # table's sequence, so the COPY needs no second look-up (~20 ms a trace).
            found, missing = bulk.pg_ids_by_key(
                StateSnapshot, "project_id", self.project.pk, "digest", digests
            )
            self._ids.update(found)
            self._insert(missing, with_ids=True)
        else:
            self._ids.update(
                bulk.ids_by_key(StateSnapshot, "project_id", self.project.pk, "digest", digests)
            )
            missing = [d for d in digests if d not in self._ids]
            self._insert(missing, with_ids=False)
            self._ids.update(
                bulk.ids_by_key(StateSnapshot, "project_id", self.project.pk, "digest", missing)
            )
        return self._ids

    def _insert(self, digests: list[str], with_ids: bool) -> None:
        if not digests:
            return
        columns = ["project_id", "digest", "size_bytes", "data"]
        rows: list[tuple[Any, ...]] = [(self.project.pk, d, *self._pending[d]) for d in digests]
        if with_ids:
            columns.insert(0, "id")
            rows = [(self._ids[row[1]], *row) for row in rows]
        bulk.insert_rows(StateSnapshot, columns, rows)

    def add_all(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def id_for(self, digest: str | None) -> int | None:
        return None if digest is None else self._ids[digest]


def trace_states(trace: ExecutionTrace) -> list[Any]:
    """The states ``save_trace`` stores for ``trace`` (for a caller that resolves the
    states of many runs at once before saving them)."""
    return [
        *(s for n in trace.nodes_executed for s in (n.state_before, n.state_after)),
        *(e.state_at_error for e in trace.errors),
        trace.final_state,
    ]


def trace_digest(trace: ExecutionTrace) -> str:
    """SHA-256 of the trace's compact JSON (``trace.to_json()``) with its states decoded,
    computed a step at a time: the JSON of a large trace is never built whole, and a
    trace whose states are still undecoded JSON (``parsing.parse_trace``) has the digest
    it would have decoded, whatever the spacing of its body."""
    decoded = msgspec.structs.replace
    digest = hashlib.sha256()
    for piece in trace.to_json_pieces(
        node=lambda n: decoded(
            n, state_before=state_value(n.state_before), state_after=state_value(n.state_after)
        ),
        error=lambda e: decoded(e, state_at_error=state_value(e.state_at_error)),
        final_state=state_value(trace.final_state),
    ):
        digest.update(piece)
    return digest.hexdigest()


class Saved(NamedTuple):
    run: Run
    created: bool
    changed: bool  # False: the identical trace was stored already and nothing was written
    removed: rollups.RunSteps | None = None  # the steps a replaced trace had, as counted
    # Whether the run may have had Failure rows before: it existed and was failed or had
    # errors (both ingestion paths mark a run failed on any error or failed step, and
    # only such a run ever gets Failure rows).
    had_failures: bool = True
    had_errors: bool = False  # a replaced run had error rows (deleted)


def save_trace(
    project: Project, trace: ExecutionTrace, snapshots: Snapshots | None = None
) -> Saved:
    """Write ``trace``'s rows as the whole truth about its run; call it inside a
    transaction (``traces/ingest.py``'s ``ingest_trace`` is the workflow around it).

    Idempotent on ``(project, execution_id)``: an identical trace writes nothing; a
    different one for an existing run (a live run's final trace) replaces its steps and
    errors, so no node execution is ever stored twice. A trace without ``execution_id``
    gets a new UUID, set on ``trace`` (so a retried transaction keeps it).
    """
    return save_traces(project, [trace], snapshots)[0]


def save_traces(
    project: Project, traces: list[ExecutionTrace], snapshots: Snapshots | None = None
) -> list[Saved]:
    """``save_trace`` for several runs (distinct execution ids) at once, in one statement
    per table rather than one per run: the OTLP receiver writes a request's runs so, and a
    round trip to the database was most of a run's cost. ``snapshots``: shared with
    other runs the caller writes, else the traces' own."""
    for trace in traces:
        if trace.execution_id is None:
            trace.execution_id = str(uuid.uuid4())
    ids = sorted({str(t.execution_id) for t in traces})
    if len(ids) != len(traces):
        raise ValueError("save_traces: two traces share an execution_id")
    found: dict[str, Run] = {}
    for start in range(0, len(ids), _CHUNK):
        # Locked in execution id order, so two writers of overlapping runs queue.
        for locked in (
            Run.objects.select_for_update()
            .filter(project=project, execution_id__in=ids[start : start + _CHUNK])
            .order_by("execution_id")
        ):
            locked.project = project  # the summary pushed after commit names it: no query
            found[locked.execution_id] = locked
    snapshots = snapshots or Snapshots(project)
    for trace in traces:
        snapshots.add_all(trace_states(trace))
    snapshots.resolve()

    now = timezone.now()
    saved: list[Saved] = []
    new: list[Run] = []
    replaced: list[Run] = []
    columns: list[str] = []  # the Run fields a whole trace sets (a replaced run's others stay)
    for trace in traces:
        digest = trace_digest(trace)
        run = found.get(str(trace.execution_id))
        if run is not None and run.trace_digest == digest:
            saved.append(Saved(run, created=False, changed=False))
            continue
        fields = _run_fields(trace, digest, snapshots, run, now)
        columns = list(fields)
        if run is None:
            run = Run(project=project, execution_id=str(trace.execution_id), **fields)
            new.append(run)
            saved.append(Saved(run, created=True, changed=True, had_failures=False))
            continue
        before = (run.started_at, run.graph_name)
        # Only a failed run or one with errors ever gets Failure rows: both ingestion
        # paths mark a run failed on any error or failed step.
        had_failures = run.status == RunStatus.FAILED or run.error_count > 0
        # The column counts the run's stored error rows: none, nothing to delete.
        had_errors = run.error_count > 0
        for name, value in fields.items():
            setattr(run, name, value)
        replaced.append(run)
        removed = rollups.RunSteps(*before, [])  # its steps: filled in once deleted
        saved.append(Saved(run, False, True, removed, had_failures, had_errors))
    Run.objects.bulk_create(new)
    if replaced:
        Run.objects.bulk_create(
            replaced,
            update_conflicts=True,
            unique_fields=["project", "execution_id"],
            update_fields=columns,
        )
        steps = _delete_steps([r.pk for r in replaced])
        saved = [
            one._replace(removed=one.removed._replace(steps=steps.get(one.run.pk, [])))
            if one.removed is not None
            else one
            for one in saved
        ]
        with_errors = [one.run.pk for one in saved if one.had_errors]
        if with_errors:
            RunError.objects.filter(run_id__in=with_errors).delete()

    written = [(one.run, trace) for one, trace in zip(saved, traces, strict=True) if one.changed]
    bulk.insert_rows(
        Step,
        STEP_COLUMNS,
        (
            step_row(
                run.pk,
                position,
                n,
                snapshots.id_for(snapshots.add(n.state_before)),
                snapshots.id_for(snapshots.add(n.state_after)),
            )
            for run, trace in written
            for position, n in enumerate(trace.nodes_executed)
        ),
    )
    bulk.insert_rows(
        RunError,
        ERROR_COLUMNS,
        (
            error_row(run.pk, position, e, snapshots.id_for(snapshots.add(e.state_at_error)))
            for run, trace in written
            for position, e in enumerate(trace.errors)
        ),
    )
    return saved


def _run_fields(
    trace: ExecutionTrace, digest: str, snapshots: Snapshots, run: Run | None, now: datetime
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "thread_id": trace.thread_id,
        "parent_execution_id": _opt(trace.parent_execution_id),
        "root_execution_id": _opt(trace.root_execution_id),
        "depth": _opt(trace.depth),
        "graph_name": graph_name_of(trace.metadata),
        "started_at": parse_time(trace.started_at) or (run.started_at if run else now),
        "started_at_text": trace.started_at,
        "final_state_id": snapshots.id_for(snapshots.add(trace.final_state)),
        "metadata": trace.metadata,
        "execution_metrics": _builtins(trace.execution_metrics),
        "performance_metrics": _builtins(trace.performance_metrics),
        "trace_digest": digest,
        "updated_at": now,
        **summary.of_trace(trace).as_fields(),
    }
    return fields


def _delete_steps(run_ids: list[int]) -> dict[int, list[tuple[str, int, int]]]:
    """Delete these runs' steps; returns each one's node, stored duration and tokens (for
    the rollups) by run, read by the same statement. Nothing references a step by key."""
    removed: dict[int, list[tuple[str, int, int]]] = {}
    table = connection.ops.quote_name(Step._meta.db_table)
    with connection.cursor() as cursor:
        for start in range(0, len(run_ids), _CHUNK):
            chunk = run_ids[start : start + _CHUNK]
            cursor.execute(
                f"DELETE FROM {table} WHERE run_id IN ({', '.join(['%s'] * len(chunk))})"
                " RETURNING run_id, node, duration_ms, tokens_used",
                chunk,
            )
            for run_id, node, duration, tokens in cursor.fetchall():
                removed.setdefault(run_id, []).append((node, duration, tokens))
    return removed


STEP_COLUMNS = [
    "run_id",
    "position",
    "index",
    "node",
    "started_at_text",
    "duration_ms",
    "tokens_used",
    "state_before_id",
    "state_after_id",
    "tools_called",
    "success",
    "error_message",
    "metadata",
]


def step_row(
    run_id: int, position: int, n: NodeExecution, before: int | None, after: int | None
) -> tuple[Any, ...]:
    return (
        run_id,
        position,
        to_db_u64(n.index if n.index is not UNSET else position),
        n.node,
        n.started_at,
        to_db_u64(n.duration_ms),
        to_db_u64(n.tokens_used),
        before,
        after,
        _json.encode(n.tools_called).decode(),
        n.success,
        n.error_message,
        _json.encode(n.metadata).decode(),
    )


ERROR_COLUMNS = [
    "run_id",
    "position",
    "node",
    "message",
    "error_type",
    "state_at_error_id",
    "timestamp_text",
    "execution_index",
    "recoverable",
    "retry_attempted",
    "context",
    "metadata",
]


def error_row(run_id: int, position: int, e: ErrorTrace, state: int | None) -> tuple[Any, ...]:
    return (
        run_id,
        position,
        e.node,
        e.message,
        e.error_type,
        state,
        e.timestamp,
        to_db_u64(e.execution_index),
        e.recoverable,
        e.retry_attempted,
        e.context,
        _json.encode(e.metadata).decode(),
    )


def _opt(value: Any) -> Any:
    return None if value is UNSET else value


def _builtins(value: Any) -> Any:
    return None if value is UNSET else msgspec.to_builtins(value)


def load_states(project_id: int, ids: Iterable[int | None]) -> dict[int, Any]:
    """Decode the snapshots with these ids (each once)."""
    wanted = sorted({i for i in ids if i is not None})
    states: dict[int, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        # Plain rows, not model instances: a long run has thousands of snapshots and
        # building an instance for each took longer than decoding it (benchmarks/exports.py).
        for pk, data in StateSnapshot.objects.filter(
            project_id=project_id, pk__in=wanted[start : start + _CHUNK]
        ).values_list("pk", "data"):
            states[pk] = msgspec.json.decode(zstd.decompress(bytes(data)))
    return states


def _step_states(
    run: Run, steps: list[tuple[Any, ...]], known: dict[int, Any], read: Callable[[bytes], Any]
) -> dict[int, Any]:
    """The states of a run's steps (rows of ``STEP_FIELDS``), each stored JSON text
    passed to ``read``; those in ``known`` (by snapshot id) are taken from it, not read
    again. The rest are selected by a subquery: listing a long run's thousand snapshot
    ids as parameters cost more (psycopg parses each one) than reading them."""
    wanted = {i for row in steps for i in (row[3], row[4]) if i is not None}
    states = {i: known[i] for i in wanted if i in known}
    if len(states) == len(wanted):
        return states
    # One IN over the UNION of both columns: PostgreSQL looks each id up by primary key.
    # Two INs joined by OR made it filter every snapshot of the project instead (25 ms a
    # run at 67,000 snapshots, growing with the project; 5 ms this way).
    steps_of_run = Step.objects.filter(run_id=run.pk).order_by()
    rows = StateSnapshot.objects.filter(
        project_id=run.project_id,
        pk__in=steps_of_run.values("state_before_id").union(steps_of_run.values("state_after_id")),
    )
    for pk, data in rows.values_list("pk", "data"):
        if pk not in states:
            states[pk] = read(zstd.decompress(bytes(data)))
    return states


def load_step(run: Run, index: int) -> NodeExecution | None:
    """The node execution with DashFlow ``index`` (the first, should a producer repeat
    one), with its states; None when the run has no such step."""
    if not 0 <= index <= U64_MAX:
        return None
    rows = _step_rows(run.steps.filter(index=index), first=True)
    if not rows:
        return None
    states = load_states(run.project_id, rows[0][3:5])
    return row_to_node(rows[0], states)


def error_to_trace(error: RunError, states: dict[int, Any]) -> ErrorTrace:
    return ErrorTrace(
        node=error.node,
        message=error.message,
        error_type=error.error_type,
        state_at_error=states.get(error.state_at_error_id) if error.state_at_error_id else None,
        timestamp=error.timestamp_text,
        execution_index=error.execution_index,
        recoverable=error.recoverable,
        retry_attempted=error.retry_attempted,
        context=error.context,
        metadata=error.metadata,
    )


def load_trace(
    run: Run, with_states: bool = True, *, reuse: dict[int, Any] | None = None
) -> ExecutionTrace:
    """The stored run as an ``ExecutionTrace``; ``with_states=False`` leaves every state
    ``None`` and reads no snapshot (for summaries of long runs).

    ``reuse`` (for loading many runs in turn, as an export does): states decoded for the
    run loaded before, by snapshot id. Those this run shares are neither read nor decoded
    again (runs of one graph share many: the same question, the same tool results), and
    ``reuse`` is left holding this run's states only, so it never outgrows one run. The
    trace shares those objects with the previous one; callers must not modify them.
    """
    return read_trace(run, msgspec.json.decode if with_states else None, reuse=reuse)


def read_trace(
    run: Run,
    read_state: Callable[[bytes], Any] | None,
    *,
    reuse: dict[int, Any] | None = None,
    steps: bool = True,
) -> ExecutionTrace:
    """``load_trace`` with the steps' states made by ``read_state`` from their stored
    JSON text (``None``: no state is read). ``load_trace`` decodes them; an export that
    only copies states out keeps the text (``exports._loader``). ``reuse`` as in
    ``load_trace``: it holds states made by the same ``read_state``. ``steps=False``
    leaves ``nodes_executed`` empty and reads none of their states (``step_windows``
    reads them a window at a time)."""
    # As in ExecutionTrace.from_json: decoding a long run's states allocates tens of
    # thousands of containers, and the collections they trigger cannot free any (decoded
    # JSON has no cycles): half the time of loading a 2,000-step run.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_trace(run, read_state, reuse, steps)
    finally:
        if collecting:
            gc.enable()


def _read_trace(
    run: Run,
    read_state: Callable[[bytes], Any] | None,
    reuse: dict[int, Any] | None,
    with_steps: bool = True,
) -> ExecutionTrace:
    steps = _step_rows(run.steps.all()) if with_steps else []
    errors = list(run.errors.all())
    states: dict[int, Any] = {}
    if read_state is not None:
        known = reuse or {}
        states = _step_states(run, steps, known, read_state)
        others = [
            i
            for i in (run.final_state_id, *(e.state_at_error_id for e in errors))
            if i is not None and i not in states
        ]
        states.update({i: known[i] for i in others if i in known})
        states.update(load_states(run.project_id, [i for i in others if i not in known]))
        if reuse is not None:
            reuse.clear()
            reuse.update(states)
    return ExecutionTrace(
        thread_id=run.thread_id,
        execution_id=run.execution_id,
        parent_execution_id=_unset(run.parent_execution_id),
        root_execution_id=_unset(run.root_execution_id),
        depth=_unset(run.depth),
        nodes_executed=[row_to_node(s, states) for s in steps],
        total_duration_ms=run.duration_ms,
        total_tokens=run.total_tokens,
        errors=[error_to_trace(e, states) for e in errors],
        completed=run.completed,
        started_at=run.started_at_text,
        ended_at=run.ended_at_text,
        final_state=states.get(run.final_state_id) if run.final_state_id else None,
        metadata=run.metadata,
        execution_metrics=(
            UNSET
            if run.execution_metrics is None
            else convert(run.execution_metrics, ExecutionMetrics)
        ),
        performance_metrics=(
            UNSET
            if run.performance_metrics is None
            else convert(run.performance_metrics, PerformanceMetrics)
        ),
    )


# The JSON columns come as text and go through msgspec: Django's JSONField decodes
# with json.loads, a quarter of the time of loading a long run.
STEP_FIELDS: tuple[Any, ...] = (
    "node",
    "duration_ms",
    "tokens_used",
    "state_before_id",
    "state_after_id",
    Cast("tools_called", TextField()),
    "success",
    "error_message",
    "index",
    "started_at_text",
    Cast("metadata", TextField()),
)


def _step_rows(steps: QuerySet[Step], first: bool = False) -> list[tuple[Any, ...]]:
    """Steps as rows of ``STEP_FIELDS``, in run order, as the database gives them:
    the ORM writes the query but its per-value converters are skipped (a third of the
    time of reading a long run's steps); ``row_to_node`` applies the two that matter,
    unwrapping the u64 columns and SQLite's 0/1 booleans."""
    ordered = steps.order_by("position").values_list(*STEP_FIELDS)
    return bulk.raw_rows(ordered[:1] if first else ordered)


def row_to_node(row: tuple[Any, ...], states: dict[int, Any]) -> NodeExecution:
    """A row of ``_step_rows`` as the canonical type: the one mapping of a step's columns."""
    node, duration, tokens, before, after, tools, success, error, index, started, meta = row
    return NodeExecution(
        node=node,
        duration_ms=from_db_u64(duration),
        tokens_used=from_db_u64(tokens),
        state_before=states.get(before) if before else None,
        state_after=states.get(after) if after else None,
        tools_called=msgspec.json.decode(tools),
        success=bool(success),
        error_message=error,
        index=from_db_u64(index),
        started_at=started,
        metadata=msgspec.json.decode(meta),
    )


def _unset(value: Any) -> Any:
    return UNSET if value is None else value
