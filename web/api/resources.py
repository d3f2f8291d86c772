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
from hub.collectors.revisions import ControllerRevisions
from hub.collectors.workload_actions import workload_kind
from hub.errors import InvalidInput, Unprocessable
from web.access import permission, scope
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
