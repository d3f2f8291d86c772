"""The deployment, proven on the sandbox's real API server.

The rendered Helm chart (in a fresh namespace) and deploy/kubernetes/kubehub.yaml are applied
server-side. Both Deployments are applied with ``replicas: 0``: the sandbox is shared and KWOK
would report their pods as running on its fake nodes, so instead each pod template is sent as a
server-side dry-run Pod into a namespace that enforces the "restricted" Pod Security Standard,
which runs the API server's admission without creating anything.

Then the hub runs as a local ``kubehub serve`` process AS THE CHART'S SERVICE ACCOUNT: a token
from the TokenRequest API and the sandbox's CA in a directory named by
KUBEHUB_KUBERNETES_SERVICEACCOUNT_DIR, KUBERNETES_SERVICE_HOST/PORT pointing at the API server,
exactly what a pod gets. The cluster pages, a management action of every kind, monitoring, the
log shipper and an alert cycle must work with no 403 anywhere; SelfSubjectAccessReviews and real
requests with the same token show that the account can do nothing beyond its documented rules.
Everything the test creates (namespaces, cluster roles and bindings) is deleted afterwards.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.core import Sandbox
from tests.integration.deploy_support import HA_VALUES, KubeAdmin, manifest, one, render
from tests.polling import wait_until

pytestmark = pytest.mark.integration

RELEASE = "kubehub-it"
PASSWORD = "Deploy-test-pass-7"
LOG_NAMESPACE = "retail-api"  # a seeded project whose KWOK pods write logs
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "kubehub.test/owner": "test_deploy_in_cluster"}


@dataclass
class Deployed:
    admin: KubeAdmin
    namespace: str
    chart: list[dict[str, Any]]
    manifest: list[dict[str, Any]]
    service_account: str
    extra_namespaces: list[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _without_pods(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] != "Deployment":
        return obj
    obj = copy.deepcopy(obj)
    obj["spec"]["replicas"] = 0
    return obj


def _cluster_scoped(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


@pytest.fixture(scope="module")
def deployed(sandbox: Sandbox) -> Iterator[Deployed]:
    admin = KubeAdmin.from_kubeconfig(sandbox.kubeconfig)
    ns = f"kubehub-it-{secrets.token_hex(3)}"
    chart = render(RELEASE, ns, HA_VALUES)
    fixed = manifest()
    fixed_ns = one(fixed, "Namespace")["metadata"]["name"]
    # A namespace left Terminating by an earlier run must be gone before the manifest recreates it.
    admin.wait_gone(f"/api/v1/namespaces/{fixed_ns}")
    state = Deployed(admin, ns, chart, fixed, one(chart, "ServiceAccount")["metadata"]["name"], [])
    try:
        admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": RESTRICTED}})
        # The Secret the chart's values name (the operator creates it; the pods do not run here).
        admin.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": HA_VALUES["database.existingSecret"], "namespace": ns},
                "stringData": {"url": "postgresql://kubehub:secret@postgresql.db:5432/kubehub"},
            }
        )
        for obj in chart:
            admin.apply(_without_pods(obj))
        for obj in fixed:
            admin.apply(_without_pods(obj))
        yield state
    finally:
        for obj in _cluster_scoped(chart) + _cluster_scoped(fixed):
            admin.delete(admin.path_of(obj))
        gone = [ns, fixed_ns, *state.extra_namespaces]
        for name in gone:
            admin.delete(f"/api/v1/namespaces/{name}")
        for obj in _cluster_scoped(chart) + _cluster_scoped(fixed):
            admin.wait_gone(admin.path_of(obj))
        for name in gone:
            admin.wait_gone(f"/api/v1/namespaces/{name}", timeout=120)


def test_the_chart_and_the_manifest_are_accepted_and_their_pods_pass_restricted_admission(deployed: Deployed) -> None:
    admin = deployed.admin
    for obj in deployed.chart + deployed.manifest:
        live = admin.get(admin.path_of(obj))
        assert live is not None, (obj["kind"], obj["metadata"]["name"])
        assert live["metadata"]["name"] == obj["metadata"]["name"]
    fixed_ns = one(deployed.manifest, "Namespace")["metadata"]["name"]
    for deployment, namespace in (
        (one(deployed.chart, "Deployment"), deployed.namespace),
        (one(deployed.manifest, "Deployment"), fixed_ns),
    ):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "admission-probe", "namespace": namespace},
            "spec": deployment["spec"]["template"]["spec"],
        }
        r = admin.call("POST", f"/api/v1/namespaces/{namespace}/pods", params={"dryRun": "All"}, json=pod)
        assert r.json()["spec"]["serviceAccountName"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]
        # The same check refuses a pod that may run as root: it can fail.
        rooted = copy.deepcopy(pod)
        rooted["spec"]["securityContext"] = {}
        rooted["spec"]["containers"][0]["securityContext"] = {}
        r = admin.call(
            "POST", f"/api/v1/namespaces/{namespace}/pods", params={"dryRun": "All"}, json=rooted, expect=(403,)
        )
        assert "PodSecurity" in r.text and "restricted" in r.text
    listed = admin.get(f"/api/v1/namespaces/{deployed.namespace}/pods")
    assert listed is not None and listed["items"] == []  # nothing ran in the shared sandbox


# ---- the hub as the chart's service account ---------------------------------------------------


def _token_for(deployed: Deployed, *, seconds: int = 3600, namespace: str = "", account: str = "") -> str:
    """A token of the chart's service account (or another one) from the TokenRequest API."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
    namespace, account = namespace or deployed.namespace, account or deployed.service_account
    r = deployed.admin.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", json=body)
    return str(r.json()["status"]["token"])


