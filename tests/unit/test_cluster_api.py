"""The cluster endpoints over a cache fed by our fake API: scoping, staleness, paging, validation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.cluster import RESOURCE_KINDS, ClusterService
from hub.collectors.watchcache import WatchCache
from hub.scope import Scope
from hub.store.audit import AuditFilter
from hub.timeutil import FakeClock, iso
from tests.unit.cluster_fakes import (
    FakeKube,
    deployment_json,
    event_json,
    namespace_json,
    node_json,
    pod_json,
    replicaset_json,
    secret_json,
)
from tests.unit.conftest_tenancy import TenancyWorld, assert_no_leak, build_world

ADMIN_SCOPE = Scope(all_namespaces=True, namespaces={})  # the audit log is read as a platform admin

pytestmark = pytest.mark.unit


class Cluster:
    def __init__(self, kube: FakeKube, service: ClusterService, clock: FakeClock) -> None:
        self.kube, self.service, self.clock = kube, service, clock

    def sync(self) -> None:
        for name in self.service.cache.stores:
            self.service.cache.step(name)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TenancyWorld, Cluster]]:
    w = build_world(tmp_path)
    kube, clock = FakeKube(), FakeClock(1_795_000_000)
    kube.put("namespaces", namespace_json("ns-a1", {"kubesphere.io/workspace": "ws-a"}))
    kube.put("namespaces", namespace_json("ns-a2", {"kubesphere.io/workspace": "ws-a"}))
    kube.put("namespaces", namespace_json("ns-b1", {"kubesphere.io/workspace": "ws-b"}))
    kube.put("namespaces", namespace_json("kube-system"))
    for i in range(3):
        kube.put("nodes", node_json(f"node-{i}", cpu="4", memory="8Gi"))
    dep = kube.put("deployments", deployment_json("ns-a1", "web", replicas=2, ready=2))
    rs = kube.put(
        "replicasets",
        replicaset_json("ns-a1", "web-5d9", deployment=("web", dep["metadata"]["uid"]), revision="1", replicas=2),
    )
    for i in range(2):
        kube.put(
            "pods",
            pod_json(
                "ns-a1",
                f"web-5d9-{i}",
                node="node-0",
                owned_by=("ReplicaSet", "web-5d9", rs["metadata"]["uid"]),
                labels={"app": "web"},
                cpu="1",
                memory="2Gi",
            ),
        )
    for i in range(7):
        kube.put("pods", pod_json("ns-b1", f"secret-project-{i}", node="node-1", labels={"app": "b"}))
    kube.put("secrets", secret_json("ns-a1", "db-password", "top-secret-value"))
    kube.put(
        "events", event_json("ns-a1", "e1", kind="Pod", obj="web-5d9-0", reason="Pulled", last="2026-11-01T10:00:00Z")
    )
    kube.put(
        "events", event_json("ns-a1", "e2", kind="Pod", obj="web-5d9-0", reason="Started", last="2026-11-01T10:01:00Z")
    )
    cache = WatchCache(kube, RESOURCE_KINDS, clock=clock)
    service = ClusterService(kube, clock=clock, cache=cache, autostart=False, initial_wait=0.05)
    cluster = Cluster(kube, service, clock)
    cluster.sync()
    w.hub.cluster = service
    yield w, cluster
    w.hub.close()


def test_tenants_list_only_their_own_namespaces(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    r = w.client("project-operator").get("/api/v1/namespaces")
    assert r.status_code == 200
    assert [n["name"] for n in r.get_json()["items"]] == ["ns-a1"]
    assert_no_leak(r)
    r = w.client("workspace-viewer").get("/api/v1/namespaces")
    assert [n["name"] for n in r.get_json()["items"]] == ["ns-a1", "ns-a2"]
    r = w.client("platform-regular").get("/api/v1/namespaces")
    assert r.get_json() == {"items": [], "total": 0, "stale_since": None}
    r = w.client("platform-admin").get("/api/v1/namespaces")
    assert [n["name"] for n in r.get_json()["items"]] == ["kube-system", "ns-a1", "ns-a2", "ns-b1"]
    assert r.get_json()["items"][1]["workspace"] == "ws-a" and r.get_json()["items"][1]["pods"] == 2


def test_a_tenant_cannot_read_another_tenants_pods_or_nodes(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    client = w.client("project-admin")
    for path in (
        "/api/v1/namespaces/ns-b1/pods",
        "/api/v1/namespaces/ns-b1/workloads",
        "/api/v1/namespaces/ns-b1/pods/secret-project-0/log",
        "/api/v1/namespaces/ns-b1/secrets",
        "/api/v1/nodes",
        "/api/v1/nodes/node-1",
    ):
        r = client.get(path)
        assert r.status_code == 403, path
        assert_no_leak(r, requested="ns-b1")
        assert "secret-project" not in r.get_data(as_text=True)
    r = client.post("/api/v1/namespaces/ns-b1/workloads/deployment/web/scale", json={"replicas": 1})
    assert r.status_code == 403


def test_tenants_see_cache_times_but_not_cluster_wide_counts(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    tenant = w.client("project-viewer").get("/api/v1/cluster/freshness").get_json()
    assert set(tenant["resources"][0]) == {"resource", "synced", "last_sync", "stale_since"}
    admin = w.client("platform-admin").get("/api/v1/cluster/freshness").get_json()
    pods = next(r for r in admin["resources"] if r["resource"] == "pods")
    assert pods["objects"] == 9 and pods["synced"]


def test_nodes_show_requested_against_allocatable(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    body = w.client("platform-admin").get("/api/v1/nodes").get_json()
    assert body["total"] == 3 and body["stale_since"] is None
    node0 = body["items"][0]
    assert node0["name"] == "node-0" and node0["ready"]
    assert node0["allocation"]["requested"] == {"cpu_millis": 2000, "memory_bytes": 4 * 2**30}
    assert node0["allocation"]["cpu_ratio"] == 0.5 and node0["allocation"]["pods"] == 2
    detail = w.client("platform-admin").get("/api/v1/nodes/node-0").get_json()
    assert [p["name"] for p in detail["pods"]] == ["web-5d9-0", "web-5d9-1"]
    assert detail["pods"][0]["workload"] == {"kind": "deployment", "name": "web"}


def test_the_node_listing_carries_the_table_and_the_detail_carries_everything(
    world: tuple[TenancyWorld, Cluster],
) -> None:
    w, cluster = world
    client = w.client("platform-admin")
    pressure = [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "posting ready status"},
        {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory", "message": "low"},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "fine"},
    ]
    cluster.kube.put("nodes", node_json("node-1", conditions=pressure))
    cluster.sync()
    items = {n["name"]: n for n in client.get("/api/v1/nodes").get_json()["items"]}
    listed = items["node-1"]
    table = {"name", "ready", "unschedulable", "roles", "internal_ip", "kubelet_version", "created", "allocation"}
    assert set(listed) == table | {"problems"}
    assert listed["ready"] is True
    assert listed["problems"] == [
        {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory"}
    ]
    detail = client.get("/api/v1/nodes/node-1").get_json()
    assert [c["type"] for c in detail["conditions"]] == ["Ready", "MemoryPressure", "DiskPressure"]
    assert {"labels", "taints", "capacity", "os_image", "uid"} <= set(detail)
    assert detail["allocation"] == listed["allocation"]
    for key in listed:
        assert detail[key] == listed[key], key


def test_a_node_that_stopped_reporting_lists_every_condition_as_a_problem() -> None:
    from hub.collectors.inventory import node_problems
    from hub.model import Condition, Node

    unknown = tuple(Condition(t, "Unknown", "NodeStatusUnknown") for t in ("Ready", "MemoryPressure", "PIDPressure"))
    node = Node(name="n", uid="u", resource_version="1", created=0.0, conditions=unknown)
    assert [p["type"] for p in node_problems(node)] == ["Ready", "MemoryPressure", "PIDPressure"]
    healthy = tuple(Condition(t, s) for t, s in (("Ready", "True"), ("NetworkUnavailable", "False"), ("Hung", "False")))
    assert node_problems(Node(name="n", uid="u", resource_version="1", created=0.0, conditions=healthy)) == []
    not_ready = (Condition("Ready", "False", "KubeletNotReady"), Condition("NetworkUnavailable", "True", "NoRoute"))
    assert node_problems(Node(name="n", uid="u", resource_version="1", created=0.0, conditions=not_ready)) == [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
        {"type": "NetworkUnavailable", "status": "True", "reason": "NoRoute"},
    ]


def test_lists_page_with_limit_and_continue(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    client = w.client("platform-admin")
    first = client.get("/api/v1/namespaces/ns-b1/pods?limit=3").get_json()
    assert first["total"] == 7 and len(first["items"]) == 3 and first["continue"]
    second = client.get(f"/api/v1/namespaces/ns-b1/pods?limit=3&continue={first['continue']}").get_json()
    third = client.get("/api/v1/namespaces/ns-b1/pods?limit=3&page=3").get_json()
    names = [p["name"] for p in first["items"] + second["items"] + third["items"]]
    assert names == [f"secret-project-{i}" for i in range(7)]
    assert "continue" not in third
    filtered = client.get("/api/v1/namespaces/ns-b1/pods?name=PROJECT-6").get_json()
    assert [p["name"] for p in filtered["items"]] == ["secret-project-6"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=99999", "limit"), ("page=x", "page"), ("continue=@@", "continue")],
)
def test_bad_paging_parameters_are_400_naming_the_field(
    world: tuple[TenancyWorld, Cluster], query: str, field: str
) -> None:
    w, _ = world
    r = w.client("platform-admin").get(f"/api/v1/namespaces/ns-a1/pods?{query}")
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_pods_filter_by_label_selector_and_workload(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    client = w.client("project-viewer")
    r = client.get("/api/v1/namespaces/ns-a1/pods?label_selector=app%3Dweb")
    assert r.get_json()["total"] == 2
    r = client.get("/api/v1/namespaces/ns-a1/pods?workload=deployment/web")
    assert [p["name"] for p in r.get_json()["items"]] == ["web-5d9-0", "web-5d9-1"]
    r = client.get("/api/v1/namespaces/ns-a1/pods?label_selector=app%3D%3D%3D")
    assert r.status_code == 400 and r.get_json()["field"] == "label_selector"
    r = client.get("/api/v1/namespaces/ns-a1/pods?workload=web")
    assert r.status_code == 400 and r.get_json()["field"] == "workload"


def test_workload_detail_has_health_pods_revisions_and_events(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    client = w.client("project-viewer")
    body = client.get("/api/v1/namespaces/ns-a1/workloads/deployment/web").get_json()
    assert body["health"]["status"] == "running" and body["health"]["pods"]["running"] == 2
    assert [r["revision"] for r in body["revisions"]] == [1]
    assert [p["name"] for p in body["pods"]] == ["web-5d9-0", "web-5d9-1"]
    listing = client.get("/api/v1/namespaces/ns-a1/workloads?kind=deployment").get_json()
    assert [x["name"] for x in listing["items"]] == ["web"]
    pod = client.get("/api/v1/namespaces/ns-a1/pods/web-5d9-0").get_json()
    assert [e["reason"] for e in pod["events"]] == ["Started", "Pulled"]
    events = client.get("/api/v1/namespaces/ns-a1/events?object=web-5d9-0").get_json()
    assert [e["reason"] for e in events["items"]] == ["Started", "Pulled"]
    r = client.get("/api/v1/namespaces/ns-a1/workloads?kind=pod")
    assert r.status_code == 400 and r.get_json()["field"] == "kind"
    r = client.get("/api/v1/namespaces/ns-a1/workloads/deployment/nope")
    assert r.status_code == 404


def test_secret_listing_has_names_and_labels_but_never_values(world: tuple[TenancyWorld, Cluster]) -> None:
    w, _ = world
    r = w.client("project-viewer").get("/api/v1/namespaces/ns-a1/secrets")
    body = r.get_json()
    assert [s["name"] for s in body["items"]] == ["db-password"] and body["items"][0]["labels"] == {"team": "a"}
    assert "top-secret-value" not in r.get_data(as_text=True)


def test_secret_values_applied_never_come_back_nor_reach_audit_or_logs(
    world: tuple[TenancyWorld, Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    """Apply (issue 19) writes Secret values: they go to the API server and nowhere else."""
    w, cluster = world
    value = "applied-secret-value-93"
    text = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: db-password}}\nstringData: {{password: {value}}}\n"
    client = w.client("project-operator")
    with caplog.at_level("DEBUG"):
        for dry_run in (True, False):
            r = client.post("/api/v1/namespaces/ns-a1/apply", json={"yaml": text, "dry_run": dry_run})
            assert r.status_code == 200, r.get_json()
            assert value not in r.get_data(as_text=True)
            assert "password: (hidden)" in r.get_json()["objects"][0]["diff"]
    sent = [body for method, _, body in cluster.kube.requests if method == "PATCH"]
    assert sent and all(b["stringData"] == {"password": value} for b in sent)  # it did go to Kubernetes
    assert value not in caplog.text
    entries, _ = w.hub.tenancy.audit_store.search(AuditFilter(), offset=0, limit=1000)
    assert any(e.action == "cluster.apply" for e in entries) and value not in repr(entries)


def test_when_the_api_server_is_down_reads_serve_the_cache_with_stale_since_and_writes_are_503(
    world: tuple[TenancyWorld, Cluster],
) -> None:
    w, cluster = world
    cluster.kube.down = True
    cluster.clock.advance(60)
    cluster.sync()  # every watch fails once: the cache is stale from now on
    client = w.client("platform-admin")
    body = client.get("/api/v1/namespaces/ns-a1/pods").get_json()
    assert body["total"] == 2 and body["stale_since"] == iso(1_795_000_060)
    assert client.get("/api/v1/nodes/node-0").get_json()["stale_since"] == iso(1_795_000_060)
    r = client.post("/api/v1/namespaces/ns-a1/workloads/deployment/web/scale", json={"replicas": 3})
    assert r.status_code == 503 and r.get_json()["backend"] == "kubernetes API server"
    r = client.post("/api/v1/nodes/node-0/cordon")
    assert r.status_code == 503 and "kubernetes API server" in r.get_json()["error"]
    cluster.kube.down = False
    cluster.sync()
    assert client.get("/api/v1/namespaces/ns-a1/pods").get_json()["stale_since"] is None


def test_a_cache_that_never_loaded_answers_503_rather_than_an_empty_list(tmp_path: Path) -> None:
    w = build_world(tmp_path)
    kube, clock = FakeKube(), FakeClock(0)
    kube.down = True
    service = ClusterService(kube, clock=clock, autostart=False, initial_wait=0.05)
    for name in service.cache.stores:
        service.cache.step(name)
    w.hub.cluster = service
    try:
        r = w.client("platform-admin").get("/api/v1/nodes")
        assert r.status_code == 503
        assert "has not loaded" in r.get_json()["error"] and r.get_json()["backend"] == "kubernetes API server"
    finally:
        w.hub.close()


def test_without_a_cluster_every_cluster_route_is_503_naming_the_api_server(tmp_path: Path) -> None:
    w = build_world(tmp_path)
    try:
        assert w.hub.cluster is None
        r = w.client("platform-admin").get("/api/v1/nodes")
        assert r.status_code == 503 and r.get_json()["backend"] == "kubernetes API server"
        assert "KUBEHUB_KUBERNETES_KUBECONFIG" in r.get_json()["error"]
    finally:
        w.hub.close()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("workloads/deployment/web/scale", {}, "replicas"),
        ("workloads/deployment/web/scale", {"replicas": "3"}, "replicas"),
        ("workloads/deployment/web/scale", {"replicas": -1}, "replicas"),
        ("workloads/deployment/web/scale", {"replicas": True}, "replicas"),
        ("workloads/daemonset/web/scale", {"replicas": 2}, "kind"),
        ("workloads/widget/web/scale", {"replicas": 2}, "kind"),
        ("workloads/job/web/restart", None, "kind"),
        ("workloads/job/web/rollback", {"revision": 1}, "kind"),
        ("workloads/cronjob/web/rollback", {"revision": 1}, "kind"),
        ("workloads/statefulset/web/rollback", {"revision": -1}, "revision"),
        ("workloads/daemonset/web/rollback", {"revision": "2"}, "revision"),
        ("workloads/deployment/web/rollback", {"revision": "two"}, "revision"),
        ("workloads/deployment/web/image", {"image": "x:1"}, "container"),
        ("workloads/deployment/web/image", {"container": "web", "image": "bad image"}, "image"),
        ("workloads/job/web/image", {"container": "web", "image": "x:1"}, "kind"),
    ],
)
def test_bad_action_input_is_refused_before_reaching_kubernetes(
    world: tuple[TenancyWorld, Cluster], path: str, body: dict | None, field: str
) -> None:
    w, cluster = world
    r = w.client("project-operator").post(f"/api/v1/namespaces/ns-a1/{path}", json=body)
    assert r.status_code in (400, 422), r.get_json()
    assert r.get_json()["field"] == field
    assert cluster.kube.requests == []


def test_a_bad_deletion_propagation_is_a_400(world: tuple[TenancyWorld, Cluster]) -> None:
    w, cluster = world
    r = w.client("project-operator").delete("/api/v1/namespaces/ns-a1/workloads/deployment/web?propagation=later")
    assert r.status_code == 400 and r.get_json()["field"] == "propagation"
    assert cluster.kube.requests == []


def test_viewers_may_not_act_on_workloads(world: tuple[TenancyWorld, Cluster]) -> None:
    w, cluster = world
    r = w.client("project-viewer").post("/api/v1/namespaces/ns-a1/workloads/deployment/web/restart")
    assert r.status_code == 403
    assert cluster.kube.requests == []


def test_log_tail_names_a_missing_container(world: tuple[TenancyWorld, Cluster]) -> None:
    w, cluster = world
    cluster.kube.logs[("ns-a1", "web-5d9-0", "app")] = "one\ntwo\nthree\n"
    client = w.client("project-viewer")
    body = client.get("/api/v1/namespaces/ns-a1/pods/web-5d9-0/log?tail=2").get_json()
    assert body["container"] == "app" and body["lines"] == ["two", "three"]
    r = client.get("/api/v1/namespaces/ns-a1/pods/web-5d9-0/log?container=sidecar")
    assert r.status_code == 422 and r.get_json()["field"] == "container"
    r = client.get("/api/v1/namespaces/ns-a1/pods/web-5d9-0/log?tail=0")
    assert r.status_code == 400 and r.get_json()["field"] == "tail"


def test_the_pod_page_comes_first_and_names_its_log_tail_for_the_script_a_form_reads_it_itself(
    world: tuple[TenancyWorld, Cluster],
) -> None:
    """The tail is the kubelet's answer (seconds on a busy node): the page is answered from the
    watch cache without it, carrying the API address the console's script reads; the tail's own
    form (tail or container named) reads it before answering, and works without the script."""
    from hub.store.audit import AuditFilter

    w, cluster = world
    reads: list[tuple[str, str, str, int]] = []
    real = cluster.kube.read_log

    def counted(namespace: str, pod: str, *, container: str, tail: int, limit_bytes: int) -> str:
        reads.append((namespace, pod, container, tail))
        return real(namespace, pod, container=container, tail=tail, limit_bytes=limit_bytes)

    cluster.kube.read_log = counted  # type: ignore[method-assign]
    cluster.kube.logs[("ns-a1", "web-5d9-0", "app")] = "one\ntwo\nthree\n"
    viewer = w.client("project-viewer")
    html = viewer.get("/projects/ns-a1/pods/web-5d9-0", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert reads == []
    src = re.search(r'data-log-src="([^"]+)"', html)
    assert src and src.group(1) == "/api/v1/namespaces/ns-a1/pods/web-5d9-0/log?tail=100"
    assert "<pre" in html and "three" not in html
    entries, _ = w.tenancy.audit_log(ADMIN_SCOPE, AuditFilter(action="pods.log"))
    assert entries == []  # nothing was read, nothing audited

    # The script's read: the API route, audited there.
    assert viewer.get(src.group(1)).get_json()["lines"] == ["one", "two", "three"]
    assert reads == [("ns-a1", "web-5d9-0", "app", 100)]

    # The form: read before the answer, the lines in the page, no address for the script.
    html = viewer.get("/projects/ns-a1/pods/web-5d9-0?tail=2&container=app", headers={"Accept": "text/html"})
    text = html.get_data(as_text=True)
    assert "data-log-src" not in text and "two\nthree" in text
    assert reads[-1] == ("ns-a1", "web-5d9-0", "app", 2)
    entries, _ = w.tenancy.audit_log(ADMIN_SCOPE, AuditFilter(action="pods.log"))
    assert len(entries) == 2


def table_rows(client: Any, url: str, table_id: str, pattern: str) -> tuple[list[str], str]:
    """A console page (200): what ``pattern`` captures in its table ``table_id`` (none when the
    page has no such table), and the page's text."""
    html = client.get(url, headers={"Accept": "text/html"})
    assert html.status_code == 200
    text = html.get_data(as_text=True)
    table = text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0] if f'id="{table_id}"' in text else ""
    return re.findall(pattern, table), text


