"""The shared state store suite (tests/unit/store_suite.py) on both backends: SQLite in a temp
directory and a real PostgreSQL server (a database of its own per test), plus what only the
PostgreSQL adapter has to get right: a connection the server dropped while it sat idle is
replaced without the caller noticing (reads, and writes not yet sent), a connection lost in
the middle of a transaction is a 503 naming the state store with nothing of it kept, and the
next request works again. tests/integration/test_replicas_shared_state.py stops and restarts
a whole (private) server under running hubs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from hub.errors import BackendUnavailable
from hub.settings import Settings
from hub.store.postgres import PostgresDatabase
from tests.integration import pg_support
from tests.integration.pg_support import terminate_connections, throwaway_database

pytest.register_assert_rewrite("tests.unit.store_suite")
from tests.unit.store_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.integration

# The fixtures shared with the other two-engine suite (tests/integration/pg_support.py).
pg_server = pg_support.pg_server
open_store = pg_support.open_store


def test_a_lost_connection_is_replaced_or_unavailable_then_recovers(pg_server: str) -> None:
    with throwaway_database(pg_server) as url:
        db = PostgresDatabase(url)
        db.migrate()
        db.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
        # Dropped while idle (a server restart): the next read, write and transaction each run
        # once on a new connection; nothing was sent on the dead one, so nothing runs twice.
        assert terminate_connections(pg_server, url) >= 1
        assert db.query_one("SELECT value FROM meta WHERE key = 'k'")["value"] == "v"  # type: ignore[index]
        assert terminate_connections(pg_server, url) >= 1
        db.execute("INSERT INTO meta(key, value) VALUES ('w', 'once')")
        assert terminate_connections(pg_server, url) >= 1
        with db.transaction():
            db.execute("UPDATE meta SET value = value || '+tx' WHERE key = 'w'")
        assert db.query_one("SELECT value FROM meta WHERE key = 'w'")["value"] == "once+tx"  # type: ignore[index]
        # Lost again before the retry could work (the server is really gone): a 503.
        assert terminate_connections(pg_server, url) >= 1
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" WITH ALLOW_CONNECTIONS false')
            try:
                with pytest.raises(BackendUnavailable) as err:
                    db.query_one("SELECT value FROM meta WHERE key = 'k'")
            finally:
                admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" WITH ALLOW_CONNECTIONS true')
        assert err.value.backend == "state store (PostgreSQL)"
        assert err.value.__cause__ is not None  # the driver's error stays chained
        assert db.query_one("SELECT value FROM meta WHERE key = 'k'")["value"] == "v"  # type: ignore[index]
        # Lost in the middle of a transaction: nothing of it lands, and the store goes on.
        with pytest.raises(BackendUnavailable), db.transaction():
            db.execute("INSERT INTO meta(key, value) VALUES ('k2', 'v')")
            terminate_connections(pg_server, url)
            db.execute("INSERT INTO meta(key, value) VALUES ('k3', 'v')")
        assert db.query("SELECT key FROM meta WHERE key IN ('k2', 'k3')") == []
        db.close()


def test_an_unreachable_server_is_unavailable_naming_the_store() -> None:
    db = PostgresDatabase("postgresql://kubehub@127.0.0.1:1/nothing")
    with pytest.raises(BackendUnavailable) as err:
        db.query_one("SELECT 1")
    assert "state store (PostgreSQL)" in str(err.value) and "127.0.0.1:1" in str(err.value)


def test_the_hub_on_postgresql_answers_503_when_the_connection_is_lost(pg_server: str, tmp_path: Path) -> None:
    """The whole hub on PostgreSQL: a user signs in, /readyz names the server, a dropped idle
    connection goes unnoticed, one that cannot be replaced is a 503 naming the state store
    (not a 500), and the next request works."""
    from web import create_app

    with throwaway_database(pg_server) as url:
        settings = Settings(data_dir=tmp_path / "data", database_url=url).replace(
            kubernetes={"kubeconfig": "none"}, logs={"ship": False}
        )
        app = create_app(settings, testing=True)
        hub = app.extensions["kubehub"]
        try:
            hub.tenancy.create_user("root", "a long enough password 1", platform_role=_admin_role(), actor="test")
            assert not (tmp_path / "data" / "state.sqlite3").exists()  # nothing went to SQLite
            client = app.test_client()
            login = client.post("/api/v1/auth/login", json={"username": "root", "password": "a long enough password 1"})
            assert login.status_code == 200, login.get_json()
            headers: dict[str, str] = {}  # the session cookie stays in the client
            ready = client.get("/readyz", headers=headers).get_json()
            state = next(b for b in ready["backends"] if b["name"] == "state")
            assert state["state"] == "ok" and state["detail"].startswith("postgresql ")
            assert client.get("/api/v1/users", headers=headers).status_code == 200
            terminate_connections(pg_server, url)
            assert client.get("/api/v1/users", headers=headers).status_code == 200
            name = url.rsplit("/", 1)[1]
            with psycopg.connect(pg_server, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                try:
                    terminate_connections(pg_server, url)
                    lost = client.get("/api/v1/users", headers=headers)
                finally:
                    admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            assert lost.status_code == 503, lost.get_json()
            assert "state store (PostgreSQL)" in lost.get_json()["error"]
            again = client.get("/api/v1/users", headers=headers)
            assert again.status_code == 200 and "root" in {u["name"] for u in again.get_json()["items"]}
        finally:
            hub.close()


def _admin_role() -> Any:
    from hub.tenancy.roles import PlatformRole

    return PlatformRole.ADMIN


def test_text_with_nul_is_a_400_on_postgresql_not_a_500(pg_server: str) -> None:
    """SQLite keeps NUL in text, PostgreSQL refuses it: the adapter answers the caller's mistake
    (the web layer refuses NUL in every parameter first, naming it; this is the backstop)."""
    from hub.errors import InvalidInput

    with throwaway_database(pg_server) as url:
        db = PostgresDatabase(url)
        db.migrate()
        with pytest.raises(InvalidInput):
            db.query("SELECT value FROM meta WHERE key = ?", ("a\x00b",))
        with pytest.raises(InvalidInput), db.transaction():
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", ("k", "a\x00b"))
        assert db.query("SELECT key FROM meta") == []  # the store goes on, nothing half-written
        db.close()
