"""Rows read and written by plain SQL, where the ORM costs more than the work.

``fetch_one`` / ``update_fields``: one model row, for the producer's hot path. Django
compiles a queryset (or a raw queryset's column mapping, or a ``save``'s UPDATE) each time
it runs. For a live event that compiling cost more CPU than storing the event:
about 1 ms per statement on this machine, three statements per request
(benchmarks/live.py). These helpers build the same rows Django would (its converters,
``from_db``, ``get_db_prep_save``) from column lists computed once per model.

``insert_rows`` / ``insert_new_rows`` / ``ids_by_key`` / ``pg_ids_by_key``: many prepared
rows at once, for ingestion (``traces/store.py``, ``traces/live.py``). Django's
``bulk_create`` builds a model instance per row (2-3k rows/s measured here, against 8-14k
for COPY); benchmarks/ingest.py holds the whole path to a COPY-only floor.

Generic over the model: ``traces/models.py`` imports this module, so it never imports
the models; callers pass them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import psycopg
from django.db import connection, connections, models
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

M = TypeVar("M", bound=models.Model)


@cache
def _columns(model: type[models.Model]) -> tuple[list[models.Field[Any, Any]], str]:
    fields = list(model._meta.concrete_fields)
    return fields, ", ".join(f'"{f.column}"' for f in fields)


def fetch_one(
    model: type[M], where: str, params: list[Any], *, using: str, for_update: bool = False
) -> M | None:
    """The first row of ``model`` matching ``where`` (SQL with %s placeholders), as a model
    instance; ``for_update`` locks it until the transaction ends where the database can
    (not SQLite, whose writers are serialised by the database lock anyway)."""
    connection = connections[using]
    fields, columns = _columns(model)
    lock = " FOR UPDATE" if for_update and connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {columns} FROM "{model._meta.db_table}" WHERE {where} LIMIT 1{lock}', params
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for i, field in enumerate(fields):
        col = field.cached_col
        for convert in (
            *connection.ops.get_db_converters(col),
            *field.get_db_converters(connection),
        ):
            values[i] = convert(values[i], col, connection)
    return model.from_db(using, [f.attname for f in fields], values)


def raw_rows(rows: models.QuerySet[Any, Any]) -> list[tuple[Any, ...]]:
    """A ``values_list`` queryset's rows as the database gives them: the ORM writes the
    query, its per-value converters are skipped (a third of the time of reading a long
    run's steps). The caller applies the ones that matter: ``fields.from_db_u64`` on u64
    columns, ``bool`` on SQLite's 0/1 booleans."""
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        fetched: list[tuple[Any, ...]] = cursor.fetchall()
    return fetched


def update_fields(instance: models.Model, names: list[str]) -> None:
    """``UPDATE`` the row of ``instance`` with the current values of the fields ``names``,
    as ``instance.save(update_fields=names)`` would (no signals: none are used here)."""
    using = instance._state.db or "default"
    connection = connections[using]
    meta = instance._meta
    fields = [meta.get_field(name) for name in dict.fromkeys(names)]
    assignments = ", ".join(f'"{f.column}" = %s' for f in fields)  # type: ignore[union-attr]
    values = [
        f.get_db_prep_save(getattr(instance, f.attname), connection)  # type: ignore[union-attr]
        for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{meta.db_table}" SET {assignments} WHERE "{meta.pk.column}" = %s',
            [*values, instance.pk],
        )


# SQLite's default limit on bound variables is 32,766; stay well below it.
CHUNK = 900


@contextmanager
def _bulk_cursor() -> Iterator[CursorWrapper]:
    """A cursor for statements with many parameters: on PostgreSQL one that binds them on
    the server (psycopg dumps them in C), not Django's client-side binding, which quotes
    each value into the SQL text in Python (a fifth of the OTLP receiver's time). Same
    connection and transaction, through Django's wrapper (errors, execute wrappers, the
    query log)."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    wrapped = wrapper(raw, connection)
    try:
        yield wrapped
    finally:
        raw.close()


# Below this many rows one multi-row INSERT beats COPY, which costs extra round trips
# (start, data, end): a live batch of a few events is mostly round trips.
_SMALL_BATCH = 64


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert prepared rows (database values, JSON already encoded as text) in bulk: COPY
    on PostgreSQL (a multi-row INSERT for a small list), ``executemany`` on SQLite."""
    table = model._meta.db_table
    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
    with _bulk_cursor() as cursor:
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
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    unique: Sequence[str],
    returning: str | tuple[str, ...],
) -> set[Any]:
    """Insert the rows that do not collide on ``unique`` (one statement, one round trip);
    returns the ``returning`` column of those inserted (for several columns, tuples of
    them). SQLite >= 3.35 and PostgreSQL both speak ON CONFLICT ... DO NOTHING RETURNING."""
    if not rows:
        return set()
    quote = connection.ops.quote_name
    cols = ", ".join(quote(c) for c in columns)
    keys = ", ".join(quote(c) for c in unique)
    one = isinstance(returning, str)
    back = quote(returning) if isinstance(returning, str) else ", ".join(map(quote, returning))
    inserted: set[Any] = set()
    with _bulk_cursor() as cursor:
        for start in range(0, len(rows), _SMALL_BATCH):
            values, params = _values(columns, rows[start : start + _SMALL_BATCH])
            cursor.execute(
                f"INSERT INTO {quote(model._meta.db_table)} ({cols}) VALUES {values}"
                f" ON CONFLICT ({keys}) DO NOTHING RETURNING {back}",
                params,
            )
            inserted.update(row[0] if one else tuple(row) for row in cursor.fetchall())
    return inserted


