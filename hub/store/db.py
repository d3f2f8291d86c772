"""The state store: one small interface, SQLite here, PostgreSQL in :mod:`hub.store.postgres`.

The rest of the hub sees only :class:`StateStore` (``query``, ``query_one``, ``execute``,
``executemany``, ``transaction``) and rows with index and key access (:class:`Row`, which
``sqlite3.Row`` already is). SQL is written once, in the subset both engines run the same way:
``?`` or ``:name`` placeholders (the PostgreSQL adapter rewrites them), ``INSERT ... ON
CONFLICT``, integers for booleans, no engine functions (``julianday``, ``GREATEST``...).

Why one writer at a time on both: SQLite has exactly one (``BEGIN IMMEDIATE``), and the area
stores were written for it (read-check-write inside one transaction, e.g. the alert engine's
"no policy changed during the cycle"). The PostgreSQL adapter keeps that contract with a
transaction-scoped advisory lock instead of making every caller retry serialization failures.

Why per-area migration sequences: each area (tenancy, alerts, audit...) evolves its tables on
its own, and a single global counter would make parallel work on two areas collide. Applied
versions are recorded in ``schema_migrations(area, version)``; start-up applies the missing
ones in order inside one transaction each, so a crash mid-migration leaves no half schema.
A migration is one SQL script for both engines, or a ``{"sqlite": ..., "postgresql": ...}``
pair where they differ (triggers); see :func:`migration_script`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hub.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from hub.settings import Settings

Params = Sequence[Any] | dict[str, Any]
Migration = str | Mapping[str, str]


class Row(Protocol):
    """A result row: ``row[0]``, ``row["name"]``, ``row.keys()``, ``dict(row)``."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __len__(self) -> int: ...


class IntegrityError(Exception):
    """A write broke a constraint (unique key, foreign key, check); both adapters raise this,
    chaining the engine's own error, so callers can answer 409 without knowing the engine."""


class StateStore(Protocol):
    """What the rest of the hub may use of the state store."""

    dialect: str  # "sqlite" or "postgresql"

    def query(self, sql: str, params: Params = ()) -> list[Row]: ...

    def query_one(self, sql: str, params: Params = ()) -> Row | None: ...

    def execute(self, sql: str, params: Params = ()) -> int: ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...

    def execute_alone(self, sql: str, params: Params = ()) -> int: ...

    def transaction(self) -> AbstractContextManager[Any]: ...

    def migrate(self) -> list[str]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def open_state_store(settings: Settings) -> StateStore:
    """PostgreSQL when ``database_url`` is set, else SQLite in the data directory."""
    if settings.database_url:
        from hub.store.postgres import IDLE_IN_TRANSACTION_TIMEOUT, PostgresDatabase

        # A replica frozen inside a transaction is cut off well within the leader lease.
        idle = max(1.0, min(IDLE_IN_TRANSACTION_TIMEOUT, settings.leader.lease_seconds / 3))
        return PostgresDatabase(settings.database_url, idle_in_transaction_timeout=idle)
    return Database(settings.state_db)


def _area_migrations() -> dict[str, list[tuple[int, Migration]]]:
    from hub.store import migrations

    found: dict[str, list[tuple[int, Migration]]] = {}
    for info in pkgutil.iter_modules(migrations.__path__):
        module = importlib.import_module(f"{migrations.__name__}.{info.name}")
        steps = sorted(module.MIGRATIONS, key=lambda step: step[0])
        versions = [v for v, _ in steps]
        if versions != list(range(1, len(versions) + 1)):
            raise RuntimeError(f"migrations of area {info.name} must be numbered 1..n, got {versions}")
        found[info.name] = steps
    return found


def migration_script(step: Migration, dialect: str) -> str:
    """The SQL of one migration for an engine: the shared script, or the engine's own variant."""
    if isinstance(step, str):
        return step
    try:
        return step[dialect]
    except KeyError:
        raise RuntimeError(f"a migration has no {dialect} variant (it has {sorted(step)})") from None


