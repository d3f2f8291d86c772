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

The store is one class in four files: this module (opening the files, reading: search,
histogram, export, and the partitions' lifecycle), ``embedded_write.py`` (the write path) and
``embedded_plan.py`` (from a query's visibility to each day file's plan) as mixins, and
``embedded_base.py`` (schemas, tokenization, the small records). Still a little over 400 lines:
the three read paths share one day-by-day reader and belong together.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hub.collectors.logs.embedded_base import (  # noqa: F401  (re-exported: hub.collectors.logs.embedded_base holds them)
    _CATALOG_ADD_CLUSTER,
    _CATALOG_ADD_NS_UID,
    _CATALOG_SCHEMA,
    _FILE,
    _PARTITION_SCHEMA,
    _TOKENIZER,
    BACKEND,
    EXPORT_CHUNK,
    MAX_TAGS,
    READERS_PER_DAY,
    SLOT_BITS,
    SLOTS,
    TAG_SHARE,
    Source,
    SourceKey,
    _Day,
    _day_of,
    _grams,
    _Plan,
    _Scope,
    fts_expr,
    fts_phrase,
    index_text,
)
from hub.collectors.logs.embedded_plan import EmbeddedPlanning, _key_range
from hub.collectors.logs.embedded_write import EmbeddedWriting
from hub.collectors.logs.store import (
    TOTAL_CAP,
    Bucket,
    LogLine,
    LogQuery,
    Partition,
    SearchResult,
    bucket_bounds,
    fill_buckets,
)
from hub.collectors.logs.words import WORDS_VERSION
from hub.errors import BackendUnavailable

__all__ = [
    "BACKEND",
    "EXPORT_CHUNK",
    "MAX_TAGS",
    "READERS_PER_DAY",
    "SLOTS",
    "SLOT_BITS",
    "TAG_SHARE",
    "WORDS_VERSION",
    "EmbeddedLogStore",
    "Source",
    "SourceKey",
    "fts_expr",
    "fts_phrase",
    "index_text",
    "log",
]


log = logging.getLogger("kubehub.logs.embedded")


class EmbeddedLogStore(EmbeddedWriting, EmbeddedPlanning):
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
                columns = {row[1] for row in self._catalog.execute("PRAGMA table_info(sources)")}
            if "cluster" not in columns:
                self._catalog.execute("BEGIN IMMEDIATE")
                for stmt in _CATALOG_ADD_CLUSTER:
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
        # The cluster labels the sources of each namespace carry; a query whose clusters cover
        # them all (a single-cluster hub's every query) takes the namespace's sources unfiltered.
        self._ns_clusters: dict[str, frozenset[str]] = {}
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
            "SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid, cluster "
            "FROM sources ORDER BY id"
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
        self._ns_clusters[src.namespace] = self._ns_clusters.get(src.namespace, frozenset()) | {src.cluster}
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
            cluster=src.cluster,
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
