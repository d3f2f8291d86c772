"""The resources around workloads under /api/v1 (docs/cluster.md "Apply from YAML"): create and
edit namespaced objects from YAML by server-side apply, with a dry run that shows the diff.

A blueprint of its own (not web/api/cluster.py) because it is a different door: one route takes
any supported kind as text, and the service (hub/collectors/apply.py) checks the caller's scope
itself. The cluster comes from ``?cluster=`` as for every cluster route.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from hub.collectors.apply import Applier
from hub.collectors.quotas import Quotas
from hub.collectors.resources import AroundWorkloads
from hub.collectors.revisions import ControllerRevisions
from hub.collectors.workload_actions import workload_kind
from hub.errors import InvalidInput, NotFound, Unprocessable
from web.access import audit, permission, scope
from web.api.cluster import cluster
from web.util import hub, json_body

bp = Blueprint("api_resources", __name__, url_prefix="/api/v1")


@bp.post("/namespaces/<ns>/apply")
@permission("workloads:write", namespace_arg="ns")
def apply_manifest(ns: str) -> Any:
    """Dry-run or apply a YAML manifest in a namespace: ``{"yaml": "...", "dry_run": true,
    "base_versions": {"Deployment/web": "<base_version of the preview>"}}``. Answers each object's action and a unified
    diff; invalid fields are a 422 whose ``problems`` name each; someone else's change is a 409
    carrying ``current`` and ``submitted``. Audited as ``cluster.apply`` (kind and name only)."""
    body = json_body()
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run must be true or false", field="dry_run")
    base = body.get("base_versions") or {}
    if not isinstance(base, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in base.items()):
        raise InvalidInput('base_versions must map "Kind/name" to a resourceVersion string', field="base_versions")
    out = Applier(cluster().api).apply(
        scope(), ns, body.get("yaml"), dry_run=dry_run, base_versions=base, audit=hub().tenancy.audit
    )
    return jsonify(out)


@bp.get("/namespaces/<ns>/workloads/<kind>/<name>/revisions")
@permission("workloads:read", namespace_arg="ns")
def workload_revisions(ns: str, kind: str, name: str) -> Any:
    """The rollout history of a deployment (its ReplicaSets), statefulset or daemonset (its
    ControllerRevisions), newest first; ``POST …/rollback {"revision": n}`` goes back to one."""
    k = workload_kind(kind)
    if k == "Deployment":
        items = cluster().get_workload(ns, kind, name).get("revisions", [])
    elif k in ("StatefulSet", "DaemonSet"):
        items = ControllerRevisions(cluster().api).history(k, ns, name)
    else:
        raise Unprocessable(f"a {k} has no revisions to roll back to", field="kind")
    return jsonify({"kind": k, "namespace": ns, "name": name, "items": items})


def around() -> AroundWorkloads:
    service = cluster()
    return AroundWorkloads(service.api, pods_of=lambda ns: service.pods([ns]), owner_of=service.pod_workload)


# -- services and ingresses ----------------------------------------------------------------------
@bp.get("/namespaces/<ns>/services/<name>")
@permission("workloads:read", namespace_arg="ns")
def get_service(ns: str, name: str) -> Any:
    """One Service and the pods behind it (selector and EndpointSlices; ``endpoint_ready`` says
    whether each receives traffic)."""
    return jsonify(around().service(ns, name))


@bp.get("/namespaces/<ns>/ingresses")
@permission("workloads:read", namespace_arg="ns")
def list_ingresses(ns: str) -> Any:
    """Ingresses of a namespace: class, hosts, paths and their backend Services, addresses."""
    return jsonify({"items": around().ingresses(ns)})


@bp.get("/namespaces/<ns>/ingresses/<name>")
@permission("workloads:read", namespace_arg="ns")
def get_ingress(ns: str, name: str) -> Any:
    """One Ingress with each backend Service and the pods behind it."""
    return jsonify(around().ingress(ns, name))


# -- jobs and cronjobs ---------------------------------------------------------------------------
@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/run")
@permission("workloads:write", namespace_arg="ns")
def run_workload(ns: str, kind: str, name: str) -> Any:
    """Run a cronjob now: a Job from its template, owned by it."""
    if workload_kind(kind) != "CronJob":
        raise Unprocessable(f"only a cronjob can be run now, not a {kind.lower()}", field="kind")
    out = around().run_cronjob(ns, name)
    audit("cluster.run", f"{ns}/{kind.lower()}/{name}", detail={"job": out["job"]})
    return jsonify(out), 201


@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/suspend")
@permission("workloads:write", namespace_arg="ns")
def suspend_workload(ns: str, kind: str, name: str) -> Any:
    """Suspend a cronjob (no new runs) or a job (its pods stop)."""
    out = around().suspend(ns, kind, name, True)
    audit("cluster.suspend", f"{ns}/{kind.lower()}/{name}")
    return jsonify(out)


@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/resume")
@permission("workloads:write", namespace_arg="ns")
def resume_workload(ns: str, kind: str, name: str) -> Any:
    """Resume a suspended cronjob or job."""
    out = around().suspend(ns, kind, name, False)
    audit("cluster.resume", f"{ns}/{kind.lower()}/{name}")
    return jsonify(out)


# -- horizontal pod autoscalers --------------------------------------------------------------------
@bp.get("/namespaces/<ns>/autoscalers")
@permission("workloads:read", namespace_arg="ns")
def list_autoscalers(ns: str) -> Any:
    """HorizontalPodAutoscalers (autoscaling/v2) of a namespace: target, replica range, and each
    metric's current value against its target."""
    return jsonify({"items": around().autoscalers(ns)})


