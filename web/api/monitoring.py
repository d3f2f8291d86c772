"""Monitoring endpoints under /api/v1 (API.md "Monitoring"; docs/monitoring.md).

The cluster, nodes and components levels are cluster-wide and need ``monitoring:cluster``
(platform admins). The tenant levels (workspaces, namespaces, workloads, pods, containers)
are open to every authenticated caller and scoped here, in :func:`_scoped`, the one place that
turns the caller's tenancy scope into the namespace restriction of the query.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from hub.collectors.catalogue import TENANT_LEVELS
from hub.collectors.monitoring import MonitoringRequest
from web import params
from web.access import current_principal, permission
from web.util import hub

bp = Blueprint("api_monitoring", __name__, url_prefix="/api/v1")

CLUSTER_PERMISSION = "monitoring:cluster"


def _service() -> Any:
    return hub().monitoring


def _scoped(req: MonitoringRequest) -> MonitoringRequest:
    """Restrict a tenant-level request to the namespaces the caller may see.

    ``Scope.restrict`` intersects the requested namespaces with the scope (None for admins
    without a filter); names outside it are dropped, so asking for another tenant's namespace
    yields nothing rather than a hint that it exists.
    """
    scope = hub().tenancy.scope(current_principal())
    allowed = scope.restrict(list(req.filters.namespaces) if req.filters.namespaces else None)
    return req.with_namespaces(allowed)


def _answer(level: str) -> Any:
    service = _service()
    req = params.monitoring_request(service, level, request.args)
    if req.level in TENANT_LEVELS:
        req = _scoped(req)
    else:
        # Reached through an alias such as "node": still cluster-wide, still admins only.
        hub().tenancy.authorize(current_principal(), CLUSTER_PERMISSION)
    return jsonify(service.query(req))


@bp.get("/monitoring/catalogue")
@permission(None)
def catalogue() -> Any:
    """Every level with its entity labels, filters and metrics (name, unit, description, PromQL)."""
    body = _service().catalogue.to_dict()
    for entry in body["levels"]:
        entry["scope"] = "tenant" if entry["level"] in TENANT_LEVELS else "cluster"
    return jsonify(body)


@bp.get("/monitoring/<any(cluster, nodes, components):level>")
@permission(CLUSTER_PERMISSION)
def cluster_level(level: str) -> Any:
    """Cluster-wide metrics (cluster, nodes, control-plane components); platform admins only."""
    return _answer(level)


@bp.get("/monitoring/<level>")
@permission(None)
def tenant_level(level: str) -> Any:
    """Metrics of workspaces, namespaces, workloads, pods or containers, limited to the
    namespaces the caller may see. Unknown levels: 400 listing the valid ones."""
    return _answer(level)
