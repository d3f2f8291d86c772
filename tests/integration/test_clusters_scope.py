"""Several clusters in one hub: the scope keyed by (cluster, namespace), monitoring per cluster
and across clusters, on the run's private two-cluster sandbox (``private_two_clusters``,
tests/integration/private_clusters.py, shared with the other multi-cluster modules) with a
Prometheus of this module's own scraping both clusters apart by a ``cluster`` label (as ``sandbox
up --clusters 2`` configures it, a shared Thanos/Mimir-like endpoint) and an SMTP catcher.

- Cross-cluster node ranking: a platform admin's one table over both clusters equals
  Prometheus's own evaluation of ``max by (cluster, node)`` over the raw series (the outside
  reference), ranked, paged; each cluster's nodes are exactly that cluster's API server's.
- A node policy of the implicit cluster, evaluated by the hub's engine against the endpoint both
  clusters share, fires on exactly that cluster's nodes (its API server's list), its query
  matching the cluster's label, and its email names the cluster in the subject and the body.
- Workload policies of ``retail-api`` in each cluster fire on that cluster's workloads only
  (Prometheus's own evaluation with the cluster matched as the reference), the email naming it.
- Escape: ``retail-api`` exists in both clusters for two tenants (workspace retail in the
  implicit cluster, workspace logistics granted cluster-2). Neither reads the other's workloads,
  metrics or alerts by the cluster in the query, in a header or in a body, and neither reads the
  audit log at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.header import decode_header, make_header
from typing import Any

import pytest
import requests

from hub.clusters.secretbox import new_key
from hub.collectors.catalogue import default_catalogue
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from sandbox import kube
from sandbox.core import Sandbox
from tests.integration.alerts_support import mails_to, text_of
from tests.integration.cluster_support import FAST_AUTH, PASSWORD, wait_until
from tests.integration.private_clusters import ensure_live, monitoring
from tests.integration.test_clusters_multi import workloads_of_api_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

USERS = ("admin", "retail-op", "pay-op", "c2-viewer", "c1-viewer")


@pytest.fixture(scope="module")
def two(private_two_clusters: Sandbox) -> Iterator[Sandbox]:
    """The run's pair, whole, with this module's Prometheus and SMTP catcher (stopped at its end)."""
    t0 = time.monotonic()
    with monitoring(ensure_live(private_two_clusters)) as sb:
        print(f"the two clusters' Prometheus up in {time.monotonic() - t0:.1f}s")
        yield sb


def prom(sb: Sandbox, expr: str) -> list[dict[str, Any]]:
    r = requests.get(f"{sb.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


@pytest.fixture(scope="module")
def world(two: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, dict[str, Any]]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hub")).replace(
        kubernetes={"kubeconfig": str(two.kubeconfig), "request_timeout": 5.0},
        prometheus={"url": two.prometheus_url},
        logs={"ship": False},
        auth=dict(FAST_AUTH),
        clusters={"secret_key": new_key(), "default_metrics_label": "default"},
        smtp={"host": two.smtp_host, "port": two.smtp_port, "sender": "kubehub-test@localhost"},
        alerts={"tick_seconds": 5.0, "delivery_seconds": 1.0, "group_wait_seconds": 1.0},
        http={"public_url": "http://console.example"},
    )
    hub = build_hub(settings, background=True)
    from web import create_app

    app = create_app(hub=hub, testing=True)
    t = hub.tenancy
    t.create_user("admin", PASSWORD, platform_role="admin")
    for user in USERS[1:]:
        t.create_user(user, PASSWORD)
    second = two.site("cluster-2")
    hub.clusters.add(
        {
            "name": "cluster-2",
            "connection": {"mode": "kubeconfig", "kubeconfig_path": str(second.kubeconfig)},
            "metrics": {"mode": "shared", "url": two.prometheus_url, "label_value": "cluster-2"},
        },
        actor="admin",
    )
    t.create_workspace("retail", actor="admin")
    t.create_project("retail", "retail-api", actor="admin")
    t.set_project_member("retail-api", "retail-op", "operator", actor="admin")
    # logistics: the workspace cluster-2's retail-api is labelled with (the hub creates or adopts
    # a project's namespace in its cluster, and refuses one another workspace holds there).
    t.create_workspace("logistics", actor="admin")
    t.grant_cluster("logistics", "cluster-2", actor="admin")
    t.create_project("logistics", "retail-api", cluster="cluster-2", actor="admin")
    t.set_project_member("cluster-2/retail-api", "pay-op", "operator", actor="admin")
    t.set_cluster_member("cluster-2", "c2-viewer", "viewer", actor="admin")
    t.set_cluster_member("default", "c1-viewer", "viewer", actor="admin")
    clients = {}
    for user in USERS:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {t.issue_token(user, kind='named', name='sc').token}"
        clients[user] = client
    # Both clusters' series are in: nodes (nodesim) and workloads (kube-state-metrics).
    wait_until(
        lambda: (
            {r["metric"].get("cluster") for r in prom(two, 'count by (cluster) (node_memory_MemTotal_bytes{node!=""})')}
            == {"default", "cluster-2"}
        ),
        timeout=90,
        what="both clusters' node series",
    )
    wait_until(
        lambda: len(prom(two, 'count by (cluster) (kube_pod_owner{namespace="retail-api"})')) == 2,
        timeout=90,
        what="both clusters' retail-api workloads",
    )
    try:
        yield hub, clients
    finally:
        hub.close()


def test_a_platform_admin_ranks_the_nodes_of_every_cluster_in_one_table(
    two: Sandbox, world: tuple[Hub, dict[str, Any]]
) -> None:
    _hub, c = world
    metric = "node_memory_total"
    base = f"/api/v1/monitoring/nodes?clusters=*&metrics={metric}&sort_metric={metric}"
    r = c["admin"].get(f"{base}&limit=1000")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["clusters"] == ["default", "cluster-2"] and body["unavailable"] == []
    rows = [(s["labels"]["cluster"], s["labels"]["node"], s["values"][-1][1]) for s in body["results"][0]["series"]]
    # The outside reference: Prometheus's own evaluation over the raw series, by cluster and node.
    oracle = {
        (x["metric"]["cluster"], x["metric"]["node"]): float(x["value"][1])
        for x in prom(two, 'max by (cluster, node) (node_memory_MemTotal_bytes{node!=""})')
    }
    assert {(cl, n): v for cl, n, v in rows} == oracle and len(rows) == len(oracle)
    values = [v for _, _, v in rows]
    assert values == sorted(values, reverse=True)
    # Each cluster's rows are exactly its own API server's nodes (same names in both clusters
    # stay two rows).
    for name, kubeconfig in (("default", two.kubeconfig), ("cluster-2", two.site("cluster-2").kubeconfig)):
        ref = {n["metadata"]["name"] for n in kube.KubeRest(kubeconfig).list("/api/v1/nodes")}
        assert {n for cl, n, _ in rows if cl == name} == ref
    assert body["total"] == len(oracle)
    # A page of the merged table is the same slice of Prometheus's order.
    page = c["admin"].get(f"{base}&limit=2&page=2").get_json()
    got = [s["values"][-1][1] for s in page["results"][0]["series"]]
    assert got == sorted(oracle.values(), reverse=True)[2:4]
    # One cluster by ?cluster=: only its nodes; a cluster-2 viewer reads cluster-2's, not the implicit one's.
    one = c["c2-viewer"].get(f"/api/v1/monitoring/nodes?cluster=cluster-2&metrics={metric}")
    assert one.status_code == 200, one.get_data(as_text=True)
    assert {(s["labels"]["node"], s["values"][-1][1]) for s in one.get_json()["results"][0]["series"]} == {
        (n, v) for (cl, n), v in oracle.items() if cl == "cluster-2"
    }
    assert c["c2-viewer"].get(f"/api/v1/monitoring/nodes?metrics={metric}").status_code == 403
    assert c["retail-op"].get(f"/api/v1/monitoring/nodes?cluster=cluster-2&metrics={metric}").status_code == 403


def _workload_names(answer: Any) -> set[str]:
    return {s["labels"].get("workload", "") for r in answer.get_json()["results"] for s in r["series"]}


def test_tenants_of_the_same_namespace_name_in_two_clusters_never_see_each_other(
    two: Sandbox, world: tuple[Hub, dict[str, Any]]
) -> None:
    _hub, c = world
    retail, pay = c["retail-op"], c["pay-op"]
    first = workloads_of_api_server(two.kubeconfig, "retail-api")
    second = workloads_of_api_server(two.site("cluster-2").kubeconfig, "retail-api")
    assert first and second and not first & second

    def names(r: Any) -> set[str]:
        assert r.status_code == 200, r.get_data(as_text=True)
        return {w["name"] for w in r.get_json()["items"] if w["kind"] in ("deployment", "statefulset", "daemonset")}

    wl = "/api/v1/namespaces/retail-api/workloads"
    wait_until(lambda: pay.get(f"{wl}?cluster=cluster-2").status_code == 200, timeout=60, what="cluster-2 synced")
    wait_until(lambda: names(pay.get(f"{wl}?cluster=cluster-2")) == second, timeout=60, what="cluster-2 workloads")
    assert names(retail.get(wl)) == first and names(retail.get(f"{wl}?cluster=default")) == first
    leaks = second | first
    for client, foreign_query, own in ((retail, "?cluster=cluster-2", first), (pay, "", second)):
        other = leaks - own
        # Workloads: the cluster in the query, or none (the implicit cluster's retail-api).
        for q in (foreign_query, f"{foreign_query}{'&' if foreign_query else '?'}name=a", "?cluster=nope"):
            r = client.get(f"{wl}{q}")
            assert r.status_code == 403, (q, r.status_code)
            assert not any(n in r.get_data(as_text=True) for n in other)
        # Events and alert policies of the namespace, by the query's cluster.
        for path in ("events", "alerting/policies"):
            r = client.get(f"/api/v1/namespaces/retail-api/{path}{foreign_query or '?cluster=default'}")
            assert r.status_code == 403, (path, r.status_code)
            assert not any(n in r.get_data(as_text=True) for n in other)
        # A header never picks a cluster: the request is the implicit cluster's.
        r = client.get(wl, headers={"X-Kubehub-Cluster": "cluster-2", "Cluster": "cluster-2"})
        assert (r.status_code == 200 and names(r) == first) if client is retail else r.status_code == 403
        # A body naming another cluster than the query's is refused before anything happens.
        r = client.post(
            f"{wl}/deployment/{sorted(own)[0]}/restart",
            json={"cluster": "cluster-2" if client is retail else "default"},
        )
        assert r.status_code in (403, 422), r.status_code
        # Metrics of the namespace, by the query's cluster and across clusters.
        mon = "/api/v1/monitoring/workloads?namespaces=retail-api&metrics=workload_cpu_usage"
        r = client.get(f"{mon}{'&cluster=cluster-2' if client is retail else ''}")
        assert r.status_code == 403 and not any(n in r.get_data(as_text=True) for n in other)
        # Across clusters: only clusters the caller may pick; a namespace named where the caller
        # holds none is refused whole (the implicit cluster's retail-api for logistics), as in one.
        r = client.get(f"{mon}&clusters={'*' if client is retail else 'cluster-2'}")
        assert r.status_code == 200 and not _workload_names(r) & other
        assert client.get(f"{mon}&clusters=*").status_code == (200 if client is retail else 403)
        r = client.get(f"{mon}&clusters=default,cluster-2")
        assert r.status_code == 403
        # Alerts and the audit log: by the query's cluster, a filter, or an id range.
        for q in ("", "?cluster=cluster-2", "?cluster=default", "?namespace=retail-api&cluster=cluster-2"):
            r = client.get(f"/api/v1/alerting/alerts{q}")
            assert r.status_code in (200, 403) and not any(n in r.get_data(as_text=True) for n in other), q
        for q in ("", "?cluster=cluster-2", "?namespace=retail-api"):
            assert client.get(f"/api/v1/audit{q}").status_code == 403
    # Their own metrics, each in their own cluster, exactly the API servers' workloads.
    own_metrics = pay.get(
        "/api/v1/monitoring/workloads?namespaces=retail-api&metrics=workload_pod_count&cluster=cluster-2"
    )
    assert own_metrics.status_code == 200 and _workload_names(own_metrics) <= second
    mine = retail.get("/api/v1/monitoring/workloads?namespaces=retail-api&metrics=workload_pod_count")
    assert mine.status_code == 200 and _workload_names(mine) <= first

    # The implicit cluster's tenant and the cluster-2 tenant see only their own cluster in the switcher.
    def switcher(client: Any) -> list[str]:
        return [x["name"] for x in client.get("/api/v1/clusters").get_json()["items"]]

    assert switcher(retail) == ["default"] and switcher(pay) == ["default", "cluster-2"]
    assert switcher(c["c2-viewer"]) == ["default", "cluster-2"]
    assert pay.put("/api/v1/workspaces/logistics/clusters/cluster-2").status_code == 403  # grants: platform admins


class _Hook:
    """A webhook receiver on 127.0.0.1 keeping every JSON body it was posted (answers 200)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_node_alert_of_one_cluster_fires_on_its_nodes_and_the_email_names_the_cluster(
    two: Sandbox, world: tuple[Hub, dict[str, Any]]
) -> None:
    hub, c = world
    to = "node-oncall@example.com"
    hook = _Hook()  # a webhook receiver on loopback: each cluster's alerts carry its name as `cluster`
    policy = {
        "name": "node-memory-any",
        "level": "node",
        "rules": [
            {
                "name": "mem",
                "metric": "node_memory_utilisation",
                "comparator": ">",
                "threshold": 0,
                "unit": "percent",
                "period": "20s",
                "consecutive": 1,
                "severity": "critical",
            }
        ],
        "notification": {"receivers": [{"email": to}, {"webhook": hook.url}]},
    }
    r = c["admin"].post("/api/v1/alerting/policies", json=policy)
    assert r.status_code == 201, r.get_data(as_text=True)
    nodes = {n["metadata"]["name"] for n in kube.KubeRest(two.kubeconfig).list("/api/v1/nodes")}

    def firing() -> list[Any]:
        rows, _ = hub.alerting.store.alerts(namespaces=None, include_cluster=True, active=True, limit=1000)
        return [r for r in rows if r["state"] == "firing" and r["rule"] == "mem"]

    rows = wait_until(lambda: len(firing()) >= len(nodes) and firing(), timeout=120, what="node alerts")
    assert {r["entity"] for r in rows} == nodes
    mail = wait_until(lambda: mails_to(two, to), timeout=60, what="the node alert's email")[0]
    subject = str(make_header(decode_header(str(mail["Subject"]))))
    assert "[default]" in subject, subject
    assert "Cluster:       default" in text_of(mail)
    # The engine's query matched the implicit cluster's label on the shared endpoint.
    assert all('cluster="default"' in r["query"] for r in rows) and 'cluster="default"' in text_of(mail)

    # The same policy bound to cluster-2: cluster-2's nodes, as <cluster>/<node>, its own email.
    to2 = "c2-oncall@example.com"
    bound = {
        **policy,
        "name": "node-memory-c2",
        "cluster": "cluster-2",
        "notification": {"receivers": [{"email": to2}, {"webhook": hook.url}]},
    }
    r = c["admin"].post("/api/v1/alerting/policies", json=bound)
    assert r.status_code == 201, r.get_data(as_text=True)
    assert '"cluster": "cluster-2"' in json.dumps(r.get_json())  # the stored document names it
    second = {n["metadata"]["name"] for n in kube.KubeRest(two.site("cluster-2").kubeconfig).list("/api/v1/nodes")}

    def of_c2() -> list[Any]:
        return [r for r in firing() if r["policy_id"] != rows[0]["policy_id"]]

    got = wait_until(lambda: len(of_c2()) >= len(second) and of_c2(), timeout=120, what="cluster-2 node alerts")
    assert {r["entity"] for r in got} == {f"cluster-2/{n}" for n in second}
    assert {json.loads(r["labels"]).get("cluster") for r in got} == {"cluster-2"}
    mail2 = wait_until(lambda: mails_to(two, to2), timeout=60, what="cluster-2's node alert email")[0]
    assert "[cluster-2]" in str(make_header(decode_header(str(mail2["Subject"]))))
    assert "Cluster:       cluster-2" in text_of(mail2)

    # The webhook payloads (Alertmanager's format) name each alert's cluster as its email does:
    # the implicit cluster's by its name, cluster-2's by its own.
    def hooked() -> dict[str, set[str]] | None:
        out: dict[str, set[str]] = {}
        for body in list(hook.bodies):
            for a in body["alerts"]:
                out.setdefault(a["labels"].get("cluster", ""), set()).add(a["labels"]["node"])
        whole = len(out.get("default", ())) >= len(nodes) and len(out.get("cluster-2", ())) >= len(second)
        return out if whole else None

    try:
        seen_hook = wait_until(hooked, timeout=60, what="webhook posts")
    finally:
        hook.stop()
    assert seen_hook == {"default": nodes, "cluster-2": second}
    # Cluster roles apply per cluster: each cluster's viewer reads its own cluster's node alerts only.
    for viewer, own in (("c1-viewer", {r["entity"] for r in rows}), ("c2-viewer", {r["entity"] for r in got})):
        seen = c[viewer].get("/api/v1/alerting/alerts?limit=1000").get_json()["items"]
        assert {a["entity"] for a in seen if a["rule"] == "mem"} == own, viewer
        other = got[0] if viewer == "c1-viewer" else rows[0]
        assert c[viewer].get(f"/api/v1/alerting/alerts/{other['id']}").status_code == 404
    # A workload policy cannot name a cluster (its project's is its cluster), 400/422 naming it.
    wrong = {**bound, "level": "workload", "namespace": "retail-api"}
    r = c["admin"].post("/api/v1/alerting/policies", json=wrong)
    assert r.status_code in (400, 422) and "cluster" in r.get_data(as_text=True)


