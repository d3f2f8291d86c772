"""The state store on PostgreSQL (``KUBEHUB_DATABASE_URL``), behind the same interface as SQLite.

The only module that imports psycopg. It keeps the contract the area stores were written for
(:mod:`hub.store.db`):

- **SQL as written for SQLite.** ``?`` and ``:name`` placeholders become ``%s`` and
  ``%(name)s`` (outside string literals, quoted names and comments; a literal ``%`` is
  doubled); migrations' column types are mapped (``REAL`` to ``DOUBLE PRECISION`` — PostgreSQL's
  ``REAL`` is 4 bytes and would round epoch seconds to minutes —, ``INTEGER`` to ``BIGINT``,
  ``INTEGER PRIMARY KEY AUTOINCREMENT`` to an identity column); Python booleans are sent as
  0/1 because the schema keeps booleans in integer columns on both engines.
- **Rows** index and key access like ``sqlite3.Row``, and ``execute`` of an INSERT answers
  the new row's ``id`` (``RETURNING id`` is added for the tables that have an identity ``id``).
- **One writer at a time.** Every write transaction (and every write outside one) first takes
  a transaction-scoped advisory lock, the equivalent of SQLite's ``BEGIN IMMEDIATE``: the
  read-check-write transactions of the area stores stay correct under READ COMMITTED, also
  across processes. Reads never wait for it.
- **Errors** are translated here, with the original chained: constraint violations become
  :class:`hub.store.db.IntegrityError`; a server that is down, restarting or unreachable
  becomes :class:`hub.errors.BackendUnavailable` naming "state store (PostgreSQL)" (a 503),
  and the thread's broken connection is dropped so the next call connects again.

Each thread has its own connection (like the SQLite adapter); connections of threads that
have ended are closed when the next thread connects.

Over 400 lines because it is the one place that knows PostgreSQL: splitting the placeholder
rewriting or the batch writer into modules of their own would spread psycopg over several.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from hub.errors import BackendUnavailable, ConfigError, InvalidInput
from hub.store.db import IntegrityError, Params, Row, run_migrations

BACKEND = "state store (PostgreSQL)"
# Key of the advisory lock every writer holds until its transaction ends ("kubehub" in ASCII).
WRITE_LOCK_KEY = 0x6B75626568756200 >> 8
LOCK_TIMEOUT = "30s"  # SQLite's busy_timeout of the other adapter
# A process stopped inside a write transaction (SIGSTOP, a frozen VM, a cut network) would hold
# the writers' lock for good, and with it every other replica and the leader lease; the server
# ends a transaction idle this long, which releases the lock (docs/architecture.md "Several
# replicas"). No hub transaction waits on anything but its own statements. open_state_store
# passes a third of the leader lease (at most this), so such a freeze delays no failover.
IDLE_IN_TRANSACTION_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5

# Errors after which the connection is no good: the server is down, restarting or unreachable.
# (The server ending a transaction left idle too long, see IDLE_IN_TRANSACTION_TIMEOUT, also
# closes the connection.)
_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    pg_errors.AdminShutdown,
    pg_errors.CannotConnectNow,
    pg_errors.IdleInTransactionSessionTimeout,
)
_READ_VERBS = ("SELECT", "VALUES", "SHOW", "EXPLAIN")
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


class PgRow:
    """A row like ``sqlite3.Row``: ``row[0]``, ``row["name"]``, ``keys()``, ``dict(row)``, iteration."""

    __slots__ = ("_index", "_names", "_values")

    def __init__(self, names: list[str], index: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._index = index
        self._values = tuple(values)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                lowered = key.lower()  # sqlite3.Row matches names case-insensitively
                if lowered in self._index:
                    return self._values[self._index[lowered]]
                raise IndexError(f"no column named {key!r}") from None
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PgRow):
            return self._names == other._names and self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash((tuple(self._names), self._values))

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._names, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    names = [d.name for d in desc] if desc else []
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)  # like sqlite3.Row: a repeated name finds the first column
    return lambda values: PgRow(names, index, values)


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """Rewrite ``?``/``:name`` placeholders to psycopg's ``%s``/``%(name)s`` and double ``%``.

    String literals, quoted identifiers and comments are copied unchanged apart from ``%``
    (psycopg looks for ``%`` everywhere); ``::type`` casts are not placeholders.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == c:
                    if end + 1 < n and sql[end + 1] == c:  # '' or "" inside: an escaped quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        elif (
            c == ":"
            and i + 1 < n
            and (sql[i + 1].isalpha() or sql[i + 1] == "_")
            and (i == 0 or (sql[i - 1] != ":" and not sql[i - 1].isalnum() and sql[i - 1] != "_"))
        ):
            end = i + 1
            while end < n and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[i + 1 : end]})s")
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


