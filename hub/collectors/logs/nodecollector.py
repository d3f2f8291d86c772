"""``kubehub collect-node``: the per-node log collector (a DaemonSet), its loop and its sinks.

Why it exists: the API poller (:mod:`hub.collectors.logs.shipper`) asks the API server for every
container's log every few seconds, about 2,000 requests/s at 20,000 containers, and cannot read
what the kubelet rotated away or deleted between two polls. This collector reads the kubelet's
files on its own node (:mod:`hub.collectors.logs.nodetail`) and makes no API request at all.

The loop (one thread): discover files every ``discover_interval``; read new lines while the
in-memory buffer has room (``max_buffer_bytes``: when the sink is down the buffer fills and
reading stops, the kubelet's files keep the lines: **backpressure** with bounded memory); send
the oldest records in batches; after a batch is acknowledged, mark its records done and write
positions (at most every ``commit_interval``). A failed batch is retried, the same batch, with
back-off from 0.5 s doubling to 30 s, so a record is never acknowledged without being stored.

Sinks: :class:`HubSink` posts to the hub's ``POST /api/v1/logs/ingest`` with a collector token
(the hub adds workload and namespace UID from its watch cache); :class:`StoreSink` writes
straight into a log store (Elasticsearch), labelling workloads from pod names.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hub.collectors.logs.nodecri import ContainerRef, Record, to_log_record
from hub.collectors.logs.nodetail import Followed, NodeTail, PositionStore
from hub.collectors.logs.nodewire import MAX_INGEST_BYTES, encode_record
from hub.collectors.logs.store import LogStore
from hub.errors import BackendUnavailable, HubError

log = logging.getLogger("kubehub.collector")

Item = tuple[ContainerRef, str, Record]  # whose, file identity, record


class Sink(Protocol):
    name: str

    def deliver(self, node: str, batch: Sequence[Item]) -> None:
        """Store the batch or raise (BackendUnavailable, HubError); a retry sends the same batch."""
        ...


class HubSink:
    """The hub's ingest endpoint (stdlib HTTP: one small JSON POST per batch)."""

    name = "kubehub ingest"

    def __init__(self, url: str, token: str, *, timeout: float = 10.0, cluster: str = "") -> None:
        self.url = url.rstrip("/") + "/api/v1/logs/ingest"
        self.token = token
        self.timeout = timeout
        self.cluster = cluster  # "": the hub's implicit cluster

    def deliver(self, node: str, batch: Sequence[Item]) -> None:
        doc: dict[str, Any] = {"node": node, "records": [encode_record(ref, fid, rec) for ref, fid, rec in batch]}
        if self.cluster:
            doc["cluster"] = self.cluster
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise BackendUnavailable(self.name, f"HTTP {exc.code}: {detail}") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise BackendUnavailable(self.name, str(exc)) from exc


class StoreSink:
    """A log store written directly (Elasticsearch), without the hub in between."""

    def __init__(self, store: LogStore, *, cluster: str = "") -> None:
        self.store = store
        self.name = store.name
        self.cluster = cluster  # "": read as the hub's implicit cluster

    def deliver(self, node: str, batch: Sequence[Item]) -> None:
        self.store.write([to_log_record(ref, fid, rec, node=node, cluster=self.cluster) for ref, fid, rec in batch])


@dataclass(frozen=True)
class CollectorStatus:
    records_read: int
    records_shipped: int
    batches_failed: int
    buffered: int
    buffered_bytes: int
    files: int
    lost_files: int
    down_since: float | None


