"""The embedded log store: SQLite FTS5, one database file per UTC day.

Why this shape (measurements in docs/logs.md):

- **Rows in time order, searched newest-first.** A row's key is its time in microseconds
  shifted left 10 bits (plus a 10-bit slot), so the table and the FTS index are both ordered by
  time. A search asks FTS5 for rowids in descending order with the time range as a rowid range
  and stops after ``offset + size`` hits; it never sorts the matches of a common word.
- **One file per day.** Retention unlinks whole files (no DELETE, no VACUUM), a time range
  opens only the days it covers, and paging walks the days in order with early termination.
- **Words by the hub's rule** (``hub.collectors.logs.words``, the one Elasticsearch's documents
  are cut by too): FTS5's ``ascii`` tokenizer only splits the prepared text at its spaces (and
  cuts plain ASCII messages into runs of letters and digits itself). CJK runs are indexed as
  overlapping bigrams plus the run's last character, so a two-character word (超时, 失败) is
  one exact token, a longer word is a phrase of bigrams and a single character is a prefix
  query. The trigram tokenizer was measured too: it cannot match two-character words at all,
  indexes 2.5x more, ingests 2.3x slower, and its substring matching of Latin words would make
  the two backends disagree. Day files of an older word rule are re-indexed when opened.
- **Tenant scope in the query.** Each line points at a *source* (namespace, namespace UID,
  workload, pod, container, node, pod UID) in a small catalog held in memory, so every line
  knows its namespace's UID without a per-row column. The scope (namespaces, their floors and
  current UIDs) and the workload/pod/container filters become a set of source ids before any
  SQL runs: a source stamped with a namespace UID is in exactly when that UID is the current
  one; a source without one falls back to the time floor: left out when all its lines predate
  it, a per-row time check when it straddles it. Per day, the planner then picks the cheapest
  exact form: no filter when every source of that day is visible, the sources' tag tokens
  inside the FTS query when the scope is a small share of the day (FTS5 intersects posting
  lists), else a join against the source list passed as one JSON parameter (1,000+ namespaces
  stay one clause).
- **Idempotent writes.** A line's slot is derived from a hash of its uid; a rewritten line
  finds its own uid in its slot and is skipped, so re-delivery after a crash duplicates nothing.

Over 400 lines because it is one store: the catalog, the day files, the planner and the
readers share the in-memory catalog and the day handles, and splitting them would only move
that shared state into parameters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hub.collectors.logs.query import And, Expr, Or, Term
from hub.collectors.logs.store import (
    MAX_MESSAGE_CHARS,
    TOTAL_CAP,
    Bucket,
    LogLine,
    LogQuery,
    LogRecord,
    Partition,
    SearchResult,
    bucket_bounds,
    fill_buckets,
    strip_ansi,
    uid_hash,
)
from hub.collectors.logs.words import WORDS_VERSION, runs, simple_ascii
from hub.errors import BackendUnavailable

log = logging.getLogger("kubehub.logs.embedded")

BACKEND = "embedded log store"
SLOT_BITS = 10  # 1,024 lines may share one microsecond before the key moves to the next one
SLOTS = 1 << SLOT_BITS
# Above this share of a day's lines the scope is checked by a join; below it the sources' tags
# go into the FTS query. Measured on 1M lines: a join filter passes ~1 row in 7 at this share,
# which costs about what intersecting posting lists does.
TAG_SHARE = 0.15
MAX_TAGS = 256  # an FTS OR of more tags than this is slower than the join
EXPORT_CHUNK = 2_000
READERS_PER_DAY = 8

_FILE = re.compile(r"^logs-(\d{4}-\d{2}-\d{2})\.sqlite3$")
# The words are cut by hub.collectors.logs.words; FTS5 only splits its output at spaces. The
# ascii tokenizer does exactly that for text we prepared (every non-ASCII character is a token
# character, ASCII letters are folded) and splits plain ASCII messages into runs of ASCII
# letters and digits by itself, which is the word rule for ASCII.
_TOKENIZER = "ascii"
# Day files record the word rule they were indexed by (PRAGMA user_version = WORDS_VERSION).
# Older files (0: unicode61 with Chinese-only runs) get their FTS index rebuilt from the stored
# messages when the store opens them.

_PARTITION_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, src INTEGER NOT NULL, uid INTEGER NOT NULL, "
    "message TEXT NOT NULL)",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(body, tag, content='', tokenize=\"{_TOKENIZER}\")",
    "CREATE TABLE IF NOT EXISTS stats (src INTEGER PRIMARY KEY, lines INTEGER NOT NULL)",
    # Only for keyword-less histograms of part of a day (see histogram()); searches never use it.
    "CREATE INDEX IF NOT EXISTS logs_src_id ON logs (src, id)",
]

_CATALOG_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS sources (id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, workload TEXT NOT NULL, "
    "pod TEXT NOT NULL, container TEXT NOT NULL, node TEXT NOT NULL, pod_uid TEXT NOT NULL, "
    "first_t REAL NOT NULL, last_t REAL NOT NULL, ns_uid TEXT NOT NULL DEFAULT '', "
    "UNIQUE (ns, pod, container, pod_uid, workload, node, ns_uid))",
]
# A catalog written before sources carried their namespace's UID: the table is rebuilt once
# (ids kept, every old source without a UID, so its lines keep the time floor).
_CATALOG_ADD_NS_UID = [
    "ALTER TABLE sources RENAME TO sources_before_ns_uid",
    _CATALOG_SCHEMA[1],
    "INSERT INTO sources(id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid) "
    "SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t, '' FROM sources_before_ns_uid",
    "DROP TABLE sources_before_ns_uid",
]
# (namespace, pod, container, pod UID, workload, node, namespace UID): what makes a source.
SourceKey = tuple[str, str, str, str, str, str, str]


# -- tokenization ------------------------------------------------------------------------------------


def _grams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def index_text(message: str) -> str:
    """The text FTS5 indexes for a message: its words, CJK runs as bigrams plus their last char.

    ``连接超时`` becomes ``连接 接超 超时 时``: a two-character term is one token, a longer one a
    phrase of bigrams, and the trailing character lets a phrase say "this run ends here".
    """
    if simple_ascii(message):
        return message  # the ascii tokenizer cuts and folds it exactly as runs() would
    out: list[str] = []
    for word, cjk in runs(message):
        if cjk and len(word) > 1:
            out.extend(_grams(word))
            out.append(word[-1])
        else:
            out.append(word)
    return " ".join(out)


def fts_phrase(text: str) -> str:
    """One search term as an FTS5 phrase that matches where the word rule says it does.

    The term's words must follow each other in a line. A CJK run may match inside a line's run:
    alone anywhere (its bigrams, or a prefix query for one character); as the first word of a
    longer term it must end its line run (the term also asks for the run's last character,
    which the index puts right before the next word); as the last word it must start one (it
    comes right after the previous word; one character is then a prefix); in the middle it must
    be the whole run.
    """
    words = list(runs(text))
    tokens: list[str] = []
    prefix = False
    for i, (word, cjk) in enumerate(words):
        last = i == len(words) - 1
        if not cjk:
            tokens.append(word)
        elif len(word) == 1:
            tokens.append(word)
            prefix = last
        else:
            tokens.extend(_grams(word))
            if not last:
                tokens.append(word[-1])
    return '"' + " ".join(tokens) + '"' + ("*" if prefix else "")


def fts_expr(expr: Expr) -> str:
    if isinstance(expr, Term):
        return fts_phrase(expr.text)
    if isinstance(expr, And):
        return "(" + " AND ".join(fts_expr(i) for i in expr.items) + ")"
    if isinstance(expr, Or):
        return "(" + " OR ".join(fts_expr(i) for i in expr.items) + ")"
    raise TypeError(expr)


def _day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


# -- catalog -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where lines come from; ``first_t``/``last_t`` bound the times of its lines (never narrower).

    ``ns_uid`` is the UID of the namespace the lines were logged in, empty when the writer did
    not know it (those lines are judged by the time floor)."""

    id: int
    namespace: str
    ns_id: int
    workload: str
    pod: str
    container: str
    node: str
    pod_uid: str
    first_t: float
    last_t: float
    ns_uid: str = ""

    @property
    def key(self) -> SourceKey:
        return (self.namespace, self.pod, self.container, self.pod_uid, self.workload, self.node, self.ns_uid)


