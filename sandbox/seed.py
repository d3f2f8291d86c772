"""Demo data of the sandbox: projects, workloads, pod logs, Elasticsearch documents, users.

What is seeded (idempotently: only what is missing is created):

* two workspaces, ``retail`` and ``analytics``, of two projects each: namespaces labelled
  ``kubesphere.io/workspace=<ws>``; plus ``kubehub-system``, a namespace outside every project;
* workloads of every kind (Deployment, StatefulSet, DaemonSet, Job, CronJob) whose replicas add up
  to about ``--pods`` pods, spread over the simulated nodes; a few run hot through the
  ``kubehub.io/cpu`` / ``kubehub.io/memory`` annotations of their pod templates;
* 24 hours of container logs in English and Chinese with errors and stack traces, written as CRI
  log files that KWOK's ``ClusterLogs`` serve through the pod log API, and bulk-indexed into
  Elasticsearch (``kubehub-logs-YYYY.MM.DD``);
* demo users with generated passwords (``state/credentials.json``).

Users and alert policies live in the hub. :meth:`Seeder.seed_hub` is the hook that creates them
through the hub's own services once those exist (see ``HUB_HOOKS``); until then the credentials
are generated and reported by ``status --json`` only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import secrets
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox import kube, model, volsim, workload_report
from sandbox.procs import ComponentError, wait_for

if TYPE_CHECKING:
    from sandbox.clusters import ClusterSite
    from sandbox.core import Sandbox
    from sandbox.tenants import TenancyPlan

WORKSPACE_LABEL = "kubesphere.io/workspace"
SEED_LABEL = "kubehub.io/sandbox"  # on every seeded object, so that tests find them
WORKLOAD_LABEL = "app.kubernetes.io/name"
LOG_INDEX_PREFIX = "kubehub-logs-"
SYSTEM_NAMESPACE = "kubehub-system"

WORKSPACES: dict[str, list[str]] = {
    "retail": ["retail-web", "retail-api"],
    "analytics": ["analytics-etl", "analytics-db"],
}
GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    kind: str  # Deployment | StatefulSet | DaemonSet | Job | CronJob
    containers: tuple[str, ...]
    weight: float = 1.0  # share of the pod budget (Deployments and StatefulSets)
    cpu_request: str = "100m"
    cpu_limit: str = "500m"
    memory_request: str = "128Mi"
    memory_limit: str = "512Mi"
    cpu_base: float = 0.05  # mean cores per container (kubehub.io/cpu-base)
    memory_base: float = 96 * MiB
    hot_cpu: float | None = None  # kubehub.io/cpu: runs hot, flat
    hot_memory: float | None = None
    lang: str = "en"  # language of its log lines
    style: str = "web"  # log style: web | db | worker | batch | proxy
    schedule: str = ""  # CronJob
    node_selector: dict[str, str] = field(default_factory=dict)
    image: str = "registry.example.com/demo/app:1.4.2"
    # StatefulSets: a "data" claim of this size per replica (the kubehub-sandbox StorageClass, bound
    # through the node simulator's provisioner), and its usage (sandbox/volsim.py's annotations):
    # a flat share, and a growth per hour that started this many hours before seeding.
    volume_claim: str = ""
    volume_used: float | None = None
    volume_growth: float = 0.0
    volume_growth_hours: float = 0.0


WORKLOADS: list[Workload] = [
    Workload("retail-web", "storefront", "Deployment", ("web", "metrics-sidecar"), weight=3, cpu_base=0.12,
             memory_base=180 * MiB, style="web", image="registry.example.com/retail/storefront:2.8.1"),
    Workload("retail-web", "cart", "Deployment", ("cart",), weight=2, cpu_base=0.08, memory_base=140 * MiB,
             style="web", lang="zh", image="registry.example.com/retail/cart:1.12.0"),
    Workload("retail-web", "edge-proxy", "DaemonSet", ("envoy",), cpu_base=0.03, memory_base=60 * MiB, style="proxy",
             node_selector={"kubehub.io/edge": "true"}, image="registry.example.com/infra/envoy:1.31.2"),
    Workload("retail-web", "sitemap-builder", "CronJob", ("builder",), schedule="*/15 * * * *", cpu_base=0.2,
             style="batch", image="registry.example.com/retail/sitemap:0.9.3"),
    Workload("retail-api", "checkout-api", "Deployment", ("api",), weight=3, cpu_request="250m", cpu_limit="500m",
             cpu_base=0.2, memory_base=300 * MiB, hot_cpu=0.46, style="web", lang="zh",
             image="registry.example.com/retail/checkout-api:3.2.0"),
    Workload("retail-api", "payment-gateway", "Deployment", ("gateway",), weight=2, cpu_base=0.06,
             memory_base=200 * MiB, style="web", image="registry.example.com/retail/payment-gateway:5.0.4"),
    Workload("retail-api", "orders-db", "StatefulSet", ("postgres",), weight=1.5, cpu_request="500m", cpu_limit="2",
             memory_request="1Gi", memory_limit="2Gi", cpu_base=0.3, memory_base=900 * MiB, style="db",
             image="registry.example.com/db/postgres:16.4", volume_claim="20Gi"),
    Workload("retail-api", "migrate-schema", "Job", ("migrate",), cpu_base=0.1, style="batch", lang="zh",
             image="registry.example.com/retail/migrations:3.2.0"),
    Workload("analytics-etl", "ingest-worker", "Deployment", ("worker",), weight=3, cpu_request="500m", cpu_limit="1",
             memory_request="512Mi", memory_limit="1Gi", cpu_base=0.35, memory_base=600 * MiB, style="worker",
             image="registry.example.com/analytics/ingest:7.1.0"),
    Workload("analytics-etl", "nightly-report", "CronJob", ("report",), schedule="*/30 * * * *", cpu_base=0.4,
             style="batch", lang="zh", image="registry.example.com/analytics/report:2.0.1"),
    # Chinese, so that analytics-etl has Chinese lines from the start: its other Chinese
    # workload is a CronJob, whose first pod may be 30 minutes away on a fresh sandbox.
    Workload("analytics-etl", "backfill-events", "Job", ("backfill",), cpu_base=0.5, style="batch", lang="zh",
             image="registry.example.com/analytics/ingest:7.1.0"),
    Workload("analytics-db", "clickhouse", "StatefulSet", ("clickhouse",), weight=1.5, cpu_request="1", cpu_limit="2",
             memory_request="2Gi", memory_limit="4Gi", cpu_base=0.6, memory_base=2.2 * GiB,
             hot_memory=3.7 * GiB, style="db", lang="zh", image="registry.example.com/db/clickhouse:24.8",
             # Fills up: 20 % 20 h before seeding, +3.5 %/h, so full about 3 h after it; the
             # "full within 6 h" template fires in the backfilled history (about 3 h before seeding).
             volume_claim="50Gi", volume_used=0.2, volume_growth=0.035, volume_growth_hours=20),
    Workload("analytics-db", "query-gateway", "Deployment", ("gateway",), weight=2, cpu_base=0.1,
             memory_base=160 * MiB, style="web", image="registry.example.com/analytics/query-gateway:1.3.5"),
    Workload(SYSTEM_NAMESPACE, "log-collector", "DaemonSet", ("fluent-bit",), cpu_request="50m", cpu_limit="200m",
             memory_request="64Mi", memory_limit="256Mi", cpu_base=0.02, memory_base=48 * MiB, style="proxy",
             image="registry.example.com/infra/fluent-bit:3.1.9"),
]  # fmt: skip

# The other clusters of a several-cluster sandbox (``--clusters 2``): another tenant, the workspace
# ``logistics``, whose project ``retail-api`` has the same namespace name as the first cluster's
# ``retail-api`` of workspace ``retail`` on purpose (same name, different tenants, different
# workloads), and a project of its own. Its workloads are small: it exists to be told apart.
OTHER_WORKSPACES: dict[str, list[str]] = {"logistics": ["retail-api", "logistics-routing"]}
OTHER_WORKLOADS: list[Workload] = [
    Workload("retail-api", "courier-api", "Deployment", ("api",), weight=2, cpu_base=0.07, memory_base=150 * MiB,
             style="web", image="registry.example.com/logistics/courier-api:1.0.3"),
    Workload("retail-api", "parcel-db", "StatefulSet", ("postgres",), weight=1, cpu_base=0.15,
             memory_base=400 * MiB, style="db", image="registry.example.com/db/postgres:16.4"),
    Workload("logistics-routing", "route-planner", "Deployment", ("planner",), weight=2, cpu_base=0.25,
             memory_base=250 * MiB, style="worker", lang="zh", image="registry.example.com/logistics/route:0.7.0"),
    Workload(SYSTEM_NAMESPACE, "log-collector", "DaemonSet", ("fluent-bit",), cpu_request="50m", cpu_limit="200m",
             memory_request="64Mi", memory_limit="256Mi", cpu_base=0.02, memory_base=48 * MiB, style="proxy",
             image="registry.example.com/infra/fluent-bit:3.1.9"),
]  # fmt: skip

# The demo users of the issue: a platform admin, a workspace admin, a project operator, and a
# project viewer in the other workspace.
DEMO_USERS: list[dict[str, Any]] = [
    {"username": "admin", "platform_role": "admin", "workspaces": {}, "projects": {}},
    {"username": "retail-admin", "platform_role": "regular", "workspaces": {"retail": "admin"}, "projects": {}},
    {"username": "api-operator", "platform_role": "regular", "workspaces": {}, "projects": {"retail-api": "operator"}},
    {"username": "etl-viewer", "platform_role": "regular", "workspaces": {}, "projects": {"analytics-etl": "viewer"}},
]


# The further clusters' tenant (``--clusters 2`` only): the admin of workspace ``logistics``.
# ``cluster`` marks a user of an added cluster's workspace: seed_tenancy leaves it to
# seed_clusters, which makes the workspace (it needs the cluster registered first).
OTHER_DEMO_USERS: list[dict[str, Any]] = [
    {"username": "logistics-admin", "platform_role": "regular", "workspaces": {"logistics": "admin"}, "projects": {},
     "cluster": "cluster-2"},
]  # fmt: skip


TENANT_CREDENTIALS = "tenant-credentials.json"  # the scale tenancy's logins (--tenants)
DEMO_MAIL_DOMAIN = "demo.kubehub.test"  # the sandbox's SMTP catcher accepts any address


def demo_email(username: str) -> str:
    """A demo user's address: every demo user has one, so the seeded policies' notices reach
    the sandbox's mailbox (a user receiver without an address is mailed nothing)."""
    return f"{username}@{DEMO_MAIL_DOMAIN}"


