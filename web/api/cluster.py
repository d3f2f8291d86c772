"""Cluster and workload endpoints under /api/v1 (API.md "Cluster and workloads").

Every route declares its permission; namespaced routes name ``ns`` so web.access checks the
caller's role on that namespace before the view runs. Reads answer from the watch cache and
carry ``stale_since`` (null while the cache is live); writes go to the API server and return the
object as it now is. Lists accept ``limit`` (default 500, at most 5000), ``continue`` (the token
a previous page returned) or ``page`` (1-based), ``label_selector`` and ``name`` (substring).

Several clusters: every route here takes ``?cluster=<name>`` (reads and actions alike); without
it, or with the implicit cluster's name, it is today's cluster, so existing clients are
unchanged. An added cluster's namespaced routes are for the members of the project of that
namespace *in that cluster* (the scope's view of the cluster; the same name elsewhere may be
another tenant's); its node routes for holders of the cluster permission on that cluster. An
unknown cluster gets the same refusal as a foreign one for everybody but platform admins (404
naming ``cluster`` for them). The clusters themselves: ``/api/v1/clusters`` (platform admins
add, change and remove; credentials are write-only).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from hub.collectors.cluster import ClusterService
from hub.collectors.inventory import ListQuery, Page, decode_continue
from hub.errors import BackendUnavailable, InvalidInput, NotFound, Unprocessable
from hub.model import iso_or_none
from hub.scope import refusal
from web.access import access_of, audit, audited_read, permission, request_cluster, scope
from web.util import hub, int_param, json_body

bp = Blueprint("api_cluster", __name__, url_prefix="/api/v1")

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000  # a page bigger than this is an export, not a table


def cluster() -> ClusterService:
    """The service of the cluster the request names (``?cluster=``, default the implicit one),
    or a 503 naming the API server when that cluster cannot be reached at all."""
    h = hub()
    name = request_cluster()
    # The body through the hub's bounded decoder (a deeply nested one is a 400, not a RecursionError).
    body = json_body(required=False) if request.is_json else None
    if isinstance(body, dict) and "cluster" in body and body["cluster"] != (name or h.clusters.implicit.name):
        # Never act on one cluster while the caller meant another: the cluster is named in the query.
        raise Unprocessable("name the cluster with the query parameter ?cluster=, not in the body", field="cluster")
    if name and name != h.clusters.implicit.name:
        return _added_cluster(name)
    service = h.cluster
    if service is None:
        raise BackendUnavailable(
            "kubernetes API server", "no cluster is configured (set KUBEHUB_KUBERNETES_KUBECONFIG)"
        )
    return service


def _added_cluster(name: str) -> ClusterService:
    h = hub()
    sc = scope()
    namespaced = bool(request.view_args and "ns" in request.view_args)
    # The route's own permission, checked on *this* cluster (the decorator checked it on the
    # implicit one): a cluster admin of one cluster and viewer of another cordons only the first.
    access = access_of(request.endpoint or "")
    needed = (access.permission if access else None) or ("workloads:read" if namespaced else "nodes:read")
    # A namespaced route's permission was checked on the project of that name *in this cluster*
    # by web.access (its key carries the cluster), and the scope is this cluster's view.
    held = sc.may(needed, (request.view_args or {})["ns"]) if namespaced else sc.may_cluster(needed, name)
    allowed = sc.all_namespaces or held
    if not allowed:
        raise refusal(needed)  # unknown and foreign alike
    if name not in h.clusters.names():
        raise NotFound(f"no cluster {name!r}", field="cluster")
    service = h.added_clusters.get(name)
    if service is None:
        reason = h.cluster_errors.get(name, "not connected")
        raise BackendUnavailable(f"kubernetes API server of cluster {name}", reason)
    return service


def list_query() -> ListQuery:
    limit = int_param("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    token = request.args.get("continue", "")
    offset = decode_continue(token) if token else (int_param("page", 1, minimum=1) - 1) * limit
    return ListQuery(
        limit=limit,
        offset=offset,
        label_selector=request.args.get("label_selector", ""),
        name=request.args.get("name", ""),
    )


def page_response(page: Page) -> Any:
    if page.encoded is not None:  # items the service keeps encoded: splice, do not re-encode
        return Response(page.to_json(), mimetype="application/json")
    return jsonify(page.to_dict())


def _body_field(body: dict[str, Any], name: str, *, required: bool = True) -> Any:
    if name not in body:
        if required:
            raise InvalidInput(f"the request body needs {name!r}", field=name)
        return None
    return body[name]


# -- nodes ---------------------------------------------------------------------------------------
@bp.get("/nodes")
@permission("nodes:read")
def list_nodes() -> Any:
    """Nodes as a table shows them: readiness, cordoned, roles, the conditions that are not
    healthy (``problems``) and requested vs allocatable; labels, taints and every condition
    with its message are in ``GET /nodes/{node}``; ``label_selector`` filters by labels."""
    return page_response(cluster().list_nodes(list_query()))


@bp.get("/nodes/<node>")
@permission("nodes:read")
def get_node(node: str) -> Any:
    """One node, its pods and its recent events."""
    return jsonify(cluster().get_node(node))


@bp.post("/nodes/<node>/cordon")
@permission("nodes:write")
def cordon_node(node: str) -> Any:
    """Mark a node unschedulable (running pods stay)."""
    out = cluster().cordon(node)
    audit("cluster.cordon", f"node/{node}")
    return jsonify(out)


@bp.post("/nodes/<node>/uncordon")
@permission("nodes:write")
def uncordon_node(node: str) -> Any:
    """Make a cordoned node schedulable again."""
    out = cluster().uncordon(node)
    audit("cluster.uncordon", f"node/{node}")
    return jsonify(out)


# -- namespaces ------------------------------------------------------------------------------------
@bp.get("/namespaces")
@permission(None)
def list_namespaces() -> Any:
    """The namespaces the caller may see (all of them for platform admins)."""
    return page_response(cluster().list_namespaces(list_query(), scope()))


# -- workloads -------------------------------------------------------------------------------------
@bp.get("/namespaces/<ns>/workloads")
@permission("workloads:read", namespace_arg="ns")
def list_workloads(ns: str) -> Any:
    """Workloads of a namespace with their health; ``kind`` narrows to one kind."""
    kind = request.args.get("kind") or None
    return page_response(cluster().list_workloads(ns, list_query(), kind=kind))


@bp.get("/namespaces/<ns>/workloads/<kind>/<name>")
@permission("workloads:read", namespace_arg="ns")
def get_workload(ns: str, kind: str, name: str) -> Any:
    """One workload: health, pods, revisions (deployments), jobs (cronjobs) and events."""
    return jsonify(cluster().get_workload(ns, kind, name))


@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/scale")
@permission("workloads:write", namespace_arg="ns")
def scale_workload(ns: str, kind: str, name: str) -> Any:
    """Set the replica count of a deployment or statefulset: ``{"replicas": 5}``."""
    replicas = _body_field(json_body(), "replicas")
    out = cluster().scale(ns, kind, name, replicas)
    audit("cluster.scale", f"{ns}/{kind}/{name}", detail={"replicas": replicas})
    return jsonify(out)


@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/restart")
@permission("workloads:write", namespace_arg="ns")
def restart_workload(ns: str, kind: str, name: str) -> Any:
    """Replace every pod, as ``kubectl rollout restart`` does."""
    out = cluster().restart(ns, kind, name)
    audit("cluster.restart", f"{ns}/{kind}/{name}")
    return jsonify(out)


@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/rollback")
@permission("workloads:write", namespace_arg="ns")
def rollback_workload(ns: str, kind: str, name: str) -> Any:
    """Roll a deployment back to a revision: ``{"revision": 2}`` (omitted or 0: the previous one)."""
    revision = _body_field(json_body(required=False), "revision", required=False)
    out = cluster().rollback(ns, kind, name, revision)
    audit("cluster.rollback", f"{ns}/{kind}/{name}", detail={"revision": out.get("revision")})
    return jsonify(out)


@bp.post("/namespaces/<ns>/workloads/<kind>/<name>/image")
@permission("workloads:write", namespace_arg="ns")
def set_workload_image(ns: str, kind: str, name: str) -> Any:
    """Change one container's image: ``{"container": "web", "image": "nginx:1.27"}``."""
    body = json_body()
    container = _body_field(body, "container")
    image = _body_field(body, "image")
    out = cluster().set_image(ns, kind, name, container, image)
    audit("cluster.image", f"{ns}/{kind}/{name}", detail={"container": container, "image": image})
    return jsonify(out)