@dataclass
class _Day:
    day: str
    path: Path
    stats: dict[int, int] = field(default_factory=dict)  # source id -> lines; replaced, never mutated
    lines: int = 0
    readers: list[sqlite3.Connection] = field(default_factory=list)
    writer: sqlite3.Connection | None = None
    dropped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Scope:
    """The query's visibility resolved to sources: fully visible ones and floor-straddling ones."""

    unrestricted: bool
    full: frozenset[int] = frozenset()
    straddling: Mapping[int, float] = field(default_factory=dict)  # source id -> floor (epoch s)


@dataclass(frozen=True)
class _Plan:
    """How one day is asked: the FROM/WHERE, its parameters and the expression that is the line id."""

    from_where: str
    params: dict[str, Any]
    id_expr: str


class EmbeddedLogStore:
    """SQLite FTS5 log store under ``directory`` (see the module docstring for the design)."""

    name = BACKEND

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._catalog = self._connect(self.directory / "catalog.sqlite3", writer=True)
            for stmt in _CATALOG_SCHEMA:
                self._catalog.execute(stmt)
            columns = {row[1] for row in self._catalog.execute("PRAGMA table_info(sources)")}
            if "ns_uid" not in columns:
                self._catalog.execute("BEGIN IMMEDIATE")
                for stmt in _CATALOG_ADD_NS_UID:
                    self._catalog.execute(stmt)
                self._catalog.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailable(BACKEND, f"cannot open {self.directory}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._catalog_lock = threading.Lock()
        self._days_lock = threading.Lock()
        self._ns_ids: dict[str, int] = {}
        self._sources: dict[int, Source] = {}
        self._by_key: dict[SourceKey, int] = {}
        self._by_ns: dict[str, list[int]] = defaultdict(list)
        # The namespace UIDs the sources of each namespace carry ("" for sources without one);
        # replaced, never mutated, so readers need no lock.
        self._ns_uids: dict[str, frozenset[str]] = {}
        # Earliest line of any source of a namespace: a floor at or before it hides nothing, so
        # the namespace's sources join the scope whole without looking at each one.
        self._ns_first: dict[str, float] = {}
        self._days: dict[str, _Day] = {}
        # Called with (day file, SQL with its parameters inlined) for every read statement when
        # set: the benchmark replays exactly these as its raw-SQL baseline; handy when debugging.
        self.statement_log: Callable[[str, str], None] | None = None
        self._load()

    # -- opening -------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, *, writer: bool) -> sqlite3.Connection:
        # Readers open read-only so that a day dropped by retention mid-search is an error,
        # never a fresh empty file left behind.
        target = str(path) if writer else f"file:{path}?mode=ro"
        conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False, uri=not writer)
        conn.execute("PRAGMA busy_timeout=30000")
        if writer:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the FTS merge reads back recent segments
        else:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA cache_size=-16384")
            conn.execute("PRAGMA mmap_size=268435456")  # reads come from the page cache without copies
        return conn

    def _load(self) -> None:
        cat = self._catalog
        for ns_id, name in cat.execute("SELECT id, name FROM namespaces"):
            self._ns_ids[name] = ns_id
        names = {v: k for k, v in self._ns_ids.items()}
        for row in cat.execute(
            "SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid FROM sources ORDER BY id"
        ):
            src = Source(row[0], names[row[1]], row[1], *row[2:])
            self._remember(src)
        for entry in sorted(os.listdir(self.directory)):
            m = _FILE.match(entry)
            if not m:
                continue
            day = _Day(day=m.group(1), path=self.directory / entry)
            conn = self._writer(day)
            day.stats = dict(conn.execute("SELECT src, lines FROM stats").fetchall())
            day.lines = sum(day.stats.values())
            self._days[day.day] = day

    def _remember(self, src: Source) -> None:
        self._sources[src.id] = src
        self._by_key[src.key] = src.id
        self._by_ns[src.namespace].append(src.id)
        self._ns_uids[src.namespace] = self._ns_uids.get(src.namespace, frozenset()) | {src.ns_uid}
        self._ns_first[src.namespace] = min(self._ns_first.get(src.namespace, src.first_t), src.first_t)

    def _writer(self, day: _Day) -> sqlite3.Connection:
        if day.writer is None:
            conn = self._connect(day.path, writer=True)
            if conn.execute("PRAGMA user_version").fetchone()[0] < WORDS_VERSION:
                self._upgrade_words(conn, day)
            for stmt in _PARTITION_SCHEMA:
                conn.execute(stmt)
            day.writer = conn
        return day.writer

    def _upgrade_words(self, conn: sqlite3.Connection, day: _Day) -> None:
        """Re-index a day file written under an older word rule (or create a fresh one).

        The FTS index is contentless, so it is rebuilt from the stored messages: about as fast
        as ingesting them again (tens of seconds for a million lines), once per file.
        """
        old = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'logs_fts'").fetchone()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if old:
                started = time.monotonic()
                conn.execute("DROP TABLE logs_fts")
                conn.execute(_PARTITION_SCHEMA[1])
                rows = conn.execute("SELECT id, src, message FROM logs ORDER BY id")
                n = 0
                while batch := rows.fetchmany(5000):
                    conn.executemany(
                        "INSERT INTO logs_fts(rowid, body, tag) VALUES (?, ?, ?)",
                        [(i, index_text(m), self._tag_of(s)) for i, s, m in batch],
                    )
                    n += len(batch)
                log.info(
                    "re-indexed %s for word rule %d: %d lines in %.1f s",
                    day.path.name,
                    WORDS_VERSION,
                    n,
                    time.monotonic() - started,
                )
            conn.execute(f"PRAGMA user_version = {WORDS_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _tag_of(self, src_id: int) -> str:
        src = self._sources.get(src_id)
        return f"n{src.ns_id} s{src_id}" if src is not None else f"s{src_id}"

    def _day(self, name: str) -> _Day:
        with self._days_lock:
            day = self._days.get(name)
            if day is None:
                day = _Day(day=name, path=self.directory / f"logs-{name}.sqlite3")
                self._writer(day)
                self._days[name] = day
            return day

    # -- writing -------------------------------------------------------------------------------
    def write(self, records: Sequence[LogRecord]) -> int:
        if not records:
            return 0
        try:
            with self._write_lock:
                return self._write(records)
        except sqlite3.Error as exc:
            raise BackendUnavailable(BACKEND, f"write failed: {exc}") from exc

    def _write(self, records: Sequence[LogRecord]) -> int:
        src_ids = self._resolve_sources(records)
        by_day: dict[str, list[tuple[int, int, int, str, str, str]]] = defaultdict(list)
        day_names: dict[int, str] = {}
        for rec, src_id in zip(records, src_ids, strict=True):
            t_us = round(rec.time * 1_000_000)
            day_index = t_us // 86_400_000_000
            name = day_names.get(day_index)
            if name is None:
                name = day_names[day_index] = _day_of(day_index * 86_400)
            message = strip_ansi(rec.message)
            if len(message) > MAX_MESSAGE_CHARS:
                message = message[:MAX_MESSAGE_CHARS] + " …[truncated]"
            uid = uid_hash(rec.identity())
            src = self._sources[src_id]
            by_day[name].append(
                (
                    t_us << SLOT_BITS | (uid & (SLOTS - 1)),
                    src_id,
                    uid,
                    message,
                    index_text(message),
                    f"n{src.ns_id} s{src_id}",
                )
            )
        written = 0
        for name in sorted(by_day):
            written += self._write_day(self._day(name), by_day[name])
        return written

    def _resolve_sources(self, records: Sequence[LogRecord]) -> list[int]:
        """Source ids of the records, creating missing sources and widening time bounds first,
        so that a crash after this step leaves bounds wider than the data (still exact)."""
        ids: list[int] = []
        bounds: dict[int, tuple[float, float]] = {}
        new: list[tuple[SourceKey, float, float]] = []
        pending: dict[SourceKey, int] = {}
        for rec in records:
            key = (rec.namespace, rec.pod, rec.container, rec.pod_uid, rec.workload, rec.node, rec.namespace_uid)
            src_id = self._by_key.get(key)
            if src_id is None:
                idx = pending.get(key)
                if idx is None:
                    idx = pending[key] = len(new)
                    new.append((key, rec.time, rec.time))
                else:
                    k, lo, hi = new[idx]
                    new[idx] = (k, min(lo, rec.time), max(hi, rec.time))
                ids.append(-1 - idx)
                continue
            ids.append(src_id)
            lo, hi = bounds.get(src_id, (rec.time, rec.time))
            bounds[src_id] = (min(lo, rec.time), max(hi, rec.time))
        cat = self._catalog
        created: list[int] = []
        with self._catalog_lock:
            cat.execute("BEGIN IMMEDIATE")
            try:
                for key, lo, hi in new:
                    ns_id = self._ns_ids.get(key[0])
                    if ns_id is None:
                        ns_id = int(cat.execute("INSERT INTO namespaces(name) VALUES (?)", (key[0],)).lastrowid or 0)
                    cur = cat.execute(
                        "INSERT INTO sources(ns, pod, container, pod_uid, workload, node, ns_uid, first_t, last_t) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (ns_id, *key[1:], lo, hi),
                    )
                    created.append(int(cur.lastrowid or 0))
                    self._ns_ids.setdefault(key[0], ns_id)
                widened: list[Source] = []
                for src_id, (lo, hi) in bounds.items():
                    src = self._sources[src_id]
                    if lo < src.first_t or hi > src.last_t:
                        widened.append(replace(src, first_t=min(src.first_t, lo), last_t=max(src.last_t, hi)))
                cat.executemany(
                    "UPDATE sources SET first_t = ?, last_t = ? WHERE id = ?",
                    [(s.first_t, s.last_t, s.id) for s in widened],
                )
                cat.execute("COMMIT")
            except BaseException:
                cat.execute("ROLLBACK")
                # ids handed out inside the failed transaction are not real
                raise
            for (key, lo, hi), src_id in zip(new, created, strict=True):
                self._remember(
                    Source(src_id, key[0], self._ns_ids[key[0]], key[4], key[1], key[2], key[5], key[3], lo, hi, key[6])
                )
            for src in widened:
                self._sources[src.id] = src
                self._ns_first[src.namespace] = min(self._ns_first.get(src.namespace, src.first_t), src.first_t)
        return [i if i >= 0 else created[-1 - i] for i in ids]

    def _write_day(self, day: _Day, rows: list[tuple[int, int, int, str, str, str]]) -> int:
        conn = self._writer(day)
        rows.sort(key=lambda r: r[0])
        conn.execute("BEGIN IMMEDIATE")
        try:
            wanted = json.dumps([r[0] for r in rows])
            taken: dict[int, int] = dict(
                conn.execute(
                    "SELECT id, uid FROM logs WHERE id IN (SELECT value FROM json_each(?))", (wanted,)
                ).fetchall()
            )
            fresh: list[tuple[int, int, int, str, str, str]] = []
            counts: dict[int, int] = defaultdict(int)
            for row in rows:
                key, src, uid = row[0], row[1], row[2]
                while True:
                    owner = taken.get(key)
                    if owner is None:
                        break
                    if owner == uid:
                        key = -1  # the same line is already stored (or twice in this batch)
                        break
                    key = self._probe(conn, key + 1, taken)
                if key < 0:
                    continue
                taken[key] = uid
                fresh.append((key, src, uid, row[3], row[4], row[5]))
            if fresh:
                fresh.sort(key=lambda r: r[0])
                conn.executemany("INSERT INTO logs(id, src, uid, message) VALUES (?, ?, ?, ?)", [r[:4] for r in fresh])
                conn.executemany(
                    "INSERT INTO logs_fts(rowid, body, tag) VALUES (?, ?, ?)", [(r[0], r[4], r[5]) for r in fresh]
                )
                for r in fresh:
                    counts[r[1]] += 1
                conn.executemany(
                    "INSERT INTO stats(src, lines) VALUES (?, ?) "
                    "ON CONFLICT(src) DO UPDATE SET lines = lines + excluded.lines",
                    list(counts.items()),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if fresh:
            stats = dict(day.stats)
            for src_id, n in counts.items():
                stats[src_id] = stats.get(src_id, 0) + n
            day.stats = stats
            day.lines += len(fresh)
        return len(fresh)

    @staticmethod
    def _probe(conn: sqlite3.Connection, key: int, taken: dict[int, int]) -> int:
        """Record who holds slot ``key`` (if anyone) so the caller can compare uids; rare path:
        only lines whose hashed slot collides with a different line in the same microsecond."""
        if key not in taken:
            row = conn.execute("SELECT uid FROM logs WHERE id = ?", (key,)).fetchone()
            if row is not None:
                taken[key] = row[0]
        return key

    def refresh(self) -> None:
        """Nothing to do: a committed write is searchable at once."""

    # -- scope ----------------------------------------------------------------------------------
    def _scope(self, q: LogQuery) -> _Scope:
        if q.visibility is None and not (q.workloads or q.pods or q.containers):
            return _Scope(unrestricted=True)
        workloads = set(q.workloads)
        pods = set(q.pods)
        containers = set(q.containers)
        if q.visibility is None:
            namespaces: Mapping[str, float] = {ns: 0.0 for ns in list(self._by_ns)}
        else:
            namespaces = q.visibility
        uids = q.namespace_uids if q.visibility is not None else {}
        full: set[int] = set()
        straddling: dict[int, float] = {}
        sources = self._sources
        filtered = bool(workloads or pods or containers)
        for ns, floor in namespaces.items():
            ids = self._by_ns.get(ns)
            if not ids:
                continue
            current = uids.get(ns, "")
            stamped = self._ns_uids.get(ns, frozenset())
            if not filtered and (
                (current and stamped == {current})
                or ((not current or stamped <= {"", current}) and floor <= self._ns_first.get(ns, float("inf")))
            ):
                full.update(ids)  # nothing of this namespace is a predecessor's
                continue
            for src_id in list(ids):
                src = sources[src_id]
                if workloads and src.workload not in workloads:
                    continue
                if pods and src.pod not in pods:
                    continue
                if containers and src.container not in containers:
                    continue
                if current and src.ns_uid:
                    if src.ns_uid == current:  # the current namespace's, whatever the time
                        full.add(src_id)
                    continue  # a predecessor's
                if src.first_t >= floor:
                    full.add(src_id)
                elif src.last_t >= floor:
                    straddling[src_id] = floor
        return _Scope(unrestricted=False, full=frozenset(full), straddling=straddling)

    def _plan(self, day: _Day, scope: _Scope, q: LogQuery) -> _Plan | None:
        """The cheapest exact way to ask one day, or None when nothing there is visible."""
        params: dict[str, Any] = {}
        lo, hi = _key_range(q)
        params["lo"], params["hi"] = lo, hi
        match = fts_expr(q.text) if q.text is not None else None
        stats = day.stats
        if scope.unrestricted:
            filter_sql = ""
            tags = None
        else:
            full = [s for s in scope.full if s in stats]
            straddling = {s: f for s, f in scope.straddling.items() if s in stats}
            visible = sum(stats[s] for s in full) + sum(stats[s] for s in straddling)
            if not visible:
                return None
            tags = None
            filter_sql = ""
            if not straddling and visible >= day.lines:
                pass  # every line of this day is visible: no filter at all
            elif not straddling and visible < TAG_SHARE * day.lines:
                tags = self._tags(full, stats)
            if tags is None and (straddling or visible < day.lines):
                clauses = ["l.src IN (SELECT value FROM json_each(:srcs))"]
                params["srcs"] = json.dumps(full)
                by_floor: dict[float, list[int]] = defaultdict(list)
                for s, f in straddling.items():
                    by_floor[f].append(s)
                for i, (floor, ids) in enumerate(sorted(by_floor.items())):
                    clauses.append(f"(l.src IN (SELECT value FROM json_each(:s{i})) AND l.id >= :k{i})")
                    params[f"s{i}"] = json.dumps(ids)
                    params[f"k{i}"] = round(floor * 1_000_000) << SLOT_BITS
                filter_sql = " AND (" + " OR ".join(clauses) + ")"
        if tags is not None:
            tag_expr = "tag : (" + " OR ".join(tags) + ")"
            params["m"] = f"body : ({match}) AND {tag_expr}" if match else tag_expr
            return _Plan("FROM logs_fts f WHERE logs_fts MATCH :m AND f.rowid BETWEEN :lo AND :hi", params, "f.rowid")
        if match is not None:
            params["m"] = f"body : ({match})"
            if filter_sql:
                return _Plan(
                    "FROM logs_fts f CROSS JOIN logs l ON l.id = f.rowid "
                    "WHERE logs_fts MATCH :m AND f.rowid BETWEEN :lo AND :hi" + filter_sql,
                    params,
                    "f.rowid",
                )
            return _Plan("FROM logs_fts f WHERE logs_fts MATCH :m AND f.rowid BETWEEN :lo AND :hi", params, "f.rowid")
        # NOT INDEXED: walking the key range stops early; the (src, id) index would make SQLite
        # collect and sort every line of the scope to return the newest fifty.
        return _Plan("FROM logs l NOT INDEXED WHERE l.id BETWEEN :lo AND :hi" + filter_sql, params, "l.id")

    def _tags(self, full: list[int], stats: Mapping[int, int]) -> list[str] | None:
        """Tag tokens covering exactly ``full`` on this day: whole namespaces where possible."""
        by_ns: dict[str, list[int]] = defaultdict(list)
        for s in full:
            by_ns[self._sources[s].namespace].append(s)
        tags: list[str] = []
        for ns, ids in by_ns.items():
            present = [s for s in self._by_ns.get(ns, ()) if s in stats]
            if len(ids) == len(present):
                tags.append(f"n{self._ns_ids[ns]}")
            else:
                tags.extend(f"s{s}" for s in ids)
            if len(tags) > MAX_TAGS:
                return None
        return tags

    # -- reading --------------------------------------------------------------------------------
    def _days_for(self, q: LogQuery) -> list[_Day]:
        with self._days_lock:
            days = [d for d in self._days.values() if not d.dropped]
        first = _day_of(q.start) if q.start is not None else None
        last = _day_of(q.end - 1e-6) if q.end is not None else None
        days = [d for d in days if (first is None or d.day >= first) and (last is None or d.day <= last)]
        days.sort(key=lambda d: d.day, reverse=q.sort == "desc")
        return days

    def _rows(self, day: _Day, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
        return self._read(day, lambda conn: conn.execute(sql, params).fetchall())

    def _read(self, day: _Day, fn: Callable[[sqlite3.Connection], list[Any]]) -> list[Any]:
        if day.dropped:
            return []  # retention removed it while this search was walking the days
        with day.lock:
            conn = day.readers.pop() if day.readers else None
        if conn is None:
            conn = self._connect(day.path, writer=False)
        hook = self.statement_log
        if hook is not None:
            path = str(day.path)
            conn.set_trace_callback(lambda sql: hook(path, sql))
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            conn.close()
            conn = None
            raise BackendUnavailable(BACKEND, f"reading {day.path.name} failed: {exc}") from exc
        finally:
            if conn is not None:
                if hook is not None:
                    conn.set_trace_callback(None)
                with day.lock:
                    if day.dropped or len(day.readers) >= READERS_PER_DAY:
                        conn.close()
                    else:
                        day.readers.append(conn)

    def search(self, query: LogQuery) -> SearchResult:
        if query.sees_nothing:
            return SearchResult(items=[], total=0)
        scope = self._scope(query)
        order = "DESC" if query.sort == "desc" else "ASC"
        need = query.offset + query.size
        found: list[tuple[_Day, int]] = []
        # Matches counted so far. Counting stops one past the cap: that extra match is what
        # tells "exactly 1,000" (eq) from "more than 1,000" (gte), as Elasticsearch tells them.
        counted = 0
        for day in self._days_for(query):
            plan = self._plan(day, scope, query)
            if plan is None:
                continue
            want = need - len(found)
            room = TOTAL_CAP + 1 - counted
            if want > 0:
                # One pass gives this day's share of the page and its count up to the cap. When
                # it stops at ``want`` > ``room``, ``counted`` is past the cap anyway.
                limit = max(want, room)
                sql = f"SELECT {plan.id_expr} {plan.from_where} ORDER BY {plan.id_expr} {order} LIMIT :n"
                ids = [r[0] for r in self._rows(day, sql, {**plan.params, "n": limit})]
                found.extend((day, i) for i in ids[:want])
                counted += len(ids)
                continue
            if room <= 0:
                break
            sql = f"SELECT count(*) FROM (SELECT 1 {plan.from_where} LIMIT :n)"
            rows = self._rows(day, sql, {**plan.params, "n": room})
            counted += int(rows[0][0]) if rows else 0
        page = found[query.offset : need]
        exact = counted <= TOTAL_CAP
        return SearchResult(items=self._lines(page), total=min(counted, TOTAL_CAP), total_exact=exact)

    def _lines(self, page: Sequence[tuple[_Day, int]]) -> list[LogLine]:
        by_day: dict[str, tuple[_Day, list[int]]] = {}
        for day, i in page:
            by_day.setdefault(day.day, (day, []))[1].append(i)
        rows: dict[int, tuple[int, str]] = {}
        for day, ids in by_day.values():
            sql = "SELECT id, src, message FROM logs WHERE id IN (SELECT value FROM json_each(?))"
            got = self._rows(day, sql, (json.dumps(ids),))
            for i, src, message in got:
                rows[i] = (src, message)
        out: list[LogLine] = []
        for _, i in page:
            row = rows.get(i)
            if row is not None:
                out.append(self._line(i, *row))
        return out

    def _line(self, key: int, src_id: int, message: str) -> LogLine:
        src = self._sources.get(src_id)
        t = (key >> SLOT_BITS) / 1_000_000
        if src is None:
            return LogLine(time=t, namespace="", pod="", container="", message=message)
        return LogLine(
            time=t,
            namespace=src.namespace,
            pod=src.pod,
            container=src.container,
            message=message,
            workload=src.workload,
            node=src.node,
        )

    def histogram(self, query: LogQuery, *, interval: float) -> list[Bucket]:
        bounds = bucket_bounds(query, interval)
        counts: dict[int, int] = defaultdict(int)
        if not query.sees_nothing:
            scope = self._scope(query)
            width = round(interval * 1_000_000)
            for day in self._days_for(query):
                if query.text is None and not scope.unrestricted:
                    self._index_histogram(day, scope, query, width, counts)
                    continue
                plan = self._plan(day, scope, query)
                if plan is None:
                    continue
                sql = f"SELECT ({plan.id_expr} >> {SLOT_BITS}) / :w AS b, count(*) {plan.from_where} GROUP BY b"
                for b, n in self._rows(day, sql, {**plan.params, "w": width}):
                    counts[int(b)] += n
        return fill_buckets(counts, interval, bounds)

    def _index_histogram(self, day: _Day, scope: _Scope, query: LogQuery, width: int, counts: dict[int, int]) -> None:
        """Keyword-less counts of part of a day from the (src, id) index, a third the size of
        the rows: one range per group of sources sharing a lower bound (a straddling source's
        range starts at its floor)."""
        lo, hi = _key_range(query)
        groups: dict[int, list[int]] = defaultdict(list)
        for s in scope.full:
            if s in day.stats:
                groups[lo].append(s)
        for s, floor in scope.straddling.items():
            if s in day.stats:
                groups[max(lo, round(floor * 1_000_000) << SLOT_BITS)].append(s)
        sql = (
            f"SELECT (id >> {SLOT_BITS}) / :w AS b, count(*) FROM logs INDEXED BY logs_src_id "
            "WHERE src IN (SELECT value FROM json_each(:srcs)) AND id BETWEEN :lo AND :hi GROUP BY b"
        )
        for start, srcs in groups.items():
            for b, n in self._rows(day, sql, {"w": width, "srcs": json.dumps(srcs), "lo": start, "hi": hi}):
                counts[int(b)] += n

    def export(self, query: LogQuery, *, limit: int) -> Iterator[LogLine]:
        if query.sees_nothing or limit <= 0:
            return
        scope = self._scope(query)
        desc = query.sort == "desc"
        order = "DESC" if desc else "ASC"
        sent = 0
        for day in self._days_for(query):
            plan = self._plan(day, scope, query)
            if plan is None:
                continue
            cursor: int | None = None
            while sent < limit:
                chunk = min(EXPORT_CHUNK, limit - sent)
                after = "" if cursor is None else f" AND {plan.id_expr} {'<' if desc else '>'} :after"
                sql = f"SELECT {plan.id_expr} {plan.from_where}{after} ORDER BY {plan.id_expr} {order} LIMIT :n"
                params = {**plan.params, "n": chunk, "after": cursor}
                ids = [r[0] for r in self._rows(day, sql, params)]
                if not ids:
                    break
                yield from self._lines([(day, i) for i in ids])
                sent += len(ids)
                cursor = ids[-1]
                if len(ids) < chunk:
                    break
            if sent >= limit:
                return

    # -- lifecycle --------------------------------------------------------------------------------
    def partitions(self) -> list[Partition]:
        with self._days_lock:
            days = sorted((d for d in self._days.values() if not d.dropped), key=lambda d: d.day)
        out = []
        for d in days:
            size = 0
            for suffix in ("", "-wal"):
                try:
                    size += os.path.getsize(str(d.path) + suffix)
                except OSError:
                    pass
            out.append(Partition(name=d.path.name, day=d.day, lines=d.lines, bytes=size))
        return out

    def drop_before(self, day: str) -> list[str]:
        with self._write_lock, self._days_lock:
            doomed = [d for d in self._days.values() if d.day < day]
            for d in doomed:
                d.dropped = True
                del self._days[d.day]
        dropped = []
        for d in doomed:
            with d.lock:
                readers, d.readers = d.readers, []
            for conn in readers:
                conn.close()
            if d.writer is not None:
                d.writer.close()
                d.writer = None
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(str(d.path) + suffix)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise BackendUnavailable(BACKEND, f"cannot remove {d.path.name}: {exc.strerror}") from exc
            dropped.append(d.path.name)
            log.info("dropped log partition %s (%d lines)", d.path.name, d.lines)
        return dropped

    def probe(self) -> str:
        try:
            self._catalog.execute("SELECT count(*) FROM sources").fetchone()
        except sqlite3.Error as exc:
            raise BackendUnavailable(BACKEND, f"catalog unreadable: {exc}") from exc
        if not os.access(self.directory, os.W_OK):
            raise BackendUnavailable(BACKEND, f"{self.directory} is not writable")
        with self._days_lock:
            days = len(self._days)
            lines = sum(d.lines for d in self._days.values())
        return f"sqlite {sqlite3.sqlite_version} fts5 at {self.directory}: {days} day(s), {lines} lines"

    def close(self) -> None:
        with self._days_lock:
            days = list(self._days.values())
        for d in days:
            with d.lock:
                readers, d.readers = d.readers, []
            for conn in readers:
                conn.close()
            if d.writer is not None:
                d.writer.close()
                d.writer = None
        self._catalog.close()


def _key_range(q: LogQuery) -> tuple[int, int]:
    lo = (round(q.start * 1_000_000) << SLOT_BITS) if q.start is not None else 0
    hi = ((round(q.end * 1_000_000) << SLOT_BITS) - 1) if q.end is not None else (1 << 63) - 1
    return lo, hi
