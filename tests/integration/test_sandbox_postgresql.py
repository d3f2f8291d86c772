"""The sandbox's PostgreSQL component on a private instance (never the shared sandbox's server).

A temporary sandbox directory on a free port base starts only this component
(``ensure_postgresql``): initdb, the server as the unprivileged sandbox user, the version in
``status`` (checked against the installed binary's own ``--version``), the hub's database, and
``down`` stopping it while a client still holds a connection, with nothing left behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sandbox import prereqs
from sandbox.core import PG_HUB_DATABASE, Sandbox
from sandbox.procs import group_members, port_in_use
from tests.integration.test_sandbox_lifecycle import free_port_base, processes_mentioning

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("pg-sandbox"), port_base=free_port_base(), quiet=True)
    yield sb
    sb.reset()
    assert processes_mentioning(str(sb.pg_dir)) == []
    assert not sb.pg_dir.exists()


def test_postgresql_starts_alone_with_its_version_and_the_hubs_database(private: Sandbox) -> None:
    url = private.ensure_postgresql()
    assert url == private.postgres_url and f":{private.port('postgresql')}/" in url
    alive = [n for n in private.sup.names() if private.sup.alive(n)]
    assert alive == ["postgresql"]  # nothing else was started
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        user = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
        databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert PG_HUB_DATABASE in databases and user == "kubehub"
    assert version.split()[0] == prereqs.postgres_version()  # the binary's own --version
    comp = next(c for c in private.status()["components"] if c["name"] == "postgresql")
    assert comp["state"] == "up" and comp["version"] == prereqs.postgres_version() and comp["rss_mb"] > 0
    pid = private.sup.pid("postgresql")
    assert pid is not None
    owner = Path(f"/proc/{pid}").stat().st_uid
    assert owner != 0 or os.geteuid() != 0  # never root
    assert (private.pg_dir / "data" / "PG_VERSION").exists()
    assert private.ensure_postgresql() == url and private.sup.pid("postgresql") == pid  # reused


def test_the_hub_spec_points_at_it_only_when_asked(private: Sandbox) -> None:
    assert "KUBEHUB_DATABASE_URL" not in (private._spec_hub().env or {})
    sqlite_stamp = private._spec_hub().stamp
    private.config.database = "postgresql"
    try:
        spec = private._spec_hub()
        assert (spec.env or {})["KUBEHUB_DATABASE_URL"] == private.hub_database_url
        assert spec.stamp != sqlite_stamp  # switching restarts a running hub
        assert private.status()["hub_database"] == private.hub_database_url
    finally:
        private.config.database = "sqlite"


def test_down_stops_it_even_with_a_client_connected(private: Sandbox) -> None:
    url = private.ensure_postgresql()
    pid = private.sup.pid("postgresql")
    assert pid is not None
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SELECT 1")
    stopped = private.down()
    conn.close()
    assert "postgresql" in stopped
    assert group_members(pid) == []
    assert not port_in_use(private.port("postgresql"))
    assert processes_mentioning(str(private.pg_dir)) == []
    # And up again on the same data: the cluster is reused, not initialised anew.
    marker = (private.pg_dir / "data" / "PG_VERSION").stat().st_mtime
    private.ensure_postgresql()
    assert (private.pg_dir / "data" / "PG_VERSION").stat().st_mtime == marker
