"""Several clusters in one hub, on the run's private two-cluster sandbox (``private_two_clusters``,
tests/integration/private_clusters.py: the two clusters as ``kubehub sandbox up --clusters 2``
builds them, without the shared engines; started once per run for every multi-cluster module).

The second cluster is added through the API with its kubeconfig's contents (sealed at rest, never
shown back). Inventory is per cluster (``?cluster=``): the namespace ``retail-api`` exists in both
clusters for two tenants, and each cluster's list is compared with what that cluster's own API
server lists (the outside reference). A tenant of the first cluster's ``retail-api`` is refused the
second's by the ``cluster`` parameter. Logs: two real ``kubehub collect-node`` processes ship
each cluster's lines; a search across clusters equals what was written, and neither tenant of
``retail-api`` reads the other's; the hub's own API poller, in a private hub, ships a line of a
cluster-2 pod under cluster-2 only. Stopping the second cluster's API server makes it stale
(``stale_since``) while the first stays live and keeps answering, and the hub's own meta-alert
names that cluster; the API server is started again afterwards, for the modules after this one.
"""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from hub.clusters.secretbox import new_key
from hub.collectors.logs.nodewire import new_collector_token
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from sandbox import kube
from sandbox.core import Sandbox
from sandbox.crilogs import ContainerLog, Oracle
from tests.conftest import world_database_url
from tests.integration.cluster_support import FAST_AUTH, PASSWORD, wait_until
from tests.integration.private_clusters import add_cluster_two, ensure_live, shipping_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
COLLECTOR_TOKEN, COLLECTOR_DIGEST = new_collector_token()  # the node collectors' ingest credential


@pytest.fixture(scope="module")
def two_clusters(private_two_clusters: Sandbox) -> Sandbox:
    """The run's pair, whole (an earlier module may have stopped a component of it)."""
    return ensure_live(private_two_clusters)


@pytest.fixture(scope="module")
def hub_and_clients(two_clusters: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Any, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hub"), database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(two_clusters.kubeconfig), "request_timeout": 5.0},
        logs={"ship": False, "collector_token_sha256": COLLECTOR_DIGEST},
        # The alert engine runs (its stale-cluster meta-alert): no policies, so it never asks this
        # Prometheus (nothing listens there) for anything.
        prometheus={"url": "http://127.0.0.1:9", "timeout": 1.0},
        alerts={"tick_seconds": 2.0},
        auth=dict(FAST_AUTH),
        clusters={"secret_key": new_key()},
    )
    hub = build_hub(settings, background=True)
    from web import create_app

    app = create_app(hub=hub, testing=True)
    t = hub.tenancy
    t.create_user("admin", PASSWORD, platform_role="admin", email="admin@example.com")
    t.create_user("retail-op", PASSWORD, email="op@example.com")
    t.create_workspace("retail", actor="admin")
    t.create_project("retail", "retail-api", actor="admin")
    t.set_project_member("retail-api", "retail-op", "operator", actor="admin")
    clients = []
    for user in ("admin", "retail-op"):
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {t.issue_token(user, kind='named', name='mc').token}"
        clients.append(client)
    try:
        yield hub, clients[0], clients[1]
    finally:
        hub.close()


def workloads_of_api_server(kubeconfig: Path, ns: str) -> set[str]:
    api = kube.KubeRest(kubeconfig)
    out = set()
    for plural in ("deployments", "statefulsets", "daemonsets"):
        out |= {o["metadata"]["name"] for o in api.list(kube.ns_path(ns, plural, group="apps"))}
    return out


