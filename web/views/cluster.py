"""Console pages for nodes, workloads and pods, over the cluster service (docs/cluster.md).

Reads come from the same watch cache the JSON API serves; actions call the same service
methods and audit the same way as ``web/api/cluster.py``, then redirect back with the outcome.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from hub.collectors.cluster import ClusterService
from hub.collectors.container_settings import PROBE_TYPES, PROBES, RESOURCE_NAMES, TIMINGS
from hub.collectors.inventory import ListQuery
from hub.collectors.revisions import ControllerRevisions
from hub.collectors.workload_actions import workload_kind
from hub.errors import HubError, InvalidInput
from web.access import audit, permission, request_cluster, require, scope
from web.params import MAX_ID, MAX_OFFSET, integer, whole
from web.util import hub
from web.views import common
from web.views.common import _, attempt, back, can, done, failed, page, require_cluster, url_with

bp = Blueprint("cluster", __name__)

KINDS = ("deployment", "statefulset", "daemonset", "job", "cronjob")
# Actions each kind supports (docs/cluster.md "Actions"); others are not offered.
ACTIONS_OF = {
    "deployment": ("scale", "restart", "rollback", "image", "delete"),
    "statefulset": ("scale", "restart", "rollback", "image", "delete"),
    "daemonset": ("restart", "rollback", "image", "delete"),
    "job": ("delete",),
    "cronjob": ("image", "delete"),
}
ALL = ListQuery(limit=5000, offset=0, label_selector="", name="")


def _cluster() -> ClusterService:
    return require_cluster()


def _read(fn: Any, default: Any) -> Any:
    """A cluster read for a page: outages become banners, staleness a stale banner."""

    def run() -> Any:
        out = fn()
        body = out.to_dict() if hasattr(out, "to_dict") else out
        common.note_stale(body)
        return body

    return attempt(run, default)


# -- nodes ---------------------------------------------------------------------------------------
# Nodes per page of /nodes: 1,000 nodes rendered whole were a 690 KB page and 67-335 ms of
# server time on the scale sandbox at load 5 (docs/scale.md, "Large, tenth look"), and the
# browser then asked for two metrics of every one of them; 100 a page, as /users does.
NODES_PAGE = 100


@bp.get("/nodes")
@permission("nodes:read")
def nodes() -> Any:
    """The nodes (by name, a page of them: ``from``) with readiness, roles, and requested vs
    allocatable bars."""
    name = request.args.get("name", "")
    offset = integer(request.args, "from", 0, lo=0, hi=MAX_OFFSET, lenient=True)
    query = ListQuery(limit=NODES_PAGE, offset=offset, label_selector="", name=name)
    body = _read(lambda: _cluster().list_nodes(query), {"items": [], "total": 0})
    here = {"cluster": request_cluster(), "name": name}
    total = body["total"]
    pager: dict[str, Any] = {"offset": offset, "shown": len(body["items"])}
    if offset > 0:  # from beyond the end (a hand-edited ?from=), "previous" is the last page
        last = (max(total - 1, 0) // NODES_PAGE) * NODES_PAGE
        pager["previous"] = url_with(".nodes", {**here, "from": max(min(offset - NODES_PAGE, last), 0)})
    if offset + NODES_PAGE < total:
        pager["next"] = url_with(".nodes", {**here, "from": offset + NODES_PAGE})
    return page("nodes.html", nodes=body["items"], total=total, name=name, pager=pager)


@bp.get("/nodes/<node>")
@permission("nodes:read")
def node(node: str) -> Any:
    """One node: conditions, taints, allocation, pods, events and its charts."""
    detail = _read(lambda: _cluster().get_node(node), None)
    return page("node.html", node_name=node, node=detail, may_write=can("nodes:write"))


@bp.post("/nodes/<node>/<any(cordon, uncordon):action>")
@permission("nodes:write")
def node_action(node: str, action: str) -> Any:
    """Cordon or uncordon, then back to the node with the result."""
    target = back(url_for(".node", node=node))
    try:
        cluster = _cluster()
        out = cluster.cordon(node) if action == "cordon" else cluster.uncordon(node)
    except HubError as exc:
        return failed(exc, target)
    audit(f"cluster.{action}", f"node/{node}")
    key = "nodes.cordoned_done" if out.get("unschedulable") else "nodes.uncordoned"
    return done(_(key, node=node), target)


# -- workloads -----------------------------------------------------------------------------------
@bp.get("/workloads")
@permission(None)
def workloads() -> Any:
    """Workloads of one project with their health; the project picker lists the user's own."""
    namespaces = common.visible_namespaces("workloads:read")
    ns = request.args.get("ns") or (namespaces[0] if namespaces else "")
    kind = request.args.get("kind") or None
    if kind is not None and kind not in KINDS:
        kind = None
    items: list[dict[str, Any]] = []
    if ns:
        require("workloads:read", namespace=ns)
        body = _read(lambda: _cluster().list_workloads(ns, ALL, kind=kind), {"items": []})
        items = body["items"]
    return page("workloads.html", ns=ns, namespaces=namespaces, kind=kind or "", kinds=KINDS, workloads=items)


