"""The shipper against a fake cluster implementing our own PodSource protocol, into a real
embedded store: restarts lose and repeat nothing, outages spool, a full spool pauses reading."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.shipper import ContainerRef, PodRef, Position, Shipper, parse_lines
from hub.collectors.logs.store import LogQuery, LogRecord
from hub.errors import BackendUnavailable, NotFound
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit

T0 = 1_795_305_600 * 1_000_000_000  # 2026-11-22T00:00:00Z in ns


def stamp(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


@dataclass
class FakeCluster:
    """Pods and their container logs as a kubelet would serve them (sinceTime in whole seconds)."""

    pods: dict[str, PodRef] = field(default_factory=dict)
    logs: dict[tuple[str, str, int], list[tuple[int, str]]] = field(default_factory=dict)
    down: bool = False
    reads: int = 0
    fail_on_read: int | None = None
    listed: list[Sequence[str] | None] = field(default_factory=list)

    def add_pod(self, namespace: str, name: str, *containers: str, workload: str = "web", node: str = "n1") -> PodRef:
        pod = PodRef(
            namespace=namespace,
            name=name,
            uid=f"uid-{namespace}-{name}",
            node=node,
            workload=workload,
            containers=tuple(ContainerRef(c) for c in containers),
        )
        self.pods[pod.uid] = pod
        return pod

    def remove_pod(self, pod: PodRef) -> None:
        del self.pods[pod.uid]

    def restart(self, pod: PodRef, container: str) -> PodRef:
        cur = self.pods[pod.uid]
        new = replace(
            cur,
            containers=tuple(
                ContainerRef(c.name, c.restarts + 1) if c.name == container else c for c in cur.containers
            ),
        )
        self.pods[pod.uid] = new
        return new

    def emit(self, pod: PodRef, container: str, ns: int, message: str) -> None:
        restarts = next(c.restarts for c in self.pods[pod.uid].containers if c.name == container)
        self.logs.setdefault((pod.uid, container, restarts), []).append((ns, message))

    # -- PodSource ----------------------------------------------------------------------------
    def list_pods(self, namespaces: Sequence[str] | None) -> list[PodRef]:
        self.listed.append(namespaces)
        if self.down:
            raise BackendUnavailable("kubernetes API server", "connection refused")
        return [p for p in self.pods.values() if namespaces is None or p.namespace in namespaces]

    def read_log(
        self, *, namespace: str, pod: str, container: str, since_time: float | None, previous: bool = False
    ) -> str:
        self.reads += 1
        if self.fail_on_read is not None and self.reads >= self.fail_on_read:
            raise RuntimeError("the hub process was killed here")
        ref = next((p for p in self.pods.values() if p.namespace == namespace and p.name == pod), None)
        if ref is None:
            raise NotFound(f"pods {pod} not found")
        restarts = next(c.restarts for c in ref.containers if c.name == container)
        if previous and restarts == 0:
            raise NotFound("previous terminated container not found")
        lines = self.logs.get((ref.uid, container, restarts - 1 if previous else restarts), [])
        if since_time is not None:
            floor = int(since_time) * 1_000_000_000  # the API's sinceTime has one-second precision
            lines = [(t, m) for t, m in lines if t >= floor]
        return "".join(f"{stamp(t)} {m}\n" for t, m in lines)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedLogStore]:
    s = EmbeddedLogStore(tmp_path / "store")
    yield s
    s.close()


def make_shipper(cluster: FakeCluster, sink: object, directory: Path, **kw: object) -> Shipper:
    return Shipper(
        source=cluster,
        sink=sink,  # type: ignore[arg-type]
        directory=directory,
        clock=FakeClock(T0 / 1e9),
        interval=0.05,
        **kw,  # type: ignore[arg-type]
    )


def stored(store: EmbeddedLogStore) -> Counter[str]:
    return Counter(line.message for line in store.export(LogQuery(visibility=None, sort="asc"), limit=1_000_000))


def test_first_poll_ships_the_whole_log_and_later_polls_only_new_lines(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = cluster.add_pod("shop", "web-1", "app")
    for i in range(5):
        cluster.emit(pod, "app", T0 + i * 300_000_000, f"line {i}")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    assert shipper.poll_once() == 5
    assert shipper.drain() == 5
    assert shipper.poll_once() == 0  # nothing new: the same second is read again and skipped
    cluster.emit(pod, "app", T0 + 2_000_000_000, "line 5")
    assert shipper.poll_once() == 1
    shipper.drain()
    assert stored(store) == Counter(f"line {i}" for i in range(6))


def test_lines_sharing_a_timestamp_across_polls_are_neither_lost_nor_repeated(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = cluster.add_pod("shop", "web-1", "app")
    same = T0 + 1_500_000_000
    cluster.emit(pod, "app", same, "burst")
    cluster.emit(pod, "app", same, "burst")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    shipper.poll_once()
    assert shipper.positions()[f"{pod.uid}/app"] == Position(last_ns=same, seen=2, restarts=0)
    cluster.emit(pod, "app", same, "burst")  # a third identical line at the same nanosecond
    cluster.emit(pod, "app", same + 1, "after")
    assert shipper.poll_once() == 2
    shipper.drain()
    assert stored(store) == Counter({"burst": 3, "after": 1})


def test_lines_are_labelled_with_namespace_workload_pod_container_node_and_time(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = cluster.add_pod("shop", "api-5d8f7c9b6-abcde", "app", "proxy", workload="api", node="node-7")
    cluster.emit(pod, "proxy", T0 + 123_456_789, "GET / 200")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    shipper.poll_once()
    shipper.drain()
    (line,) = store.search(LogQuery(visibility={"shop": 0.0})).items
    assert line.to_dict() == {
        "time": "2026-11-22T00:00:00.123457Z",
        "cluster": "",  # the shipper names none: the hub's write path labels it (LogService.write)
        "namespace": "shop",
        "pod": "api-5d8f7c9b6-abcde",
        "container": "proxy",
        "workload": "api",
        "node": "node-7",
        "message": "GET / 200",
    }


def test_lines_carry_their_namespaces_uid_through_the_spool(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = replace(cluster.add_pod("shop", "web-1", "app"), namespace_uid="ns-uid-1")
    cluster.pods[pod.uid] = pod
    cluster.emit(pod, "app", T0, "stamped")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    shipper.poll_once()
    shipper.drain()
    # the namespace's own line shows even below a floor set later; another UID's tenants see nothing
    later = T0 / 1e9 + 3600
    own = store.search(LogQuery(visibility={"shop": later}, namespace_uids={"shop": "ns-uid-1"}))
    assert [line.message for line in own.items] == ["stamped"]
    assert store.search(LogQuery(visibility={"shop": 0.0}, namespace_uids={"shop": "ns-uid-2"})).items == []


def test_a_spool_written_before_lines_had_namespace_uids_is_still_delivered(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    row = [T0 / 1e9, "shop", "web-1", "app", "spooled by an older hub", "web", "n1", "uid-p", "uid-p/app/1/0"]
    shipper._db.execute("INSERT INTO spool(lines, payload) VALUES (1, ?)", (json.dumps([row]),))
    assert shipper.drain() == 1
    # without a UID the line is judged by the time floor alone
    current = {"shop": "ns-uid-1"}
    assert len(store.search(LogQuery(visibility={"shop": 0.0}, namespace_uids=current)).items) == 1
    assert store.search(LogQuery(visibility={"shop": T0 / 1e9 + 1}, namespace_uids=current)).items == []


def test_kill_and_restart_loses_no_line_and_repeats_none(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pods = [cluster.add_pod("shop", f"web-{i}", "app", "sidecar") for i in range(3)]
    emitted: Counter[str] = Counter()
    tick = 0

    def emit_round(n: int) -> None:
        nonlocal tick
        for pod in pods:
            for c in ("app", "sidecar"):
                for _ in range(n):
                    tick += 1
                    # every third line shares its predecessor's timestamp
                    ns = T0 + (tick - (tick % 3 == 0)) * 250_000_000
                    msg = f"{pod.name}/{c} #{tick}"
                    cluster.emit(pod, c, ns, msg)
                    emitted[msg] += 1

    emit_round(40)
    directory = tmp_path / "ship"

    # 1. killed after the store took a batch but before the spool forgot it
    writes = {"n": 0}

    def dying_sink(records: Sequence[LogRecord]) -> int:
        store.write(records)
        writes["n"] += 1
        raise RuntimeError("killed between the store's commit and the spool's delete")

    first = make_shipper(cluster, dying_sink, directory)
    first.poll_once()
    with pytest.raises(RuntimeError):
        first.deliver_once()
    assert writes["n"] == 1
    del first  # no clean shutdown

    # 2. killed in the middle of a poll (after some containers' reads were spooled)
    emit_round(25)
    cluster.fail_on_read = cluster.reads + 3
    second = make_shipper(cluster, store.write, directory)
    with pytest.raises(RuntimeError):
        second.poll_once()
    del second
    cluster.fail_on_read = None

    # 3. a clean process takes over
    emit_round(10)
    third = make_shipper(cluster, store.write, directory)
    third.poll_once()
    third.drain()
    third.poll_once()
    third.drain()
    assert third.spooled_lines() == 0
    assert stored(store) == emitted
    third.close()


def outage_sink(store: EmbeddedLogStore, state: dict[str, bool]) -> Callable[[Sequence[LogRecord]], int]:
    """The shipper's sink writing to ``store``, refusing as Elasticsearch would while ``state["down"]``."""

    def sink(records: Sequence[LogRecord]) -> int:
        if state["down"]:
            raise BackendUnavailable("elasticsearch", "connection refused")
        return store.write(records)

    return sink