def test_a_workloads_page_shows_its_pods_a_hundred_at_a_time(world: tuple[TenancyWorld, Cluster]) -> None:
    """A Deployment of 1,564 pods rendered whole took up to 1.4 s of server time (docs/scale.md):
    the page shows 100 rows, the count of all, and links to the pages beside it."""
    from tests.unit.cluster_fakes import pod_json
    from web.views.cluster import WORKLOAD_PODS_PAGE

    w, cluster = world
    rs = cluster.kube.objects["replicasets"][("ns-a1", "web-5d9")]
    for i in range(2, 250):
        cluster.kube.put(
            "pods",
            pod_json("ns-a1", f"web-5d9-{i}", node="node-0", owned_by=("ReplicaSet", "web-5d9", rs["metadata"]["uid"])),
        )
    cluster.sync()
    viewer = w.client("project-viewer")
    every = viewer.get("/api/v1/namespaces/ns-a1/workloads/deployment/web").get_json()["pods"]
    assert len(every) == 250 and WORKLOAD_PODS_PAGE == 100

    def rows(query: str) -> tuple[list[str], str]:
        url = f"/projects/ns-a1/workloads/deployment/web{query}"
        return table_rows(viewer, url, "pods-table", r'/pods/(web-5d9-\d+)"')

    first, text = rows("")
    assert first == [p["name"] for p in every[:100]]
    assert 'id="pod-count">(250)' in text and "1–100 / 250" in text
    assert 'href="/projects/ns-a1/workloads/deployment/web?from=100"' in text and "?from=0" not in text
    last, text = rows("?from=200")
    assert last == [p["name"] for p in every[200:]] and "201–250 / 250" in text
    assert 'href="/projects/ns-a1/workloads/deployment/web?from=100"' in text and "from=300" not in text
    beyond, text = rows("?from=900")  # past the end: no rows, a way back
    assert beyond == [] and 'id="pods-pager"' in text
    _, text = rows("?from=x")  # a console page is lenient: the first page
    assert "1–100 / 250" in text