# Pods per page of a workload's page: a Deployment of 1,564 pods on the scale sandbox rendered
# whole took 120-1,400 ms of server time, nearly all of it the table (docs/scale.md); a page of
# 100 keeps it within the console's budget, as /users does.
WORKLOAD_PODS_PAGE = 100


@bp.get("/projects/<ns>/workloads/<kind>/<name>")
@permission("workloads:read", namespace_arg="ns")
def workload(ns: str, kind: str, name: str) -> Any:
    """One workload: health, charts, pods (a page of them: ``from``), revisions, events, and the
    actions the user may take."""
    detail = _read(lambda: _cluster().get_workload(ns, kind, name), None)
    offset = integer(request.args, "from", 0, lo=0, hi=MAX_OFFSET, lenient=True)
    pods: dict[str, Any] = {"offset": offset, "total": 0, "rows": []}
    if detail is not None:
        every = detail.get("pods") or []
        pods.update(total=len(every), rows=every[offset : offset + WORKLOAD_PODS_PAGE])
        here = {"cluster": request_cluster()}
        if offset > 0:
            pods["previous"] = url_with(
                ".workload", {**here, "from": max(offset - WORKLOAD_PODS_PAGE, 0)}, ns=ns, kind=kind, name=name
            )
        if offset + WORKLOAD_PODS_PAGE < len(every):
            pods["next"] = url_with(
                ".workload", {**here, "from": offset + WORKLOAD_PODS_PAGE}, ns=ns, kind=kind, name=name
            )
    if detail is not None and kind in ("statefulset", "daemonset"):  # their ControllerRevisions, read live
        history = ControllerRevisions(_cluster().api)
        none: list[dict[str, Any]] = []
        detail["revisions"] = attempt(lambda: history.history(workload_kind(kind), ns, name), none)
    actions = ACTIONS_OF.get(kind, ()) if can("workloads:write", namespace=ns) else ()
    return page("workload.html", ns=ns, kind=kind, name=name, w=detail, pods=pods, actions=actions)


def _whole(raw: str | None, field: str) -> int:
    """A whole number typed into a form (ASCII digits, within 64 bits: web.params.whole); the
    service checks its range."""
    try:
        return whole(raw or "", field, lo=-MAX_ID - 1, hi=MAX_ID)
    except InvalidInput as exc:
        raise InvalidInput(_("workload.whole_number", field=field), field=field) from exc


@bp.post("/projects/<ns>/workloads/<kind>/<name>/<any(scale, restart, rollback, image, delete):action>")
@permission("workloads:write", namespace_arg="ns")
def workload_action(ns: str, kind: str, name: str, action: str) -> Any:
    """Scale, restart, roll back, change image or delete; the result is shown on the next page."""
    here = url_for(".workload", ns=ns, kind=kind, name=name)
    target = back(here)
    form = request.form
    try:
        cluster = _cluster()
        if action == "scale":
            replicas = _whole(form.get("replicas"), "replicas")
            out = cluster.scale(ns, kind, name, replicas)
            audit("cluster.scale", f"{ns}/{kind}/{name}", detail={"replicas": replicas})
            message = _("workload.scaled", name=name, replicas=replicas)
        elif action == "restart":
            out = cluster.restart(ns, kind, name)
            audit("cluster.restart", f"{ns}/{kind}/{name}")
            message = _("workload.restarted", name=name)
        elif action == "rollback":
            revision = _whole(form.get("revision"), "revision") if form.get("revision") else None
            out = cluster.rollback(ns, kind, name, revision)
            audit("cluster.rollback", f"{ns}/{kind}/{name}", detail={"revision": out.get("revision")})
            # Kubernetes renumbers the restored template as the newest revision; say which one
            # the user picked (or, when none was picked, the one the hub chose).
            message = _("workload.rolled_back", name=name, revision=revision or out.get("revision", "?"))
        elif action == "image":
            container, image = form.get("container", ""), form.get("image", "").strip()
            out = cluster.set_image(ns, kind, name, container, image)
            audit("cluster.image", f"{ns}/{kind}/{name}", detail={"container": container, "image": image})
            message = _("workload.image_set", name=name, container=container, image=image)
        else:
            out = cluster.delete_workload(ns, kind, name, "background")
            audit("cluster.delete", f"{ns}/{kind}/{name}", detail={"propagation": out["propagation"]})
            return done(_("workload.deleted", name=name), url_for(".workloads", ns=ns))
    except HubError as exc:
        return failed(exc, target)
    del out
    return done(message, target)


