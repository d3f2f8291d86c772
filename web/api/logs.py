"""Log endpoints under /api/v1 (API.md "Logs"; syntax and limits in docs/logs.md).

The search, histogram and export routes declare ``@permission(None)``: any signed-in caller may
ask, and the logs service narrows the question to the caller's scope (namespaces and their
floors) inside the store query. Naming a namespace outside the scope is a 403. The store
routes are for platform admins (``logs:all``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from hub.collectors.cluster import ClusterService
from hub.collectors.logs import nodewire
from hub.collectors.logs.collection import DEFAULT, parse_settings
from hub.collectors.logs.collection_store import LogCollectionStore, audit_detail
from hub.collectors.logs.service import LogService
from hub.errors import NotFound, Unprocessable
from hub.scope import project_key
from web import params
from web.access import bearer_token, current_principal, permission, public, request_cluster, scope
from web.params import int_param
from web.util import hub

bp = Blueprint("api_logs", __name__, url_prefix="/api/v1")


def logs() -> LogService:
    return hub().logs


@bp.get("/logs")
@permission(None)
def search_logs() -> Any:
    """Search log lines of the namespaces the caller may read.

    Parameters: cluster (a comma list of clusters; none: every cluster the caller may pick; a
    namespace is read in each cluster with the caller's rights there), namespaces, workloads,
    pods, containers (comma lists), q (keywords: a b = AND,
    a OR b, "exact phrase", Chinese text), start, end (epoch seconds or RFC 3339), sort=desc|asc,
    from, size. Answers {"items": [...], "total", "total_relation", "partial", "unavailable"}
    (unavailable: the clusters whose own log store did not answer while another store did).
    """
    return jsonify(logs().search(scope(), params.log_params(request.args)))


@bp.get("/logs/histogram")
@permission(None)
def log_histogram() -> Any:
    """Counts of matching log lines per interval (e.g. interval=1m), empty buckets included."""
    return jsonify(logs().histogram(scope(), params.log_params(request.args)))


@bp.get("/logs/export")
@permission(None)
def export_logs() -> Any:
    """Matching log lines as a streamed file (format=csv|jsonl), capped at logs.export_cap lines."""
    service = logs()
    cap = service.settings.logs.export_cap
    fmt = (request.args.get("format") or "csv").strip().lower()
    limit = int_param("limit", cap, minimum=1, maximum=cap)
    result = service.export(scope(), params.log_params(request.args), fmt=fmt, limit=limit)
    return Response(
        stream_with_context(result.chunks),
        content_type=result.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{result.filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/logs/stores")
@permission("logs:all")
def log_stores() -> Any:
    """The log store's partitions (day files or dated indices) with lines and bytes, retention and shipper state."""
    return jsonify(logs().stores())


@bp.post("/logs/stores/retention")
@permission("logs:all")
def apply_log_retention() -> Any:
    """Drop the partitions older than logs.retention_days now (it also runs every hour)."""
    principal = current_principal()
    dropped = logs().apply_retention(actor=principal.username)
    return jsonify({"dropped": dropped})


def collection_store() -> LogCollectionStore:
    """The per-project collection settings, keyed by project key (docs/logs.md)."""
    return LogCollectionStore(hub().db, implicit=logs().implicit_cluster)


def collection_project(ns: str) -> str:
    """The key of the project ``ns`` of the request's ``?cluster=`` (the one the route's
    permission was checked on): reading or writing the bare name instead would reach the
    implicit cluster's namesake, another tenant's project."""
    return project_key(request_cluster(), ns, logs().implicit_cluster)


def collection_answer(ns: str, settings: Any) -> dict[str, Any]:
    cluster = request_cluster() or logs().implicit_cluster
    return {
        "namespace": ns,
        "cluster": cluster,
        **settings.to_dict(),
        "max_retention_days": logs().settings.logs.retention_days,
    }


@bp.get("/namespaces/<ns>/log-collection")
@permission("logs:read", namespace_arg="ns")
def get_log_collection(ns: str) -> Any:
    """A project's log collection settings (defaults when never set) and the platform's maximum
    retention; ``?cluster=`` for the project of that name in an added cluster."""
    return jsonify(collection_answer(ns, collection_store().get(collection_project(ns)) or DEFAULT))


@bp.put("/namespaces/<ns>/log-collection")
@permission("log-collection:write", namespace_arg="ns")
def put_log_collection(ns: str) -> Any:
    """Set a project's log collection (``log-collection:write``: project admins):
    ``{"enabled","include","exclude","retention_days"}`` (any other field, ``cluster`` too, is
    400 naming it: only ``?cluster=`` names the cluster); ``retention_days`` beyond the
    platform's maximum is 422 naming it. Audited ``logs.collection``."""
    key = collection_project(ns)
    if hub().tenancy.project(key) is None:
        raise NotFound(f"no project {ns}")
    maximum = logs().settings.logs.retention_days
    settings = parse_settings(params.json_body(), max_retention_days=maximum)
    actor = current_principal().username
    collection_store().put(key, settings, actor=actor, now=hub().clock.now())
    hub().tenancy.audit(actor, "logs.collection", f"namespace/{key}", "ok", audit_detail(key, settings))
    return jsonify(collection_answer(ns, settings))


def ingest_cluster(body: Any) -> ClusterService | None:
    """The cluster service whose watch cache labels an ingest batch (the body's ``cluster``,
    default the implicit one); a cluster the hub does not know is a 422 naming ``cluster``."""
    h = hub()
    name = body.get("cluster") if isinstance(body, dict) else None
    if not name or not isinstance(name, str) or name == logs().implicit_cluster:
        return h.cluster
    if name not in logs().cluster_names():
        raise Unprocessable(f"no cluster {name[:80]!r} is known to this hub", field="cluster")
    return h.added_clusters.get(name)


@bp.post("/logs/ingest")
@public
def ingest_logs() -> Any:
    """Store a batch of log records from a node collector (``kubehub collect-node``).

    Authenticated by a collector token (``Authorization: Bearer khc_…``; 401 for anything else,
    user tokens included), not by a user: the route is public to the user access layer and checks
    its own credential. Body ``{"node", "records": [{"namespace", "pod", "pod_uid", "container",
    "stream", "time_ns", "message", "file", "offset"}]}`` (at most 5,000 records, 4 MiB: 413
    naming the field); bad fields are a 422 naming each. A record is identified by (file,
    offset): a batch sent twice is stored once. ``cluster`` (optional; a cluster the hub knows,
    else a 422 naming it) labels every line; none: the implicit cluster. Records of containers
    their project does not collect (per-project collection settings, docs/logs.md) are dropped,
    counted in ``skipped``.
    Answers ``{"received", "new", "skipped"}``.
    """
    service = logs()
    nodewire.check_collector_token(bearer_token(), nodewire.parse_digests(service.settings.logs.collector_token_sha256))
    body = params.json_body()
    cluster = ingest_cluster(body)
    _, records = nodewire.decode_batch(body, labels=nodewire.cluster_labels(cluster))
    received = len(records)
    records = nodewire.collected(records, collection_store().rules())
    new = service.write(records) if records else 0
    return jsonify({"received": received, "new": new, "skipped": received - len(records)})