@dataclass
class HubProcess:
    base: str
    token: str
    log: Path

    def call(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kw: Any) -> Any:
        r = requests.request(
            method, self.base + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30, **kw
        )
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text[:600]}"
        return r.json() if r.content and r.headers.get("Content-Type", "").startswith("application/json") else r

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)


@pytest.fixture(scope="module")
def hub_as_service_account(
    deployed: Deployed, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubProcess]:
    home = tmp_path_factory.mktemp("in-cluster")
    account = home / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(_token_for(deployed), encoding="utf-8")
    (account / "ca.crt").write_bytes(Path(deployed.admin.session.verify).read_bytes())  # type: ignore[arg-type]
    (account / "namespace").write_text(deployed.namespace, encoding="utf-8")
    port = _free_port()
    api_port = deployed.admin.server.rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_") and k != "KUBECONFIG"}
    env.update(
        HOME=str(home),  # no ~/.kube/config to fall back on
        KUBERNETES_SERVICE_HOST="127.0.0.1",
        KUBERNETES_SERVICE_PORT=api_port,
        KUBEHUB_KUBERNETES_SERVICEACCOUNT_DIR=str(account),
        KUBEHUB_DATA_DIR=str(home / "data"),
        KUBEHUB_HTTP_PORT=str(port),
        KUBEHUB_PROMETHEUS_URL=sandbox.prometheus_url,
        KUBEHUB_LOGS_SHIP="true",
        KUBEHUB_LOGS_SHIP_NAMESPACES=LOG_NAMESPACE,
        KUBEHUB_LOGS_SHIP_INTERVAL="1",
        KUBEHUB_ALERTS_TICK_SECONDS="2",
        KUBEHUB_AUTH_PASSWORD_HASH_MEMORY_KIB="1024",
        KUBEHUB_AUTH_PASSWORD_HASH_TIME_COST="1",
        KUBEHUB_LOG_LEVEL="info",
        KH_TEST_PASSWORD=PASSWORD,
    )
    kubehub = [sys.executable, "-m", "hub.cli"]
    made = subprocess.run(
        [*kubehub, "users", "create-admin", "admin", "--password-env", "KH_TEST_PASSWORD"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    log = home / "hub.log"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([*kubehub, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return requests.get(base + "/healthz", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
                return False

        wait_until(up, timeout=90, interval=0.5, what="kubehub serve /healthz")
        r = requests.post(base + "/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        yield HubProcess(base, r.json()["token"], log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["name"]) for i in items}


def test_the_hub_as_the_service_account_reads_the_cluster_monitors_ships_logs_and_alerts_with_no_403(
    deployed: Deployed, hub_as_service_account: HubProcess
) -> None:
    hub, admin = hub_as_service_account, deployed.admin

    # The watch cache loads every kind (a refused LIST/WATCH would leave it stale or unloaded).
    def fresh() -> Any:
        body = hub.get("/api/v1/cluster/freshness")
        resources = {r["resource"]: r for r in body["resources"]}
        pending = {n: r["error"] for n, r in resources.items() if not r["synced"] or r["error"] or r["stale_since"]}
        assert body["connection"] == "in-cluster", body["connection"]
        assert not pending, pending  # shown by the timeout: which kind, and the API server's reason
        return resources if len(resources) == 13 else None

    wait_until(fresh, timeout=60, interval=0.5, what="every watched kind loaded")
    ready = requests.get(hub.base + "/readyz", timeout=10).json()
    states = {b["name"]: b["state"] for b in ready["backends"]}
    assert states["cluster"] == "ok" and set(states.values()) <= {"ok", "disabled"}, states

    # Cluster pages against the API server's own answers (the admin's view is the reference).
    api_nodes = {n["metadata"]["name"] for n in admin.get("/api/v1/nodes")["items"]}  # type: ignore[index]
    assert _names(hub.get("/api/v1/nodes")["items"]) == api_nodes
    api_pods = {p["metadata"]["name"] for p in admin.get(f"/api/v1/namespaces/{LOG_NAMESPACE}/pods")["items"]}  # type: ignore[index]
    assert _names(hub.get(f"/api/v1/namespaces/{LOG_NAMESPACE}/pods")["items"]) == api_pods
    for page in ("workloads", "services", "configmaps", "secrets", "events"):
        hub.get(f"/api/v1/namespaces/{LOG_NAMESPACE}/{page}")
    hub.get("/api/v1/namespaces")
    pod = sorted(api_pods)[0]
    hub.get(f"/api/v1/namespaces/{LOG_NAMESPACE}/pods/{pod}")
    hub.call("GET", f"/api/v1/namespaces/{LOG_NAMESPACE}/pods/{pod}/log", params={"tail": 5})

    # Monitoring: Prometheus's node series, joined with the cluster's nodes.
    body = hub.get("/api/v1/monitoring/nodes", metrics="node_memory_utilisation")
    series = body["results"][0]
    shown = {s.get("metric", s.get("labels", {})).get("node") for s in series.get("data", series.get("series", []))}
    assert shown and shown <= api_nodes, shown

    # Logs: the shipper reads pods/log through the API server as the account.
    def shipped() -> Any:
        found = hub.get("/api/v1/logs", namespaces=LOG_NAMESPACE)
        return found if found.get("total", len(found.get("items", found.get("hits", [])))) else None

    wait_until(shipped, timeout=60, interval=0.5, what=f"shipped log lines of {LOG_NAMESPACE}")

    # Alerting: a node policy from a built-in template, made to fire on every node (memory above
    # 0 %), is evaluated by the rule engine: one alert per node Prometheus has memory series for.
    rule = {
        "name": "memory-any",
        "metric": "node_memory_utilisation",
        "aggregation": "avg",
        "comparator": ">",
        "threshold": 0,
        "unit": "percent",
        "period": "1m",
        "consecutive": 1,
        "severity": "minor",
    }
    created = hub.call(
        "POST",
        "/api/v1/alerting/policies/templates/node-memory",
        json={"name": f"it-{deployed.namespace}", "rules": [rule]},
        expect=(201,),
    )

    def alerted() -> Any:
        items = hub.get("/api/v1/alerting/alerts")["items"]
        nodes = {a["labels"].get("node") for a in items if a["policy_id"] == created["id"] and a["active"]}
        return nodes if nodes == shown else None

    wait_until(alerted, timeout=60, interval=0.5, what="an alert per node from the new policy")

    # Management actions of every kind, on objects of the test's own namespace.
    probe = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": deployed.namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "main", "image": "registry.example/probe:1"}]},
            },
        },
    }
    admin.apply(probe)
    project = deployed.namespace + "-p"
    deployed.extra_namespaces.append(project)
    workspace = deployed.namespace + "-ws"
    hub.call("POST", "/api/v1/workspaces", json={"name": workspace}, expect=(201,))
    hub.call("POST", f"/api/v1/workspaces/{workspace}/projects", json={"namespace": deployed.namespace}, expect=(201,))
    path = f"/api/v1/namespaces/{deployed.namespace}/workloads/deployment/probe"
    wait_until(
        lambda: hub.call("GET", path, expect=(200, 404)),
        timeout=30,
        interval=0.5,
        what="the probe deployment in the cache",
    )
    hub.call("POST", path + "/scale", json={"replicas": 0})
    hub.call("POST", path + "/restart")
    hub.call("POST", path + "/image", json={"container": "main", "image": "registry.example/probe:2"})
    live = admin.get(f"/apis/apps/v1/namespaces/{deployed.namespace}/deployments/probe")
    assert live is not None and live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/probe:2"
    hub.call("DELETE", path, expect=(200, 202, 204))
    hub.call("POST", f"/api/v1/workspaces/{workspace}/projects", json={"namespace": project}, expect=(201,))
    assert admin.get(f"/api/v1/namespaces/{project}") is not None
    hub.call("GET", f"/api/v1/workspaces/{workspace}/projects/{project}/deletion")  # lists its PVCs
    hub.call("DELETE", f"/api/v1/workspaces/{workspace}/projects/{project}?confirm={project}", expect=(200,))
    node = sorted(api_nodes)[0]
    try:
        hub.call("POST", f"/api/v1/nodes/{node}/cordon")
        assert admin.get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable") is True  # type: ignore[index]
    finally:
        hub.call("POST", f"/api/v1/nodes/{node}/uncordon")
    assert not admin.get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable")  # type: ignore[index]

    text = hub.log.read_text(encoding="utf-8")
    refused = [ln for ln in text.splitlines() if "403" in ln or "Forbidden" in ln or "forbidden" in ln]
    assert not refused, "\n".join(refused[:20])


@pytest.mark.parametrize("source", ["chart", "manifest"])
def test_the_service_account_can_do_nothing_beyond_its_documented_rules(deployed: Deployed, source: str) -> None:
    if source == "chart":
        token = _token_for(deployed, seconds=600)
    else:
        account = one(deployed.manifest, "ServiceAccount")["metadata"]
        token = _token_for(deployed, seconds=600, namespace=account["namespace"], account=account["name"])
    sa = KubeAdmin(deployed.admin.server, Path(str(deployed.admin.session.verify)), token=token)
    ns = deployed.namespace
    allowed = [
        ("list", "nodes", ""),
        ("patch", "nodes", ""),
        ("watch", "pods", ""),
        ("create", "namespaces", ""),
        ("delete", "namespaces", ""),  # deleting a project deletes its namespace
        ("list", "persistentvolumeclaims", ""),  # the project deletion preview
        ("patch", "deployments", "apps"),
        ("delete", "cronjobs", "batch"),
        ("list", "secrets", ""),  # names only: the hub asks for metadata (docs/cluster.md)
    ]
    for verb, resource, group in allowed:
        assert sa.can(verb, resource, group=group, namespace="retail-api"), (verb, resource)
    assert sa.can("get", "pods", namespace="retail-api", subresource="log")
    denied = [
        ("get", "secrets", "", "kube-system", ""),
        ("get", "secrets", "", ns, ""),
        # get on configmaps is granted since apply from YAML (it reads the current object);
        # deleting one is not.
        ("delete", "configmaps", "", "kube-system", ""),
        ("delete", "nodes", "", "", ""),
        ("create", "pods", "", "retail-api", ""),
        ("create", "pods", "", "retail-api", "exec"),
        ("create", "serviceaccounts", "", ns, "token"),
        ("update", "deployments", "apps", "retail-api", ""),
        # patch on jobs and create on deployments are granted since apply from YAML; these are not.
        ("update", "jobs", "batch", "retail-api", ""),
        ("deletecollection", "deployments", "apps", "retail-api", ""),
        ("create", "clusterroles", "rbac.authorization.k8s.io", "", ""),
        ("create", "rolebindings", "rbac.authorization.k8s.io", ns, ""),
        ("impersonate", "users", "", "", ""),
        ("delete", "persistentvolumes", "", "", ""),
        ("delete", "persistentvolumeclaims", "", "retail-api", ""),
        ("get", "persistentvolumeclaims", "", "retail-api", ""),
        ("update", "leases", "coordination.k8s.io", "kube-system", ""),
    ]
    for verb, resource, group, namespace, sub in denied:
        assert not sa.can(verb, resource, group=group, namespace=namespace, subresource=sub), (verb, resource, sub)
    # And for real, not only as a review: reading a Secret, deleting a node, exec-less pod creation.
    sa.call("GET", "/api/v1/namespaces/kube-system/secrets/anything", expect=(403,))
    node = sa.get("/api/v1/nodes")["items"][0]["metadata"]["name"]  # type: ignore[index]
    sa.call("DELETE", f"/api/v1/nodes/{node}", params={"dryRun": "All"}, expect=(403,))
    # (ConfigMaps may be created since apply from YAML; Pods may not.)
    sa.call(
        "POST",
        f"/api/v1/namespaces/{ns}/pods",
        json={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "x", "image": "registry.example/x:1"}]},
        },
        params={"dryRun": "All"},
        expect=(403,),
    )
    sa.call("DELETE", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/x", params={"dryRun": "All"}, expect=(403,))
    # The hub's metadata-only list reaches the names and never the values.
    r = sa.call(
        "GET",
        f"/api/v1/namespaces/{ns}/secrets",
        headers={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
    )
    items = json.loads(r.text)["items"]
    assert items and all("data" not in i for i in items)
