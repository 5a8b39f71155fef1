"""The one mapping between ``ExecutionTrace`` and the rows in ``traces/models.py``.

``save_trace`` writes a whole trace in one transaction; ``load_trace`` gives it back equal
to what was saved. Steps and snapshots go in with COPY on PostgreSQL and ``executemany``
on SQLite: Django's ``bulk_create`` builds a model instance per row (2-3k rows/s measured
here, against 8-14k for COPY). benchmarks/ingest.py holds the whole path to a COPY-only
floor.
"""

from __future__ import annotations

import gc
import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
from django.db import IntegrityError, connection, transaction
from django.db.models import Model, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from . import events, failures, zstd
from .fields import from_db_u64, parse_time, to_db_u64
from .filters import search_text
from .models import Project, Run, RunError, RunStatus, StateSnapshot, Step, graph_name_of
from .trace import (
    UNSET,
    ErrorTrace,
    ExecutionMetrics,
    ExecutionTrace,
    NodeExecution,
    PerformanceMetrics,
    convert,
    state_hash,
)

_json = msgspec.json.Encoder()

# SQLite's default limit on bound variables is 32,766; stay well below it.
_CHUNK = 900


def run_status(trace: ExecutionTrace) -> str:
    """``failed`` when anything failed or the run ended incomplete; ``completed``; else
    ``running`` (a partial trace of a run still going)."""
    if trace.errors or any(not n.success for n in trace.nodes_executed):
        return RunStatus.FAILED
    if trace.completed:
        return RunStatus.COMPLETED
    if trace.ended_at is not None:
        return RunStatus.FAILED
    return RunStatus.RUNNING


def _first_error(trace: ExecutionTrace) -> tuple[str, str, str]:
    if trace.errors:
        e = trace.errors[0]
        return e.message, e.error_type or "", e.node
    for n in trace.nodes_executed:
        if not n.success:
            return n.error_message or "", "", n.node
    return "", "", ""