def complete_credentials(
    creds: list[dict[str, Any]], users: list[dict[str, Any]] | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The demo users' credentials (``users``, default ``DEMO_USERS``) with every user and email
    present (passwords generated for new users); whether anything was added. Credentials written
    by an older sandbox gain their addresses here, so `up` on an existing sandbox brings its users
    in line."""
    out = [dict(c) for c in creds]
    have = {c["username"] for c in out}
    changed = False
    for user in DEMO_USERS if users is None else users:
        if user["username"] not in have:
            out.append({**user, "password": secrets.token_urlsafe(12)})
            changed = True
    for c in out:
        if not c.get("email"):
            c["email"] = demo_email(c["username"])
            changed = True
    return out, changed


def load_credentials(state_dir: Path, name: str = "credentials.json") -> list[dict[str, Any]]:
    try:
        return list(json.loads((state_dir / name).read_text()))
    except (OSError, ValueError):
        return []


def _seed_of(text: str) -> int:
    return zlib.crc32(text.encode())


def plan_replicas(pods: int, nodes: int, workloads: list[Workload] | None = None) -> dict[str, int]:
    """Replicas per Deployment/StatefulSet so that all workloads add up to about ``pods`` pods."""
    workloads = WORKLOADS if workloads is None else workloads
    daemonsets = [w for w in workloads if w.kind == "DaemonSet"]
    fixed = sum(max(1, nodes // 5) if w.node_selector else nodes for w in daemonsets)  # edge: every fifth node
    fixed += sum(1 for w in workloads if w.kind in ("Job", "CronJob"))
    scalable = [w for w in workloads if w.kind in ("Deployment", "StatefulSet")]
    budget = max(len(scalable), pods - fixed)
    total_weight = sum(w.weight for w in scalable)
    plan = {w.name: max(1, int(budget * w.weight / total_weight)) for w in scalable}
    # Hand the rounding remainder to the largest workloads so the total is exact.
    rest = budget - sum(plan.values())
    for w in sorted(scalable, key=lambda w: -w.weight):
        if rest <= 0:
            break
        plan[w.name] += 1
        rest -= 1
    return plan


class Seeder:
    """Seeds one cluster (``site``, the sandbox's first by default); logs, credentials and the
    hub are the first cluster's business only."""

    def __init__(self, sandbox: Sandbox, api: kube.KubeRest, *, site: ClusterSite | None = None) -> None:
        self.sb = sandbox
        self.api = api
        self.say = sandbox.say
        self.site = site or sandbox.primary
        primary = self.site.primary
        self.workspaces = WORKSPACES if primary else OTHER_WORKSPACES
        self.workloads = WORKLOADS if primary else OTHER_WORKLOADS
        self.n_nodes, self.n_pods = self.site.nodes, self.site.pods
        self.label = "" if primary else f" [{self.site.name}]"
        # The scale tenancy (--tenants N, sandbox/tenants.py): the first cluster's only; None by default.
        tenants = getattr(sandbox.config, "tenants", 0) if primary else 0
        self.tenancy = tenancy_plan(tenants) if tenants else None
        self.tenant_workloads = self.tenancy.workloads if self.tenancy else []

    def _component_log(self, name: str) -> Path:
        return self.sb.logs_dir / f"{self.site.component(name)}.log"

    # ---- cluster objects ------------------------------------------------------------------------

    def seed_cluster(self) -> None:
        nodes, pods = self.n_nodes, self.n_pods
        t0 = time.monotonic()
        self.say(f"nodes{self.label}: ensuring {nodes} simulated nodes")
        created = kube.ensure_nodes(self.api, nodes, on_done=lambda n: self.say.counter("  nodes created", n, nodes))
        self._label_edge_nodes(nodes)
        if not wait_for(lambda: self._ready_nodes() >= nodes, timeout=60 + nodes * 0.2, interval=1):
            raise ComponentError(
                self.site.component("kwok"),
                f"only {self._ready_nodes()}/{nodes} nodes became Ready",
                self._component_log("kwok"),
            )
        self.say(f"nodes{self.label}: {nodes} Ready ({created} created in {time.monotonic() - t0:.1f}s)")

        self._namespaces()
        self.api.create("/apis/storage.k8s.io/v1/storageclasses", volsim.storage_class())
        plan = plan_replicas(pods, nodes, self.workloads + self.tenant_workloads)
        for w in self.workloads:
            self._workload(w, plan.get(w.name, 1))
        self._tenant_objects(plan)
        self._wait_workloads(plan)
        elapsed = time.monotonic() - t0
        record: dict[str, Any] = {"nodes": nodes, "pods": pods, "seconds": round(elapsed, 1)}
        if self.tenancy:
            record["tenants"] = len(self.tenancy.workspaces)
        if self.site.primary:
            self._write_state("seed-timing.json", record)
        else:
            self._write_state(f"seed-timing-{self.site.name}.json", record)

    def _ready_nodes(self) -> int:
        n = 0
        for node in self.api.list("/api/v1/nodes"):
            conds = node.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                n += 1
        return n

    def _label_edge_nodes(self, count: int) -> None:
        def label(i: int) -> None:
            want = "true" if i % 5 == 0 else None
            path = f"/api/v1/nodes/{kube.node_name(i)}"
            if (self.api.get(path)["metadata"].get("labels") or {}).get("kubehub.io/edge") != want:
                self.api.patch(path, {"metadata": {"labels": {"kubehub.io/edge": want}}})

        kube.parallel(label, range(count))

    def _namespaces(self) -> None:
        for ws, projects in self.workspaces.items():
            for ns in projects:
                self._namespace(ns, {WORKSPACE_LABEL: ws})
        self._namespace(SYSTEM_NAMESPACE, {})

    def _tenant_objects(self, plan: dict[str, int]) -> None:
        """The scale tenancy's namespaces and Deployments (``--tenants``), created in parallel:
        300 namespaces with their quotas and 300 Deployments one by one would take a minute."""
        if not self.tenancy:
            return
        from sandbox.tenants import TENANT_LABEL

        t0 = time.monotonic()
        projects = self.tenancy.projects
        kube.parallel(lambda p: self._namespace(p.namespace, {WORKSPACE_LABEL: p.workspace, TENANT_LABEL: "true"}),
                      projects)  # fmt: skip
        kube.parallel(lambda p: self._workload(p.workload, plan.get(p.workload.name, 1), {TENANT_LABEL: "true"}),
                      projects)  # fmt: skip
        pods = sum(plan.get(w.name, 0) for w in self.tenant_workloads)
        self.say(
            f"tenants: {len(self.tenancy.workspaces)} workspaces, {len(projects)} project namespaces and "
            f"Deployments ({pods} of the pods) in {time.monotonic() - t0:.1f}s"
        )

    def _namespace(self, name: str, labels: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {SEED_LABEL: "true", **labels}},
        }
        if not self.api.create("/api/v1/namespaces", body) and labels:
            self.api.patch(f"/api/v1/namespaces/{name}", {"metadata": {"labels": labels}})
        if name != SYSTEM_NAMESPACE:
            # Generous but real: KSM reports it (kube_resourcequota) and the hub shows it. A quota
            # on pod resources makes every pod creation of the namespace update it, which
            # serialises creation: scale runs (> 2,000 pods) get a quota on objects only.
            pods = self.n_pods
            hard = {"services": "100", "configmaps": "500", "secrets": "500"}
            if pods <= 2000:
                hard |= {
                    "requests.cpu": "200", "requests.memory": "400Gi", "limits.cpu": "400",
                    "limits.memory": "800Gi", "pods": "5000",
                }  # fmt: skip
            quota = {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "project-quota", "labels": {SEED_LABEL: "true"}},
                "spec": {"hard": hard},
            }
            path = kube.ns_path(name, "resourcequotas")
            if not self.api.create(path, quota):
                current = self.api.get(f"{path}/project-quota")
                if current["spec"].get("hard") != hard:
                    current["spec"]["hard"] = hard
                    self.api.put(f"{path}/project-quota", current)

    def _pod_template(self, w: Workload) -> dict[str, Any]:
        annotations = {
            model.ANN_CPU_BASE: f"{w.cpu_base:g}",
            model.ANN_MEMORY_BASE: f"{int(w.memory_base)}",
        }
        if w.hot_cpu is not None:
            annotations[model.ANN_CPU] = f"{w.hot_cpu:g}"
        if w.hot_memory is not None:
            annotations[model.ANN_MEMORY] = f"{int(w.hot_memory)}"
        if w.volume_claim:
            if w.volume_used is not None:
                annotations[volsim.ANN_VOLUME_USED] = f"{w.volume_used:g}"
            if w.volume_growth:
                annotations[volsim.ANN_VOLUME_GROWTH] = f"{w.volume_growth:g}"
                start = time.time() - w.volume_growth_hours * 3600
                annotations[volsim.ANN_VOLUME_GROWTH_SINCE] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
        containers = [
            {
                "name": c,
                "image": w.image if i == 0 else "registry.example.com/infra/metrics-sidecar:0.4.0",
                "resources": {
                    "requests": {"cpu": w.cpu_request, "memory": w.memory_request},
                    "limits": {"cpu": w.cpu_limit, "memory": w.memory_limit},
                },
            }
            for i, c in enumerate(w.containers)
        ]
        spec: dict[str, Any] = {
            "containers": containers,
            # KWOK's nodes are fake: tolerate its taint should a node carry one.
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 0,
        }
        if w.node_selector:
            spec["nodeSelector"] = dict(w.node_selector)
        if w.kind in ("Job", "CronJob"):
            spec["restartPolicy"] = "Never"
        return {
            "metadata": {"labels": {WORKLOAD_LABEL: w.name, SEED_LABEL: "true"}, "annotations": annotations},
            "spec": spec,
        }

    def _workload(self, w: Workload, replicas: int, labels: dict[str, str] | None = None) -> None:
        meta = {
            "name": w.name,
            "namespace": w.namespace,
            "labels": {WORKLOAD_LABEL: w.name, SEED_LABEL: "true", **(labels or {})},
        }
        selector = {"matchLabels": {WORKLOAD_LABEL: w.name}}
        tpl = self._pod_template(w)
        spec: dict[str, Any]
        if w.kind == "Deployment":
            spec = {"replicas": replicas, "selector": selector, "template": tpl}
        elif w.kind == "StatefulSet":
            spec = {"replicas": replicas, "selector": selector, "template": tpl, "serviceName": w.name,
                    "podManagementPolicy": "Parallel"}  # fmt: skip
            if w.volume_claim:
                spec["volumeClaimTemplates"] = [{
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": volsim.STORAGE_CLASS,
                             "resources": {"requests": {"storage": w.volume_claim}}},
                }]  # fmt: skip
        elif w.kind == "DaemonSet":
            spec = {"selector": selector, "template": tpl}
        elif w.kind == "Job":
            spec = {"template": tpl, "backoffLimit": 0}
        elif w.kind == "CronJob":
            spec = {"schedule": w.schedule, "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1,
                    "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"metadata": {"labels": {WORKLOAD_LABEL: w.name}},
                                    "spec": {"template": tpl, "backoffLimit": 0}}}  # fmt: skip
        else:
            raise ValueError(w.kind)
        group = "batch" if w.kind in ("Job", "CronJob") else "apps"
        plural = w.kind.lower() + "s"
        body = {"apiVersion": f"{group}/v1", "kind": w.kind, "metadata": meta, "spec": spec}
        created = self.api.create(kube.ns_path(w.namespace, plural, group=group), body)
        if not created and w.kind in ("Deployment", "StatefulSet"):
            # A later `up --pods N` changes the seeded replicas.
            path = kube.ns_path(w.namespace, plural, group=group, name=w.name)
            if self.api.get(path)["spec"].get("replicas") != replicas:
                self.api.patch(path, {"spec": {"replicas": replicas}})

    def _daemon_nodes(self, w: Workload) -> int:
        """The nodes a seeded DaemonSet runs on: the edge nodes (every fifth) or all."""
        return len([i for i in range(self.n_nodes) if i % 5 == 0]) if w.node_selector else self.n_nodes

    def _wait_workloads(self, plan: dict[str, int]) -> None:
        target = sum(plan.values()) + sum(self._daemon_nodes(w) for w in self.workloads if w.kind == "DaemonSet")
        deadline_s = 120 + target * 0.1
        t0 = time.monotonic()
        self.say(f"workloads: waiting for ~{target} pods to be ready and every Deployment available")
        last = -1
        while time.monotonic() - t0 < deadline_s:
            ready, complete = self._workload_progress(plan)
            if ready != last:
                self.say.counter("  pods ready", min(ready, target), target)
                last = ready
            if complete:
                self.say(f"workloads: {ready} pods ready in {time.monotonic() - t0:.1f}s")
                return
            time.sleep(1 if target < 2000 else 3)
        raise ComponentError(
            self.site.component("kube-controller-manager"),
            f"workloads not ready after {deadline_s:.0f}s ({last}/{target} pods ready)" + self._stuck(plan),
            self._component_log("kube-controller-manager"),
        )

    def _stuck(self, plan: dict[str, int]) -> str:
        """The incomplete workloads, their pods and claims, one per line after a newline
        (sandbox/workload_report.py); what went wrong asking, if anything did."""
        try:
            lines = workload_report.describe(self.api, self._workload_states(plan))
        except Exception as exc:  # the timeout is the error; this only explains it
            lines = [f"(could not describe the incomplete workloads: {exc!r:.200})"]
        return "".join(f"\n  {line}" for line in lines)

    def _workload_progress(self, plan: dict[str, int]) -> tuple[int, bool]:
        """Ready pods according to the controllers' status (cheap: no pod list), and whether all are."""
        states = self._workload_states(plan)
        return sum(s.ready for s in states), all(s.complete for s in states)

    def _workload_states(self, plan: dict[str, int]) -> list[workload_report.WorkloadState]:
        """Each Deployment's, StatefulSet's and DaemonSet's progress (one GET each; one list for
        the scale tenancy's Deployments)."""
        states = []
        for w in self.workloads:
            if w.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
                continue
            obj = self.api.get(kube.ns_path(w.namespace, w.kind.lower() + "s", group="apps", name=w.name))
            states.append(workload_report.state_of(w.kind, obj, plan.get(w.name) or self._daemon_nodes(w)))
        if self.tenant_workloads:  # one list for the tenants' hundreds of Deployments
            from sandbox.tenants import TENANT_LABEL

            wanted = {(w.namespace, w.name): plan[w.name] for w in self.tenant_workloads}
            for d in self.api.list("/apis/apps/v1/deployments", labelSelector=f"{TENANT_LABEL}=true"):
                want = wanted.pop((d["metadata"]["namespace"], d["metadata"]["name"]), None)
                if want is not None:
                    states.append(workload_report.state_of("Deployment", d, want))
            states.extend(
                workload_report.WorkloadState("Deployment", ns, name, want, 0, False, ("not found",))
                for (ns, name), want in wanted.items()
            )
        return states

    def pods(self) -> list[dict[str, Any]]:
        """Every seeded pod (raw JSON)."""
        return self.api.list("/api/v1/pods", labelSelector=f"{SEED_LABEL}=true")

    # ---- logs -----------------------------------------------------------------------------------

    def seed_logs(self) -> None:
        """A day of CRI log lines per container of this cluster, registered with its KWOK (so
        ``kubectl logs`` and the hub's API poller read them). The first cluster's are also
        indexed into Elasticsearch directly (its 24 h of history); a further cluster's reach the
        hub through the hub's shipper only, which follows that cluster's project namespaces."""
        primary = self.site.primary
        marker = self.sb.state_dir / ("logs-seeded.json" if primary else f"logs-seeded-{self.site.name}.json")
        if marker.exists():
            self._ensure_cluster_logs()
            return
        t0 = time.monotonic()
        end = time.time()
        records: dict[tuple[str, str], list[LogRecord]] = {}
        for w in self.workloads:
            for c in w.containers:
                records[(w.namespace, c)] = list(generate_logs(w, c, end - 86400, end))
                write_cri(self.site.pod_logs_dir / w.namespace / f"{c}.log", records[(w.namespace, c)])
        self._ensure_cluster_logs()
        lines = sum(len(v) for v in records.values())
        self.say(f"logs{self.label}: wrote {lines} log records for {len(records)} containers")
        if not primary:
            self._write_state(marker.name, {"records": lines, "end": end})
            return
        docs = self.index_logs(records)
        self._write_state("logs-seeded.json", {"records": lines, "documents": docs, "end": end})
        self.say(f"logs: indexed {docs} documents into Elasticsearch in {time.monotonic() - t0:.1f}s")

    def cluster_logs(self) -> list[dict[str, Any]]:
        """KWOK's ClusterLogs objects of this cluster: one per namespace, each container's lines
        read from this cluster's own pod-logs directory."""
        by_ns: dict[str, list[str]] = {}
        for w in self.workloads:
            by_ns.setdefault(w.namespace, []).extend(w.containers)
        return [
            {
                "apiVersion": f"{kube.KWOK_GROUP}/{kube.KWOK_VERSION_API}",
                "kind": "ClusterLogs",
                "metadata": {"name": f"sandbox-{ns}"},
                "spec": {
                    "selector": {"matchNamespaces": [ns]},
                    "logs": [
                        {"containers": [c], "logsFile": str(self.site.pod_logs_dir / ns / f"{c}.log"), "follow": True}
                        for c in containers
                    ],
                },
            }
            for ns, containers in by_ns.items()
        ]

    def _ensure_cluster_logs(self) -> None:
        for obj in self.cluster_logs():
            kube.apply_cluster_object(self.api, obj)

    def index_logs(self, records: dict[tuple[str, str], list[LogRecord]], *, prefix: str = LOG_INDEX_PREFIX) -> int:
        """Bulk-index the log records of (at most 3) pods per workload; returns documents indexed.

        Every document carries its namespace's ``namespace_uid`` as the API server has it now:
        the seeded day predates the namespaces, and the UID is what tells the hub these lines
        are the current namespaces' own (not an earlier namespace's of the same name), so
        tenants see them. ``prefix`` (indices ``<prefix>YYYY.MM.DD``, a template of their own)
        lets tests index into indices of their own.
        """
        from hub.collectors.logs.words import WORDS_VERSION, spaced_words  # docs/logs.md, "Words"

        es = self.sb.elasticsearch_url
        namespace_uids = {
            ns: self.api.get(f"/api/v1/namespaces/{ns}")["metadata"]["uid"] for ns in {w.namespace for w in WORKLOADS}
        }
        template_name = "kubehub-sandbox-logs" if prefix == LOG_INDEX_PREFIX else f"kubehub-sandbox-{prefix.strip('-')}"
        template = {
            "index_patterns": [f"{prefix}*"],
            "priority": 1,  # the hub may install its own template for the same indices at a higher priority
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "5s"},
                # The same mapping the hub's Elasticsearch store installs for its "kubehub" field
                # preset (hub/collectors/logs/elasticsearch.py), so seeded and shipped documents
                # look alike; stream and level are extras the hub ignores.
                "mappings": {
                    "dynamic": False,
                    "_meta": {"kubehub_words": WORDS_VERSION},
                    "_source": {"excludes": ["words"]},
                    "properties": {
                        "time": {"type": "date_nanos"},
                        "message": {"type": "text", "index": False},
                        "words": {"type": "text", "analyzer": "whitespace", "norms": False},
                        **{
                            k: {"type": "keyword", "ignore_above": 1024}
                            for k in (
                                "cluster",
                                "namespace",
                                "namespace_uid",
                                "pod",
                                "container",
                                "node",
                                "pod_uid",
                                "workload",
                                "stream",
                                "level",
                            )
                        },
                    },
                },
            },
        }
        code, body = self.sb.http(
            f"{es}/_index_template/{template_name}",
            method="PUT",
            body=json.dumps(template).encode(),
            headers={"Content-Type": "application/json"},
        )
        if code >= 300:
            raise ComponentError(
                "elasticsearch", f"index template rejected: {body[:200]!r}", self.sb.logs_dir / "elasticsearch.log"
            )
        pods_by_workload: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for pod in self.pods():
            meta = pod["metadata"]
            wl = (meta.get("labels") or {}).get(WORKLOAD_LABEL)
            if wl and pod.get("spec", {}).get("nodeName"):
                pods_by_workload.setdefault((meta["namespace"], wl), []).append(pod)
        docs = 0
        batch: list[bytes] = []
        for w in WORKLOADS:
            pods = sorted(pods_by_workload.get((w.namespace, w.name), []), key=lambda p: p["metadata"]["name"])[:3]
            for pod in pods:
                for c in w.containers:
                    for rec in records.get((w.namespace, c), []):
                        ts = dt.datetime.fromtimestamp(rec.t, dt.UTC)  # microseconds, like the hub
                        index = prefix + ts.strftime("%Y.%m.%d")
                        doc = {
                            "time": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                            "cluster": self.site.name,  # the cluster the line came from (docs/logs.md)
                            "namespace": w.namespace,
                            "namespace_uid": namespace_uids[w.namespace],
                            "pod": pod["metadata"]["name"],
                            "container": c,
                            "workload": w.name,
                            "node": pod["spec"]["nodeName"],
                            "pod_uid": pod["metadata"]["uid"],
                            "stream": rec.stream,
                            "level": rec.level,
                            "message": rec.message,
                            "words": spaced_words(rec.message),
                        }
                        batch.append(json.dumps({"index": {"_index": index}}).encode())
                        batch.append(json.dumps(doc, ensure_ascii=False).encode())
                        docs += 1
                        if len(batch) >= 10000:
                            self._bulk(batch)
                            batch = []
        if batch:
            self._bulk(batch)
        self.sb.http(f"{es}/{prefix}*/_refresh", method="POST", timeout=60)
        return docs

    def _bulk(self, lines: list[bytes]) -> None:
        code, body = self.sb.http(
            f"{self.sb.elasticsearch_url}/_bulk", method="POST", body=b"\n".join(lines) + b"\n",
            headers={"Content-Type": "application/x-ndjson"}, timeout=120,
        )  # fmt: skip
        if code >= 300 or b'"errors":true' in body[:200]:
            raise ComponentError(
                "elasticsearch", f"bulk indexing failed: {body[:300]!r}", self.sb.logs_dir / "elasticsearch.log"
            )

    # ---- users and policies ---------------------------------------------------------------------

    def seed_credentials(self) -> None:
        path = self.sb.state_dir / "credentials.json"
        # The further clusters' tenant only when there are further clusters: a one-cluster
        # sandbox's credentials are what they were.
        users = DEMO_USERS + OTHER_DEMO_USERS if len(self.sb.sites) > 1 else DEMO_USERS
        creds, changed = complete_credentials(load_credentials(self.sb.state_dir), users)
        if changed or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(creds, indent=2))
            path.chmod(0o600)
        if self.tenancy:  # the scale tenancy's logins, kept apart: `status` lists the demo's only
            from sandbox.tenants import credentials as tenant_credentials

            path = self.sb.state_dir / TENANT_CREDENTIALS
            known = load_credentials(self.sb.state_dir, TENANT_CREDENTIALS)
            creds = tenant_credentials(self.tenancy, known, lambda: secrets.token_urlsafe(12))
            if creds != known:
                path.write_text(json.dumps(creds, indent=1))
                path.chmod(0o600)

    def seed_hub(self, *, data_dir: Path | None = None, state_dir: Path | None = None, database_url: str = "") -> None:
        """Create the demo users and built-in policies through the hub's own services.

        The hook: each entry of ``HUB_HOOKS`` names a function ``fn(settings, sandbox_state) ->
        str`` in the hub; it is called when it exists (``sandbox/hub_seed.py`` has the tenancy and
        alerting ones) and skipped with a notice otherwise. ``sandbox_state`` carries the credentials,
        workspaces and the policy directory. ``data_dir``/``state_dir`` point the hooks at
        another hub's data and credentials (tests seed a hub of their own the same way);
        ``database_url`` at that hub's PostgreSQL state when it keeps it there.
        """
        import importlib

        from hub.settings import load_settings

        hub_data = data_dir or self.sb.hub_data_dir
        states = state_dir or self.sb.state_dir
        env = {
            "KUBEHUB_DATA_DIR": str(hub_data),
            "KUBEHUB_KUBERNETES_KUBECONFIG": str(self.sb.kubeconfig),
            "KUBEHUB_PROMETHEUS_URL": self.sb.prometheus_url,
            "KUBEHUB_SMTP_HOST": self.sb.smtp_host,
            "KUBEHUB_SMTP_PORT": str(self.sb.smtp_port),
        }
        if data_dir is None and self.sb.config.database == "postgresql":
            env["KUBEHUB_DATABASE_URL"] = self.sb.hub_database_url  # the sandbox hub's own state
        if database_url:
            env["KUBEHUB_DATABASE_URL"] = database_url
        env.update(self.sb.hub_cluster_env())
        settings = load_settings(env=env)
        state = {
            "credentials": load_credentials(states),
            "workspaces": {ws: list(projects) for ws, projects in WORKSPACES.items()},
            "rules_dir": str(Path(__file__).resolve().parent.parent / "rules"),
        }
        if len(self.sb.sites) > 1:  # only then: a one-cluster sandbox's state (and digest) is unchanged
            state["clusters"] = [
                {
                    "name": s.name,
                    "kubeconfig": str(s.kubeconfig),
                    "context": s.context,
                    "workspaces": {ws: list(projects) for ws, projects in OTHER_WORKSPACES.items()},
                }
                for s in self.sb.sites[1:]
            ]
        hooks = list(HUB_HOOKS)
        tenants = getattr(self.sb.config, "tenants", 0)
        if tenants:  # only then: the default sandbox's state (and digest) is unchanged
            state["tenants"] = {"workspaces": tenants, "credentials": str(states / TENANT_CREDENTIALS)}
            hooks += SCALE_HOOKS
        # The hooks are idempotent but not free: skip the ones already run with the same input
        # against the same hub state.
        marker = states / "hub-seeded.json"
        digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
        try:
            done = json.loads(marker.read_text())
        except (OSError, ValueError):
            done = {}
        target = settings.database_url or str(hub_data / "state.sqlite3")
        fresh = not settings.database_url and not (hub_data / "state.sqlite3").exists()
        if done.get("digest") != digest or done.get("database", target) != target or fresh:
            done = {"digest": digest, "database": target, "hooks": []}
        for module_name, fn_name in hooks:
            hook = f"{module_name}.{fn_name}"
            if hook in done["hooks"]:
                continue
            try:
                fn = getattr(importlib.import_module(module_name), fn_name)
            except (ImportError, AttributeError):
                self.say(f"hub: {hook} not available yet; skipped")
                continue
            t0 = time.monotonic()
            self.say(f"hub: {fn(settings, state)} ({time.monotonic() - t0:.1f}s)")
            done["hooks"].append(hook)
            marker.write_text(json.dumps(done))

    def _write_state(self, name: str, data: dict[str, Any]) -> None:
        path = self.sb.state_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))


