"""The lease suite (tests/unit/lease_suite.py) on SQLite and on a real PostgreSQL server (a
database of its own per test): election, renewal, fencing and concurrent asks must behave the
same on both engines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.store import Database, StateStore
from hub.store.postgres import PostgresDatabase
from tests.integration.pg_support import server_url, throwaway_database

pytest.register_assert_rewrite("tests.unit.lease_suite")
from tests.unit.lease_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.integration


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
