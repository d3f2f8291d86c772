"""One log store per cluster (``logs.mode own``), through the store interface: LogService over two
real embedded stores (the hub's shared one and cluster-2's own, wrapped as the runtime wraps it)
and, for outages, a store of our own interface that is down.

The reference is a brute-force sort of the lines written: where each line lands (its cluster's
store), what a search within one cluster and across clusters returns page by page in both
orders, and what a store that is down does to each read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hub.clusters.model import Cluster, Connection, LogSource, MetricsSource, parse_cluster
from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.fanout import MAX_STORE_FANOUT, ClusterLogStore, FanOut, StorePart, merge_search
from hub.collectors.logs.service import LogService
from hub.collectors.logs.store import Bucket, LogLine, LogParams, LogQuery, LogRecord, Partition, SearchResult
from hub.errors import BackendUnavailable, Unprocessable
from hub.runtime.logs import OwnStores
from hub.settings import Settings
from hub.tenancy.roles import PlatformRole, ProjectRole
from hub.tenancy.scope import Principal, Project, scope_for
from hub.timeutil import FakeClock
from tests.unit.test_logs_clusters import Audit
from tests.unit.test_logs_clusters import rec as cluster_line

T0 = 1_795_219_200.0  # 2026-11-21T00:00:00Z
CLUSTERS = ["default", "cluster-2", "cluster-3"]
PROJECTS = [
    Project("team-a", "shop"),
    Project("cluster-2/team-a", "logistics"),  # the same namespace name, another tenant
    Project("cluster-3/team-c", "logistics"),
]


def rec(i: int, cluster: str, ns: str) -> LogRecord:
    # Every 3 s, cluster-2's half a second later: no two lines share a time.
    return cluster_line(i, cluster, ns, at=T0 + i * 3.0 + (0.5 if cluster == "cluster-2" else 0.0))


LINES = [
    rec(i, cluster, ns)
    for i, (cluster, ns) in enumerate([("default", "team-a"), ("cluster-2", "team-a"), ("cluster-3", "team-c")] * 20)
]


class Down:
    """A store of our own interface whose backend does not answer (every call)."""

    name = "elasticsearch"

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise BackendUnavailable("elasticsearch", "connection refused (http://127.0.0.1:9)")

    write = refresh = search = histogram = export = partitions = drop_before = drop_namespace_before = probe = _fail

    def close(self) -> None:
        pass


class HeldStores:
    """The clusters' own stores as the runtime hands them to the service (``ClusterStores``, as
    ``OwnStores``): a dict the tests change; closing is counted (the fixture closes the stores)."""

    def __init__(self, stores: dict[str, Any]) -> None:
        self.stores = stores
        self.closed = 0

    def __call__(self) -> Mapping[str, Any]:
        return self.stores

    def close(self) -> None:
        self.closed += 1


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.shared = EmbeddedLogStore(tmp_path / "shared")
        self.own_inner = EmbeddedLogStore(tmp_path / "own")
        self.stores: dict[str, Any] = {"cluster-2": ClusterLogStore("cluster-2", self.own_inner)}
        self.held = HeldStores(self.stores)
        self.service = LogService(
            store=self.shared,
            settings=Settings(data_dir=tmp_path).replace(logs={"retention_days": 3650}),
            tenancy=Audit(),
            clock=FakeClock(T0 + 3600),
            cluster_names=lambda: CLUSTERS,
            cluster_stores=self.held,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    assert w.service.write(LINES) == len(LINES)
    yield w
    w.service.stop()
    w.own_inner.close()


def scope(name: str, projects: Mapping[str, ProjectRole] | None = None, admin: bool = False) -> Any:
    principal = Principal(
        name, platform_role=PlatformRole.ADMIN if admin else PlatformRole.REGULAR, projects=dict(projects or {})
    )
    return scope_for(principal, PROJECTS)


ADMIN = scope("admin", admin=True)
EVERY = {"team-a": ProjectRole.VIEWER, "cluster-2/team-a": ProjectRole.VIEWER, "cluster-3/team-c": ProjectRole.VIEWER}


def oracle(clusters: set[str], *, desc: bool = True) -> list[tuple[str, str]]:
    picked = [r for r in LINES if r.cluster in clusters]
    return [(r.cluster, r.message) for r in sorted(picked, key=lambda r: r.time, reverse=desc)]


def pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["cluster"], i["message"]) for i in body["items"]]


def stored(store: Any) -> set[str]:
    return {line.message for line in store.search(LogQuery(visibility=None, size=1000)).items}


def test_each_line_is_written_to_its_clusters_store(world: World) -> None:
    assert stored(world.own_inner) == {r.message for r in LINES if r.cluster == "cluster-2"}
    assert stored(world.shared) == {r.message for r in LINES if r.cluster != "cluster-2"}
    # written twice (the shipper's retry after a crash): each store skips what it holds
    assert world.service.write(LINES) == 0


@pytest.mark.parametrize("who", ["admin", "tenant of all three"])
@pytest.mark.parametrize("sort", ["desc", "asc"])
def test_a_search_across_stores_pages_like_one_store(world: World, who: str, sort: str) -> None:
    caller = ADMIN if who == "admin" else scope("t", EVERY)
    want = oracle({"default", "cluster-2", "cluster-3"}, desc=sort == "desc")
    for size in (7, 25):
        got: list[tuple[str, str]] = []
        for offset in range(0, len(want) + size, size):
            body = world.service.search(caller, LogParams(sort=sort, offset=offset, size=size))  # type: ignore[arg-type]
            assert body["total"] == len(want) and body["total_relation"] == "eq"
            assert body["partial"] is False and body["unavailable"] == []
            assert pairs(body) == want[offset : offset + size]
            got += pairs(body)
        assert got == want


def test_a_search_within_one_cluster_reads_its_own_store(world: World) -> None:
    body = world.service.search(ADMIN, LogParams(clusters=("cluster-2",), size=1000))
    assert pairs(body) == oracle({"cluster-2"})
    tenant = scope("logistics", {"cluster-2/team-a": ProjectRole.VIEWER})
    assert pairs(world.service.search(tenant, LogParams(size=1000))) == oracle({"cluster-2"})
    # the implicit cluster's tenant of the same namespace name reads the shared store only
    shop = scope("shop", {"team-a": ProjectRole.VIEWER})
    assert pairs(world.service.search(shop, LogParams(namespaces=("team-a",), size=1000))) == oracle({"default"})
    hist = world.service.histogram(ADMIN, LogParams(start=T0, end=T0 + 600, interval=60.0))
    counts = [0] * 10
    for r in LINES:
        counts[int((r.time - T0) // 60)] += 1
    assert [b["count"] for b in hist["buckets"]] == counts and hist["partial"] is False
    lines = list(world.service.export(ADMIN, LogParams(sort="asc")).chunks)
    assert sum(chunk.count("\n") for chunk in lines) == len(LINES) + 1  # the CSV header


def test_a_down_store_alone_is_a_503_naming_the_clusters_store(world: World) -> None:
    world.stores["cluster-2"] = ClusterLogStore("cluster-2", Down())  # type: ignore[arg-type]
    for read in (world.service.search, world.service.histogram, world.service.export):
        with pytest.raises(BackendUnavailable) as down:
            read(ADMIN, LogParams(clusters=("cluster-2",)))
        assert down.value.backend == "log store of cluster cluster-2"
        assert "connection refused" in down.value.message
    tenant = scope("logistics", {"cluster-2/team-a": ProjectRole.VIEWER})
    with pytest.raises(BackendUnavailable):  # the only store this tenant may read
        world.service.search(tenant, LogParams())


def test_a_down_store_among_others_is_named_and_the_rest_stands(world: World) -> None:
    down = Down()
    world.stores["cluster-2"] = ClusterLogStore("cluster-2", down)  # type: ignore[arg-type]
    for caller in (ADMIN, scope("t", EVERY)):
        body = world.service.search(caller, LogParams(size=1000))
        assert pairs(body) == oracle({"default", "cluster-3"})
        assert body["partial"] is True
        assert [(u["cluster"], u["backend"]) for u in body["unavailable"]] == [
            ("cluster-2", "log store of cluster cluster-2")
        ]
        hist = world.service.histogram(caller, LogParams(start=T0, end=T0 + 600, interval=600.0))
        assert (
            hist["total"] == len(oracle({"default", "cluster-3"})) and hist["unavailable"][0]["cluster"] == "cluster-2"
        )
        with pytest.raises(BackendUnavailable):  # a file cannot say a cluster is missing
            list(world.service.export(caller, LogParams()).chunks)
    entry = world.service.tenancy.entries[-3]  # type: ignore[attr-defined]
    assert entry[1] == "logs.search" and entry[3]["unavailable"] == ["cluster-2"]
    assert entry[3]["clusters"] == ["default", "cluster-2", "cluster-3"]  # the tenant's read
    admins = [e for e in world.service.tenancy.entries if e[0] == "admin" and e[1] == "logs.search"]  # type: ignore[attr-defined]
    assert admins[-1][3]["clusters"] == ["*", "cluster-2"]  # the shared store whole, and cluster-2's own
    # every store asked is down: no answer to stand on
    world.stores["cluster-3"] = ClusterLogStore("cluster-3", Down())  # type: ignore[arg-type]
    world.service.store = Down()  # type: ignore[assignment]
    with pytest.raises(BackendUnavailable) as all_down:
        world.service.search(ADMIN, LogParams())
    assert "log store of cluster cluster-2" in all_down.value.backend


def test_stopping_the_service_closes_the_clusters_own_stores(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.held.closed == 0
    w.service.stop()
    assert w.held.closed == 1
    w.own_inner.close()


def test_a_batch_with_a_down_store_is_refused_and_lands_once_when_sent_again(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.stores["cluster-2"] = ClusterLogStore("cluster-2", Down())  # type: ignore[arg-type]
    with pytest.raises(BackendUnavailable) as refused:
        w.service.write(LINES)
    assert refused.value.backend == "log store of cluster cluster-2"
    assert stored(w.shared) == {r.message for r in LINES if r.cluster != "cluster-2"}  # the others took theirs
    w.stores["cluster-2"] = ClusterLogStore("cluster-2", w.own_inner)
    assert w.service.write(LINES) == len([r for r in LINES if r.cluster == "cluster-2"])
    assert stored(w.own_inner) == {r.message for r in LINES if r.cluster == "cluster-2"}
    sizes = w.service.stores()["cluster_stores"]
    assert sizes["cluster-2"]["total_lines"] == 20
    w.service.stop()


class Slow:
    """A store of our own interface that answers after a while and counts callers at once."""

    name = "slow"
    lock = threading.Lock()
    now = 0
    most = 0

    def search(self, query: LogQuery) -> SearchResult:
        with Slow.lock:
            Slow.now += 1
            Slow.most = max(Slow.most, Slow.now)
        time.sleep(0.05)
        with Slow.lock:
            Slow.now -= 1
        return SearchResult(items=[LogLine(T0, "ns", "p", "c", "m")], total=1)

    def write(self, records: Sequence[LogRecord]) -> int:
        return 0

    def refresh(self) -> None: ...
    def histogram(self, query: LogQuery, *, interval: float) -> list[Bucket]:
        return []

    def export(self, query: LogQuery, *, limit: int) -> Iterator[LogLine]:
        return iter(())

    def partitions(self) -> list[Partition]:
        return []

    def drop_before(self, day: str) -> list[str]:
        return []

    def drop_namespace_before(self, namespace: str, day: str) -> int:
        return 0

    def probe(self) -> str:
        return "ok"

    def close(self) -> None: ...


def test_the_fan_out_is_bounded_and_each_store_is_asked_one_part_at_a_time() -> None:
    fan = FanOut()
    stores = [Slow() for _ in range(MAX_STORE_FANOUT * 3)]
    parts = [StorePart(f"c{i}", s, LogQuery(visibility=None)) for i, s in enumerate(stores) for _ in range(2)]
    Slow.most = 0
    got = fan.run(parts, lambda p: p.store.search(p.query))
    fan.close()
    assert len(got.answers) == len(parts) and not got.unavailable
    assert 1 < Slow.most <= MAX_STORE_FANOUT


def cluster(name: str, logs: LogSource) -> Cluster:
    return Cluster(name, name, Connection("in-cluster"), MetricsSource("none"), logs)


def test_own_stores_follow_the_registry() -> None:
    opened: list[tuple[str, str, str]] = []
    closed: list[str] = []

    class Held(Slow):
        def __init__(self, c: Cluster) -> None:
            self.c = c

        def close(self) -> None:
            closed.append(self.c.name)

    def opener(settings: Settings, c: Cluster) -> Any:
        opened.append((c.name, c.logs.url, c.logs.index_prefix))
        return Held(c)

    registry = [
        cluster("a", LogSource("own", "http://es-a:9200", index_prefix="a-logs")),
        cluster("b", LogSource("shared")),
    ]
    own = OwnStores(Settings(), lambda: registry, opener=opener, refresh=3600)
    assert list(own()) == ["a"] and opened == [("a", "http://es-a:9200", "a-logs")]
    own.changed("b", cluster("b", LogSource("own", "http://es-b:9200")))
    assert sorted(own()) == ["a", "b"]
    own.changed("b", cluster("b", LogSource("own", "http://es-b:9200")))  # unchanged: kept open
    assert len(opened) == 2
    own.changed("a", cluster("a", LogSource("own", "http://es-a:9200", index_prefix="a2")))  # moved: reopened
    assert closed == ["a"] and opened[-1] == ("a", "http://es-a:9200", "a2")
    own.changed("a", None)
    assert list(own()) == ["b"] and closed == ["a", "a"]
    registry[:] = []  # removed through another replica: the next reload drops it
    own.reload()
    assert own() == {} and closed == ["a", "a", "b"]


def test_the_own_log_source_is_validated_field_by_field() -> None:
    base = {"name": "c2", "connection": {"mode": "in-cluster"}}
    spec = parse_cluster({**base, "logs": {"mode": "own", "url": "http://es:9200/", "index_prefix": "c2-logs"}})
    assert spec.cluster.logs == LogSource("own", "http://es:9200", index_prefix="c2-logs")
    assert spec.cluster.to_dict()["logs"]["index_prefix"] == "c2-logs"
    for logs, where in (
        ({"mode": "own", "url": "http://es:9200", "index_prefix": "Upper"}, "logs.index_prefix"),
        ({"mode": "own", "url": "http://es:9200", "index_prefix": "-x"}, "logs.index_prefix"),
        ({"mode": "shared", "index_prefix": "c2"}, "logs.index_prefix"),
        ({"mode": "own", "url": "http://user:secret@es:9200"}, "logs.url"),
    ):
        with pytest.raises(Unprocessable) as bad:
            parse_cluster({**base, "logs": logs})
        assert bad.value.field == where, logs


def test_the_console_names_the_cluster_whose_store_did_not_answer(tmp_path: Path) -> None:
    """The logs page over a partial answer: the lines that came, and a banner naming the cluster."""
    from tests.unit.conftest_tenancy import build_world

    w = build_world(tmp_path)
    try:
        w.hub.clusters.add({"name": "cluster-2", "connection": {"mode": "in-cluster"}}, actor="test")
        now = int(w.hub.clock.now())
        assert w.hub.logs.write([LogRecord(now - 30, "team-x", "p", "app", "from the shared store", pod_uid="u")]) == 1
        w.hub.logs._cluster_stores = HeldStores({"cluster-2": ClusterLogStore("cluster-2", Down())})  # type: ignore[arg-type]
        client, _ = w.session("platform-admin")
        r = client.get(f"/logs?search=1&start={now - 60}&end={now + 60}", headers={"Accept": "text/html"})
        body = r.get_data(as_text=True)
        assert r.status_code == 200 and "from the shared store" in body
        assert 'class="banner warn" data-unavailable-cluster="cluster-2"' in body
        assert "Lines of cluster cluster-2 are missing" in body and "connection refused" in body
    finally:
        w.hub.close()


def test_a_total_over_several_stores_is_capped_as_one_stores() -> None:
    """600 + 600 exact matches in two stores say 1000/gte, as one store holding the 1,200 would."""
    line = LogLine(T0, "ns", "p", "c", "m")
    parts = [StorePart(c, Slow(), LogQuery(visibility=None)) for c in ("a", "b")]
    for totals, want in (((600, 600), (1000, False)), ((600, 400), (1000, True)), ((1000, 0), (1000, True))):
        answers = [(p, SearchResult(items=[line], total=t)) for p, t in zip(parts, totals, strict=True)]
        got = merge_search(answers, offset=0, size=1, desc=True)
        assert (got.total, got.total_exact) == want, totals
    answers = [(parts[0], SearchResult(items=[], total=1000, total_exact=False)), (parts[1], SearchResult([], 0))]
    assert merge_search(answers, offset=0, size=1, desc=True).total_exact is False


def test_the_shipper_delivers_the_other_clusters_while_one_store_is_down(tmp_path: Path) -> None:
    """Spooled lines of two clusters, cluster-2's older, its own store down: the background
    deliverer holds cluster-2 back and delivers the implicit cluster's lines to the shared store
    (before, one failing batch held up every cluster's); once cluster-2's store is back, its lines
    land there, each line once."""
    from hub.collectors.logs.shipper import Shipper
    from tests.unit.test_logs_shipper import T0 as NS0
    from tests.unit.test_logs_shipper import FakeCluster

    w = World(tmp_path)
    w.stores["cluster-2"] = ClusterLogStore("cluster-2", Down())  # type: ignore[arg-type]
    first, second = FakeCluster(), FakeCluster()
    a, b = first.add_pod("team-a", "a", "app"), second.add_pod("team-a", "b", "app")
    for i in range(3):
        second.emit(b, "app", NS0 + i, f"second {i}")
        first.emit(a, "app", NS0 + i, f"first {i}")
    shipper = Shipper(
        sources=lambda: {"": first, "cluster-2": second},
        sink=w.service.write,
        directory=tmp_path / "ship",
        interval=3600,  # polled by hand below; only the deliverer runs in the background
        clock=FakeClock(NS0 / 1e9),
    )
    try:
        assert shipper.poll_once("cluster-2") == 3 and shipper.poll_once("") == 3  # cluster-2's rows first
        shipper.start()

        def shared() -> set[str]:
            w.shared.refresh()
            return stored(w.shared)

        deadline = time.monotonic() + 10
        while shared() != {"first 0", "first 1", "first 2"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shared() == {"first 0", "first 1", "first 2"}
        assert shipper.held_clusters() == ["cluster-2"] and shipper.spooled_lines() == 3
        assert "log store of cluster cluster-2" in shipper.last_error
        w.stores["cluster-2"] = ClusterLogStore("cluster-2", w.own_inner)
        deadline = time.monotonic() + 10  # held back 1 s after the first failure, then 2 s
        while shipper.spooled_lines() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored(w.own_inner) == {"second 0", "second 1", "second 2"}
        assert w.own_inner.search(LogQuery(visibility=None)).total == 3 and shipper.held_clusters() == []
    finally:
        shipper.close()
        w.service.stop()