def test_the_nodes_page_shows_a_hundred_nodes_at_a_time(world: tuple[TenancyWorld, Cluster]) -> None:
    """1,000 nodes rendered whole were 690 KB and up to 335 ms of server time on the scale
    sandbox: the page shows 100 rows by name, the count of all, and links to the pages beside
    it; the name filter is kept in those links."""
    from tests.unit.cluster_fakes import node_json
    from web.views.cluster import NODES_PAGE

    w, cluster = world
    for i in range(250):
        cluster.kube.put("nodes", node_json(f"pager-{i:03d}"))
    cluster.sync()
    admin = w.client("platform-admin")
    try:
        every = [n["name"] for n in admin.get("/api/v1/nodes?limit=1000").get_json()["items"]]
        assert len(every) > 250 and NODES_PAGE == 100

        def rows(query: str) -> tuple[list[str], str]:
            return table_rows(admin, f"/nodes{query}", "nodes-table", r'data-node="([^"]+)"')

        first, text = rows("")
        assert first == every[:100]
        assert f"1–100 / {len(every)}" in text
        assert 'href="/nodes?from=100"' in text and "from=0" not in text
        second, text = rows("?from=100")
        assert second == every[100:200] and 'href="/nodes?from=0"' in text and 'href="/nodes?from=200"' in text
        filtered, text = rows("?name=pager-&from=100")  # the filter is kept in the links
        assert filtered == [f"pager-{i:03d}" for i in range(100, 200)]
        assert 'href="/nodes?name=pager-&amp;from=200"' in text and "101–200 / 250" in text
        beyond, text = rows("?name=pager-&from=900")  # past the end: no rows, a way back to the last page
        assert beyond == [] and 'href="/nodes?name=pager-&amp;from=200"' in text and 'class="empty"' not in text
        _, text = rows("?from=x")  # a console page is lenient: the first page
        assert f"1–100 / {len(every)}" in text
    finally:
        for i in range(250):
            cluster.kube.remove("nodes", "", f"pager-{i:03d}")
        cluster.sync()