@bp.get("/namespaces/<ns>/workloads/<kind>/<name>/containers")
@permission("workloads:read", namespace_arg="ns")
def get_container_settings(ns: str, kind: str, name: str) -> Any:
    """Each container's CPU/memory requests and limits and its liveness/readiness probes, read live."""
    return jsonify(cluster().container_settings(ns, kind, name))


@bp.put("/namespaces/<ns>/workloads/<kind>/<name>/containers")
@permission("workloads:write", namespace_arg="ns")
def set_container_settings(ns: str, kind: str, name: str) -> Any:
    """Change one container's probes and/or resources: ``{"container": "web", "resources":
    {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}, "liveness_probe": {"type": "http",
    "path": "/healthz", "port": 8080}, "readiness_probe": null}``; an absent key leaves that part alone."""
    body = json_body()
    out = cluster().set_container_settings(ns, kind, name, body)
    changed = sorted(k for k in ("resources", "liveness_probe", "readiness_probe") if k in body)
    audit("cluster.containers", f"{ns}/{kind}/{name}", detail={"container": body.get("container"), "changed": changed})
    return jsonify(out)


@bp.delete("/namespaces/<ns>/workloads/<kind>/<name>")
@permission("workloads:write", namespace_arg="ns")
def delete_workload(ns: str, kind: str, name: str) -> Any:
    """Delete a workload and its pods (``propagation=background|foreground|orphan``, default background)."""
    propagation = request.args.get("propagation", "background")
    out = cluster().delete_workload(ns, kind, name, propagation)
    audit("cluster.delete", f"{ns}/{kind}/{name}", detail={"propagation": out["propagation"]})
    return jsonify(out)


