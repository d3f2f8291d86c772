"""The node collector on real files in a temporary /var/log/pods, written and rotated the way the
kubelet does it (sandbox/crilogs.py), delivering into an in-memory sink through the collector's
own ``Sink`` interface. The oracle is the writer's record of what it wrote.

The same scenarios run against the real hub and Elasticsearch in
tests/integration/test_node_collector.py; here each one is driven step by step with a clock the
test moves, so every interleaving is the same on every run.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from hub.collectors.logs.nodecollector import Item, NodeCollector
from hub.collectors.logs.nodecri import to_log_record
from hub.collectors.logs.nodetail import NodeTail, PositionStore
from hub.errors import BackendUnavailable
from sandbox.crilogs import ContainerLog, Oracle, compare, delete_pod, sample_record

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class MemorySink:
    """Stores by record identity, as both stores do; can be switched off (an outage)."""

    name = "memory"

    def __init__(self) -> None:
        self.stored: dict[str, tuple[str, str]] = {}
        self.deliveries = 0
        self.down = False

    def deliver(self, node: str, batch: Sequence[Item]) -> None:
        if self.down:
            raise BackendUnavailable(self.name, "down for the test")
        self.deliveries += 1
        for ref, fid, rec in batch:
            r = to_log_record(ref, fid, rec, node=node)
            self.stored.setdefault(r.uid, (f"{r.namespace}/{r.pod}/{r.container}", r.message))

    def lines(self) -> list[tuple[str, str]]:
        return list(self.stored.values())


class World:
    def __init__(self, tmp: Path, *, max_size: int = 4000, max_files: int = 4) -> None:
        self.root = tmp / "pods"
        self.state = tmp / "state"
        self.state.mkdir()
        self.clock = Clock()
        self.oracle = Oracle()
        self.sink = MemorySink()
        self.n = 0
        self.logs = {
            name: ContainerLog(
                self.root,
                "shop",
                name,
                f"uid-{name}",
                "app",
                max_size=max_size,
                max_files=max_files,
                oracle=self.oracle,
            )
            for name in ("api-7d9f8c6b5-aaaaa", "api-7d9f8c6b5-bbbbb", "db-0")
        }
        self.collector = self.start()

    def start(self, **kw: int) -> NodeCollector:
        tail = NodeTail(self.root, PositionStore(self.state / "positions.json"), rotate_wait=2.0, flush_after=1.0)
        return NodeCollector(
            tail, self.sink, "node-1", clock=self.clock, discover_interval=0.5, commit_interval=0.0, **kw
        )

    def write(self, count: int, pods: Sequence[str] | None = None) -> None:
        for _ in range(count):
            for pod in pods or list(self.logs):
                stream, message = sample_record(self.n)
                if self.n % 50 == 33:
                    message = message[:3000]  # keep long lines below the small test files' size
                self.logs[pod].write(message, stream=stream)
                self.n += 1

    def run(self, seconds: float = 5.0, step: float = 0.25) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.collector.step()
            self.clock.t += step

    def result(self) -> tuple[int, int, int]:
        return compare(self.oracle, self.sink.lines())


def test_every_record_is_read_once_across_rotations(tmp_path: Path) -> None:
    w = World(tmp_path)
    for _ in range(10):
        w.write(8)
        w.run(1.0)
    w.run(5)
    assert list(w.root.rglob("*.gz")), "the files must have rotated and been compressed"
    assert w.result() == (0, 0, 0)


def test_files_rotated_and_compressed_while_the_collector_was_down_are_read_from_the_gz(tmp_path: Path) -> None:
    w = World(tmp_path, max_files=5)
    w.write(5)
    w.run(2)
    w.collector.commit()
    w.collector.tail.close()  # the collector stops
    w.write(100)  # several rotations: the file it was reading is renamed, then compressed
    pod_dir = next(w.root.glob("shop_db-0_*")) / "app"
    assert any(n.endswith(".gz") for n in os.listdir(pod_dir))
    w.collector = w.start()
    w.run(6)
    assert w.collector.tail.lost_files == 0
    assert w.result() == (0, 0, 0)


def test_a_deleted_pods_last_lines_are_read_before_it_is_forgotten(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.write(3)
    w.run(1)
    pod = "api-7d9f8c6b5-aaaaa"
    w.write(4, pods=[pod])  # written, then the pod is deleted before the collector read them
    w.logs[pod].close()
    delete_pod(w.root, "shop", pod, f"uid-{pod}")
    w.run(4)
    assert w.result() == (0, 0, 0)
    assert not any(pod in f.path.as_posix() for f in w.collector.tail.files.values()), "forgotten once read"


def test_a_restart_with_a_trace_held_on_one_stream_neither_loses_nor_repeats(tmp_path: Path) -> None:
    w = World(tmp_path, max_size=10**6)
    log = w.logs["db-0"]
    log.write("java.lang.IllegalStateException: boom", stream="stderr")
    log.write("\tat a.B.c(B.java:1)", stream="stderr")
    log.write("stdout line 1", stream="stdout")
    log.write("stdout line 2", stream="stdout")
    w.collector.step()  # stdout lines become records; the trace waits for its next line
    w.collector.step()
    w.collector.commit()
    w.collector.tail.close()  # killed: the trace was never sent
    log.write("\tat a.B.d(B.java:2)", stream="stderr")
    log.write("stdout line 3", stream="stdout")
    w.collector = w.start()
    w.run(4)
    got = sorted(m for k, m in w.sink.lines() if k.endswith("db-0/app"))
    assert got == sorted(
        [
            "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)",
            "stdout line 1",
            "stdout line 2",
            "stdout line 3",
        ]
    )
    # The oracle wrote them as separate calls; the trace's three lines are one record.
    assert len(w.sink.stored) == 4


def test_an_outage_stops_reading_at_the_buffer_bound_and_delivers_everything_after(tmp_path: Path) -> None:
    w = World(tmp_path, max_size=10**7)
    w.collector = w.start(max_buffer_bytes=20_000)
    w.sink.down = True
    w.write(200)
    w.run(10)
    assert w.collector.buffered_bytes <= 20_000 + 70_000  # one read's worth past the bound at most
    assert w.collector.read < 600, "reading must stop while the sink is down"
    w.sink.down = False
    w.run(60)
    assert w.result() == (0, 0, 0)
    assert w.collector.status().down_since is None


def test_a_reused_inode_is_not_mistaken_for_the_file_a_position_was_about(tmp_path: Path) -> None:
    w = World(tmp_path, max_size=10**6)
    w.write(5)
    w.run(2)
    w.collector.commit()
    w.collector.tail.close()
    # The file is replaced by another with the same name (a new inode, or a reused one): the
    # fingerprint of its first bytes tells them apart; it is read from its start.
    pod_dir = next(w.root.glob("shop_db-0_*")) / "app"
    old = pod_dir / "0.log"
    data = old.read_bytes()
    old.unlink()
    with open(old, "wb") as fh:
        fh.write(data.replace(b"GET", b"PUT"))
    w.oracle.records["shop/db-0/app"] = [m.replace("GET", "PUT") for m in w.oracle.records["shop/db-0/app"]]
    w.collector = w.start()
    w.run(3)
    stored = {m for k, m in w.sink.lines() if k == "shop/db-0/app"}
    assert set(w.oracle.records["shop/db-0/app"]) <= stored


def test_positions_are_written_atomically_and_read_back(tmp_path: Path) -> None:
    store = PositionStore(tmp_path / "positions.json")
    store.save({"1:2": {"path": "a/b/0.log", "offset": 10, "skip": {}, "head": ""}}, {"1:3"})
    again = PositionStore(tmp_path / "positions.json")
    assert again.files == {"1:2": {"path": "a/b/0.log", "offset": 10, "skip": {}, "head": ""}}
    assert again.gz_done == {"1:3"}
    assert not (tmp_path / "positions.json.tmp").exists()
    (tmp_path / "positions.json").write_text("{broken")
    assert PositionStore(tmp_path / "positions.json").files == {}  # starts over rather than crash


def test_the_writer_rotates_like_the_kubelet(tmp_path: Path) -> None:
    log = ContainerLog(tmp_path, "ns", "p", "u", "c", max_size=200, max_files=4)
    for i in range(40):
        log.write(f"line {i}")
    names = sorted(os.listdir(tmp_path / "ns_p_u" / "c"))
    rotated = [n for n in names if n != "0.log"]
    # max_files in all: the live file, the newest rotated one (plain, the runtime may still be
    # writing it) and max_files - 2 older ones, compressed
    assert "0.log" in names and len(rotated) == 3
    assert rotated[0].endswith(".gz") and rotated[1].endswith(".gz") and not rotated[2].endswith(".gz")
    with gzip.open(tmp_path / "ns_p_u" / "c" / rotated[0]) as gz:
        assert gz.read().startswith(b"20")
