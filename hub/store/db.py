"""SQLite state store with versioned, per-area migrations.

Why per-area migration sequences: each area (tenancy, alerts, audit...) evolves its tables on
its own, and a single global counter would make parallel work on two areas collide. Applied
versions are recorded in ``schema_migrations(area, version)``; start-up applies the missing
ones in order inside one transaction each, so a crash mid-migration leaves no half schema.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from hub.errors import ConfigError

Params = Sequence[Any] | dict[str, Any]


class StateStore(Protocol):
    """What the rest of the hub may use of the state store."""

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]: ...

    def query_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None: ...

    def execute(self, sql: str, params: Params = ()) -> int: ...

    def transaction(self) -> Any: ...


def _area_migrations() -> dict[str, list[tuple[int, str]]]:
    from hub.store import migrations

    found: dict[str, list[tuple[int, str]]] = {}
    for info in pkgutil.iter_modules(migrations.__path__):
        module = importlib.import_module(f"{migrations.__name__}.{info.name}")
        steps = sorted(module.MIGRATIONS)
        versions = [v for v, _ in steps]
        if versions != list(range(1, len(versions) + 1)):
            raise RuntimeError(f"migrations of area {info.name} must be numbered 1..n, got {versions}")
        found[info.name] = steps
    return found


class Database:
    """A SQLite database shared by the threads of one process.

    Each thread gets its own connection (sqlite3 connections are not thread-safe); WAL mode
    lets readers run while one writer commits; ``busy_timeout`` makes concurrent writers wait
    instead of failing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path != ":memory:":
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
                probe = parent / ".write-probe"
                probe.write_text("")
                probe.unlink()
            except OSError as exc:
                raise ConfigError("KUBEHUB_DATA_DIR", f"cannot write to {parent}: {exc.strerror}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            target = self.path
            uri = False
            if self.path == ":memory:":
                # Threads must see one in-memory database, so name it and share the cache.
                target, uri = f"file:kubehub-mem-{id(self)}?mode=memory&cache=shared", True
            conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False, uri=uri)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; nested calls join the outer transaction."""
        conn = self._connect()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return self._connect().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return self._connect().execute(sql, params).fetchone()

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns lastrowid for INSERTs, else the row count."""
        cur = self._connect().execute(sql, params)
        if sql.lstrip()[:6].upper() == "INSERT":
            return int(cur.lastrowid or 0)
        return cur.rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._connect().executemany(sql, rows)

    def migrate(self) -> list[str]:
        """Apply every missing migration; returns 'area:version' of those applied."""
        conn = self._connect()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " area TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL NOT NULL,"
            " PRIMARY KEY (area, version))"
        )
        applied = {(r["area"], r["version"]) for r in conn.execute("SELECT area, version FROM schema_migrations")}
        done: list[str] = []
        for area, steps in sorted(_area_migrations().items()):
            for version, sql in steps:
                if (area, version) in applied:
                    continue
                with self.transaction() as tx:
                    for statement in _split_sql(sql):
                        tx.execute(statement)
                    tx.execute(
                        "INSERT INTO schema_migrations(area, version, applied_at) VALUES (?, ?, ?)",
                        (area, version, time.time()),
                    )
                done.append(f"{area}:{version}")
        return done

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()


def _split_sql(script: str) -> list[str]:
    """Split a migration script on ';' at statement ends (sqlite3 has no multi-statement execute in a tx)."""
    statements, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        if sqlite3.complete_statement("\n".join(buf)):
            stmt = "\n".join(buf).strip()
            if stmt.strip(";").strip():
                statements.append(stmt)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        statements.append(rest)
    return statements