# -- pods ----------------------------------------------------------------------------------------
@bp.get("/namespaces/<ns>/pods")
@permission("pods:read", namespace_arg="ns")
def list_pods(ns: str) -> Any:
    """Pods of a namespace; filters ``node``, ``status`` (phase or status word), ``workload=kind/name``."""
    workload = None
    raw = request.args.get("workload", "")
    if raw:
        kind, _, name = raw.partition("/")
        if not kind or not name:
            raise InvalidInput(f"workload must be kind/name, e.g. deployment/web, got {raw!r}", field="workload")
        workload = (kind, name)
    page = cluster().list_pods(
        ns,
        list_query(),
        node=request.args.get("node") or None,
        status=request.args.get("status") or None,
        workload=workload,
    )
    return page_response(page)


@bp.get("/namespaces/<ns>/pods/<pod>")
@permission("pods:read", namespace_arg="ns")
def get_pod(ns: str, pod: str) -> Any:
    """One pod: containers, statuses, conditions, owner workload and events."""
    return jsonify(cluster().get_pod(ns, pod))


@bp.get("/namespaces/<ns>/pods/<pod>/log")
@permission("pods:log", namespace_arg="ns")
@audited_read("pods.log")
def pod_log(ns: str, pod: str) -> Any:
    """The last ``tail`` lines (default 100, at most 10000) of a container's log (audited: ``pods.log``)."""
    tail = int_param("tail", 100, minimum=1, maximum=10_000)
    container = request.args.get("container") or None
    return jsonify(cluster().read_pod_log(scope(), ns, pod, container=container, tail=tail, audit=hub().tenancy.audit))


# -- events, services, config metadata --------------------------------------------------------------
@bp.get("/namespaces/<ns>/events")
@permission("events:read", namespace_arg="ns")
def list_events(ns: str) -> Any:
    """Events of a namespace, newest first; filters ``kind`` and ``object`` (the object's name), ``type``."""
    page = cluster().list_events(
        ns,
        list_query(),
        object_kind=request.args.get("kind") or None,
        object_name=request.args.get("object") or None,
        type=request.args.get("type") or None,
    )
    return page_response(page)


