"""Operations endpoints: liveness, readiness per backend, the hub's own metrics, OpenAPI."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from hub.metrics import CONTENT_TYPE
from web.access import optional_principal, public
from web.openapi import build_openapi
from web.util import hub

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@public
def healthz() -> Any:
    """Process liveness: answers 200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@public
def readyz() -> Any:
    """Readiness per backend: 200 when every configured backend answers, else 503.

    Disabled (unconfigured) backends are listed but do not make the hub unready. Details and
    reasons (file paths, URLs, error texts) are for signed-in platform admins only: anonymous
    callers (load balancers, probes) get each backend's name, state and latency. ``leader``
    says which replica answered, whether it leads, which replica holds the lease of the
    background work and since when (a follower is ready: it serves the console and API).
    """
    statuses = hub().readiness()
    ready = all(s.ok or not s.configured for s in statuses)
    principal = optional_principal()
    admin = principal is not None and principal.is_platform_admin
    backends = [s.to_dict() for s in statuses]
    if not admin:
        backends = [{k: v for k, v in b.items() if k not in ("detail", "reason")} for b in backends]
    body: dict[str, Any] = {"ready": ready, "backends": backends, "leader": hub().leader_status()}
    if not admin:
        body["leader"].pop("reason", None)
    return jsonify(body), 200 if ready else 503


@bp.get("/readyz/serving")
@public
def serving() -> Any:
    """Whether this replica can serve requests: 200 while the state store answers, else 503.

    The readiness probe for a load balancer or a Kubernetes Service. ``/readyz`` answers 503
    while *any* configured backend is down, and an outage of Prometheus, Elasticsearch or the
    API server (often what the alerts are about) would then take every replica out of the
    Service at once and darken the console; pages that need the missing backend answer 503
    naming it instead. The body has the shape of ``/readyz``'s, with the state store only.
    """
    status = hub().serving()
    principal = optional_principal()
    admin = principal is not None and principal.is_platform_admin
    backend = status.to_dict()
    if not admin:
        backend = {k: v for k, v in backend.items() if k not in ("detail", "reason")}
    leader = hub().leader_status()
    if not admin:
        leader.pop("reason", None)
    return jsonify({"ready": status.ok, "backends": [backend], "leader": leader}), 200 if status.ok else 503


@bp.get("/metrics")
@public
def metrics() -> Any:
    """The hub's own metrics in Prometheus exposition format."""
    return Response(hub().metrics.exposition(), mimetype=None, content_type=CONTENT_TYPE)


@bp.get("/api/v1/openapi.json")
@public
def openapi() -> Any:
    """This API's OpenAPI 3 description, generated from the route table."""
    return jsonify(build_openapi(current_app))
