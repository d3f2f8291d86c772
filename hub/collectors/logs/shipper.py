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

Several clusters: ``sources`` names a PodSource per followed cluster ("" is the implicit one),
read again at every round, so clusters added later are followed and removed ones dropped. Each
cluster has its own poller thread and its own state (followed, paused, last error): a cluster
whose API server is gone fails its own rounds only (its positions do not move, so it resumes
where it stopped), the others keep shipping. Positions carry their cluster (column ``cluster``,
and the key ``<cluster>/<pod uid>/<container>`` for an added cluster; the implicit cluster keeps
``<pod uid>/<container>`` so positions written before the cluster level stay valid), and every
spooled line carries its cluster's label. One spool and one deliverer serve every cluster, so a
removed cluster's lines already read are still delivered. Each spool row holds one cluster's
lines (column ``cluster``) and each store write one cluster's rows: when a write fails (that
cluster's own store is down, docs/logs.md "One store per cluster"), the background deliverer
holds that cluster back (1 s, doubling to ``MAX_BACKOFF``) and goes on delivering the others'.

Over 400 lines because following a container is one state machine (positions, restarts,
rotations, the spool and its backpressure) whose parts share the same per-container record, and
the per-cluster pollers share its one spool, positions table and deliverer.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hub.collectors.logs.collection import EVERYTHING, CollectionRules
from hub.collectors.logs.spool_rows import create_tables, decode_spooled, encode_spooled
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
    clusters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per followed cluster

    def to_dict(self) -> dict[str, Any]:
        return {
            "followed_containers": self.followed,
            "spooled_lines": self.spooled_lines,
            "paused_for_backpressure": self.paused,
            "last_error": self.last_error,
            "delivered_lines": self.delivered,
            "clusters": {name: dict(v) for name, v in self.clusters.items()},
        }


def parse_lines(
    text: str,
    position: Position | None,
    *,
    pod: PodRef,
    container: str,
    cluster: str = "",
) -> tuple[list[LogRecord], Position | None]:
    """The lines of ``text`` past ``position``, and the position after them (labelled ``cluster``)."""
    last = position.last_ns if position else -1
    seen = position.seen if position else 0
    skip = seen  # lines at exactly ``last`` that were shipped before
    restarts = position.restarts if position else 0
    # An added cluster's lines name it in their uid too: the store's once-only rule must never
    # take two clusters' lines for one (pod UIDs are unique by design, not by any check of ours).
    prefix = f"{cluster}/" if cluster else ""
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
                uid=f"{prefix}{pod.uid}/{container}/{ns}/{ordinal}",
                namespace_uid=pod.namespace_uid,
                cluster=cluster,
            )
        )
    if last < 0:
        return out, position
    return out, Position(last_ns=last, seen=seen, restarts=restarts)


@dataclass
class _ClusterState:
    """One followed cluster's poller: its thread, its stop signal and what it last saw."""

    followed: int = 0
    paused: bool = False
    last_error: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def position_key(cluster: str, pod_uid: str, container: str) -> str:
    """A position's key: the implicit cluster ("") keeps the key of single-cluster hubs."""
    return f"{cluster}/{pod_uid}/{container}" if cluster else f"{pod_uid}/{container}"


