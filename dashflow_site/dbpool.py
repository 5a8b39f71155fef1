"""How the PostgreSQL pool checks a connection before handing it out (``settings.py``).

Django hands its pool ``psycopg_pool.ConnectionPool.check_connection`` when
``CONN_HEALTH_CHECKS`` is on, and takes no other check (it passes ``check=`` itself), so
``install`` wraps that one function: a connection found dead empties the pool at once.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

_check = ConnectionPool.check_connection


def check_connection(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's check (an empty query); when it finds a dead connection, the pool's
    other idle connections are replaced too (``drain``).

    A PostgreSQL restart kills every pooled connection, and the pool's own loop tries the
    next one after a pause that doubles (0, 1, 2, 4 s): a request met a few dead ones in a
    row and ran out of ``DATABASE_POOL_TIMEOUT`` (503) though the database was back.
    Drained, the request waits for one fresh connection instead.
    """
    try:
        _check(conn)
    except psycopg.Error:
        pool = getattr(conn, "_pool", None)  # the pool handing ``conn`` out
        if isinstance(pool, ConnectionPool):
            pool.drain()
        raise


def install() -> None:
    """Make ``check_connection`` the check Django gives its pool (before it is created)."""
    ConnectionPool.check_connection = staticmethod(check_connection)  # type: ignore[method-assign]