@bp.get("/namespaces/<ns>/services")
@permission("workloads:read", namespace_arg="ns")
def list_services(ns: str) -> Any:
    """Services of a namespace: type, cluster IP, ports, selector."""
    return page_response(cluster().list_services(ns, list_query()))


@bp.get("/namespaces/<ns>/configmaps")
@permission("workloads:read", namespace_arg="ns")
def list_configmaps(ns: str) -> Any:
    """ConfigMap metadata of a namespace (names, labels, owners; never data)."""
    return page_response(cluster().list_configmaps(ns, list_query()))


@bp.get("/namespaces/<ns>/secrets")
@permission("workloads:read", namespace_arg="ns")
def list_secrets(ns: str) -> Any:
    """Secret metadata of a namespace (names, labels, owners; the hub never holds the values)."""
    return page_response(cluster().list_secrets(ns, list_query()))


@bp.get("/cluster/freshness")
@permission(None)
def cache_freshness() -> Any:
    """How current the cluster cache is, per resource (the console's stale banner reads this);
    tenants get the times only (the service decides from the caller's scope)."""
    return jsonify(cluster().freshness(scope()))


# -- the clusters themselves ------------------------------------------------------------------------
def _platform_admin() -> str:
    sc = scope()
    if not sc.all_namespaces:
        raise refusal("clusters:write")
    return sc.username


def _cluster_view(name: str) -> dict[str, Any]:
    h = hub()
    c = h.clusters.get(name)
    out = c.to_dict()
    service = h.cluster if c.implicit else h.added_clusters.get(name)
    if service is None:
        out["state"] = "unconfigured" if c.implicit else "error"
        out["error"] = "no connection configured" if c.implicit else h.cluster_errors.get(name, "not connected")
        out["stale_since"] = None
    else:
        stale = service.cache.stale_since()
        out["state"] = "stale" if stale is not None else "live"
        out["stale_since"] = iso_or_none(stale)
    return out


@bp.get("/clusters")
@permission(None)
def list_clusters() -> Any:
    """Every cluster with its connection (credentials only as their kind), metrics and log
    sources, and whether its cache is live or stale (``stale_since``) for platform admins; the
    names of the clusters one may read for everybody else."""
    h = hub()
    sc = scope()
    if sc.all_namespaces:
        return jsonify({"items": [_cluster_view(n) for n in h.clusters.names()]})
    # The switcher's list: the implicit cluster, those of the caller's projects, of their
    # workspaces' grants and of their cluster roles (Scope.may_read_cluster).
    names = [n for n in h.clusters.names() if n == h.clusters.implicit.name or sc.may_read_cluster(n)]
    return jsonify({"items": [{"name": n, "display_name": h.clusters.get(n).display_name} for n in names]})


@bp.post("/clusters")
@permission(None)
def add_cluster() -> Any:
    """Add a cluster (platform admins); its watch cache starts at once."""
    actor = _platform_admin()
    c = hub().clusters.add(json_body(), actor=actor)
    return jsonify(_cluster_view(c.name)), 201


@bp.get("/clusters/<name>")
@permission(None)
def get_cluster(name: str) -> Any:
    """The full view for platform admins; the name alone for a caller who may read the cluster;
    the same 404 for a cluster one may not read as for one that does not exist."""
    h = hub()
    sc = scope()
    if sc.all_namespaces:
        return jsonify(_cluster_view(name))
    if name in h.clusters.names() and (name == h.clusters.implicit.name or sc.may_cluster("nodes:read", name)):
        return jsonify({"name": name, "display_name": h.clusters.get(name).display_name})
    raise NotFound(f"no cluster {name!r}", field="cluster")


@bp.put("/clusters/<name>")
@permission(None)
def edit_cluster(name: str) -> Any:
    """Replace a cluster's description; credentials left out are kept (``credentials: none`` drops them)."""
    actor = _platform_admin()
    hub().clusters.edit(name, json_body(), actor=actor)
    return jsonify(_cluster_view(name))


@bp.delete("/clusters/<name>")
@permission(None)
def remove_cluster(name: str) -> Any:
    actor = _platform_admin()
    hub().clusters.remove(name, actor=actor)
    return "", 204
