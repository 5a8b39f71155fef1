"""Column types and value rules shared by the models: u64 counters, timestamps."""

from datetime import UTC, datetime
from typing import Any, overload

from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

_SIGNED_LIMIT = 2**63
_WRAP = 2**64


def to_db_u64(value: int | None) -> int | None:
    """u64 -> signed 64-bit, two's complement (values below 2**63 are unchanged)."""
    if value is None:
        return None
    if not 0 <= value < _WRAP:
        raise ValueError(f"{value} is not an unsigned 64-bit integer")
    return value - _WRAP if value >= _SIGNED_LIMIT else value


@overload
def from_db_u64(value: int) -> int: ...
@overload
def from_db_u64(value: None) -> None: ...
def from_db_u64(value: int | None) -> int | None:
    """The inverse of ``to_db_u64``."""
    if value is None:
        return None
    return value + _WRAP if value < 0 else value


class U64Field(models.BigIntegerField):  # type: ignore[type-arg]
    """An unsigned 64-bit integer in a signed BIGINT column.

    DashFlow's durations and token counts are u64. No SQL database we support has an
    unsigned 64-bit type, and a NUMERIC column loses exactness in SQLite, so values at or
    above 2**63 are stored wrapped (two's complement) and unwrapped on read: every value
    round-trips exactly. The price: ordering and range filters are wrong only for values
    above 2**63 (292 million years in milliseconds), which real traces never reach.
    """

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return to_db_u64(value)

    def from_db_value(self, value: int | None, expression: Any, connection: Any) -> int | None:
        return from_db_u64(value)


def parse_time(text: str | None) -> datetime | None:
    """A producer's ISO 8601 timestamp as an aware datetime for the DateTimeField columns
    (UTC when it has no offset); None when it is missing or unreadable."""
    if not text:
        return None
    try:
        value = parse_datetime(text)
    except ValueError:
        return None
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def iso(value: datetime | None) -> str | None:
    """A stored datetime as the JSON the API, pages and websockets show (None stays null)."""
    return value.isoformat() if value is not None else None