# (module, function) called by Seeder.seed_hub when present.
HUB_HOOKS: list[tuple[str, str]] = [
    ("sandbox.hub_seed", "seed_tenancy"),
    ("sandbox.hub_seed", "seed_alerting"),
    ("sandbox.hub_seed", "seed_clusters"),
]
# ... and with --tenants (sandbox/tenants.py) only.
SCALE_HOOKS: list[tuple[str, str]] = [("sandbox.hub_seed", "seed_tenants")]


def tenancy_plan(count: int) -> TenancyPlan:
    """The scale tenancy's plan (sandbox/tenants.py imports this module, so it is imported late)."""
    from sandbox.tenants import plan_tenancy

    return plan_tenancy(count)


# ---- log generation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRecord:
    t: float
    level: str
    message: str  # may span several lines (a stack trace)
    stream: str = "stdout"


_MESSAGES: dict[str, dict[str, list[str]]] = {
    "en": {
        "web": [
            "GET /api/v1/products?page={n} 200 {ms}ms",
            "POST /api/v1/cart/items 201 {ms}ms user={user}",
            "GET /healthz 200 1ms",
            "served {n} requests in the last minute, p99 {ms}ms",
            "cache hit ratio {pct}% for product catalogue",
        ],
        "db": [
            "checkpoint complete: wrote {n} buffers ({pct}%); write={ms} ms",
            'autovacuum: processing table "public.orders"',
            "connection authorized: user=app database=orders",
            "replication lag {ms}ms on replica",
        ],
        "worker": [
            "consumed batch of {n} events from topic clicks (partition {p})",
            "flushed {n} rows to warehouse in {ms}ms",
            "offset committed: partition {p} offset {n}",
        ],
        "batch": [
            "job started: processing {n} records",
            "progress {pct}% ({n} records)",
            "job finished in {ms}ms",
        ],
        "proxy": [
            '[{ts}] "GET /static/app.js HTTP/1.1" 200 {n} upstream={ms}ms',
            "upstream cluster retail-web healthy: {p}/{p} hosts",
            "hot restart epoch 0, {n} active connections",
        ],
    },
    "zh": {
        "web": [
            "处理请求 GET /api/v1/orders/{n} 成功，耗时 {ms}ms",
            "用户 {user} 下单成功，订单号 {n}",
            "健康检查通过",
            "最近一分钟处理 {n} 个请求，P99 延迟 {ms}ms",
            "购物车缓存命中率 {pct}%",
        ],
        "db": [
            "检查点完成：写入 {n} 个缓冲区，耗时 {ms} 毫秒",
            "合并分区 {p} 完成，处理 {n} 行",
            "查询完成：读取 {n} 行，耗时 {ms}ms",
        ],
        "worker": [
            "消费 {n} 条消息，分区 {p}",
            "写入数据仓库 {n} 行，耗时 {ms}ms",
        ],
        "batch": [
            "任务开始：待处理 {n} 条记录",
            "进度 {pct}%，已处理 {n} 条记录",
            "任务完成，耗时 {ms}ms",
        ],
        "proxy": [
            "转发请求到上游 {p} 号实例，耗时 {ms}ms",
        ],
    },
}

