"""Pulls container logs through the Kubernetes API into a log store, losing and repeating nothing.

How a line travels: the poller reads each followed container's log since its saved position
(``timestamps=true`` so every line carries the kubelet's nanosecond time), keeps the lines past
the position, and in ONE SQLite transaction appends them to the spool and moves the position.
The deliverer writes spooled batches to the store and deletes them only after the store said
yes. So:

- a crash before that transaction re-reads the same lines next time (the position did not move);
- a crash after the store's write but before the spool's delete re-sends a batch, and the store
  skips lines it already holds (each line's uid is pod UID / container / time / ordinal);
- a store outage only grows the spool; when it holds ``spool_max_lines`` the poller stops
  reading (backpressure) and the kubelet keeps the lines until it resumes.

A position is (last timestamp, how many lines carried exactly that timestamp), because
``sinceTime`` has one-second precision and several lines may share a timestamp. Pods that
appear are followed from the start of their log; positions of pods gone for a day are forgotten.

The shipper knows nothing of the ``kubernetes`` package: it reads through :class:`PodSource`,
which the runtime adapts from the cluster service.

Over 400 lines because following a container is one state machine (positions, restarts,
rotations, the spool and its backpressure) whose parts share the same per-container record.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hub.collectors.logs.collection import EVERYTHING, CollectionRules
from hub.collectors.logs.store import LogRecord, parse_rfc3339_ns
from hub.errors import BackendUnavailable, HubError
from hub.timeutil import Clock, SystemClock

log = logging.getLogger("kubehub.logs.shipper")

POSITION_TTL = 86_400.0  # seconds a vanished container's position is kept (it may come back)
DELIVER_BATCH = 5_000  # lines per store write: large enough for bulk speed, small enough to retry
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class ContainerRef:
    name: str
    restarts: int = 0


@dataclass(frozen=True)
class PodRef:
    """What the shipper needs to know about a pod to follow and label its containers' logs.

    ``namespace_uid`` is the UID of the pod's namespace: every line is stamped with it, so a
    namespace deleted and created again under the same name never shows its predecessor's
    lines, while its own lines show whatever their time (see ``LogQuery.namespace_uids``).
    """

    namespace: str
    name: str
    uid: str
    node: str = ""
    workload: str = ""
    containers: tuple[ContainerRef, ...] = ()
    namespace_uid: str = ""


class PodSource(Protocol):
    """The shipper's window on the cluster (implemented by the runtime over the cluster service)."""

    def list_pods(self, namespaces: Sequence[str] | None) -> list[PodRef]:
        """Pods of these namespaces (None: every namespace)."""
        ...

    def read_log(
        self, *, namespace: str, pod: str, container: str, since_time: float | None, previous: bool = False
    ) -> str:
        """The container's log with RFC 3339 timestamps (``timestamps=true``), from ``since_time``
        (epoch seconds; may be rounded down) or from the start. NotFound when there is none."""
        ...


@dataclass(frozen=True)
class Position:
    last_ns: int
    seen: int  # lines already shipped whose timestamp is exactly last_ns
    restarts: int


@dataclass(frozen=True)
class ShipperStatus:
    followed: int
    spooled_lines: int
    paused: bool
    last_error: str
    delivered: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "followed_containers": self.followed,
            "spooled_lines": self.spooled_lines,
            "paused_for_backpressure": self.paused,
            "last_error": self.last_error,
            "delivered_lines": self.delivered,
        }


def parse_lines(
    text: str,
    position: Position | None,
    *,
    pod: PodRef,
    container: str,
) -> tuple[list[LogRecord], Position | None]:
    """The lines of ``text`` past ``position``, and the position after them."""
    last = position.last_ns if position else -1
    seen = position.seen if position else 0
    skip = seen  # lines at exactly ``last`` that were shipped before
    restarts = position.restarts if position else 0
    out: list[LogRecord] = []
    current = last
    for raw in text.split("\n"):
        if not raw:
            continue
        stamp, _, message = raw.partition(" ")
        ns = parse_rfc3339_ns(stamp)
        if ns is None:
            # Not a timestamped line (should not happen with timestamps=true): keep it with the
            # time of the line before, so nothing is dropped silently.
            if current < 0:
                continue
            ns, message = current, raw
        if message.endswith("\r"):
            message = message[:-1]
        if ns < last:
            continue
        if ns == last:
            if skip > 0:
                skip -= 1
                continue
            ordinal = seen
            seen += 1
        else:
            last, seen, skip, ordinal = ns, 1, 0, 0
        current = ns
        out.append(
            LogRecord(
                time=ns / 1e9,
                namespace=pod.namespace,
                pod=pod.name,
                container=container,
                message=message,
                workload=pod.workload,
                node=pod.node,
                pod_uid=pod.uid,
                uid=f"{pod.uid}/{container}/{ns}/{ordinal}",
                namespace_uid=pod.namespace_uid,
            )
        )
    if last < 0:
        return out, position
    return out, Position(last_ns=last, seen=seen, restarts=restarts)