def test_workload_policies_of_same_named_projects_fire_on_their_own_clusters_workloads(
    two: Sandbox, world: tuple[Hub, dict[str, Any]]
) -> None:
    """A workload policy of cluster-2's ``retail-api`` fires on cluster-2's workloads only, its
    email naming cluster-2; the implicit cluster's tenant's same policy on theirs only. Each set
    equals Prometheus's own evaluation of the catalogue's expression with that cluster's label
    matched (the outside reference) and that cluster's API server's workloads."""
    hub, c = world
    rule = {"name": "pods", "metric": "workload_pod_count", "comparator": ">", "threshold": 0,
            "period": "20s", "consecutive": 1, "severity": "minor"}  # fmt: skip
    made: dict[str, str] = {}
    for user, query, to in (
        ("pay-op", "?cluster=cluster-2", "pay@example.com"),
        ("retail-op", "", "retail@example.com"),
    ):
        doc = {"name": "pods-any", "rules": [rule], "notification": {"receivers": [{"email": to}]}}
        r = c[user].post(f"/api/v1/namespaces/retail-api/alerting/policies{query}", json=doc)
        assert r.status_code == 201, r.get_data(as_text=True)
        made[user] = r.get_json()["id"]

    def firing(policy_id: str) -> list[Any]:
        rows, _ = hub.alerting.store.alerts(namespaces=None, include_cluster=True, active=True, limit=1000)
        return [r for r in rows if r["state"] == "firing" and r["policy_id"] == policy_id]

    catalogue = default_catalogue()
    for user, cluster, key, kubeconfig, to in (
        ("pay-op", "cluster-2", "cluster-2/retail-api", two.site("cluster-2").kubeconfig, "pay@example.com"),
        ("retail-op", "default", "retail-api", two.kubeconfig, "retail@example.com"),
    ):
        # The outside reference: Prometheus evaluating the same expression, the cluster matched.
        expr, _ = catalogue.alert_query(
            "workload", "workload_pod_count", "last", 20, "retail-api", cluster_label=cluster
        )
        oracle = {f"{key}/{x['metric']['kind']}/{x['metric']['workload']}" for x in prom(two, f"({expr}) > 0")}
        names = workloads_of_api_server(kubeconfig, "retail-api")
        assert oracle and {e.rsplit("/", 1)[1] for e in oracle} <= names
        rows = wait_until(
            lambda: {r["entity"] for r in firing(made[user])} >= oracle and firing(made[user]),  # noqa: B023
            timeout=120,
            what=f"{cluster}'s workload alerts",
        )
        assert {r["entity"] for r in rows} == oracle, (cluster, oracle)
        assert {r["namespace"] for r in rows} == {key}
        assert all(f'cluster="{cluster}"' in r["query"] for r in rows)
        mail = wait_until(lambda: mails_to(two, to), timeout=60, what=f"{cluster}'s workload alert email")[0]  # noqa: B023
        assert f"[{cluster}]" in str(make_header(decode_header(str(mail["Subject"]))))
        assert f"Cluster:       {cluster}" in text_of(mail)
        # Each tenant reads their own alerts through the API, never the other cluster's.
        where = "&cluster=cluster-2" if cluster != "default" else ""
        seen = c[user].get(f"/api/v1/alerting/alerts?namespace=retail-api&limit=1000{where}")
        assert seen.status_code == 200, seen.get_data(as_text=True)
        assert {a["entity"] for a in seen.get_json()["items"] if a["rule"] == "pods"} == oracle