class Shipper:
    def __init__(
        self,
        *,
        source: PodSource | None = None,
        sink: Callable[[Sequence[LogRecord]], int],
        directory: str | Path,
        sources: Callable[[], Mapping[str, PodSource]] | None = None,
        namespaces: Callable[[], Sequence[str] | None] = lambda: None,
        cluster_namespaces: Callable[[str], Sequence[str] | None] | None = None,
        rules: Callable[[], CollectionRules] = lambda: EVERYTHING,
        interval: float = 10.0,
        spool_max_lines: int = 500_000,
        clock: Clock | None = None,
    ) -> None:
        """``source``: the implicit cluster's pods (a single-cluster hub); ``sources``: every
        followed cluster's, by name ("" for the implicit one), asked again at every round.
        ``cluster_namespaces(cluster)`` overrides ``namespaces`` per cluster; ``rules`` are asked
        about each container by its own cluster's project (:meth:`CollectionRules.admits_in`),
        never by a same-named project of another cluster."""
        if sources is None:
            if source is None:
                raise ValueError("a shipper needs a source or sources")
            fixed: dict[str, PodSource] = {"": source}
            sources = lambda: fixed  # noqa: E731
        self.sources = sources
        self.source = source if source is not None else sources().get("")
        self.sink = sink
        self.namespaces = namespaces
        self.cluster_namespaces = cluster_namespaces
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
        create_tables(self._db)  # positions and spool, with their schema steps
        # The spool's line count, kept beside it (changed with each commit): summed over the
        # spool on each status it was a scan of every batch (4,204 of them, 117 MB, at 20,000
        # containers), twice per /components view and once per poll round.
        self._spooled = int(self._db.execute("SELECT coalesce(sum(lines), 0) FROM spool").fetchone()[0])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clusters: dict[str, _ClusterState] = {}
        self._deliver_error = ""
        self._held: dict[str, tuple[float, float]] = {}  # cluster -> (held until, monotonic; backoff)
        self.delivered = 0

    def _state(self, cluster: str) -> _ClusterState:
        state = self._clusters.get(cluster)
        if state is None:
            state = self._clusters.setdefault(cluster, _ClusterState())
        return state

    # Totals over the followed clusters (what /readyz and the stores page showed before clusters).
    @property
    def followed(self) -> int:
        return sum(s.followed for s in list(self._clusters.values()))

    @property
    def paused(self) -> bool:
        return any(s.paused for s in list(self._clusters.values()))

    @property
    def last_error(self) -> str:
        errors = [
            f"{c}: {s.last_error}" if c else s.last_error for c, s in sorted(self._clusters.items()) if s.last_error
        ]
        if self._deliver_error:
            errors.append(self._deliver_error)
        return "; ".join(errors)

    def cluster_status(self) -> dict[str, dict[str, Any]]:
        """Each followed cluster's poller ("" is the implicit cluster)."""
        return {
            c: {"followed_containers": s.followed, "paused_for_backpressure": s.paused, "last_error": s.last_error}
            for c, s in sorted(self._clusters.items())
        }

    # -- state ------------------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        with self._lock:
            rows = self._db.execute("SELECT key, last_ns, seen, restarts FROM positions").fetchall()
        return {k: Position(last_ns=a, seen=b, restarts=c) for k, a, b, c in rows}

    def spooled_lines(self) -> int:
        return self._spooled

    def status(self) -> ShipperStatus:
        return ShipperStatus(
            followed=self.followed,
            spooled_lines=self.spooled_lines(),
            paused=self.paused,
            last_error=self.last_error,
            delivered=self.delivered,
            clusters=self.cluster_status(),
        )

    # -- reading ----------------------------------------------------------------------------------
    def poll_once(self, cluster: str | None = None) -> int:
        """Read every followed container of ``cluster`` once (None: of every followed cluster, one
        after the other); returns the number of lines spooled."""
        if cluster is None:
            return sum(self.poll_once(name) for name in sorted(self.sources()))
        source = self.sources().get(cluster)
        if source is None:
            return 0  # no longer followed (removed, or now served by node collectors)
        state = self._state(cluster)
        spooled = self.spooled_lines()
        if spooled >= self.spool_max_lines:
            state.paused = True
            return 0
        state.paused = False
        wanted = self.cluster_namespaces(cluster) if self.cluster_namespaces is not None else self.namespaces()
        try:
            pods = source.list_pods(wanted)
        except HubError as exc:
            state.last_error = f"listing pods: {exc.message}"
            log.warning("log shipper%s: %s", f" ({cluster})" if cluster else "", state.last_error)
            return 0
        positions = self.positions()
        now = self.clock.now()
        rules = self.rules()
        total = 0
        followed = 0
        for pod in pods:
            if state.stop.is_set() or self._stop.is_set():  # a round at 20,000 pods outlasts stop()'s wait
                state.followed = followed
                return total  # the next start goes on from the positions kept so far
            for container in pod.containers:
                if not rules.admits_in(cluster, pod.namespace, container.name):
                    self._skip_container(cluster, pod, container, now)
                    continue
                followed += 1
                if spooled + total >= self.spool_max_lines:
                    state.paused = True
                    break
                key = position_key(cluster, pod.uid, container.name)
                try:
                    total += self._poll_container(source, cluster, pod, container, positions.get(key), now)
                except BackendUnavailable as exc:
                    state.last_error = exc.message
                    log.warning("log shipper%s: %s", f" ({cluster})" if cluster else "", exc.message)
                    state.followed = followed
                    return total
        state.followed = followed
        state.last_error = ""  # a whole round went through: whatever failed before is over
        with self._lock:
            self._db.execute("DELETE FROM positions WHERE cluster = ? AND touched < ?", (cluster, now - POSITION_TTL))
        if total:
            self._wake.set()
        return total

    def _poll_container(
        self,
        source: PodSource,
        cluster: str,
        pod: PodRef,
        container: ContainerRef,
        position: Position | None,
        now: float,
    ) -> int:
        since = position.last_ns / 1e9 if position else None
        texts: list[str] = []
        if position is not None and container.restarts > position.restarts:
            # The container restarted since the last read: finish its previous instance first.
            texts.append(self._read(source, pod, container.name, since, previous=True))
        texts.append(self._read(source, pod, container.name, since, previous=False))
        records, moved = parse_lines(
            "\n".join(t for t in texts if t), position, pod=pod, container=container.name, cluster=cluster
        )
        if moved is not None:
            moved = Position(last_ns=moved.last_ns, seen=moved.seen, restarts=container.restarts)
        key = position_key(cluster, pod.uid, container.name)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for i in range(0, len(records), DELIVER_BATCH):
                    chunk = records[i : i + DELIVER_BATCH]
                    self._db.execute(
                        "INSERT INTO spool(lines, payload, cluster) VALUES (?, ?, ?)",
                        (len(chunk), encode_spooled(chunk), cluster),
                    )
                if moved is not None:
                    self._db.execute(
                        "INSERT INTO positions(key, last_ns, seen, restarts, touched, cluster) "
                        "VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET last_ns = excluded.last_ns, seen = excluded.seen, "
                        "restarts = excluded.restarts, touched = excluded.touched",
                        (key, moved.last_ns, moved.seen, moved.restarts, now, cluster),
                    )
                elif position is not None:
                    self._db.execute("UPDATE positions SET touched = ? WHERE key = ?", (now, key))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._spooled += len(records)
        return len(records)

    def _skip_container(self, cluster: str, pod: PodRef, container: ContainerRef, now: float) -> None:
        """A container its project does not collect: not read, and its position moved to now,
        so that collecting it again later starts from then, never with the lines logged while
        collection was off (those were not to be stored)."""
        now_ns = int(now * 1e9)
        with self._lock:
            self._db.execute(
                "INSERT INTO positions(key, last_ns, seen, restarts, touched, cluster) VALUES (?, ?, 0, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET last_ns = max(last_ns, excluded.last_ns), "
                "seen = CASE WHEN excluded.last_ns > last_ns THEN 0 ELSE seen END, "
                "restarts = excluded.restarts, touched = excluded.touched",
                (position_key(cluster, pod.uid, container.name), now_ns, container.restarts, now, cluster),
            )

    def _read(self, source: PodSource, pod: PodRef, container: str, since: float | None, *, previous: bool) -> str:
        try:
            return source.read_log(
                namespace=pod.namespace, pod=pod.name, container=container, since_time=since, previous=previous
            )
        except BackendUnavailable:
            raise
        except HubError:
            return ""  # not found, not started yet, no previous instance: nothing to read now

    # -- delivering -------------------------------------------------------------------------------
    def deliver_once(self, skip: Sequence[str] = ()) -> int:
        """Write the oldest spooled rows of one cluster (the oldest row's, none of ``skip``) to
        the store; returns lines delivered. Raises the store's BackendUnavailable (the spool
        keeps the lines, and the cluster is held back from the background deliverer)."""
        marks = ",".join("?" * len(skip))
        with self._lock:
            rows = self._db.execute(
                f"SELECT seq, lines, payload, cluster FROM spool WHERE cluster NOT IN ({marks}) ORDER BY seq LIMIT 64",
                tuple(skip),
            ).fetchall()
        if not rows:
            return 0
        cluster = rows[0][3]
        batch: list[LogRecord] = []
        seqs: list[int] = []
        counted = 0  # the rows' own counts, as the spool's count was raised by them
        for seq, lines, payload, row_cluster in rows:
            if row_cluster != cluster:
                continue
            if batch and len(batch) + lines > DELIVER_BATCH:
                break
            batch.extend(decode_spooled(payload))
            seqs.append(seq)
            counted += lines
        try:
            self.sink(batch)
        except HubError:
            backoff = min(MAX_BACKOFF, self._held.get(cluster, (0.0, 0.5))[1] * 2)
            self._held[cluster] = (time.monotonic() + backoff, backoff)
            raise
        self._held.pop(cluster, None)
        with self._lock:
            self._db.execute(f"DELETE FROM spool WHERE seq IN ({','.join('?' * len(seqs))})", seqs)
            self._spooled -= counted
        self.delivered += len(batch)
        if not self._held:
            self._deliver_error = ""
        return len(batch)

    def held_clusters(self) -> list[str]:
        """The clusters whose delivery waits after a failed write ("" is the implicit one)."""
        now = time.monotonic()
        return sorted(c for c, (until, _) in list(self._held.items()) if until > now)

    def _deliverable(self, skip: Sequence[str]) -> bool:
        with self._lock:
            row = self._db.execute(
                f"SELECT 1 FROM spool WHERE cluster NOT IN ({','.join('?' * len(skip))}) LIMIT 1", tuple(skip)
            ).fetchone()
        return row is not None

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
        for state in list(self._clusters.values()):
            state.stop.set()
        for state in list(self._clusters.values()):
            if state.thread is not None:
                state.thread.join(timeout=30)
                state.thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._db.close()

    def followed_clusters(self) -> list[str]:
        """The clusters a poller thread runs for now ("" is the implicit cluster)."""
        return sorted(c for c, s in list(self._clusters.items()) if s.thread is not None and s.thread.is_alive())

    def reconcile(self) -> None:
        """One poller thread per cluster of ``sources``: started for a new cluster, stopped (its
        state dropped) for one no longer there. Its spooled lines are delivered all the same."""
        try:
            wanted = set(self.sources())
        except Exception:  # the registry may be unreadable for a moment: keep what runs
            log.exception("log shipper: listing the clusters to follow failed")
            return
        for name in [c for c in self._clusters if c not in wanted]:
            # dropped from the table first, so no reader sees a cluster as gone from one view
            # (followed_clusters) and still there in the other (cluster_status)
            state = self._clusters.pop(name)
            state.stop.set()
            if state.thread is not None:
                state.thread.join(timeout=30)
                log.info("log shipper: no longer following cluster %s", name or "(implicit)")
        for name in sorted(wanted):
            state = self._state(name)
            if state.thread is None or not state.thread.is_alive():
                state.stop = threading.Event()
                state.thread = threading.Thread(
                    target=self._cluster_loop, args=(name, state.stop), name=f"log-shipper-poll-{name}", daemon=True
                )
                state.thread.start()

    def _poll_loop(self) -> None:
        """Keeps one poller per followed cluster (each polls on its own: a cluster whose API
        server hangs never delays another's reads)."""
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:
                log.exception("log shipper: following the clusters failed")
            self._stop.wait(self.interval)

    def _cluster_loop(self, cluster: str, stop: threading.Event) -> None:
        while not stop.is_set() and not self._stop.is_set():
            try:
                self.poll_once(cluster)
            except Exception:  # a bug in one cycle must not end shipping for good
                log.exception("log shipper poll failed%s", f" ({cluster})" if cluster else "")
            stop.wait(self.interval)

    def _deliver_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self.deliver_once(skip=self.held_clusters()):
                    backoff = 1.0
                    continue
            except HubError as exc:
                self._deliver_error = f"delivering: {exc.message}"
                if self._deliverable(self.held_clusters()):
                    continue  # another cluster's lines go on while this one's store is held back
                log.warning("log shipper: %s; retrying in %.0fs", self._deliver_error, backoff)
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
