"""A PostgreSQL database of its own for a test module, on a real server.

The server is the sandbox's ``postgresql`` component (started on demand, even when the
sandbox's hub runs on SQLite); ``KUBEHUB_TEST_POSTGRES_URL`` (a URL of the server's
``postgres`` database, as a superuser) names another one instead. Each ``throwaway_database``
is created empty under a random name and dropped afterwards, connections and all, so tests
never see each other's state or the sandbox hub's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


def server_url() -> str:
    """The admin URL of the test server (its ``postgres`` database)."""
    url = os.environ.get("KUBEHUB_TEST_POSTGRES_URL")
    if url:
        return url
    from sandbox.core import Sandbox

    return Sandbox(os.environ.get("KUBEHUB_SANDBOX_DIR") or None).ensure_postgresql()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def throwaway_database(admin_url: str | None = None) -> Iterator[str]:
    """Yields the URL of a new, empty database; drops it afterwards."""
    admin = admin_url or server_url()
    name = f"kh_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate_connections(admin_url: str, database_url: str) -> int:
    """End every server process serving ``database_url``'s database (a lost connection, as a
    server restart or a network cut would cause), from outside the hub; returns how many."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)