def test_node_listings_follow_pod_and_node_changes_despite_caching(world: tuple[TenancyWorld, Cluster]) -> None:
    w, cluster = world
    client = w.client("platform-admin")

    def node0() -> dict:
        return next(n for n in client.get("/api/v1/nodes").get_json()["items"] if n["name"] == "node-0")

    assert node0()["allocation"]["pods"] == 2
    cluster.kube.put("pods", pod_json("ns-a1", "extra", node="node-0", cpu="500m", memory="1Gi"))
    cluster.sync()
    assert node0()["allocation"]["pods"] == 3
    assert node0()["allocation"]["requested"] == {"cpu_millis": 2500, "memory_bytes": 5 * 2**30}
    finished = pod_json("ns-a1", "extra", node="node-0", cpu="500m", memory="1Gi", phase="Succeeded")
    finished["metadata"]["uid"] = cluster.service.cache["pods"].get("ns-a1", "extra").uid
    cluster.kube.put("pods", finished)
    cluster.sync()
    assert node0()["allocation"]["pods"] == 2
    cluster.kube.put("nodes", node_json("node-0", cpu="4", memory="8Gi", unschedulable=True))
    cluster.sync()
    assert node0()["unschedulable"] is True
    cluster.kube.remove("pods", "ns-a1", "extra")
    cluster.kube.remove("pods", "ns-a1", "web-5d9-0")
    cluster.sync()
    assert node0()["allocation"]["pods"] == 1
    body = client.get("/api/v1/nodes?limit=2").get_json()
    assert body["total"] == 3 and body["continue"] and body["stale_since"] is None


