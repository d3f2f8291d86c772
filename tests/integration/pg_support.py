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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from hub.store import Database, StateStore
from hub.store.postgres import PostgresDatabase


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


# Fixtures of the suites that run on both engines (import them into the test module): a
# PostgreSQL server once per module, and ``open_store`` parametrised over SQLite and PostgreSQL.
@pytest.fixture(scope="module")
def pg_server() -> str:
    return server_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    opened: list[Any] = []
    if request.param == "sqlite":

        def open_sqlite() -> StateStore:
            db = Database(tmp_path / "state.sqlite3")
            opened.append(db)
            return db

        yield open_sqlite
    else:
        with throwaway_database(request.getfixturevalue("pg_server")) as url:

            def open_pg() -> StateStore:
                db = PostgresDatabase(url)
                opened.append(db)
                return db

            yield open_pg
            for db in opened:
                db.close()
            return
    for db in opened:
        db.close()