def test_a_store_outage_spools_lines_and_delivers_them_after_recovery(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = cluster.add_pod("shop", "web-1", "app")
    state = {"down": True}
    sink = outage_sink(store, state)

    shipper = make_shipper(cluster, sink, tmp_path / "ship")
    for round_ in range(3):
        for i in range(4):
            cluster.emit(pod, "app", T0 + (round_ * 10 + i) * 1_000_000_000, f"r{round_} l{i}")
        shipper.poll_once()
        with pytest.raises(BackendUnavailable):
            shipper.deliver_once()
    assert shipper.spooled_lines() == 12
    assert stored(store) == Counter()
    state["down"] = False
    assert shipper.drain() == 12
    assert shipper.spooled_lines() == 0
    assert sum(stored(store).values()) == 12


def test_the_spooled_count_is_the_spools_own_across_a_restart_and_partial_deliveries(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is kept beside the spool (a sum over it was a scan of every batch, twice per
    /components view at scale); it must stay the spool's own sum."""
    import sqlite3

    from hub.collectors.logs import shipper as shipper_module

    monkeypatch.setattr(shipper_module, "DELIVER_BATCH", 10)  # a write takes one row of 7 at a time
    pod = cluster.add_pod("shop", "web-1", "app")
    state = {"down": True}
    sink = outage_sink(store, state)

    def in_spool() -> int:
        with sqlite3.connect(tmp_path / "ship" / "shipper.sqlite3") as db:
            return int(db.execute("SELECT coalesce(sum(lines), 0) FROM spool").fetchone()[0])

    first = make_shipper(cluster, sink, tmp_path / "ship")
    for round_ in range(5):
        for i in range(7):
            cluster.emit(pod, "app", T0 + (round_ * 10 + i) * 1_000_000_000, f"r{round_} l{i}")
        first.poll_once()
    assert first.spooled_lines() == in_spool() == 35
    first.close()
    second = make_shipper(cluster, sink, tmp_path / "ship")
    assert second.spooled_lines() == 35  # read back from the spool at start
    state["down"] = False
    delivered = second.deliver_once(skip=[])
    assert delivered == 7 and second.spooled_lines() == in_spool() == 28
    assert second.drain() == 28 and second.spooled_lines() == in_spool() == 0
    second.close()


def test_a_full_spool_pauses_reading_until_the_store_catches_up(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    a = cluster.add_pod("shop", "web-1", "app")
    b = cluster.add_pod("shop", "web-2", "app")
    for i in range(8):
        cluster.emit(a, "app", T0 + i * 1_000_000_000, f"a{i}")
        cluster.emit(b, "app", T0 + i * 1_000_000_000, f"b{i}")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship", spool_max_lines=5)
    shipper.poll_once()
    assert shipper.paused and shipper.spooled_lines() == 8  # one container's read, then it stopped
    reads = cluster.reads
    assert shipper.poll_once() == 0 and cluster.reads == reads  # backpressure: not even a read
    shipper.drain()
    shipper.poll_once()
    shipper.drain()
    shipper.poll_once()
    shipper.drain()
    assert not shipper.paused
    assert stored(store) == Counter([f"a{i}" for i in range(8)] + [f"b{i}" for i in range(8)])


def test_pods_that_come_and_go_are_followed_and_forgotten(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    old = cluster.add_pod("shop", "web-1", "app")
    cluster.emit(old, "app", T0, "from the old pod")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    shipper.poll_once()
    cluster.remove_pod(old)
    new = cluster.add_pod("shop", "web-2", "app")
    cluster.emit(new, "app", T0 + 5_000_000_000, "from the new pod")
    assert shipper.poll_once() == 1
    shipper.drain()
    assert stored(store) == Counter(["from the old pod", "from the new pod"])
    assert shipper.status().followed == 1


def test_a_restarted_container_finishes_its_previous_instance_first(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = cluster.add_pod("shop", "web-1", "app")
    cluster.emit(pod, "app", T0, "before crash 1")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    shipper.poll_once()
    cluster.emit(pod, "app", T0 + 1_000_000_000, "before crash 2 (not read yet)")
    pod = cluster.restart(pod, "app")
    cluster.emit(pod, "app", T0 + 3_000_000_000, "after restart")
    assert shipper.poll_once() == 2
    shipper.drain()
    assert stored(store) == Counter(["before crash 1", "before crash 2 (not read yet)", "after restart"])
    assert shipper.positions()[f"{pod.uid}/app"].restarts == 1


def test_an_api_outage_skips_the_cycle_and_keeps_positions(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    pod = cluster.add_pod("shop", "web-1", "app")
    cluster.emit(pod, "app", T0, "one")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship", namespaces=lambda: ["shop"])
    shipper.poll_once()
    cluster.down = True
    cluster.emit(pod, "app", T0 + 1, "two")
    assert shipper.poll_once() == 0
    assert "kubernetes API server" in shipper.last_error
    cluster.down = False
    assert shipper.poll_once() == 1
    shipper.drain()
    assert stored(store) == Counter(["one", "two"])
    assert cluster.listed[-1] == ["shop"]


def test_background_threads_ship_until_stopped(cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path) -> None:
    pod = cluster.add_pod("shop", "web-1", "app")
    cluster.emit(pod, "app", T0, "hello")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    shipper.start()
    try:
        deadline = time.monotonic() + 30
        while sum(stored(store).values()) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        shipper.close()
    assert stored(store) == Counter(["hello"])


def test_stop_ends_a_poll_round_between_pods(cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path) -> None:
    """A round at 20,000 containers takes minutes; stop() waited 30 s for it and then closed the
    database under it (the scale sandbox's hub took 33 s to stop). The round now ends at the
    next pod once stopping, keeping the positions of what it read."""
    pods = [cluster.add_pod("shop", f"web-{n:02d}", "app") for n in range(40)]
    for n, pod in enumerate(pods):
        cluster.emit(pod, "app", T0 + n, f"line {n}")
    shipper = make_shipper(cluster, store.write, tmp_path / "ship")
    stopped = threading.Event()

    def stop_soon() -> None:
        shipper.stop()
        stopped.set()

    reading = cluster.read_log

    def read_log(**kw: Any) -> str:
        if cluster.reads == 2:  # the third read: stop() is called while this round is under way
            threading.Thread(target=stop_soon, daemon=True).start()
            time.sleep(0.3)
        return reading(**kw)

    cluster.read_log = read_log  # type: ignore[method-assign]
    shipper.start()
    assert stopped.wait(20)
    assert cluster.reads <= 4  # not the whole round of 40
    shipper.close()


def test_parse_keeps_untimestamped_lines_with_the_previous_time() -> None:
    pod = PodRef(namespace="shop", name="web-1", uid="u1")
    text = f"{stamp(T0)} first\ncontinuation without a stamp\n{stamp(T0 + 5)} second\n"
    records, position = parse_lines(text, None, pod=pod, container="app")
    assert [(r.message, r.time) for r in records] == [
        ("first", T0 / 1e9),
        ("continuation without a stamp", T0 / 1e9),
        ("second", (T0 + 5) / 1e9),
    ]
    assert position == Position(last_ns=T0 + 5, seen=1, restarts=0)
    assert len({r.uid for r in records}) == 3


# -- several clusters -------------------------------------------------------------------------------


def stored_by_cluster(store: EmbeddedLogStore) -> Counter[tuple[str, str, str]]:
    lines = store.export(LogQuery(visibility=None, sort="asc"), limit=1_000_000)
    return Counter((line.cluster, line.pod, line.message) for line in lines)


def two_cluster_shipper(
    sources: dict[str, FakeCluster], store: EmbeddedLogStore, directory: Path, **kw: object
) -> Shipper:
    return Shipper(
        sources=lambda: dict(sources),
        sink=store.write,
        directory=directory,
        clock=FakeClock(T0 / 1e9),
        interval=0.05,
        **kw,  # type: ignore[arg-type]
    )


def test_each_cluster_has_its_own_positions_and_labels_its_lines(store: EmbeddedLogStore, tmp_path: Path) -> None:
    """The same pod (same namespace, name and even UID, as two fake clusters may well hold)
    in two clusters: two positions, each cluster's lines labelled with it, each exactly once."""
    first, second = FakeCluster(), FakeCluster()
    emitted: Counter[tuple[str, str, str]] = Counter()
    pods = {"": first.add_pod("shop", "web-1", "app"), "c2": second.add_pod("shop", "web-1", "app")}
    for name, fake in (("", first), ("c2", second)):
        for i in range(3):
            fake.emit(pods[name], "app", T0 + i, f"{name or 'implicit'} line {i}")
            emitted[(name, "web-1", f"{name or 'implicit'} line {i}")] += 1
    shipper = two_cluster_shipper({"": first, "c2": second}, store, tmp_path / "ship")
    assert shipper.poll_once() == 6
    assert set(shipper.positions()) == {f"{pods[''].uid}/app", f"c2/{pods['c2'].uid}/app"}
    # the second cluster logs more at the very nanosecond of the first one's last line: its own
    # position must not skip it (a shared position would, having seen one line there already)
    second.emit(pods["c2"], "app", T0 + 2, "c2 same instant")
    emitted[("c2", "web-1", "c2 same instant")] += 1
    assert shipper.poll_once() == 1
    shipper.drain()
    assert stored_by_cluster(store) == emitted
    assert shipper.status().to_dict()["clusters"]["c2"]["followed_containers"] == 1


def test_a_stale_cluster_pauses_alone_and_resumes_without_loss_or_repeat(
    store: EmbeddedLogStore, tmp_path: Path
) -> None:
    first, second = FakeCluster(), FakeCluster()
    a = first.add_pod("shop", "a", "app")
    b = second.add_pod("shop", "b", "app")
    first.emit(a, "app", T0, "a0")
    second.emit(b, "app", T0, "b0")
    shipper = two_cluster_shipper({"": first, "c2": second}, store, tmp_path / "ship")
    assert shipper.poll_once() == 2
    second.down = True
    first.emit(a, "app", T0 + 1_000, "a1")
    second.emit(b, "app", T0 + 1_000, "b1 (while its API server is gone)")
    assert shipper.poll_once("c2") == 0
    assert shipper.poll_once("") == 1  # the implicit cluster goes on
    assert shipper.last_error.startswith("c2: listing pods") and shipper.cluster_status()[""]["last_error"] == ""
    second.down = False
    second.emit(b, "app", T0 + 2_000, "b2")
    assert shipper.poll_once("c2") == 2
    assert shipper.last_error == ""
    shipper.drain()
    assert stored_by_cluster(store) == Counter(
        {
            ("", "a", "a0"): 1,
            ("", "a", "a1"): 1,
            ("c2", "b", "b0"): 1,
            ("c2", "b", "b1 (while its API server is gone)"): 1,
            ("c2", "b", "b2"): 1,
        }
    )


def test_pollers_follow_the_clusters_as_they_are_added_and_removed(store: EmbeddedLogStore, tmp_path: Path) -> None:
    first, second = FakeCluster(), FakeCluster()
    first.add_pod("shop", "a", "app")
    b = second.add_pod("shop", "b", "app")
    second.emit(b, "app", T0, "b0")
    followed: dict[str, FakeCluster] = {"": first}
    shipper = two_cluster_shipper(followed, store, tmp_path / "ship")
    shipper.start()
    try:
        deadline = time.monotonic() + 10
        while shipper.followed_clusters() != [""] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shipper.followed_clusters() == [""]
        followed["c2"] = second
        while stored_by_cluster(store)[("c2", "b", "b0")] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shipper.followed_clusters() == ["", "c2"]
        del followed["c2"]
        while shipper.followed_clusters() != [""] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shipper.followed_clusters() == [""] and "c2" not in shipper.cluster_status()
        reads = second.reads
        second.emit(b, "app", T0 + 1, "b1 (after the cluster was removed)")
        time.sleep(0.3)  # several rounds
        assert second.reads == reads  # its poller stopped: never asked again
    finally:
        shipper.stop()
    assert stored_by_cluster(store) == Counter({("c2", "b", "b0"): 1})


def test_positions_and_spool_of_a_shipper_from_before_clusters_are_kept(
    cluster: FakeCluster, store: EmbeddedLogStore, tmp_path: Path
) -> None:
    """Migration step 1 adds the cluster column; old rows are the implicit cluster's, and
    ten-field spool rows (no cluster) are delivered as the implicit cluster's lines."""
    import sqlite3

    directory = tmp_path / "ship"
    directory.mkdir()
    pod = cluster.add_pod("shop", "web-1", "app")
    db = sqlite3.connect(str(directory / "shipper.sqlite3"))
    db.execute(
        "CREATE TABLE positions (key TEXT PRIMARY KEY, last_ns INTEGER NOT NULL, "
        "seen INTEGER NOT NULL, restarts INTEGER NOT NULL, touched REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, lines INTEGER NOT NULL, payload TEXT NOT NULL)"
    )
    db.execute("INSERT INTO positions VALUES (?, ?, 1, 0, ?)", (f"{pod.uid}/app", T0, T0 / 1e9))
    old_row = [T0 / 1e9, "shop", "web-1", "app", "spooled before", "web", "n1", pod.uid, f"{pod.uid}/app/{T0}/0", ""]
    db.execute("INSERT INTO spool(lines, payload) VALUES (1, ?)", (json.dumps([old_row]),))
    db.commit()
    db.close()
    cluster.emit(pod, "app", T0, "spooled before")  # already read: the position says so
    cluster.emit(pod, "app", T0 + 5, "new")
    shipper = make_shipper(cluster, store.write, directory)
    assert shipper.poll_once() == 1
    assert shipper.positions()[f"{pod.uid}/app"].last_ns == T0 + 5
    shipper.drain()
    assert stored_by_cluster(store) == Counter({("", "web-1", "spooled before"): 1, ("", "web-1", "new"): 1})
    reopened = make_shipper(cluster, store.write, directory)  # the step runs once
    assert reopened.poll_once() == 0