def test_a_tenants_promql_rule_of_an_added_clusters_project_reads_that_cluster_only(
    two: Sandbox, world: tuple[Hub, dict[str, Any]]
) -> None:
    """A PromQL rule of cluster-2's ``retail-api`` fires on exactly the rows Prometheus's own
    evaluation of the expression with the namespace and cluster-2's label matched returns (the
    outside reference), its entities carrying the project key, never a pod of the implicit
    cluster's same-named namespace; a rule matching ``cluster`` itself is refused naming it.

    The same expression of the implicit cluster's ``retail-api`` (its tenant, another workspace)
    fires on exactly the rows of Prometheus's evaluation with the namespace and the implicit
    cluster's label (``clusters.default_metrics_label``), none of cluster-2's same-named
    namespace (before: its query matched the namespace only and read both clusters' pods)."""
    hub, c = world
    url = "/api/v1/namespaces/retail-api/alerting/policies?cluster=cluster-2"
    here = "/api/v1/namespaces/retail-api/alerting/policies"
    expr = "max by (namespace, pod) (kube_pod_owner) > 0"
    rule = {"name": "owned", "expr": expr, "period": "20s", "severity": "minor"}
    sneaky = {**rule, "expr": 'max by (namespace, pod) (kube_pod_owner{cluster="default"}) > 0'}
    bad = {"name": "sneaky", "rules": [sneaky], "notification": {"receivers": []}}
    refused = c["pay-op"].post(url, json=bad)
    assert refused.status_code == 422 and "cluster matcher" in refused.get_data(as_text=True), refused.get_data(
        as_text=True
    )
    # The implicit cluster's tenant may not point its rule at cluster-2's series either.
    reach = {**rule, "expr": 'max by (namespace, pod) (kube_pod_owner{cluster="cluster-2"}) > 0'}
    refused = c["retail-op"].post(here, json={**bad, "rules": [reach]})
    assert refused.status_code == 422 and "cluster matcher" in refused.get_data(as_text=True), refused.get_data(
        as_text=True
    )
    r = c["pay-op"].post(url, json={"name": "owned-c2", "rules": [rule], "notification": {"receivers": []}})
    assert r.status_code == 201, r.get_data(as_text=True)
    made = r.get_json()["id"]
    mine = {**rule, "name": "own-pods"}
    r = c["retail-op"].post(here, json={"name": "owned-c1", "rules": [mine], "notification": {"receivers": []}})
    assert r.status_code == 201, r.get_data(as_text=True)
    made_here = r.get_json()["id"]
    try:
        oracle = {
            f"cluster-2/retail-api/{x['metric']['pod']}"
            for x in prom(
                two, 'max by (namespace, pod) (kube_pod_owner{namespace="retail-api",cluster="cluster-2"}) > 0'
            )
        }
        oracle_here = {
            f"retail-api/{x['metric']['pod']}"
            for x in prom(two, 'max by (namespace, pod) (kube_pod_owner{namespace="retail-api",cluster="default"}) > 0')
        }
        pods_c2 = {e.rsplit("/", 1)[1] for e in oracle}
        # Different workloads are seeded in the two namespaces: a leak would show as entities.
        assert oracle and oracle_here and not pods_c2 & {e.rsplit("/", 1)[1] for e in oracle_here}

        def firing(policy_id: str) -> list[Any]:
            rows, _ = hub.alerting.store.alerts(namespaces=None, include_cluster=True, active=True, limit=1000)
            return [r for r in rows if r["state"] == "firing" and r["policy_id"] == policy_id]

        rows = wait_until(
            lambda: {r["entity"] for r in firing(made)} >= oracle and firing(made), timeout=120, what="promql c2"
        )
        assert {r["entity"] for r in rows} == oracle
        assert {r["namespace"] for r in rows} == {"cluster-2/retail-api"}
        assert all('cluster="cluster-2"' in r["query"] and 'namespace="retail-api"' in r["query"] for r in rows)
        # Prometheus's own answer to the query as sent is the same set (the hub added no rows).
        sent = rows[0]["query"].split(" period of: ", 1)[1]
        assert {f"{x['metric']['namespace']}/{x['metric']['pod']}" for x in prom(two, sent)} == oracle
        # The implicit cluster's tenant sees none of them.
        seen = c["retail-op"].get("/api/v1/alerting/alerts?namespace=retail-api&limit=1000")
        assert seen.status_code == 200 and not [a for a in seen.get_json()["items"] if a["rule"] == "owned"]

        # The implicit cluster's rule: its namespace and its cluster label, nothing of cluster-2.
        rows = wait_until(
            lambda: {r["entity"] for r in firing(made_here)} >= oracle_here and firing(made_here),
            timeout=120,
            what="promql implicit",
        )
        assert {r["entity"] for r in rows} == oracle_here
        assert {r["namespace"] for r in rows} == {"retail-api"}
        assert all('cluster="default"' in r["query"] and 'namespace="retail-api"' in r["query"] for r in rows)
        sent = rows[0]["query"].split(" period of: ", 1)[1]
        assert {f"{x['metric']['namespace']}/{x['metric']['pod']}" for x in prom(two, sent)} == oracle_here
        seen = c["retail-op"].get("/api/v1/alerting/alerts?namespace=retail-api&limit=1000")
        assert seen.status_code == 200
        listed = {a["entity"] for a in seen.get_json()["items"] if a["rule"] == "own-pods" and a["state"] == "firing"}
        assert listed == oracle_here
        # cluster-2's tenant sees none of them.
        seen = c["pay-op"].get("/api/v1/alerting/alerts?namespace=retail-api&cluster=cluster-2&limit=1000")
        assert seen.status_code == 200 and not [a for a in seen.get_json()["items"] if a["rule"] == "own-pods"]
    finally:
        c["pay-op"].delete(f"/api/v1/namespaces/retail-api/alerting/policies/{made}?cluster=cluster-2")
        c["retail-op"].delete(f"{here}/{made_here}")


