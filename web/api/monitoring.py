"""Monitoring endpoints under /api/v1 (API.md "Monitoring"; docs/monitoring.md).

The cluster, nodes and components levels are cluster-wide and need ``monitoring:cluster``
(platform admins). The tenant levels (workspaces, namespaces, workloads, pods, containers)
are open to every authenticated caller; the monitoring service enforces the caller's scope
(``MonitoringService.scoped``: a named namespace outside it is the one 403), this module only
passes it through.

Several clusters: ``?cluster=<name>`` asks one cluster (the scope's view of it, web.access);
``?clusters=a,b`` or ``?clusters=*`` one table over several (``monitoring_clusters.query_across``,
a ``cluster`` label on every row; ``*``: every cluster the caller may pick).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from hub.collectors import monitoring
from hub.collectors.catalogue import TENANT_LEVELS
from hub.collectors.monitoring_clusters import query_across
from hub.errors import InvalidInput
from web import params
from web.access import permission, request_cluster, scope
from web.util import hub

bp = Blueprint("api_monitoring", __name__, url_prefix="/api/v1")

CLUSTER_PERMISSION = monitoring.CLUSTER_PERMISSION


def _service() -> monitoring.MonitoringService:
    return hub().monitoring


def _answer(level: str) -> Any:
    service = _service()
    # A plain dict of the first values: each absent parameter looked up in werkzeug's MultiDict
    # raises and catches a BadRequestKeyError, and a request looks up about twenty.
    args = request.args.to_dict()
    req = params.monitoring_request(service, level, args)
    if args.get("clusters") is not None:
        return jsonify(query_across(service, req, scope(), _clusters()))
    return jsonify(service.query(req, scope()))


def _clusters() -> list[str]:
    """The clusters a ``clusters=`` parameter names (``*``: every one the caller may pick)."""
    if request_cluster():
        raise InvalidInput("give either cluster (one) or clusters (a table over several), not both", field="clusters")
    sc = scope()
    raw = request.args.get("clusters", "")
    every = hub().clusters.names()
    if raw.strip() == "*":
        return [c for c in every if sc.may_read_cluster(c)]
    names = list(params.clusters(request.args, name="clusters"))  # names by the registry's rule, at most 50
    if not names:
        raise InvalidInput("clusters must be * or a comma list of 1 to 50 cluster names", field="clusters")
    return names


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