class Snapshots:
    """Collects the distinct states of one trace and resolves them to snapshot ids."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._pending: dict[str, bytes] = {}  # digest -> JSON in the producer's key order
        self._ids: dict[str, int] = {}
        self._by_object: dict[int, str] = {}

    def add(self, value: Any) -> str | None:
        if value is None:
            return None
        # The same object often appears twice (a step's state_after is the next step's
        # state_before after a round trip through the live API); hash it once.
        key = id(value)
        digest = self._by_object.get(key)
        if digest is None:
            digest = state_hash(value)
            self._by_object[key] = digest
            if digest not in self._pending:
                self._pending[digest] = _json.encode(value)
        return digest

    def resolve(self) -> dict[str, int]:
        """Insert the snapshots the project lacks; return digest -> id for all of them."""
        digests = list(self._pending)
        if connection.vendor == "postgresql":
            # One round trip finds the stored ids and draws ids for the rest from the
            # table's sequence, so the COPY needs no second look-up (~20 ms a trace).
            self._ids, missing = _pg_snapshot_ids(self.project.pk, digests)
            self._insert(missing, with_ids=True)
        else:
            self._ids = _snapshot_ids(self.project.pk, digests)
            missing = [d for d in digests if d not in self._ids]
            self._insert(missing, with_ids=False)
            self._ids.update(_snapshot_ids(self.project.pk, missing))
        return self._ids

    def _insert(self, digests: list[str], with_ids: bool) -> None:
        if not digests:
            return
        columns = ["project_id", "digest", "size_bytes", "data"]
        rows: list[tuple[Any, ...]] = [
            (self.project.pk, d, len(self._pending[d]), StateSnapshot.compress(self._pending[d]))
            for d in digests
        ]
        if with_ids:
            columns.insert(0, "id")
            rows = [(self._ids[row[1]], *row) for row in rows]
        insert_rows(StateSnapshot, columns, rows)

    def id_for(self, digest: str | None) -> int | None:
        return None if digest is None else self._ids[digest]


def _snapshot_ids(project_id: int, digests: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(digests), _CHUNK):
        chunk = digests[start : start + _CHUNK]
        for pk, digest in StateSnapshot.objects.filter(
            project_id=project_id, digest__in=chunk
        ).values_list("pk", "digest"):
            found[digest] = pk
    return found


def _pg_snapshot_ids(project_id: int, digests: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """digest -> id for all ``digests``, and those not stored yet, in the order given; their
    ids are new values of the table's id sequence (ascending in that order, as COPY would
    have assigned them)."""
    table = connection.ops.quote_name(StateSnapshot._meta.db_table)
    ids: dict[str, int] = {}
    missing: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT digest, coalesce(id, nextval((SELECT pg_get_serial_sequence(%s, 'id'))"
            "::regclass)), id IS NULL FROM ("
            " SELECT d.digest, s.id FROM unnest(%s::text[]) WITH ORDINALITY AS d(digest, n)"
            f" LEFT JOIN {table} s ON s.project_id = %s AND s.digest = d.digest"
            " ORDER BY d.n) AS found",
            [StateSnapshot._meta.db_table, list(digests), project_id],
        )
        for digest, pk, is_new in cursor.fetchall():
            ids[digest] = pk
            if is_new:
                missing.append(digest)
    return ids, missing


# A write that lost a race (a run or a shared state snapshot stored by a concurrent
# request) starts over and then finds those rows; each pass can only lose to a writer that
# committed meanwhile, so a few passes see it through even when many runs share states.
WRITE_ATTEMPTS = 4

# Below this many rows one multi-row INSERT beats COPY, which costs extra round trips
# (start, data, end): a live batch of a few events is mostly round trips.
_SMALL_BATCH = 64


def insert_rows(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert prepared rows (database values, JSON already encoded as text) in bulk."""
    table = model._meta.db_table
    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if isinstance(rows, list) and len(rows) <= _SMALL_BATCH:
                if rows:
                    values, params = _values(columns, rows)
                    cursor.execute(f"INSERT INTO {table} ({cols}) VALUES {values}", params)
                return
            raw = cursor.cursor  # the psycopg cursor under Django's wrapper
            with raw.copy(f"COPY {connection.ops.quote_name(table)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rows))


def insert_new_rows(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    unique: Sequence[str],
    returning: str,
) -> set[Any]:
    """Insert the rows that do not collide on ``unique`` (one statement, one round trip);
    returns the ``returning`` column of those inserted. SQLite >= 3.35 and PostgreSQL
    both speak ON CONFLICT ... DO NOTHING RETURNING."""
    if not rows:
        return set()
    quote = connection.ops.quote_name
    cols = ", ".join(quote(c) for c in columns)
    keys = ", ".join(quote(c) for c in unique)
    inserted: set[Any] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _SMALL_BATCH):
            values, params = _values(columns, rows[start : start + _SMALL_BATCH])
            cursor.execute(
                f"INSERT INTO {quote(model._meta.db_table)} ({cols}) VALUES {values}"
                f" ON CONFLICT ({keys}) DO NOTHING RETURNING {quote(returning)}",
                params,
            )
            inserted.update(row[0] for row in cursor.fetchall())
    return inserted


