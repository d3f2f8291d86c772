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