def add_second_cluster(admin: Any, two_clusters: Sandbox) -> Any:
    """POST cluster-2 (its kubeconfig contents) through the API; the answer."""
    second = two_clusters.site("cluster-2")
    kubeconfig_text = second.kubeconfig.read_text()
    r = admin.post(
        "/api/v1/clusters",
        json={
            "name": "cluster-2",
            "display_name": "Second",
            "connection": {"mode": "kubeconfig", "kubeconfig": kubeconfig_text},
            "metrics": {"mode": "shared", "url": "http://127.0.0.1:9", "label_value": "cluster-2"},
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r


def test_inventory_per_cluster_and_the_same_namespace_name_for_two_tenants(
    two_clusters: Sandbox, hub_and_clients: tuple[Hub, Any, Any]
) -> None:
    hub, admin, tenant = hub_and_clients
    second = two_clusters.site("cluster-2")
    r = add_second_cluster(admin, two_clusters)
    view = r.get_json()
    assert view["connection"]["credentials"] == "kubeconfig" and "kubeconfig" not in view["connection"]
    stored = json.dumps([list(row) for row in hub.db.query("SELECT * FROM hub_clusters")])
    assert str(second.pki_dir) not in stored and "client-certificate" not in stored  # sealed at rest

    def workload_names(cluster: str | None) -> set[str]:
        q = f"?cluster={cluster}" if cluster else ""
        r = admin.get(f"/api/v1/namespaces/retail-api/workloads{q}")
        assert r.status_code == 200, r.get_data(as_text=True)
        return {w["name"] for w in r.get_json()["items"] if w["kind"] in ("deployment", "statefulset", "daemonset")}

    first_ref = workloads_of_api_server(two_clusters.kubeconfig, "retail-api")
    second_ref = workloads_of_api_server(second.kubeconfig, "retail-api")
    assert first_ref and second_ref and not first_ref & second_ref
    wait_until(lambda: workload_names(None) == first_ref, timeout=60, what="first cluster's workloads")
    wait_until(lambda: workload_names("cluster-2") == second_ref, timeout=60, what="second cluster's workloads")
    assert workload_names("default") == first_ref  # the implicit cluster by its name, too

    nodes = {
        c: {n["name"] for n in admin.get(f"/api/v1/nodes?cluster={c}").get_json()["items"]}
        for c in ("default", "cluster-2")
    }
    ref = {
        c: {n["metadata"]["name"] for n in kube.KubeRest(k).list("/api/v1/nodes")}
        for c, k in (("default", two_clusters.kubeconfig), ("cluster-2", second.kubeconfig))
    }
    assert nodes == ref and len(ref["cluster-2"]) == second.nodes

    # The first cluster's retail-api tenant reads its own namespace, never the second cluster's
    # namespace of the same name, by the query parameter or an unknown cluster alike.
    own = tenant.get("/api/v1/namespaces/retail-api/workloads")
    assert own.status_code == 200 and {w["name"] for w in own.get_json()["items"]} >= first_ref
    for q in ("?cluster=cluster-2", "?cluster=nope"):
        r = tenant.get(f"/api/v1/namespaces/retail-api/workloads{q}")
        assert r.status_code == 403, (q, r.status_code)
        assert not any(name in r.get_data(as_text=True) for name in second_ref)
    assert [c["name"] for c in tenant.get("/api/v1/clusters").get_json()["items"]] == ["default"]
    assert admin.get("/api/v1/namespaces/retail-api/workloads?cluster=nope").status_code == 404


def write_pod_logs(kubeconfig: Path, root: Path, marker: str, oracle: Oracle) -> str:
    """CRI files, as the kubelet keeps them, for the retail-api pods of one node of a cluster (the
    cluster's own API server says which pods run there); returns that node's name."""
    pods = [
        p for p in kube.KubeRest(kubeconfig).list("/api/v1/namespaces/retail-api/pods") if p["spec"].get("nodeName")
    ]
    assert pods, f"no scheduled retail-api pod in {kubeconfig}"
    node = pods[0]["spec"]["nodeName"]
    for pod in pods:
        if pod["spec"]["nodeName"] != node:
            continue
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]["name"]
        log = ContainerLog(root, "retail-api", meta["name"], meta["uid"], container, oracle=oracle)
        for i in range(5):
            log.write(f"{marker} {meta['name']} line {i}")
        log.close()
    return node


def test_a_log_search_spans_both_clusters_and_a_tenant_never_reads_the_other_clusters_namespace(
    two_clusters: Sandbox, hub_and_clients: tuple[Hub, Any, Any], tmp_path: Path
) -> None:
    """``kubehub collect-node`` of each cluster (real processes, ``--cluster`` for the second) ships
    CRI files of that cluster's retail-api pods into the hub; the written records are the
    reference. A search across clusters finds exactly them, each with its cluster; the tenant of
    the first cluster's retail-api reads only the first cluster's lines by every parameter, and
    the second cluster's tenant of the same-named namespace only the second's."""
    hub, admin, tenant = hub_and_clients
    if "cluster-2" not in hub.clusters.names():
        assert add_second_cluster(admin, two_clusters).status_code == 201
    t = hub.tenancy
    t.create_workspace("logistics", actor="admin")
    t.grant_cluster("logistics", "cluster-2", actor="admin")
    t.create_project("logistics", "retail-api", actor="admin", cluster="cluster-2")
    t.create_user("logistics-op", PASSWORD, email="lo@example.com")
    t.set_project_member("cluster-2/retail-api", "logistics-op", "viewer", actor="admin")
    other = admin.application.test_client()
    other.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {t.issue_token('logistics-op', kind='named', name='mc').token}"
    # Both clusters' watches must know the pods: the ingest labels lines from them.
    wait_until(
        lambda: admin.get("/api/v1/namespaces/retail-api/workloads?cluster=cluster-2").status_code == 200,
        timeout=60,
        what="cluster-2's workloads synced",
    )

    marker = f"mc{int(time.time())}"
    oracles = {"default": Oracle(), "cluster-2": Oracle()}
    kubeconfigs = {"default": two_clusters.kubeconfig, "cluster-2": two_clusters.site("cluster-2").kubeconfig}
    server = make_server("127.0.0.1", 0, admin.application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    procs = []
    try:
        for cluster, kubeconfig in kubeconfigs.items():
            root = tmp_path / cluster / "pods"
            node = write_pod_logs(kubeconfig, root, f"{marker} {cluster}", oracles[cluster])
            args = [sys.executable, "-m", "hub.cli", "collect-node", f"--root={root}", f"--node={node}"]
            args += [f"--state-dir={tmp_path / cluster / 'state'}", f"--hub-url=http://127.0.0.1:{server.port}"]
            args += ["--discover-interval=0.3", "--poll-interval=0.1", "--flush-after=0.5"]
            if cluster != "default":
                args.append(f"--cluster={cluster}")  # the first names none: the implicit cluster
            env = {**os.environ, "KUBEHUB_COLLECTOR_TOKEN": COLLECTOR_TOKEN}
            procs.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        expected = {(c, m) for c, o in oracles.items() for ms in o.records.values() for m in ms}

        def found(client: Any, **query: str) -> Any:
            r = client.get("/api/v1/logs", query_string={"q": marker, "size": 1000, **query})
            return r.status_code, {(i["cluster"], i["message"]) for i in r.get_json().get("items", [])}

        wait_until(lambda: found(admin)[1] == expected, timeout=60, what="both clusters' lines stored")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        server.shutdown()
    first = {x for x in expected if x[0] == "default"}
    second = expected - first
    assert first and second
    assert found(admin, cluster="cluster-2") == (200, second)
    assert found(admin, cluster="default,cluster-2", namespaces="retail-api") == (200, expected)
    assert found(tenant) == (200, first)
    assert found(tenant, namespaces="retail-api", cluster="default") == (200, first)
    assert found(other) == (200, second)
    # Every way of naming the second cluster's retail-api is refused to the first's tenant (and
    # an unknown cluster gets the same words), and no answer holds a line of it.
    words = set()
    for query in (
        {"cluster": "cluster-2"},
        {"cluster": "cluster-2", "namespaces": "retail-api"},
        {"cluster": "default,cluster-2"},
        {"cluster": "nope"},
        {"namespaces": "cluster-2/retail-api"},
    ):
        for path in ("/api/v1/logs", "/api/v1/logs/histogram", "/api/v1/logs/export"):
            r = tenant.get(path, query_string={"q": marker, **query})
            assert r.status_code == 403, (path, query, r.status_code)
            assert f"{marker} cluster-2" not in r.get_data(as_text=True)
            if path == "/api/v1/logs" and "cluster" in query and "," not in query["cluster"]:
                words.add(r.get_json()["error"].replace(query["cluster"], "X"))
    assert len(words) == 1, words
    r = tenant.get(
        "/api/v1/logs/export", query_string={"q": marker, "format": "jsonl"}, headers={"X-Cluster": "cluster-2"}
    )
    assert r.status_code == 200 and f"{marker} default" in r.get_data(as_text=True)
    assert f"{marker} cluster-2" not in r.get_data(as_text=True)
    # ... nor the first cluster's retail-api to the second's tenant
    r = other.get("/api/v1/logs", query_string={"q": marker, "cluster": "default", "namespaces": "retail-api"})
    assert r.status_code == 403


def test_the_hubs_own_shipper_ships_the_second_clusters_pod_lines_under_its_name(
    two_clusters: Sandbox, tmp_path: Path
) -> None:
    """A private hub (its own data directory and lease: the module's hub and the shared sandbox
    are left alone) with the API poller on and cluster-2 registered: a line written into a
    cluster-2 pod's log, which cluster-2's own API server serves (KWOK ClusterLogs over a CRI
    file), is found by a search with cluster=cluster-2 and not under the implicit cluster."""
    second = two_clusters.site("cluster-2")
    api = kube.KubeRest(second.kubeconfig)
    pods = [p for p in api.list("/api/v1/namespaces/retail-api/pods") if p["spec"].get("nodeName")]
    assert pods, "no scheduled retail-api pod in cluster-2"
    container = pods[0]["spec"]["containers"][0]["name"]
    marker = f"shipc2x{int(time.time())}"
    logfile = tmp_path / "cluster-2-retail-api.log"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000000Z"
    logfile.write_text(f"{stamp} stdout F {marker} written in cluster-2\n", encoding="utf-8")
    kube.apply_cluster_object(
        api,
        {
            "apiVersion": f"{kube.KWOK_GROUP}/{kube.KWOK_VERSION_API}",
            "kind": "ClusterLogs",
            "metadata": {"name": "shipper-test-retail-api"},
            "spec": {
                "selector": {"matchNamespaces": ["retail-api"]},
                "logs": [{"containers": [container], "logsFile": str(logfile), "follow": True}],
            },
        },
    )

    def served() -> set[str]:
        """The pods whose log cluster-2's own API server serves with the line: the reference."""
        out = set()
        for p in pods:
            name = p["metadata"]["name"]
            path = f"/api/v1/namespaces/retail-api/pods/{name}/log?container={container}"
            if marker in api.http.request("GET", api.server + path).data.decode("utf-8", "replace"):
                out.add(name)
        return out

    reference = wait_until(served, timeout=30, what="cluster-2's API server serving the written line")
    hub = build_hub(shipping_settings(tmp_path / "hub", two_clusters.kubeconfig), background=True)
    try:
        add_cluster_two(
            hub, second.kubeconfig, {"mode": "shared", "url": "http://127.0.0.1:9", "label_value": "cluster-2"}
        )
        from web import create_app

        app = create_app(hub=hub, testing=True)
        hub.tenancy.create_user("admin", PASSWORD, platform_role="admin", email="admin@example.com")
        admin = app.test_client()
        admin.environ_base["HTTP_AUTHORIZATION"] = (
            f"Bearer {hub.tenancy.issue_token('admin', kind='named', name='ship').token}"
        )

        def found(cluster: str) -> set[tuple[str, str, str]]:
            r = admin.get("/api/v1/logs", query_string={"q": marker, "cluster": cluster, "size": 100})
            assert r.status_code == 200, r.get_data(as_text=True)
            return {(i["cluster"], i["pod"], i["message"]) for i in r.get_json()["items"]}

        want = {("cluster-2", pod, f"{marker} written in cluster-2") for pod in reference}
        wait_until(lambda: found("cluster-2") == want, timeout=90, what="cluster-2's line shipped by the hub")
        assert found("default") == set()
        assert hub.logs.shipper is not None and hub.logs.shipper.followed_clusters() == ["", "cluster-2"]
    finally:
        hub.close()
        api.delete("/apis/kwok.x-k8s.io/v1alpha1/clusterlogs/shipper-test-retail-api")


def namespace_in(kubeconfig: Path, name: str) -> dict[str, Any] | None:
    """The namespace as that cluster's own API server has it (None: it has none of that name)."""
    try:
        found: dict[str, Any] = kube.KubeRest(kubeconfig).get(f"/api/v1/namespaces/{name}")
    except kube.KubeError as exc:
        if exc.status == 404:
            return None
        raise
    return found


def test_a_workspace_admin_creates_and_deletes_a_project_in_cluster_2_on_its_api_server(
    two_clusters: Sandbox, hub_and_clients: tuple[Hub, Any, Any]
) -> None:
    """A project of an added cluster gets its namespace in that cluster's API server (labelled
    with the workspace, its creation time and UID recorded), none in the implicit cluster's;
    a namespace another workspace holds there is 409 without naming that workspace; deleting
    the project (typed confirmation) deletes the namespace in cluster-2. The reference is each
    cluster's own API server."""
    hub, admin, _tenant = hub_and_clients
    if "cluster-2" not in hub.clusters.names():
        assert add_second_cluster(admin, two_clusters).status_code == 201
    second = two_clusters.site("cluster-2")
    t = hub.tenancy
    assert admin.put("/api/v1/workspaces/retail/clusters/cluster-2").status_code in (200, 204)
    t.create_user("retail-ws-admin", PASSWORD, email="wsa@example.com")
    t.set_workspace_member("retail", "retail-ws-admin", "admin", actor="admin")
    ws_admin = admin.application.test_client()
    token = t.issue_token("retail-ws-admin", kind="named", name="mc").token
    ws_admin.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    ns = f"mc-made-{os.getpid()}-{int(time.time()) % 100000}"
    assert namespace_in(second.kubeconfig, ns) is None and namespace_in(two_clusters.kubeconfig, ns) is None

    r = ws_admin.post("/api/v1/workspaces/retail/projects", json={"namespace": ns, "cluster": "cluster-2"})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["namespace"] == ns and r.get_json()["cluster"] == "cluster-2"
    made = namespace_in(second.kubeconfig, ns)
    assert made is not None and made["metadata"]["labels"]["kubesphere.io/workspace"] == "retail"
    assert namespace_in(two_clusters.kubeconfig, ns) is None  # never in the implicit cluster
    record = t.project_record(f"cluster-2/{ns}")
    assert record is not None and record.namespace_uid == made["metadata"]["uid"]
    stamp = calendar.timegm(time.strptime(made["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(record.created - stamp) < 1.0, (record.created, made["metadata"]["creationTimestamp"])

    # cluster-2's logistics-routing is labelled with workspace logistics (the seed): refused,
    # that workspace unnamed, nothing recorded.
    taken = ws_admin.post(
        "/api/v1/workspaces/retail/projects", json={"namespace": "logistics-routing", "cluster": "cluster-2"}
    )
    assert taken.status_code == 409 and taken.get_json()["field"] == "namespace", taken.get_data(as_text=True)
    assert "workspace logistics" not in taken.get_data(as_text=True)
    assert t.project_record("cluster-2/logistics-routing") is None

    preview = ws_admin.get(f"/api/v1/workspaces/retail/projects/{ns}/deletion?cluster=cluster-2")
    assert preview.status_code == 200, preview.get_data(as_text=True)
    assert preview.get_json()["exists"] is True and preview.get_json()["confirm"] == f"cluster-2/{ns}"
    wrong = ws_admin.delete(f"/api/v1/workspaces/retail/projects/{ns}?cluster=cluster-2&confirm={ns}x")
    assert wrong.status_code == 422 and namespace_in(second.kubeconfig, ns) is not None
    gone = ws_admin.delete(f"/api/v1/workspaces/retail/projects/{ns}?cluster=cluster-2&confirm=cluster-2/{ns}")
    assert gone.status_code == 200, gone.get_data(as_text=True)
    assert gone.get_json()["namespace_deleted"] is True and t.project_record(f"cluster-2/{ns}") is None
    wait_until(lambda: namespace_in(second.kubeconfig, ns) is None, timeout=60, what=f"{ns} gone from cluster-2")
    assert namespace_in(two_clusters.kubeconfig, ns) is None


def test_a_cluster_whose_api_server_stops_is_stale_and_the_other_keeps_working(
    two_clusters: Sandbox, hub_and_clients: tuple[Hub, Any, Any]
) -> None:
    hub, admin, _tenant = hub_and_clients
    if "cluster-2" not in hub.clusters.names():  # run on its own: add it as the inventory test does
        assert add_second_cluster(admin, two_clusters).status_code == 201

    def state() -> dict[str, Any]:
        return {c["name"]: c for c in admin.get("/api/v1/clusters").get_json()["items"]}

    wait_until(lambda: state()["cluster-2"]["state"] == "live", timeout=60, what="cluster-2 live")
    # A last known state to serve: cluster-2's workloads synced before its API server stops.
    wait_until(
        lambda: admin.get("/api/v1/namespaces/retail-api/workloads?cluster=cluster-2").status_code == 200,
        timeout=60,
        what="cluster-2's workloads synced",
    )
    # The pair is the run's: its API server is started again afterwards, pass or fail (etcd keeps
    # its data), so the modules after this one find cluster-2 as seeded.
    two_clusters.sup.stop("kube-apiserver@cluster-2")
    try:
        stale = wait_until(
            lambda: (s := state())["cluster-2"]["stale_since"] and s, timeout=90, what="cluster-2 stale_since"
        )
        assert stale["cluster-2"]["state"] == "stale" and stale["default"]["stale_since"] is None
        r = admin.get("/api/v1/namespaces/retail-api/workloads?cluster=cluster-2")
        assert r.status_code == 200 and r.get_json()["stale_since"]  # the last known state, said so
        live = admin.get("/api/v1/namespaces/retail-api/workloads")
        assert live.status_code == 200 and live.get_json()["stale_since"] is None
        assert admin.get("/api/v1/nodes").get_json()["stale_since"] is None

        # The hub's own meta-alert names the stopped cluster, and only it.
        def meta_alerts() -> list[dict[str, Any]]:
            items = admin.get("/api/v1/alerting/alerts").get_json()["items"]
            return [a for a in items if a["policy"] == "kubehub-cluster-unreachable"]

        (alert,) = wait_until(meta_alerts, timeout=60, what="the stale-cluster meta-alert")
        assert alert["entity"] == "cluster/cluster-2" and alert["labels"]["cluster"] == "cluster-2"
        assert alert["state"] == "firing" and alert["labels"]["stale_since"] == stale["cluster-2"]["stale_since"]

        # A project can be placed in cluster-2 only through its API server: 503 naming cluster-2,
        # nothing recorded; the implicit cluster's projects are still made.
        if "cluster-2" not in hub.tenancy.workspace_clusters("retail"):
            hub.tenancy.grant_cluster("retail", "cluster-2", actor="admin")
        down = admin.post("/api/v1/workspaces/retail/projects", json={"namespace": "mc-down", "cluster": "cluster-2"})
        assert down.status_code == 503, down.get_data(as_text=True)
        assert "cluster cluster-2" in down.get_json()["backend"]
        assert hub.tenancy.project_record("cluster-2/mc-down") is None
    finally:
        ensure_live(two_clusters)