def _values(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return ", ".join([one] * len(rows)), [value for row in rows for value in row]


def trace_digest(trace: ExecutionTrace) -> str:
    return hashlib.sha256(trace.to_json()).hexdigest()


def save_trace(project: Project, trace: ExecutionTrace) -> tuple[Run, bool]:
    """Store ``trace`` as the whole truth about its run; returns ``(run, created)``.

    Idempotent on ``(project, execution_id)``: an identical trace writes nothing; a
    different one for an existing run (a live run's final trace) replaces its steps and
    errors, so no node execution is ever stored twice. A trace without ``execution_id``
    gets a new UUID, set on ``trace``.
    """
    if trace.execution_id is None:
        trace.execution_id = str(uuid.uuid4())
    digest = trace_digest(trace)
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return _save_locked(project, trace, digest)
        except IntegrityError:
            # Another request stored the same run (or a shared snapshot) between our read
            # and our insert; the second pass finds its rows and takes the update path.
            if attempt == WRITE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _save_locked(project: Project, trace: ExecutionTrace, digest: str) -> tuple[Run, bool]:
    run = (
        Run.objects.select_for_update()
        .filter(project=project, execution_id=trace.execution_id)
        .first()
    )
    if run is not None and run.trace_digest == digest:
        return run, False
    created = run is None
    snapshots = Snapshots(project)
    step_digests = [
        (snapshots.add(n.state_before), snapshots.add(n.state_after)) for n in trace.nodes_executed
    ]
    error_digests = [snapshots.add(e.state_at_error) for e in trace.errors]
    final_digest = snapshots.add(trace.final_state)
    snapshots.resolve()

    now = timezone.now()
    first_error, first_error_type, first_error_node = _first_error(trace)
    fields: dict[str, Any] = {
        "thread_id": trace.thread_id,
        "parent_execution_id": _opt(trace.parent_execution_id),
        "root_execution_id": _opt(trace.root_execution_id),
        "depth": _opt(trace.depth),
        "graph_name": graph_name_of(trace.metadata),
        "status": run_status(trace),
        "completed": trace.completed,
        "started_at": parse_time(trace.started_at) or (run.started_at if run else now),
        "started_at_text": trace.started_at,
        "ended_at": parse_time(trace.ended_at),
        "ended_at_text": trace.ended_at,
        "duration_ms": trace.total_duration_ms,
        "total_tokens": trace.total_tokens,
        "node_count": len(trace.nodes_executed),
        "error_count": len(trace.errors),
        "first_error": first_error,
        "first_error_type": first_error_type,
        "first_error_node": first_error_node,
        "final_state_id": snapshots.id_for(final_digest),
        "metadata": trace.metadata,
        "execution_metrics": _builtins(trace.execution_metrics),
        "performance_metrics": _builtins(trace.performance_metrics),
        "trace_digest": digest,
        "updated_at": now,
        "search_text": search_text(trace),
    }
    if run is None:
        assert trace.execution_id is not None
        run = Run.objects.create(project=project, execution_id=trace.execution_id, **fields)
    else:
        for name, value in fields.items():
            setattr(run, name, value)
        run.save(update_fields=list(fields))
        run.steps.all().delete()
        run.errors.all().delete()

    insert_rows(
        Step,
        STEP_COLUMNS,
        (
            step_row(run.pk, position, n, snapshots.id_for(b), snapshots.id_for(a))
            for position, (n, (b, a)) in enumerate(
                zip(trace.nodes_executed, step_digests, strict=True)
            )
        ),
    )
    insert_rows(
        RunError,
        ERROR_COLUMNS,
        (
            error_row(run.pk, position, e, snapshots.id_for(d))
            for position, (e, d) in enumerate(zip(trace.errors, error_digests, strict=True))
        ),
    )
    failures.record_run(run)
    events.run_changed(run)
    return run, created


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
    """The states of a run's steps (rows of ``_STEP_FIELDS``), each stored JSON text
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


def step_to_node(step: Step, states: dict[int, Any]) -> NodeExecution:
    return NodeExecution(
        node=step.node,
        duration_ms=step.duration_ms,
        tokens_used=step.tokens_used,
        state_before=states.get(step.state_before_id) if step.state_before_id else None,
        state_after=states.get(step.state_after_id) if step.state_after_id else None,
        tools_called=step.tools_called,
        success=step.success,
        error_message=step.error_message,
        index=step.index,
        started_at=step.started_at_text,
        metadata=step.metadata,
    )


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
) -> ExecutionTrace:
    """``load_trace`` with the steps' states made by ``read_state`` from their stored
    JSON text (``None``: no state is read). ``load_trace`` decodes them; an export that
    only copies states out keeps the text (``exports.load_for_copy``). ``reuse`` as in
    ``load_trace``: it holds states made by the same ``read_state``."""
    # As in ExecutionTrace.from_json: decoding a long run's states allocates tens of
    # thousands of containers, and the collections they trigger cannot free any (decoded
    # JSON has no cycles): half the time of loading a 2,000-step run.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_trace(run, read_state, reuse)
    finally:
        if collecting:
            gc.enable()


def _read_trace(
    run: Run, read_state: Callable[[bytes], Any] | None, reuse: dict[int, Any] | None
) -> ExecutionTrace:
    steps = _step_rows(run)
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
        nodes_executed=[_row_to_node(s, states) for s in steps],
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
_STEP_FIELDS: tuple[Any, ...] = (
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


def _step_rows(run: Run) -> list[tuple[Any, ...]]:
    """A run's steps as rows of ``_STEP_FIELDS``, in order, as the database gives them:
    the ORM writes the query but its per-value converters are skipped (a third of the
    time of reading a long run's steps); ``_row_to_node`` applies the two that matter,
    unwrapping the u64 columns and SQLite's 0/1 booleans."""
    query = run.steps.order_by("position").values_list(*_STEP_FIELDS).query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def _row_to_node(row: tuple[Any, ...], states: dict[int, Any]) -> NodeExecution:
    """``step_to_node`` for a row of ``_step_rows``."""
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