def test_a_cluster_with_its_own_prometheus_is_evaluated_on_it(two: Sandbox, world: tuple[Hub, dict[str, Any]]) -> None:
    """A cluster whose metrics are its own Prometheus (``metrics.mode own``; here the same server
    under another address, so the hub holds a second client): a node policy bound to it is
    evaluated on that endpoint, without a cluster matcher, and fires on exactly the nodes
    Prometheus's own evaluation of the same expression returns, as ``<cluster>/<node>``."""
    hub, c = world
    own_url = two.prometheus_url.replace("127.0.0.1", "localhost")
    assert own_url != two.prometheus_url
    hub.clusters.add(
        {
            "name": "cluster-3",
            "connection": {"mode": "kubeconfig", "kubeconfig_path": str(two.site("cluster-2").kubeconfig)},
            "metrics": {"mode": "own", "url": own_url},
        },
        actor="admin",
    )
    made = ""
    try:
        policy = {
            "name": "node-memory-c3",
            "level": "node",
            "cluster": "cluster-3",
            "rules": [{"name": "mem3", "metric": "node_memory_utilisation", "comparator": ">", "threshold": 0,
                       "unit": "percent", "period": "20s", "consecutive": 1, "severity": "critical"}],
        }  # fmt: skip
        r = c["admin"].post("/api/v1/alerting/policies", json=policy)
        assert r.status_code == 201, r.get_data(as_text=True)
        made = r.get_json()["id"]
        expr, _ = default_catalogue().alert_query("node", "node_memory_utilisation", "last", 20)
        oracle = {f"cluster-3/{x['metric']['node']}" for x in prom(two, f"({expr}) > 0")}
        assert oracle

        def firing() -> list[Any]:
            rows, _ = hub.alerting.store.alerts(namespaces=None, include_cluster=True, active=True, limit=1000)
            return [r for r in rows if r["state"] == "firing" and r["rule"] == "mem3"]

        rows = wait_until(lambda: {r["entity"] for r in firing()} >= oracle and firing(), timeout=120, what="c3")
        assert {r["entity"] for r in rows} == oracle
        assert all('cluster="' not in r["query"] for r in rows)  # its own Prometheus: no matcher
    finally:
        if made:
            c["admin"].delete(f"/api/v1/alerting/policies/{made}")
        hub.clusters.remove("cluster-3", actor="admin")