def test_every_log_tail_is_audited_like_a_log_search(world: tuple[TenancyWorld, Cluster]) -> None:
    from hub.store.audit import AuditFilter

    w, cluster = world
    cluster.kube.logs[("ns-a1", "web-5d9-0", "app")] = "one\ntwo\nthree\n"
    viewer = w.client("project-viewer")
    assert viewer.get("/api/v1/namespaces/ns-a1/pods/web-5d9-0/log?tail=2").status_code == 200
    assert viewer.get("/api/v1/namespaces/ns-a1/pods/web-5d9-0/log?container=sidecar").status_code == 422
    assert w.client("project-admin").get("/api/v1/namespaces/ns-b1/pods/secret-project-0/log").status_code == 403
    # the console's pod page reads the same tail
    page = w.client("project-viewer").get("/projects/ns-a1/pods/web-5d9-0?tail=1", headers={"Accept": "text/html"})
    assert page.status_code == 200
    entries, _ = w.tenancy.audit_log(ADMIN_SCOPE, AuditFilter(action="pods.log"))
    seen = [(e.actor, e.result, e.namespaces, e.detail.get("container"), e.detail.get("lines")) for e in entries]
    viewer_name = w.user("project-viewer")
    assert seen.count((viewer_name, "ok", ("ns-a1",), "app", 2)) == 1, seen
    assert seen.count((viewer_name, "ok", ("ns-a1",), "app", 1)) == 1, seen  # the console page
    failed = [e for e in entries if e.result == "failed"]
    assert len(failed) == 1 and "sidecar" in failed[0].detail["reason"] and failed[0].namespaces == ("ns-a1",)
    denied = [e for e in entries if e.result == "denied"]
    assert len(denied) == 1 and denied[0].namespaces == ("ns-b1",) and denied[0].detail["status"] == 403


def test_the_console_cordons_and_uncordons_a_node(world: tuple[TenancyWorld, Cluster]) -> None:
    """The console's node actions (web/views/cluster.py node_action): each route calls its own
    ClusterService method, which patches the node's ``spec.unschedulable`` (None removes it)."""
    w, cluster = world
    client, csrf = w.session("platform-admin")
    for action, unschedulable in (("cordon", True), ("uncordon", None)):
        cluster.kube.requests.clear()
        r = client.post(f"/nodes/node-1/{action}", data={"csrf_token": csrf})
        assert r.status_code in (302, 303), r.get_data(as_text=True)
        assert [(m, p, b["spec"]) for m, p, b in cluster.kube.requests] == [
            ("PATCH", "/api/v1/nodes/node-1", {"unschedulable": unschedulable})
        ]