# -- pods ----------------------------------------------------------------------------------------
@bp.get("/projects/<ns>/pods/<pod>")
@permission("pods:read", namespace_arg="ns")
def pod(ns: str, pod: str) -> Any:
    """One pod: containers, conditions, events and (with ``pods:log``) the tail of a container's log.

    The tail is the kubelet's answer through the API server, which can take seconds when a node
    is busy (docs/scale.md: p50 448 ms, up to 4 s on the scale sandbox) while the rest of the
    page comes from the watch cache in a millisecond. So the page is sent first with the tail's
    API address (``log_src``) and the console's script fills it in (the same read, audited the
    same way). A request that names ``tail`` or ``container`` (the tail's own form, which works
    without the script too) reads it before answering, as before.
    """
    detail = _read(lambda: _cluster().get_pod(ns, pod), None)
    log = None
    log_src = None
    container = request.args.get("container") or None
    tail_n = integer(request.args, "tail", 100, lo=1, hi=10_000, lenient=True)
    if detail and can("pods:log", namespace=ns):
        if "tail" in request.args or "container" in request.args:
            log = attempt(
                lambda: _cluster().read_pod_log(
                    scope(), ns, pod, container=container, tail=tail_n, audit=hub().tenancy.audit
                ),
                None,
            )
        else:
            log_src = url_with("api_cluster.pod_log", {"tail": tail_n, "cluster": request_cluster()}, ns=ns, pod=pod)
    return page(
        "pod.html", ns=ns, pod_name=pod, p=detail, log=log, log_src=log_src, container=container or "", tail=tail_n
    )


# -- probes and resources ----------------------------------------------------------------------------
PROBE_FORM_FIELDS = ("type", "path", "port", "command", *TIMINGS)


def _settings_body(form: Any) -> dict[str, Any]:
    """The form's inputs (named by the body's own field paths, so an error names the input) as the
    JSON API's body: every resource entry (empty removes it) and both probes (type none removes)."""
    body: dict[str, Any] = {
        "container": form.get("container", ""),
        "resources": {
            g: {n: form.get(f"resources.{g}.{n}", "").strip() for n in RESOURCE_NAMES} for g in ("requests", "limits")
        },
    }
    for probe in PROBES:
        body[probe] = {f: form.get(f"{probe}.{f}", "").strip() for f in PROBE_FORM_FIELDS}
    return body


@bp.get("/projects/<ns>/workloads/<kind>/<name>/containers")
@permission("workloads:read", namespace_arg="ns")
def container_settings(ns: str, kind: str, name: str) -> Any:
    """Probes and resources of a workload's containers: the live values in a form (read-only
    without ``workloads:write``)."""
    return _settings_page(ns, kind, name, None, None)


@bp.post("/projects/<ns>/workloads/<kind>/<name>/containers")
@permission("workloads:write", namespace_arg="ns")
def container_settings_save(ns: str, kind: str, name: str) -> Any:
    """Apply one container's form; a refused change is shown again as typed, with the message
    next to the field it names and the error's status (400/409/422/503)."""
    body = _settings_body(request.form)
    try:
        _cluster().set_container_settings(ns, kind, name, body)
    except HubError as exc:
        return _settings_page(ns, kind, name, exc, body)
    audit(
        "cluster.containers",
        f"{ns}/{kind}/{name}",
        detail={"container": body["container"], "changed": ["liveness_probe", "readiness_probe", "resources"]},
    )
    target = url_for(".workload", ns=ns, kind=kind, name=name)
    return done(_("containers.saved", name=name, container=body["container"]), target)


def _settings_page(ns: str, kind: str, name: str, problem: HubError | None, typed: dict[str, Any] | None) -> Any:
    current = _read(lambda: _cluster().container_settings(ns, kind, name), None)
    html, status = page(
        "container_settings.html",
        ns=ns,
        kind=kind,
        name=name,
        current=current,
        typed=typed,
        problems={problem.field or "container": problem.message} if problem else {},
        editable=can("workloads:write", namespace=ns) and kind != "job",
        probe_types=("none", *PROBE_TYPES),
        timings=tuple(TIMINGS),
    )
    if problem is not None and status == 200:
        status = problem.status
    return html, status
