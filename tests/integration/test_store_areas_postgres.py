"""The alert pipeline and the tenancy service, their unit suites run again on a real PostgreSQL.

``tests/unit/test_alerts_pipeline.py`` (cycle, notices, outbox, delivery counts) and
``tests/unit/test_tenancy_service.py`` (users, sessions, tokens, login throttling, projects and
the generation-keyed project cache) run on SQLite as unit tests; here the very same tests get
a state store on the sandbox's PostgreSQL instead (a database of their own per test), so the
areas' SQL is exercised end to end on both engines without a second copy of the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.unit.test_alerts_pipeline as pipeline
from hub.store.postgres import PostgresDatabase
from tests.integration.pg_support import server_url, throwaway_database
from tests.unit.test_alerts_pipeline import *  # noqa: F403  (the pipeline's tests run here)
from tests.unit.test_tenancy_service import *  # noqa: F403  (and the tenancy service's)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_server() -> str:
    return server_url()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with throwaway_database(pg_server) as url:
        yield url


@pytest.fixture(autouse=True)
def pipeline_on_postgresql(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The pipeline's World opens ``open_test_store(path)``: the same path is the same database."""
    opened: list[PostgresDatabase] = []

    def open_store(path: Any) -> PostgresDatabase:
        db = PostgresDatabase(pg_url)
        opened.append(db)
        return db

    monkeypatch.setattr(pipeline, "open_test_store", open_store)
    yield
    for db in opened:
        db.close()


@pytest.fixture
def db(pg_url: str, tmp_path: Path) -> Iterator[PostgresDatabase]:  # replaces the tenancy suite's SQLite one
    database = PostgresDatabase(pg_url)
    database.migrate()
    yield database
    database.close()
