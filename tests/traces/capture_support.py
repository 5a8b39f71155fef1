"""Searching the stored bytes for a secret: every row of every table (compressed columns
decompressed), and the files an export wrote."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import zstandard
from django.db import connection

from traces import zstd


def _texts(value: Any) -> list[bytes]:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        found = [value]
        with contextlib.suppress(zstandard.ZstdError):
            found.append(zstd.decompress(value))
        return found
    if isinstance(value, str):
        return [value.encode()]
    return []


def tables_holding(needle: str) -> list[str]:
    """The tables (``table.column``) any of whose stored values contains ``needle``."""
    wanted = needle.encode()
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")
            columns = [c[0] for c in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if any(wanted in text for text in _texts(value)):
                        found.append(f"{table}.{column}")
    return sorted(set(found))


def files_holding(directory: Path, needle: str) -> list[str]:
    wanted = needle.encode()
    return sorted(
        str(p)
        for p in directory.rglob("*")
        if p.is_file() and any(wanted in t for t in _texts(p.read_bytes()))
    )
