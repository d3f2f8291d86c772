"""The embedded log store's write path: a part of
:class:`~hub.collectors.logs.embedded.EmbeddedLogStore` (a mixin; the store holds the catalog,
the day files and their locks). Sources (namespace, pod, container, ...) are resolved to ids in
the catalog once; each line gets a key (microsecond time plus a slot) unique in its day file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from hub.collectors.logs.embedded_base import (
    BACKEND,
    SLOT_BITS,
    SLOTS,
    Source,
    SourceKey,
    _Day,
    _day_of,
    index_text,
)
from hub.collectors.logs.store import (
    MAX_MESSAGE_CHARS,
    LogRecord,
    strip_ansi,
    uid_hash,
)
from hub.errors import BackendUnavailable


class EmbeddedWriting:
    """The write path: sources resolved in the catalog, lines keyed and written per day file."""

    if TYPE_CHECKING:  # provided by EmbeddedLogStore (hub/collectors/logs/embedded.py)
        _by_key: dict[SourceKey, int]
        _catalog: sqlite3.Connection
        _catalog_lock: threading.Lock

        def _day(self, name: str) -> _Day: ...

        _ns_first: dict[str, float]
        _ns_ids: dict[str, int]

        def _remember(self, src: Source) -> None: ...

        _sources: dict[int, Source]
        _write_lock: threading.Lock
        _days: dict[str, _Day]
        _days_lock: threading.Lock
        _by_ns: dict[str, list[int]]

        def _writer(self, day: _Day) -> sqlite3.Connection: ...

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
            key = (
                rec.namespace,
                rec.pod,
                rec.container,
                rec.pod_uid,
                rec.workload,
                rec.node,
                rec.namespace_uid,
                rec.cluster,
            )
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
                        "INSERT INTO sources(ns, pod, container, pod_uid, workload, node, ns_uid, cluster, "
                        "first_t, last_t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    Source(
                        src_id,
                        key[0],
                        self._ns_ids[key[0]],
                        key[4],
                        key[1],
                        key[2],
                        key[5],
                        key[3],
                        lo,
                        hi,
                        key[6],
                        key[7],
                    )
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

    def drop_namespace_before(self, namespace: str, day: str, *, clusters: tuple[str, ...] | None = None) -> int:
        """A project's own retention: delete its lines from the day files before ``day`` (the
        platform's retention drops whole files; these keep the other projects' lines). The
        full-text index is contentless, so each of its rows is removed with FTS5's ``delete``
        command and the text it was indexed with (rebuilt from the stored message, as written).
        ``clusters``: only the sources of these cluster labels (each source has one)."""
        sources = [
            s for s in self._by_ns.get(namespace, ()) if clusters is None or self._sources[s].cluster in clusters
        ]
        if not sources:
            return 0
        removed = 0
        with self._write_lock:
            with self._days_lock:
                days = sorted((d for d in self._days.values() if d.day < day and not d.dropped), key=lambda d: d.day)
            for d in days:
                present = [s for s in sources if d.stats.get(s)]
                if not present:
                    continue
                wanted = json.dumps(present)
                conn = self._writer(d)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    rows = conn.execute(
                        "SELECT id, src, message FROM logs WHERE src IN (SELECT value FROM json_each(?))", (wanted,)
                    ).fetchall()
                    conn.executemany(
                        "INSERT INTO logs_fts(logs_fts, rowid, body, tag) VALUES ('delete', ?, ?, ?)",
                        [(i, index_text(m), f"n{self._sources[s].ns_id} s{s}") for i, s, m in rows],
                    )
                    conn.execute("DELETE FROM logs WHERE src IN (SELECT value FROM json_each(?))", (wanted,))
                    conn.execute("DELETE FROM stats WHERE src IN (SELECT value FROM json_each(?))", (wanted,))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                d.lines -= sum(d.stats.get(s, 0) for s in present)
                d.stats = {s: n for s, n in d.stats.items() if s not in present}
                removed += len(rows)
        return removed

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