_DDL_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
]


def ddl(script: str) -> str:
    """A migration script's column types for PostgreSQL (types are written in capitals)."""
    for pattern, replacement in _DDL_TYPES:
        script = pattern.sub(replacement, script)
    return script


def _params(params: Params) -> Params:
    """Booleans as 0/1: the schema's flags are integer columns on both engines."""
    if isinstance(params, dict):
        return {k: int(v) if isinstance(v, bool) else v for k, v in params.items()}
    return [int(v) if isinstance(v, bool) else v for v in params]


def _is_read(sql: str) -> bool:
    return sql.lstrip()[:8].upper().startswith(_READ_VERBS)


def safe_url(url: str) -> str:
    """The URL without its password, for logs and /readyz."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


class PostgresDatabase:
    """The hub's state in one PostgreSQL database (see the module docstring)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("KUBEHUB_DATABASE_URL", "must be a postgresql:// URL")
        self.url = url
        # The URL's own ``options`` (e.g. ``-csearch_path=kubehub``) are kept: a keyword given to
        # connect() replaces the URL's, and the writers' lock timeout must not drop them.
        try:
            given = conninfo_to_dict(url).get("options") or ""
        except psycopg.ProgrammingError as exc:
            raise ConfigError("KUBEHUB_DATABASE_URL", f"not a valid PostgreSQL URL: {_first_line(exc)}") from exc
        idle = f"-c idle_in_transaction_session_timeout={max(1, round(idle_in_transaction_timeout * 1000))}"
        self._options = f"{given} -c lock_timeout={LOCK_TIMEOUT} {idle}".strip()
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, psycopg.Connection[Any]]] = []
        self._lock = threading.Lock()
        self._identity_tables: frozenset[str] | None = None
        self._version = ""

    # -- connections ------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="kubehub",
                options=self._options,
            )
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(BACKEND, f"cannot connect to {safe_url(self.url)}: {_first_line(exc)}") from exc
        self._local.conn = conn
        self._local.depth = 0
        me = threading.current_thread()
        with self._lock:
            alive = []
            for thread, other in self._all:
                if thread.is_alive() and not other.closed:
                    alive.append((thread, other))
                else:
                    other.close()
            alive.append((me, conn))
            self._all = alive
        return conn

    def _drop(self) -> None:
        """Forget this thread's connection (after it broke), so the next call connects again."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.depth = 0
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _translate_error(self, exc: psycopg.Error) -> Exception:
        if isinstance(exc, pg_errors.IntegrityError):
            return IntegrityError(_first_line(exc))
        if isinstance(exc, psycopg.DataError) and "NUL (0x00)" in str(exc):
            # SQLite stores NUL in text, PostgreSQL refuses it. The web layer refuses NUL in every
            # parameter, naming it; this is the backstop for text that reached a store another way.
            return InvalidInput("text must not contain the NUL character (the state store cannot keep it)")
        if isinstance(exc, pg_errors.LockNotAvailable):
            return BackendUnavailable(BACKEND, f"another writer held the state for over {LOCK_TIMEOUT}")
        if isinstance(exc, _UNAVAILABLE):
            self._drop()
            return BackendUnavailable(BACKEND, f"{safe_url(self.url)}: {_first_line(exc)}")
        return exc

    def _reused(self) -> bool:
        """Whether this thread already holds a connection (made before the call at hand)."""
        conn = getattr(self._local, "conn", None)
        return conn is not None and not conn.closed

    def _stale(self, conn: psycopg.Connection[Any], exc: psycopg.Error, reused: bool) -> bool:
        """The server dropped a connection that sat idle in this thread (PostgreSQL restarted,
        failed over, or ended idle sessions): worth one more try on a new connection."""
        return reused and conn.closed and isinstance(exc, _UNAVAILABLE)

    def _run(
        self, sql: str, params: Params | None, *, many: Sequence[Params] | None = None, again: bool = False
    ) -> Any:
        reused = self._reused()
        conn = self._connect()
        in_tx = bool(self._local.depth)
        # Whether the statement may simply run again on a new connection when this one turns out
        # to be dead: a read may; a write only until it is sent (it could have committed).
        repeatable = not in_tx and not again
        try:
            if in_tx or _is_read(sql):
                cur = conn.cursor()
                if many is not None:
                    _executemany(conn, cur, sql, many)
                else:
                    cur.execute(translate(sql), _params(params or ()))
                return cur
            # A write outside a transaction: the same single-writer rule as inside one.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                repeatable = False
                cur = conn.cursor()
                if many is not None:
                    _executemany(conn, cur, sql, many)
                else:
                    cur.execute(translate(sql), _params(params or ()))
                return cur
        except psycopg.Error as exc:
            if repeatable and self._stale(conn, exc, reused):
                self._drop()
                return self._run(sql, params, many=many, again=True)
            translated = self._translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc

    # -- the StateStore interface ----------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction holding the writers' lock; nested calls join the outer one."""
        reused = self._reused()
        conn = self._connect()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                if getattr(self._local, "conn", None) is conn:  # not dropped after a lost connection
                    self._local.depth -= 1
            return
        for attempt in (1, 2):
            try:
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
                break
            except psycopg.Error as exc:
                if attempt == 1 and self._stale(conn, exc, reused):
                    self._drop()  # nothing ran yet: begin again on a new connection
                    reused, conn = False, self._connect()
                    continue
                translated = self._translate_error(exc)
                if translated is not exc and not conn.closed:
                    _rollback(conn)
                raise translated from exc
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            if not conn.closed:
                _rollback(conn)
            raise
        else:
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                translated = self._translate_error(exc)
                raise translated from exc
        finally:
            if getattr(self._local, "conn", None) is conn:
                self._local.depth = 0

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        return self._run(sql, params).fetchall()

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        return self._run(sql, params).fetchone()

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the new row's id for an INSERT into a table with an
        identity ``id``, else the number of rows changed."""
        match = _INSERT_INTO.match(sql)
        if match and match.group(1).lower() in self._identities() and "RETURNING" not in sql.upper():
            row = self._run(sql + " RETURNING id", params).fetchone()
            return int(row[0]) if row else 0
        return int(self._run(sql, params).rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._run(sql, None, many=rows)

    def execute_alone(self, sql: str, params: Params = ()) -> int:
        """One statement committed on its own WITHOUT the writers' lock; inside a transaction it
        joins it. Only for a write that is right by itself under PostgreSQL's row locks (one
        row, conditional, idempotent) and must not queue behind another writer's transaction:
        the outbox's mark that the mail server accepted a message, the one commit whose delay
        is the window for a duplicate (docs/architecture.md "Several replicas"). Idempotent, so
        a connection found dead is retried once on a new one."""
        if getattr(self._local, "depth", 0):
            return int(self._run(sql, params).rowcount)
        again = False
        while True:
            reused = self._reused()
            conn = self._connect()
            try:
                return int(conn.execute(translate(sql), _params(params)).rowcount)  # autocommit
            except psycopg.Error as exc:
                if not again and self._stale(conn, exc, reused):
                    self._drop()
                    again = True
                    continue
                translated = self._translate_error(exc)
                if translated is exc:
                    raise
                raise translated from exc

    def migrate(self) -> list[str]:
        """Apply every missing migration (types mapped by :func:`ddl`)."""

        def run_script(script: str) -> None:
            # No parameters: psycopg sends the script as is, several statements at once.
            self._connect().execute(ddl(script))

        try:
            done = run_migrations(self, run_script)
        except psycopg.Error as exc:
            translated = self._translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc
        self._identity_tables = None
        return done

    def describe(self) -> str:
        if not self._version:
            row = self.query_one("SHOW server_version")
            self._version = str(row[0]).split()[0] if row else "?"
        return f"postgresql {self._version} at {safe_url(self.url)}"

    def close(self) -> None:
        with self._lock:
            for _, conn in self._all:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def _identities(self) -> frozenset[str]:
        if self._identity_tables is None:
            rows = self.query(
                "SELECT table_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND column_name = 'id' AND is_identity = 'YES'"
            )
            self._identity_tables = frozenset(str(r[0]) for r in rows)
        return self._identity_tables


# INSERT ... VALUES (<one row>) [ON CONFLICT ...]: the shape a batch can send as multi-row VALUES.
_ONE_ROW = re.compile(r"^(\s*INSERT\s+INTO\s+[^(]+\([^)]*\)\s*VALUES\s*)(\([^()]*\))(.*)$", re.I | re.S)
_NAMED = re.compile(r"%\((\w+)\)s")
BATCH_ROWS = 500  # rows per multi-row INSERT (and at most 30,000 parameters, under the protocol's 65,535)


def _executemany(conn: psycopg.Connection[Any], cur: Any, sql: str, rows: Sequence[Params]) -> None:
    """Run a statement for every row; an INSERT of many rows goes as multi-row VALUES.

    Why: the engine's cycle upserts thousands of rows, and one statement per row costs a
    server round of parse-bind-execute each (ten times SQLite's in-process cost). The batch is
    written with PostgreSQL's own ``$n`` placeholders and sent through a raw cursor, because
    psycopg's client-side placeholder parsing of a statement that long costs more than the
    rows themselves. If a batch holds the same key twice, PostgreSQL refuses an ON CONFLICT DO
    UPDATE that touches a row twice; that chunk then runs row by row (inside a savepoint), in
    order, as SQLite would.
    """
    text = translate(sql)
    match = _ONE_ROW.match(sql) if len(rows) >= 8 else None  # the caller's text: (?, :name) have no parentheses
    if match is None or _PLACEHOLDER.search(translate(match.group(1) + match.group(3))):
        cur.executemany(text, [_params(p) for p in rows])
        return
    head, tail = match.group(1), match.group(3)
    template = translate(match.group(2))
    names = _NAMED.findall(template)
    width = len(_PLACEHOLDER.findall(template))
    if width == 0:
        cur.executemany(text, [_params(p) for p in rows])
        return
    chunk = max(1, min(BATCH_ROWS, 30_000 // width))
    raw = psycopg.RawCursor(conn)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        flat: list[Any] = []
        groups = []
        for i, row in enumerate(part):
            values = [row[n] for n in names] if names else list(row)
            flat.extend(int(v) if isinstance(v, bool) else v for v in values)
            groups.append(_numbered(template, i * width, width))
        try:
            with conn.transaction():  # a savepoint: the fallback below must start from before this chunk
                raw.execute(head + ",".join(groups) + tail, flat)
        except pg_errors.CardinalityViolation:
            cur.executemany(text, [_params(p) for p in part])


_PLACEHOLDER = re.compile(r"(?<!%)(?:%%)*(%s|%\(\w+\)s)")
_TOKEN = re.compile(r"%%|%s|%\((\w+)\)s")


@lru_cache(maxsize=256)
def _row_format(template: str) -> str:
    """One row's ``(%s, %(name)s, 'lit%%')`` as the format string ``(${0}, ${1}, 'lit%')``."""
    counter = iter(range(10_000))

    def swap(m: re.Match[str]) -> str:
        return "%" if m.group(0) == "%%" else "${" + str(next(counter)) + "}"

    return _TOKEN.sub(swap, template.replace("{", "{{").replace("}", "}}"))


def _numbered(template: str, offset: int, width: int) -> str:
    """The row's placeholders numbered ``$offset+1`` on."""
    return _row_format(template).format(*range(offset + 1, offset + width + 1))


def _rollback(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the connection broke; the server rolls back on its own


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