def _encode(records: Sequence[LogRecord]) -> str:
    return json.dumps(
        [
            [r.time, r.namespace, r.pod, r.container, r.message, r.workload, r.node, r.pod_uid, r.uid, r.namespace_uid]
            for r in records
        ],
        ensure_ascii=False,
    )


def _decode(payload: str) -> list[LogRecord]:
    # Rows spooled before lines carried their namespace's UID have nine fields: they are
    # delivered without one (and judged by the time floor).
    return [
        LogRecord(
            time=t,
            namespace=ns,
            pod=p,
            container=c,
            message=m,
            workload=w,
            node=n,
            pod_uid=pu,
            uid=u,
            namespace_uid=str(rest[0]) if rest else "",
        )
        for t, ns, p, c, m, w, n, pu, u, *rest in json.loads(payload)
    ]


class Shipper:
    def __init__(
        self,
        *,
        source: PodSource,
        sink: Callable[[Sequence[LogRecord]], int],
        directory: str | Path,
        namespaces: Callable[[], Sequence[str] | None] = lambda: None,
        rules: Callable[[], CollectionRules] = lambda: EVERYTHING,
        interval: float = 10.0,
        spool_max_lines: int = 500_000,
        clock: Clock | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.namespaces = namespaces
        self.rules = rules  # per-project collection settings (collection.py), read every poll
        self.interval = interval
        self.spool_max_lines = spool_max_lines
        self.clock = clock or SystemClock()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path / "shipper.sqlite3"), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # the spool is the only copy of a line once read
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS positions (key TEXT PRIMARY KEY, last_ns INTEGER NOT NULL, "
            "seen INTEGER NOT NULL, restarts INTEGER NOT NULL, touched REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, lines INTEGER NOT NULL, "
            "payload TEXT NOT NULL)"
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.paused = False
        self.last_error = ""
        self.delivered = 0
        self.followed = 0

    # -- state ------------------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        with self._lock:
            rows = self._db.execute("SELECT key, last_ns, seen, restarts FROM positions").fetchall()
        return {k: Position(last_ns=a, seen=b, restarts=c) for k, a, b, c in rows}

    def spooled_lines(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT coalesce(sum(lines), 0) FROM spool").fetchone()
        return int(row[0])

    def status(self) -> ShipperStatus:
        return ShipperStatus(
            followed=self.followed,
            spooled_lines=self.spooled_lines(),
            paused=self.paused,
            last_error=self.last_error,
            delivered=self.delivered,
        )

    # -- reading ----------------------------------------------------------------------------------
    def poll_once(self) -> int:
        """Read every followed container once; returns the number of lines spooled."""
        spooled = self.spooled_lines()
        if spooled >= self.spool_max_lines:
            self.paused = True
            return 0
        self.paused = False
        try:
            pods = self.source.list_pods(self.namespaces())
        except HubError as exc:
            self.last_error = f"listing pods: {exc.message}"
            log.warning("log shipper: %s", self.last_error)
            return 0
        positions = self.positions()
        now = self.clock.now()
        rules = self.rules()
        total = 0
        followed = 0
        for pod in pods:
            for container in pod.containers:
                if not rules.admits(pod.namespace, container.name):
                    self._skip_container(pod, container, now)
                    continue
                followed += 1
                if spooled + total >= self.spool_max_lines:
                    self.paused = True
                    break
                try:
                    total += self._poll_container(pod, container, positions.get(f"{pod.uid}/{container.name}"), now)
                except BackendUnavailable as exc:
                    self.last_error = exc.message
                    log.warning("log shipper: %s", exc.message)
                    self.followed = followed
                    return total
        self.followed = followed
        with self._lock:
            self._db.execute("DELETE FROM positions WHERE touched < ?", (now - POSITION_TTL,))
        if total:
            self._wake.set()
        return total

    def _poll_container(self, pod: PodRef, container: ContainerRef, position: Position | None, now: float) -> int:
        since = position.last_ns / 1e9 if position else None
        texts: list[str] = []
        if position is not None and container.restarts > position.restarts:
            # The container restarted since the last read: finish its previous instance first.
            texts.append(self._read(pod, container.name, since, previous=True))
        texts.append(self._read(pod, container.name, since, previous=False))
        records, moved = parse_lines("\n".join(t for t in texts if t), position, pod=pod, container=container.name)
        if moved is not None:
            moved = Position(last_ns=moved.last_ns, seen=moved.seen, restarts=container.restarts)
        key = f"{pod.uid}/{container.name}"
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i in range(0, len(records), DELIVER_BATCH):
                    chunk = records[i : i + DELIVER_BATCH]
                    self._db.execute("INSERT INTO spool(lines, payload) VALUES (?, ?)", (len(chunk), _encode(chunk)))
                if moved is not None:
                    self._db.execute(
                        "INSERT INTO positions(key, last_ns, seen, restarts, touched) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET last_ns = excluded.last_ns, seen = excluded.seen, "
                        "restarts = excluded.restarts, touched = excluded.touched",
                        (key, moved.last_ns, moved.seen, moved.restarts, now),
                    )
                elif position is not None:
                    self._db.execute("UPDATE positions SET touched = ? WHERE key = ?", (now, key))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(records)

    def _skip_container(self, pod: PodRef, container: ContainerRef, now: float) -> None:
        """A container its project does not collect: not read, and its position moved to now,
        so that collecting it again later starts from then, never with the lines logged while
        collection was off (those were not to be stored)."""
        now_ns = int(now * 1e9)
        with self._lock:
            self._db.execute(
                "INSERT INTO positions(key, last_ns, seen, restarts, touched) VALUES (?, ?, 0, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET last_ns = max(last_ns, excluded.last_ns), "
                "seen = CASE WHEN excluded.last_ns > last_ns THEN 0 ELSE seen END, "
                "restarts = excluded.restarts, touched = excluded.touched",
                (f"{pod.uid}/{container.name}", now_ns, container.restarts, now),
            )

    def _read(self, pod: PodRef, container: str, since: float | None, *, previous: bool) -> str:
        try:
            return self.source.read_log(
                namespace=pod.namespace, pod=pod.name, container=container, since_time=since, previous=previous
            )
        except BackendUnavailable:
            raise
        except HubError:
            return ""  # not found, not started yet, no previous instance: nothing to read now

    # -- delivering -------------------------------------------------------------------------------
    def deliver_once(self) -> int:
        """Write the oldest spooled batches to the store; returns lines delivered. Raises the
        store's BackendUnavailable (the spool keeps the lines)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, lines, payload FROM spool ORDER BY seq LIMIT 64").fetchall()
        if not rows:
            return 0
        batch: list[LogRecord] = []
        upto = rows[0][0]
        for seq, lines, payload in rows:
            if batch and len(batch) + lines > DELIVER_BATCH:
                break
            batch.extend(_decode(payload))
            upto = seq
        self.sink(batch)
        with self._lock:
            self._db.execute("DELETE FROM spool WHERE seq <= ?", (upto,))
        self.delivered += len(batch)
        return len(batch)

    def drain(self) -> int:
        """Deliver until the spool is empty (or the store fails)."""
        total = 0
        while True:
            n = self.deliver_once()
            if not n:
                return total
            total += n

    # -- background -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for name, target in (("log-shipper-poll", self._poll_loop), ("log-shipper-deliver", self._deliver_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads = []

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._db.close()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a bug in one cycle must not end shipping for good
                log.exception("log shipper poll failed")
            self._stop.wait(self.interval)

    def _deliver_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self.deliver_once():
                    backoff = 1.0
                    continue
            except HubError as exc:
                self.last_error = f"delivering: {exc.message}"
                log.warning("log shipper: %s; retrying in %.0fs", self.last_error, backoff)
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            except Exception:
                log.exception("log shipper delivery failed")
                self._stop.wait(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            self._wake.wait(1.0)
            self._wake.clear()
