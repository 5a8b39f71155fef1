"""The benchmarks' own PostgreSQL databases: each benchmark drops and recreates one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
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


def django_on_fresh_database(url: str, root: Path) -> None:
    """Recreate ``url``'s database, set Django up on it (production settings, no Redis:
    tasks and pushes stay in process) and migrate it."""
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashflow_site.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
    sys.path.insert(0, str(root))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