@bp.get("/namespaces/<ns>/autoscalers/<name>")
@permission("workloads:read", namespace_arg="ns")
def get_autoscaler(ns: str, name: str) -> Any:
    """One HorizontalPodAutoscaler: current vs target per metric, replicas, conditions."""
    return jsonify(around().autoscaler(ns, name))


@bp.put("/namespaces/<ns>/workloads/<kind>/<name>/autoscaler")
@permission("workloads:write", namespace_arg="ns")
def set_autoscaler(ns: str, kind: str, name: str) -> Any:
    """Create or edit a workload's autoscaler from the form: ``{"min_replicas": 2, "max_replicas":
    10, "cpu_utilization": 70, "dry_run": true}``; answers as apply does (diff, 409, 422)."""
    out = around().set_autoscaler(scope(), ns, kind, name, json_body(), audit=hub().tenancy.audit)
    return jsonify(out)


# -- project quotas ------------------------------------------------------------------------------------
@bp.get("/namespaces/<ns>/quota")
@permission("workloads:read", namespace_arg="ns")
def project_quota(ns: str) -> Any:
    """The project's ResourceQuotas as used against hard, and the containers' default requests."""
    return jsonify(Quotas(cluster().api).usage(ns))


@bp.put("/workspaces/<ws>/projects/<ns>/quota")
@permission("quotas:write", namespace_arg="ns", workspace_arg="ws")
def set_project_quota(ws: str, ns: str) -> Any:
    """Set a project's quota (``quotas:write``: workspace admins):
    ``{"cpu": "4", "memory": "8Gi", "pods": 20, "storage": "100Gi", "default_request": {"cpu":
    "100m", "memory": "128Mi"}, "default_limit": {...}}``. A scale-up beyond it is refused naming it."""
    project = hub().tenancy.project(ns)
    if project is None or project.workspace != ws:
        raise NotFound(f"no project {ns} in workspace {ws}")
    body = json_body()
    out = Quotas(cluster().api).set(ns, body)
    keys = ("cpu", "memory", "pods", "storage", "default_request", "default_limit")
    audit("project.quota", f"namespace/{ns}", detail={k: body[k] for k in keys if k in body})
    return jsonify(out)
