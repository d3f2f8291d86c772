"""Per-project log collection settings in a hub of two clusters (issues 18 and 19).

The same namespace name ``ns-a1`` is two projects of two tenants: the implicit cluster's is
ws-a's (padmin administers it), cluster-2's is ws-b's (bob, ws-b's admin). The settings routes
checked the permission on the project of ``?cluster=`` and then read and wrote the settings of
the bare name, i.e. the implicit cluster's project: bob could switch off ws-a's log collection.
Here, through the real web app (the added cluster's namespaces are the in-memory stand-in of
tests/unit/namespace_fakes.py, through the tenancy area's own protocol): neither tenant reaches
the other's settings by any parameter (cluster in the path, the query, the body, a header), the
owner's change is stored under their project's key and audited as theirs, and what collects
lines honours it for that cluster only: the node collector's ingest route, the API poller
(the shipper, over two in-memory pod sources of its own protocol) and a project's retention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.clusters.secretbox import new_key
from hub.collectors.logs import nodewire
from hub.collectors.logs.collection import CollectionRules, CollectionSettings
from hub.collectors.logs.collection_store import LogCollectionStore
from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.service import LogService
from hub.collectors.logs.shipper import Shipper
from hub.collectors.logs.store import LogQuery, LogRecord
from hub.settings import Settings
from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from tests.unit.namespace_fakes import patch_runtime
from tests.unit.test_logs_shipper import T0, FakeCluster
from tests.unit.test_node_collector_cri import post, record

pytestmark = pytest.mark.unit

API = "/api/v1/namespaces/ns-a1/log-collection"
HTML = {"Accept": "text/html"}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TenancyWorld, str]]:
    patch_runtime(monkeypatch)
    token, digest = nodewire.new_collector_token()
    w = build_world(
        tmp_path,
        settings={
            "clusters": {"secret_key": new_key()},
            "logs": {"collector_token_sha256": digest, "retention_days": 7},
        },
    )
    t = w.hub.tenancy
    w.hub.clusters.add({"name": "cluster-2", "connection": {"kubeconfig_path": "/nonexistent"}}, actor="t")
    t.grant_cluster("ws-b", "cluster-2", actor="t")
    t.create_project("ws-b", "ns-a1", actor="t", cluster="cluster-2")  # bob's; the implicit ns-a1 is ws-a's
    yield w, token
    w.hub.close()


def stored(w: TenancyWorld) -> dict[str, dict[str, Any]]:
    s = LogCollectionStore(w.hub.db)
    return {k: v.to_dict() for k in ("ns-a1", "cluster-2/ns-a1") if (v := s.get(k)) is not None}


def test_the_owner_of_cluster_2s_project_changes_that_project_only(world: tuple[TenancyWorld, str]) -> None:
    w, _ = world
    bob = w.client("tenant-b")
    r = bob.put(f"{API}?cluster=cluster-2", json={"enabled": False, "exclude": ["istio-*"]})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["cluster"] == "cluster-2" and r.get_json()["enabled"] is False
    assert list(stored(w)) == ["cluster-2/ns-a1"]  # the implicit cluster's ns-a1 has no row
    assert bob.get(f"{API}?cluster=cluster-2").get_json()["enabled"] is False
    mine = w.client("project-admin").get(API).get_json()
    assert (mine["enabled"], mine["exclude"], mine["cluster"]) == (True, [], "default")
    # The other way round: padmin's change stays in the implicit cluster.
    assert w.client("project-admin").put(API, json={"include": ["app"]}).status_code == 200
    assert stored(w) == {
        "ns-a1": {"enabled": True, "include": ["app"], "exclude": [], "retention_days": None},
        "cluster-2/ns-a1": {"enabled": False, "include": [], "exclude": ["istio-*"], "retention_days": None},
    }
    # Audited as two projects: cluster-2's entry names its cluster and namespace.
    audit = w.client("platform-admin").get("/api/v1/audit", query_string={"action": "logs.collection"}).get_json()
    got = sorted((e["actor"], e["target"], e["detail"].get("cluster")) for e in audit["items"])
    assert got == [
        ("bob", "namespace/cluster-2/ns-a1", "cluster-2"),
        (w.user("project-admin"), "namespace/ns-a1", None),
    ]
    filtered = w.client("platform-admin").get("/api/v1/audit", query_string={"namespace": "ns-a1"}).get_json()
    assert "namespace/cluster-2/ns-a1" in {e["target"] for e in filtered["items"]}


@pytest.mark.parametrize(
    ("how", "method", "url", "kwargs"),
    [
        ("no cluster: the implicit ns-a1", "put", API, {"json": {"enabled": False}}),
        ("no cluster: the implicit ns-a1", "get", API, {}),
        ("cluster named default", "put", f"{API}?cluster=default", {"json": {"enabled": False}}),
        ("cluster named default", "get", f"{API}?cluster=default", {}),
        ("header", "put", API, {"json": {"enabled": False}, "headers": {"X-Kubehub-Cluster": "cluster-2"}}),
        ("body", "put", API, {"json": {"enabled": False, "cluster": "cluster-2"}}),
    ],
)
def test_cluster_2s_tenant_cannot_reach_the_implicit_clusters_namesake(
    world: tuple[TenancyWorld, str], how: str, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    w, _ = world
    r = getattr(w.client("tenant-b"), method)(url, **kwargs)
    assert r.status_code == 403, (how, r.status_code, r.get_data(as_text=True))
    assert "enabled" not in (r.get_json() or {})
    assert stored(w) == {}


def test_no_other_spelling_of_the_cluster_reaches_another_project(world: tuple[TenancyWorld, str]) -> None:
    w, _ = world
    bob = w.client("tenant-b")
    # Allowed on cluster-2's project, but the body may not name another cluster: 400 naming it.
    r = bob.put(f"{API}?cluster=cluster-2", json={"enabled": False, "cluster": "default"})
    assert r.status_code == 400 and r.get_json()["field"] == "cluster"
    # The cluster in the path: a project key is no namespace name.
    for path in (
        "/api/v1/namespaces/cluster-2%2Fns-a1/log-collection",
        "/api/v1/namespaces/cluster-2:ns-a1/log-collection",
    ):
        assert bob.put(path, json={"enabled": False}).status_code in (400, 403, 404)
    # Two clusters in the query, or one twice: 400 naming cluster.
    for query in ("cluster=cluster-2,default", "cluster=cluster-2&cluster=default"):
        r = bob.put(f"{API}?{query}", json={"enabled": False})
        assert r.status_code == 400 and r.get_json()["field"] == "cluster", query
    assert stored(w) == {}


@pytest.mark.parametrize("role", ["project-admin", "workspace-admin"])
def test_the_implicit_clusters_tenants_cannot_reach_cluster_2s_namesake(
    world: tuple[TenancyWorld, str], role: str
) -> None:
    w, _ = world
    assert w.client("tenant-b").put(f"{API}?cluster=cluster-2", json={"retention_days": 3}).status_code == 200
    client = w.client(role)
    assert client.get(f"{API}?cluster=cluster-2").status_code == 403
    assert client.put(f"{API}?cluster=cluster-2", json={"retention_days": 1}).status_code == 403
    assert client.put(API, json={"cluster": "cluster-2", "retention_days": 1}).status_code == 400
    r = client.put(API, json={"retention_days": 1}, headers={"X-Kubehub-Cluster": "cluster-2"})
    assert r.status_code == 200  # their own project, whatever the header says
    assert stored(w)["cluster-2/ns-a1"]["retention_days"] == 3 and stored(w)["ns-a1"]["retention_days"] == 1


def test_the_console_form_acts_on_the_project_of_its_cluster(world: tuple[TenancyWorld, str]) -> None:
    w, _ = world
    console, csrf = w.session("tenant-b")
    page = console.get("/projects/ns-a1?cluster=cluster-2", headers=HTML).get_data(as_text=True)
    assert "/projects/ns-a1/log-collection?cluster=cluster-2" in page
    form = {"csrf_token": csrf, "exclude": "istio-*", "retention_days": "2"}  # no "enabled": off
    r = console.post("/projects/ns-a1/log-collection?cluster=cluster-2", data=form, headers=HTML)
    assert r.status_code in (302, 303) and "cluster=cluster-2" in r.headers["Location"]
    assert list(stored(w)) == ["cluster-2/ns-a1"] and stored(w)["cluster-2/ns-a1"]["enabled"] is False
    r = console.post("/projects/ns-a1/log-collection", data=form, headers=HTML)
    assert r.status_code == 403 and list(stored(w)) == ["cluster-2/ns-a1"]
    # padmin's page of the implicit ns-a1 shows the implicit project's settings (the defaults).
    theirs, _ = w.session("project-admin")
    shown = theirs.get("/projects/ns-a1", headers=HTML).get_data(as_text=True)
    assert 'name="enabled" checked' in shown and 'value="istio-*"' not in shown
    assert theirs.get("/projects/ns-a1?cluster=cluster-2", headers=HTML).status_code == 403


def test_the_node_collectors_lines_are_judged_by_their_own_clusters_project(world: tuple[TenancyWorld, str]) -> None:
    w, token = world
    assert w.client("tenant-b").put(f"{API}?cluster=cluster-2", json={"enabled": False}).status_code == 200
    batch = [record(offset=0, message="implicit kept")]
    assert post(w, {"node": "node-1", "records": batch}, token).get_json() == {"received": 1, "new": 1, "skipped": 0}
    batch = [record(offset=0, message="cluster-2 dropped", file="2049:9")]
    r = post(w, {"node": "node-9", "cluster": "cluster-2", "records": batch}, token)
    assert r.get_json() == {"received": 1, "new": 0, "skipped": 1}
    # And padmin switching the implicit ns-a1 off leaves cluster-2's (now on again) alone.
    assert w.client("tenant-b").put(f"{API}?cluster=cluster-2", json={"enabled": True}).status_code == 200
    assert w.client("project-admin").put(API, json={"enabled": False}).status_code == 200
    batch = [record(offset=100, message="cluster-2 kept", file="2049:9")]
    r = post(w, {"node": "node-9", "cluster": "cluster-2", "records": batch}, token)
    assert r.get_json() == {"received": 1, "new": 1, "skipped": 0}
    batch = [record(offset=100, message="implicit dropped")]
    assert post(w, {"node": "node-1", "records": batch}, token).get_json()["skipped"] == 1
    every = w.client("platform-admin").get("/api/v1/logs", query_string={"size": 100}).get_json()["items"]
    assert sorted((i["cluster"], i["message"]) for i in every) == [
        ("cluster-2", "cluster-2 kept"),
        ("default", "implicit kept"),
    ]


def test_the_shipper_applies_a_projects_settings_to_its_own_clusters_pods(
    world: tuple[TenancyWorld, str], tmp_path: Path
) -> None:
    w, _ = world
    assert w.client("tenant-b").put(f"{API}?cluster=cluster-2", json={"exclude": ["app"]}).status_code == 200
    implicit, two = FakeCluster(), FakeCluster()
    for name, source in (("implicit", implicit), ("cluster-2", two)):
        pod = source.add_pod("ns-a1", "api-1", "app", "sidecar")
        for i in range(3):
            for container in ("app", "sidecar"):
                source.emit(pod, container, T0 - (3 - i) * 1_000_000_000, f"{name} {container} {i}")
    store = EmbeddedLogStore(tmp_path / "store")
    try:
        shipper = Shipper(
            sources=lambda: {"": implicit, "cluster-2": two},
            sink=store.write,
            directory=tmp_path / "ship",
            rules=LogCollectionStore(w.hub.db).rules,  # what the settings route wrote
            clock=FakeClock(T0 / 1e9),
        )
        shipper.poll_once()
        shipper.drain()
        lines = store.export(LogQuery(visibility=None, sort="asc"), limit=1000)
        got = Counter((line.cluster, line.message.rsplit(" ", 1)[0]) for line in lines)
        assert got == {("", "implicit app"): 3, ("", "implicit sidecar"): 3, ("cluster-2", "cluster-2 sidecar"): 3}
    finally:
        store.close()


def test_rules_are_asked_by_the_lines_own_cluster() -> None:
    rules = CollectionRules({"cluster-2/shop": CollectionSettings(enabled=False)}, implicit="prod")
    assert not rules.admits_in("cluster-2", "shop", "app")
    assert rules.admits_in("", "shop", "app") and rules.admits_in("prod", "shop", "app")
    rules = CollectionRules({"shop": CollectionSettings(enabled=False)}, implicit="prod")
    assert not rules.admits_in("", "shop", "app") and not rules.admits_in("prod", "shop", "app")
    assert rules.admits_in("cluster-2", "shop", "app")


def test_a_projects_retention_drops_its_own_clusters_lines_only(tmp_path: Path) -> None:
    day = 86_400
    now = 1_795_219_200.0 + 12 * 3600
    store = EmbeddedLogStore(tmp_path / "logs")
    written = [
        LogRecord(
            time=now - age * day,
            namespace="shop",
            pod="shop-0",
            container="app",
            message=f"{cluster or 'implicit'} age{age}",
            pod_uid=f"uid-{cluster}",
            cluster=cluster,
        )
        for age in range(4)
        for cluster in ("", "default", "cluster-2")
    ]
    store.write(written)
    entries: list[tuple[str, dict[str, Any]]] = []

    class Audit:
        def audit(self, actor: str, action: str, target: str, result: str, detail: Any = None) -> int:
            entries.append((target, dict(detail or {})))
            return len(entries)

    service = LogService(
        store=store,
        settings=Settings(data_dir=tmp_path).replace(logs={"retention_days": 7}),
        tenancy=Audit(),
        clock=FakeClock(now),
        project_retention=lambda: {"cluster-2/shop": 2},
    )
    try:
        service.apply_retention()
        left = sorted(line.message for line in store.search(LogQuery(visibility=None, size=100)).items)
        expected = sorted(r.message for r in written if r.cluster != "cluster-2" or r.time >= now - day - 12 * 3600)
        assert left == expected and len(left) == 10  # cluster-2 keeps today's and yesterday's
        assert entries == [
            (
                "namespace/cluster-2/shop",
                {"before": "2026-11-20", "lines": 2, "cluster": "cluster-2", "namespace": "shop"},
            )
        ]
    finally:
        store.close()