def _values(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return ", ".join([one] * len(rows)), [value for row in rows for value in row]


def ids_by_key(
    model: type[models.Model], scope: str, scope_id: int, key: str, values: Sequence[str]
) -> dict[str, int]:
    """key -> id of the rows of ``model`` with ``scope = scope_id`` and ``key`` in
    ``values`` (in chunks, within SQLite's limit on bound variables)."""
    found: dict[str, int] = {}
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        for pk, value in model._default_manager.filter(
            **{scope: scope_id, f"{key}__in": chunk}
        ).values_list("pk", key):
            found[value] = pk
    return found


def pg_ids_by_key(
    model: type[models.Model], scope: str, scope_id: int, key: str, values: Sequence[str]
) -> tuple[dict[str, int], list[str]]:
    """PostgreSQL: key -> id for all ``values`` of ``model`` within ``scope = scope_id``,
    and the values not stored yet, in the order given; their ids are new values of the
    table's id sequence (ascending in that order, as COPY would have assigned them), so
    the rows can be inserted with their ids and need no second look-up."""
    table = model._meta.db_table
    quote = connection.ops.quote_name
    ids: dict[str, int] = {}
    missing: list[str] = []
    # The values as one comma-separated text, split by the server: a text[] parameter is
    # quoted element by element in Python (client-side binding), which cost more than the
    # statement. Values holding a comma (or empty) go as an array.
    joined = ",".join(values)
    many = all(values) and joined.count(",") == len(values) - 1
    listed = "string_to_array(%s, ',')" if many else "%s::text[]"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value, coalesce(id, nextval((SELECT pg_get_serial_sequence(%s, 'id'))"
            "::regclass)), id IS NULL FROM ("
            f" SELECT d.value, s.id FROM unnest({listed}) WITH ORDINALITY AS d(value, n)"
            f" LEFT JOIN {quote(table)} s ON s.{quote(scope)} = %s AND s.{quote(key)} = d.value"
            " ORDER BY d.n) AS found",
            [table, joined if many else list(values), scope_id],
        )
        for value, pk, is_new in cursor.fetchall():
            ids[value] = pk
            if is_new:
                missing.append(value)
    return ids, missing
