"""Fixtures shared by every test layer.

Area-specific fixtures live beside their tests; the sandbox (real engines) fixture lives in
tests/integration/conftest.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from hub.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# The state store of the whole run: unset, every test's state is SQLite in its own data dir;
# set (``make test-postgres``), each test gets a fresh schema of that PostgreSQL database.
SUITE_DATABASE_URL = os.environ.get("KUBEHUB_DATABASE_URL", "")
_admin: dict[str, Any] = {}


def _suite_admin() -> Any:
    import psycopg

    conn = _admin.get("conn")
    if conn is None or conn.closed:
        conn = _admin["conn"] = psycopg.connect(SUITE_DATABASE_URL, autocommit=True, connect_timeout=10)
        conn.execute("SET lock_timeout = '10s'")
    return conn


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (a connection option in the URL's query)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


@pytest.fixture(autouse=True)
def database_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This test's state store URL: '' (SQLite) unless the run sets ``KUBEHUB_DATABASE_URL``.

    Then the test gets a schema of its own in that database, named in the URL it sees and in
    its environment (so ``load_settings()``, the CLI and a ``kubehub serve`` it starts with this
    environment use it too): tests never see each other's users or alerts, as with their own
    SQLite files. Creating a schema costs about a millisecond; the migrations run when the test
    opens the store, as on SQLite.
    """
    if not SUITE_DATABASE_URL:
        yield ""
        return
    url = _new_schema_url()
    monkeypatch.setenv("KUBEHUB_DATABASE_URL", url)
    yield url
    try:
        _suite_admin().execute(f'DROP SCHEMA "{url.rsplit("%3D", 1)[-1]}" CASCADE')
    except Exception:  # a test left a connection holding a lock: the run's database goes at the end anyway
        pass


def world_database_url() -> str:
    """The state store URL for a hub a test builds itself: '' without ``KUBEHUB_DATABASE_URL``;
    inside a test, that test's schema (as its own data directory would be shared with the CLI
    it runs); outside one (a module's world, built before any test's fixture), a new schema."""
    if not SUITE_DATABASE_URL:
        return ""
    current = os.environ.get("KUBEHUB_DATABASE_URL", "")
    if current and current != SUITE_DATABASE_URL:
        return current
    return _new_schema_url()


def _new_schema_url() -> str:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    _suite_admin().execute(f'CREATE SCHEMA "{schema}"')
    return with_search_path(SUITE_DATABASE_URL, schema)


def open_test_store(path: str | Path) -> Any:
    """The state store a test opens itself: SQLite at ``path``, or this test's PostgreSQL schema
    when the run sets ``KUBEHUB_DATABASE_URL`` (the same path means the same store on both)."""
    url = os.environ.get("KUBEHUB_DATABASE_URL", "") if SUITE_DATABASE_URL else ""
    if url:
        from hub.store.postgres import PostgresDatabase

        return PostgresDatabase(url)
    from hub.store import Database

    return Database(path)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Embedded defaults in a fresh data dir: no cluster, no Prometheus, no SMTP (state on
    this test's PostgreSQL schema when the run asks for PostgreSQL)."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url).replace(
        kubernetes={"kubeconfig": "none"}, logs={"ship": False}
    )


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from web import create_app

    application = create_app(settings, testing=True)
    yield application
    application.extensions["kubehub"].close()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture(scope="session")
def private_two_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The run's private two-cluster sandbox (tests/integration/private_clusters.py), started the
    first time a test asks for it and stopped at the end of the run: the multi-cluster modules of
    every layer share it instead of starting a pair each."""
    from tests.integration.private_clusters import two_clusters

    with two_clusters(tmp_path_factory.mktemp("private-two-clusters")) as sb:
        _private_pair["sb"] = sb
        try:
            yield sb
        finally:
            _private_pair.clear()


_private_pair: dict[str, Any] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the private pair right after the last test of the run that uses it (its module's
    fixtures torn down first), not at the end of the run: on a 2-core CI machine its dozen idle
    processes would otherwise slow every test collected after it (pytest runs e2e first)."""
    yield
    sb = _private_pair.get("sb")
    if sb is None or "private_two_clusters" not in getattr(item, "fixturenames", ()):
        return
    items = item.session.items
    later = items[items.index(item) + 1 :] if item in items else []
    if not any("private_two_clusters" in getattr(i, "fixturenames", ()) for i in later):
        sb.down()
        _private_pair.clear()


# The tenancy world (two workspaces, four projects, a user and token per role) for any area's
# scoping and escape tests; see docs/tenancy.md "Testing helpers".
from tests.unit.conftest_tenancy import tenancy_world  # noqa: E402, F401