_ERRORS: dict[str, list[tuple[str, str]]] = {
    # (level, message); the message may contain a stack trace
    "en": [
        ("ERROR", "failed to charge card for order {n}: upstream payment-gateway timed out after 3000ms"),
        ("WARN", "slow query took {ms}ms: SELECT * FROM orders WHERE customer_id = $1"),
        ("ERROR", "unhandled exception while processing request\n"
                  "java.lang.NullPointerException: Cannot invoke \"com.example.cart.Item.getPrice()\" "
                  "because \"item\" is null\n"
                  "\tat com.example.cart.CartService.total(CartService.java:88)\n"
                  "\tat com.example.cart.CartController.checkout(CartController.java:42)\n"
                  "\tat java.base/java.lang.Thread.run(Thread.java:1583)"),
        ("ERROR", "Traceback (most recent call last):\n"
                  "  File \"/app/worker/consume.py\", line 57, in handle\n"
                  "    row = json.loads(payload)\n"
                  "  File \"/usr/lib/python3.11/json/__init__.py\", line 346, in loads\n"
                  "    return _default_decoder.decode(s)\n"
                  "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        ("ERROR", "connection refused: dial tcp 10.96.12.7:5432: connect: connection refused"),
        ("FATAL", "panic: runtime error: index out of range [3] with length 3\n\n"
                  "goroutine 1 [running]:\n"
                  "main.(*Router).pick(0xc000126000, {{0xc0001a2000, 0x3, 0x3}})\n"
                  "\t/src/router/pick.go:31 +0x1d4\n"
                  "main.main()\n"
                  "\t/src/main.go:77 +0x2a5"),
        ("WARN", "OOMKilled risk: working set at {pct}% of the memory limit"),
    ],
    "zh": [
        ("ERROR", "订单 {n} 支付失败：调用支付网关超时（3000ms）"),
        ("WARN", "慢查询告警：耗时 {ms}ms，SQL: SELECT * FROM orders WHERE user_id = ?"),
        ("ERROR", "处理请求时发生未捕获异常\n"
                  "java.lang.IllegalStateException: 库存不足，商品编号 {n}\n"
                  "\tat com.example.stock.StockService.reserve(StockService.java:120)\n"
                  "\tat com.example.order.OrderService.create(OrderService.java:64)\n"
                  "\tat java.base/java.lang.Thread.run(Thread.java:1583)"),
        ("ERROR", "数据库连接失败：dial tcp 10.96.12.7:9000: connect: connection refused，{p} 秒后重试"),
        ("WARN", "内存使用率达到限制的 {pct}%，可能被 OOMKilled"),
        ("ERROR", "Traceback (most recent call last):\n"
                  "  File \"/app/report/build.py\", line 91, in render\n"
                  "    total = sum(r[\"金额\"] for r in rows)\n"
                  "KeyError: '金额'"),
    ],
}  # fmt: skip


def generate_logs(w: Workload, container: str, start: float, end: float, *, salt: str = "") -> Iterator[LogRecord]:
    """Deterministic log records of one container over [start, end): busier by day, errors now and then."""
    rng = random.Random(_seed_of(f"{w.namespace}/{w.name}/{container}{salt}"))
    msgs = _MESSAGES[w.lang].get(w.style) or _MESSAGES[w.lang]["web"]
    errors = _ERRORS[w.lang]
    mean_gap = {"web": 45.0, "db": 90.0, "worker": 60.0, "batch": 240.0, "proxy": 75.0}.get(w.style, 60.0)
    t = start + rng.uniform(0, mean_gap)
    while t < end:
        fill = {
            "n": rng.randint(1, 99999), "ms": rng.randint(1, 900), "pct": rng.randint(40, 99),
            "p": rng.randint(0, 11), "user": f"u{rng.randint(1000, 9999)}",
            "ts": dt.datetime.fromtimestamp(t, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        }  # fmt: skip
        if rng.random() < 0.06:
            level, text = rng.choice(errors)
            stream = "stderr"
        else:
            level, text, stream = "INFO", rng.choice(msgs), "stdout"
        msg = text.format(**fill)
        first, *rest = msg.split("\n")
        stamp = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        yield LogRecord(t=t, level=level, message="\n".join([f"{stamp} {level} {first}", *rest]), stream=stream)
        # Busier by day: the gap shrinks with the daily load curve.
        t += rng.expovariate(1.0 / (mean_gap / (0.5 + model.tri(t))))


def write_cri(path: Path, records: list[LogRecord], *, append: bool = False) -> None:
    """CRI log format (what kubelets keep and KWOK's Logs read): one line per physical line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for rec in records:
            ts = dt.datetime.fromtimestamp(rec.t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
            for line in rec.message.split("\n"):
                f.write(f"{ts} {rec.stream} F {line}\n")
