"""GET /api/v1/components: the platform's own components and their 24 h history
(docs/components.md). Cluster-wide, so ``monitoring:cluster`` (platform admins, cluster
admins and viewers); the service (hub/collectors/components.py) does the work, this module
only passes it through."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from hub.collectors import components
from web.access import permission
from web.util import hub

bp = Blueprint("api_components", __name__, url_prefix="/api/v1")


@bp.get("/components")
@permission(components.PERMISSION)
def component_health() -> Any:
    """Every platform component: state (up, degraded, down, unknown, disabled), since when,
    the checks behind it (Prometheus ``up``, the hub's own probes), lag of the hub's loops and
    the state history over 24 h."""
    return jsonify(hub().components.health())