class NodeCollector:
    def __init__(
        self,
        tail: NodeTail,
        sink: Sink,
        node: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        batch_records: int = 1000,
        batch_bytes: int = MAX_INGEST_BYTES // 2,
        batch_wait: float = 0.2,
        max_buffer_bytes: int = 16 * 1024 * 1024,
        poll_interval: float = 0.25,
        discover_interval: float = 2.0,
        commit_interval: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        self.tail, self.sink, self.node, self.clock = tail, sink, node, clock
        self.batch_records, self.batch_bytes, self.batch_wait = batch_records, batch_bytes, batch_wait
        self.max_buffer_bytes = max_buffer_bytes
        self.poll_interval, self.discover_interval = poll_interval, discover_interval
        self.commit_interval, self.backoff_max = commit_interval, backoff_max
        self.buffer: deque[tuple[Followed, Record, float]] = deque()
        self.buffered_bytes = 0
        self.read = self.shipped = self.failed = 0
        self._next_discover = 0.0
        self._next_send = 0.0
        self._backoff = 0.0
        self._last_commit = 0.0
        self._dirty = False
        self.down_since: float | None = None

    @staticmethod
    def _size(rec: Record) -> int:
        return len(rec.message) * 2 + 200  # characters may be up to 4 bytes; records are small on average

    def _emit(self, f: Followed, rec: Record) -> None:
        self.buffer.append((f, rec, self.clock()))
        self.buffered_bytes += self._size(rec)
        self.tail.sent(f, rec)
        self.read += 1

    def step(self) -> bool:
        """One round: discover, read, send, commit. Returns whether anything was read or sent."""
        now = self.clock()
        if now >= self._next_discover:
            self.tail.discover(now)
            self._next_discover = now + self.discover_interval
        room = self.max_buffer_bytes - self.buffered_bytes
        used = self.tail.poll(now, self._emit, room) if room > 0 else 0
        sent = False
        if self.buffer and now >= self._next_send:
            full = len(self.buffer) >= self.batch_records or self.buffered_bytes >= self.batch_bytes
            if full or now - self.buffer[0][2] >= self.batch_wait:
                sent = self._send(now)
        if self._dirty and now - self._last_commit >= self.commit_interval:
            self.commit()
        return bool(used) or sent

    def _send(self, now: float) -> bool:
        batch: list[tuple[Followed, Record, float]] = []
        size = 0
        for item in self.buffer:
            if len(batch) >= self.batch_records or (batch and size + self._size(item[1]) > self.batch_bytes):
                break
            batch.append(item)
            size += self._size(item[1])
        try:
            self.sink.deliver(self.node, [(f.ref, f.ident, rec) for f, rec, _ in batch])
        except HubError as exc:
            self.failed += 1
            self._backoff = min(self.backoff_max, self._backoff * 2 if self._backoff else 0.5)
            self._next_send = now + self._backoff
            if self.down_since is None:
                self.down_since = now
                log.warning("%s; holding %d records, retrying with back-off", exc.message, len(self.buffer))
            return False
        if self.down_since is not None:
            log.info("%s is back after %.1f s", self.sink.name, now - self.down_since)
        self.down_since = None
        self._backoff = 0.0
        for f, rec, _ in batch:
            self.buffer.popleft()
            self.buffered_bytes -= self._size(rec)
            self.tail.acked(f, rec)
        self.shipped += len(batch)
        self._dirty = True
        return True

    def commit(self) -> None:
        self.tail.save_positions()
        self._last_commit = self.clock()
        self._dirty = False

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            busy = self.step()
            if not busy:
                stop.wait(self.poll_interval)
        # Shutting down: send what can be sent once, then write positions (unsent records are
        # not in them, so the next start reads them again).
        if self.buffer and self.down_since is None:
            self._send(self.clock())
        self.commit()
        self.tail.close()

    def status(self) -> CollectorStatus:
        return CollectorStatus(
            self.read,
            self.shipped,
            self.failed,
            len(self.buffer),
            self.buffered_bytes,
            len(self.tail.files),
            self.tail.lost_files,
            self.down_since,
        )


# -- the command -------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default="/var/log/pods", help="the kubelet's pod log directory (default /var/log/pods)")
    p.add_argument(
        "--state-dir",
        default="/var/lib/kubehub-collector",
        help="where positions.json is kept (a hostPath, so positions survive the pod)",
    )
    p.add_argument("--node", default=os.environ.get("NODE_NAME", ""), help="this node's name (default $NODE_NAME)")
    p.add_argument(
        "--cluster",
        default=os.environ.get("KUBEHUB_CLUSTER", ""),
        help="the name the hub knows this node's cluster by (default $KUBEHUB_CLUSTER; none: the hub's implicit "
        "cluster); every line is labelled with it",
    )
    p.add_argument("--hub-url", default=os.environ.get("KUBEHUB_URL", ""), help="ship to this hub's ingest endpoint")
    p.add_argument(
        "--token-file",
        default=os.environ.get("KUBEHUB_COLLECTOR_TOKEN_FILE", ""),
        help="file holding the collector token (else $KUBEHUB_COLLECTOR_TOKEN)",
    )
    p.add_argument("--elasticsearch-url", default="", help="ship straight to Elasticsearch instead of the hub")
    p.add_argument(
        "--index-prefix", default="kubehub-logs", help="Elasticsearch index prefix (with --elasticsearch-url)"
    )
    p.add_argument("--flush-after", type=float, default=2.0, help="seconds a multi-line record waits for its next line")
    p.add_argument("--max-record-bytes", type=int, default=64 * 1024, help="largest record; longer ones are cut")
    p.add_argument("--poll-interval", type=float, default=0.25, help="seconds between reads when idle")
    p.add_argument("--discover-interval", type=float, default=2.0, help="seconds between directory walks")
    p.add_argument("--batch-wait", type=float, default=0.2, help="seconds a record may wait for others to fill a batch")


def collector_token(args: argparse.Namespace) -> str:
    """The token the collector shows the hub: ``--token-file``'s content, else $KUBEHUB_COLLECTOR_TOKEN."""
    if args.token_file:
        return Path(args.token_file).read_text().strip()
    return os.environ.get("KUBEHUB_COLLECTOR_TOKEN", "")


def build_from_args(args: argparse.Namespace) -> NodeCollector:
    if not args.node:
        raise HubError("--node (or $NODE_NAME, from the downward API's spec.nodeName) is required")
    sink: Sink
    if args.elasticsearch_url:
        from hub.collectors.logs.elasticsearch import ElasticsearchLogStore

        sink = StoreSink(
            ElasticsearchLogStore(args.elasticsearch_url, index_prefix=args.index_prefix), cluster=args.cluster
        )
    elif args.hub_url:
        token = collector_token(args)
        if not token:
            raise HubError("a collector token is required: --token-file or $KUBEHUB_COLLECTOR_TOKEN")
        sink = HubSink(args.hub_url, token, cluster=args.cluster)
    else:
        raise HubError("say where to ship: --hub-url (with a collector token) or --elasticsearch-url")
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    tail = NodeTail(
        Path(args.root),
        PositionStore(state / "positions.json"),
        max_record_bytes=args.max_record_bytes,
        flush_after=args.flush_after,
    )
    return NodeCollector(
        tail,
        sink,
        args.node,
        poll_interval=args.poll_interval,
        discover_interval=args.discover_interval,
        batch_wait=args.batch_wait,
    )
