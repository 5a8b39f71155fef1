"""One model row read or written by plain SQL, for the producer's hot path.

Django compiles a queryset (or a raw queryset's column mapping, or a ``save``'s UPDATE)
each time it runs. For a live event that compiling cost more CPU than storing the event:
about 1 ms per statement on this machine, three statements per request
(benchmarks/live.py). These helpers build the same rows Django would (its converters,
``from_db``, ``get_db_prep_save``) from column lists computed once per model.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from django.db import connections, models

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
