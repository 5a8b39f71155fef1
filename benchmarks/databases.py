"""The benchmarks' own PostgreSQL databases: each benchmark drops and recreates one."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def recreate_database(url: str) -> None:
    """Drop the database ``url`` names (whoever is connected) and create it empty."""
    name = urlsplit(url).path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"{url!r}: a benchmark's database name must be [A-Za-z0-9_]")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
