"""Volume log files (落盘日志) read by the node collector: real files in the kubelet's layout
(``<kubelet root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>/``), written, renamed
and truncated the way applications and logrotate do it; the collector's own loop and positions,
a sink that stores by record identity as the stores do. The oracle is what the test wrote."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pytest

from hub.collectors.logs.nodecollector import Item, NodeCollector
from hub.collectors.logs.nodecri import to_log_record
from hub.collectors.logs.nodetail import NodeTail, PositionStore
from hub.collectors.logs.nodevolume import (
    TailSet,
    VolumeFiles,
    VolumeTail,
    WantedPod,
    line_time_ns,
    parse_log_files,
    wanted_on_node,
)
from hub.errors import BackendUnavailable

pytestmark = pytest.mark.unit

UID = "7f0c1d2e-0000-4000-8000-000000000001"


class Store:
    """Keeps records by time and identity (a record sent twice is stored once only when its time
    is the same too), as the log stores do."""

    def __init__(self) -> None:
        self.by_uid: dict[str, str] = {}
        self.sent = 0
        self.down = False
        self.lose_answers = False  # store, then fail as if the answer never came back
        self.name = "test store"

    def deliver(self, node: str, batch: Sequence[Item]) -> None:
        if self.down:
            raise BackendUnavailable(self.name, "down")
        for ref, fid, rec in batch:
            self.sent += 1
            r = to_log_record(ref, fid, rec, node=node)
            self.by_uid.setdefault(f"{r.time!r}/{r.uid}", f"{r.container}|{r.message}")
        if self.lose_answers:
            raise BackendUnavailable(self.name, "the answer was lost")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def volume(root: Path, name: str = "logs") -> Path:
    d = root / "pods" / UID / "volumes" / "kubernetes.io~empty-dir" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def collector(root: Path, state: Path, store: Store, clock: Clock, wanted: list[WantedPod] | None) -> NodeCollector:
    cri = NodeTail(root / "cri", PositionStore(state / "positions.json"))
    vol = VolumeTail(
        root, PositionStore(state / "volume-positions.json"), lambda: wanted, flush_after=1.0, finish_wait=1.0
    )
    c = NodeCollector(cri, store, "node-1", clock=clock, batch_wait=0.0, commit_interval=0.0, discover_interval=0.0)
    c.tail = TailSet(cri, vol)  # type: ignore[assignment]
    return c


def run(c: NodeCollector, clock: Clock, rounds: int = 12) -> None:
    for _ in range(rounds):
        c.step()
        clock.t += 0.5


def write(fh: IO[str], lines: list[str], oracle: list[str]) -> None:
    for line in lines:
        fh.write(line + "\n")
        oracle.append(f"app|{line}")
    fh.flush()


WANTED = [WantedPod("shop", "api-0", UID, (VolumeFiles("app", "logs", "*.log"),))]


def test_the_annotation_names_container_volume_and_glob_and_refuses_escapes() -> None:
    assert parse_log_files("app:logs/*.log, app:logs/audit/*.txt\nside:data/x.log") == (
        VolumeFiles("app", "logs", "*.log"),
        VolumeFiles("app", "logs", "audit/*.txt"),
        VolumeFiles("side", "data", "x.log"),
    )
    for bad in ("logs/*.log", "app:logs", "app:logs/../etc/passwd", "app:logs//x", "App:logs/x", "app:logs/a b"):
        with pytest.raises(ValueError):
            parse_log_files(bad)


def test_a_line_keeps_the_time_it_starts_with() -> None:
    base = 1_764_941_082 * 10**9  # 2025-12-05T13:24:42Z
    assert line_time_ns("2025-12-05T13:24:42Z GET /") == base
    assert line_time_ns("2025-12-05 13:24:42,123 INFO x") == base + 123_000_000
    assert line_time_ns("[2025-12-05T21:24:42.5+08:00] x") == base + 500_000_000
    assert line_time_ns("2025-12-05T21:24:42+0800") == base
    for no in ("GET / 200", "2025-13-05T13:24:42Z x", "2025-12-05T13:24:42Zed", "1999-12-31T23:59:59Z x", ""):
        assert line_time_ns(no) is None


def test_the_hub_lists_only_annotated_running_pods_and_what_their_project_collects() -> None:
    class P:
        def __init__(self, ns: str, name: str, log_files: str, terminal: bool = False) -> None:
            self.namespace, self.name, self.uid, self.log_files, self.terminal = (
                ns,
                name,
                f"u-{name}",
                log_files,
                terminal,
            )

    pods = [
        P("shop", "a", "app:logs/*.log, side:logs/*.log"),
        P("shop", "b", ""),
        P("shop", "c", "app:logs/*.log", terminal=True),
        P("shop", "d", "not an entry"),
        P("quiet", "e", "app:logs/*.log"),
    ]
    got = wanted_on_node(pods, lambda ns, container: ns != "quiet" and container != "side")
    assert [w.to_dict() for w in got] == [
        {
            "namespace": "shop",
            "pod": "a",
            "uid": "u-a",
            "files": [{"container": "app", "volume": "logs", "glob": "*.log"}],
        }
    ]


def test_volume_files_are_read_once_through_rotation_restart_outage_and_truncation(tmp_path: Path) -> None:
    clock, store, state = Clock(), Store(), tmp_path / "state"
    state.mkdir()
    logs = volume(tmp_path)
    other = volume(tmp_path, "cache")
    (other / "x.log").write_text("not asked for\n")
    (logs / "debug.txt").write_text("not matched by the glob\n")
    oracle: list[str] = []
    app = open(logs / "app.log", "a", encoding="utf-8")  # noqa: SIM115
    write(app, [f"line {i} ünïcode 中文" for i in range(5)], oracle)

    c = collector(tmp_path, state, store, clock, None)
    run(c, clock)
    assert store.sent == 0  # the hub has not said which pods want files: nothing is read
    c = collector(tmp_path, state, store, clock, WANTED)
    run(c, clock)
    assert sorted(store.by_uid.values()) == sorted(oracle)

    # A Python traceback is one record, as on stdout
    trace = ["Traceback (most recent call last):", '  File "app.py", line 3, in <module>', "ValueError: bad"]
    for line in trace:
        app.write(line + "\n")
    app.write("after the trace\n")
    app.flush()
    oracle += ["app|" + "\n".join(trace), "app|after the trace"]
    run(c, clock)
    assert sorted(store.by_uid.values()) == sorted(oracle)

    # logrotate's rename: the writer still holds the old file a moment, then reopens app.log
    (logs / "app.log").rename(logs / "app.log.1")
    write(app, ["late line into the renamed file"], oracle)
    app.close()
    app = open(logs / "app.log", "a", encoding="utf-8")  # noqa: SIM115
    write(app, ["first line of the new file"], oracle)
    run(c, clock)
    assert sorted(store.by_uid.values()) == sorted(oracle)

    # The store is down: records wait; the collector is then killed without saving anything
    store.down = True
    write(app, [f"during the outage {i}" for i in range(4)], oracle)
    run(c, clock)
    assert len(store.by_uid) == len(oracle) - 4
    c.tail.close()
    store.down = False
    c = collector(tmp_path, state, store, clock, WANTED)  # a new process, from the saved positions
    sent_before = store.sent
    run(c, clock)
    assert sorted(store.by_uid.values()) == sorted(oracle)
    assert store.sent - sent_before == 4  # only the unacknowledged lines were read again

    # Stored, but the answers are lost; then the collector dies: the lines are read again after
    # the restart and keep their times (written ahead with the positions), so nothing is doubled
    store.lose_answers = True
    write(app, [f"answer lost {i}" for i in range(3)], oracle)
    run(c, clock)
    c.tail.close()
    store.lose_answers = False
    c = collector(tmp_path, state, store, clock, WANTED)
    sent_before = store.sent
    run(c, clock)
    assert store.sent - sent_before == 3
    assert sorted(store.by_uid.values()) == sorted(oracle)

    # copytruncate: the file is cut to zero in place and written again
    app.close()
    with open(logs / "app.log", "r+", encoding="utf-8") as fh:
        fh.truncate(0)
    app = open(logs / "app.log", "a", encoding="utf-8")  # noqa: SIM115
    write(app, ["after truncation 1", "after truncation 2"], oracle)
    run(c, clock)
    app.close()
    assert sorted(store.by_uid.values()) == sorted(oracle)
    assert len(store.by_uid) == len(oracle)  # nothing twice, nothing unasked-for
    assert not any("not asked for" in m or "not matched" in m for m in store.by_uid.values())


def test_the_hub_route_answers_a_collector_token_with_its_nodes_annotated_pods(tmp_path: Path) -> None:
    from hub.collectors.cluster import RESOURCE_KINDS, ClusterService
    from hub.collectors.logs import nodewire
    from hub.collectors.logs.collection import CollectionSettings
    from hub.collectors.logs.collection_store import LogCollectionStore
    from hub.collectors.watchcache import WatchCache
    from hub.timeutil import FakeClock
    from tests.unit.cluster_fakes import FakeKube, pod_json
    from tests.unit.conftest_tenancy import build_world

    token, digest = nodewire.new_collector_token()
    w = build_world(tmp_path, settings={"logs": {"collector_token_sha256": digest}})
    try:
        kube, clock = FakeKube(), FakeClock(1_795_000_000)
        for ns, name, node, value in (
            ("ns-a1", "asks", "node-1", "app:logs/*.log, side:logs/*.log"),
            ("ns-a1", "elsewhere", "node-2", "app:logs/*.log"),
            ("ns-a1", "plain", "node-1", ""),
            ("ns-a2", "off", "node-1", "app:logs/*.log"),
        ):
            obj = pod_json(ns, name, node=node, containers=("app", "side"))
            if value:
                obj["metadata"]["annotations"] = {"kubehub.io/log-files": value}
            kube.put("pods", obj)
        service = ClusterService(
            kube, clock=clock, cache=WatchCache(kube, RESOURCE_KINDS, clock=clock), autostart=False, initial_wait=0.05
        )
        for store in service.cache.stores:
            service.cache.step(store)
        w.hub.cluster = service
        rules = LogCollectionStore(w.hub.db)
        rules.put("ns-a1", CollectionSettings(enabled=True, exclude=("side",)), actor="t", now=0.0)
        rules.put("ns-a2", CollectionSettings(enabled=False), actor="t", now=0.0)
        client = w.app.test_client()
        url = "/api/v1/logs/ingest/volume-files"
        r = client.get(url, query_string={"node": "node-1"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.get_json()
        (pod,) = r.get_json()["pods"]
        assert (pod["namespace"], pod["pod"]) == ("ns-a1", "asks")
        assert pod["files"] == [{"container": "app", "volume": "logs", "glob": "*.log"}]
        r = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 400 and r.get_json()["field"] == "node"
        user = {"Authorization": f"Bearer {w.tokens['platform-admin']}"}  # a user's token is not a collector's
        for headers in ({}, {"Authorization": "Bearer khc_wrong"}, user):
            r = client.get(url, query_string={"node": "node-1"}, headers=headers)
            assert r.status_code == 401, headers
    finally:
        w.hub.close()