def run_migrations(store: StateStore, run_script: Any) -> list[str]:
    """Apply every missing migration through ``run_script(sql)``; returns 'area:version' applied.

    Each step re-checks inside its own write transaction whether it is still missing, so two
    processes starting at once (web and worker) apply it once.
    """
    with store.transaction():
        run_script(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " area TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL NOT NULL,"
            " PRIMARY KEY (area, version))"
        )
    applied = {(r["area"], r["version"]) for r in store.query("SELECT area, version FROM schema_migrations")}
    done: list[str] = []
    for area, steps in sorted(_area_migrations().items()):
        for version, step in steps:
            if (area, version) in applied:
                continue
            with store.transaction():
                if store.query_one("SELECT 1 FROM schema_migrations WHERE area = ? AND version = ?", (area, version)):
                    continue
                run_script(migration_script(step, store.dialect))
                # A wall-clock read outside the injected clock on purpose: migrations run before
                # any hub (and its clock) exists, and this records when the schema really changed.
                store.execute(
                    "INSERT INTO schema_migrations(area, version, applied_at) VALUES (?, ?, ?)",
                    (area, version, time.time()),
                )
            done.append(f"{area}:{version}")
    return done


# SQLite errors that mean the file cannot be used right now (not a bug in a statement).
_SQLITE_UNAVAILABLE = ("database is locked", "disk i/o error", "unable to open", "readonly", "disk is full")


class Database:
    """A SQLite database shared by the threads of one process.

    Each thread gets its own connection (sqlite3 connections are not thread-safe); WAL mode
    lets readers run while one writer commits; ``busy_timeout`` makes concurrent writers wait
    instead of failing.
    """

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path != ":memory:":
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
                # Named per opener: two stores opened at once (web and worker) must not unlink each other's.
                probe = parent / f".write-probe-{os.getpid()}-{threading.get_ident()}"
                probe.write_text("")
                probe.unlink()
            except OSError as exc:
                raise ConfigError("KUBEHUB_DATA_DIR", f"cannot write to {parent}: {exc.strerror}") from exc

    def describe(self) -> str:
        return f"sqlite {sqlite3.sqlite_version} at {self.path}"

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
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # LIKE matches case as on PostgreSQL (the audit filters are exact prefixes).
            conn.execute("PRAGMA case_sensitive_like=ON")
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
        self._run(conn.execute, "BEGIN IMMEDIATE", ())
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                self._run(conn.execute, "COMMIT", ())
            except BaseException:
                if conn.in_transaction:  # e.g. still locked after busy_timeout: do not leave it open
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._local.depth = 0

    def _run(self, fn: Any, sql: str, params: Any) -> Any:
        try:
            return fn(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            if any(m in str(exc).lower() for m in _SQLITE_UNAVAILABLE):
                raise BackendUnavailable("state store (SQLite)", f"{exc} ({self.path})") from exc
            raise

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        return self._run(self._connect().execute, sql, params).fetchall()

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        return self._run(self._connect().execute, sql, params).fetchone()

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the new row's id for an INSERT (tables with an integer
        ``id`` key), else the number of rows changed."""
        cur = self._run(self._connect().execute, sql, params)
        if sql.lstrip()[:6].upper() == "INSERT":
            return int(cur.lastrowid or 0)
        return int(cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._run(self._connect().executemany, sql, rows)

    def execute_alone(self, sql: str, params: Params = ()) -> int:
        """One statement committed on its own (PostgreSQL: without waiting for the writers'
        lock). SQLite has one writer per file anyway, so here it is simply ``execute``."""
        return self.execute(sql, params)

    def migrate(self) -> list[str]:
        """Apply every missing migration; returns 'area:version' of those applied."""
        conn = self._connect()

        def run_script(script: str) -> None:
            for statement in _split_sql(script):
                conn.execute(statement)

        return run_migrations(self, run_script)

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


def _switch_to_wal(conn: sqlite3.Connection, *, wait_seconds: float = 30.0) -> None:
    """``PRAGMA journal_mode=WAL``, waiting while another connection holds the lock it needs.

    Switching a file's journal mode takes an exclusive lock, and SQLite may answer "database is
    locked" at once instead of through the busy handler (three stores opening one new file at
    once met it in a test run), so it is retried here for as long as ``busy_timeout`` would wait.
    """
    deadline = time.monotonic() + wait_seconds
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
