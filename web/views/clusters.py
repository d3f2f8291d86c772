"""Console page of the clusters (docs/cluster.md "Several clusters"): platform admins list, add,
change and remove clusters; everybody else sees the names of the clusters they may read.

The form posts the same fields as ``/api/v1/clusters`` and goes through the same registry, so
validation (naming the field), sealing and auditing are the API's. Credential fields are
password/textarea inputs that are never filled back: an edit that leaves them empty keeps the
stored credentials.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from hub.errors import HubError, NotFound
from hub.model import iso_or_none
from hub.scope import refusal
from web.access import permission, scope
from web.util import hub
from web.views.common import _, done, failed, page

bp = Blueprint("clusters", __name__)


def _views() -> list[dict[str, Any]]:
    h = hub()
    out = []
    for c in h.clusters.all():
        d = c.to_dict()
        d["describe"] = c.connection.describe()
        service = h.cluster if c.implicit else h.added_clusters.get(c.name)
        if service is None:
            d["state"], d["stale_since"] = ("unconfigured" if c.implicit else "error"), None
            d["error"] = "" if c.implicit else h.cluster_errors.get(c.name, "")
        else:
            stale = service.cache.stale_since()
            d["state"], d["stale_since"], d["error"] = ("stale" if stale else "live"), iso_or_none(stale), ""
        out.append(d)
    return out


def _body_from_form() -> dict[str, Any]:
    f = request.form
    conn: dict[str, Any] = {"mode": f.get("mode", "kubeconfig")}
    for key in ("kubeconfig_path", "context", "server", "ca_cert"):
        if f.get(key, "").strip():
            conn[key] = f[key]
    for key in ("kubeconfig", "token"):  # secrets: empty means "keep what is stored"
        if f.get(key, "").strip():
            conn[key] = f[key]
    if f.get("drop_credentials"):
        conn["credentials"] = "none"
    metrics: dict[str, Any] = {"mode": f.get("metrics_mode", "none")}
    logs: dict[str, Any] = {"mode": f.get("logs_mode", "shared")}
    for target, prefix, keys in (
        (metrics, "metrics_", ("url", "label_value")),
        (logs, "logs_", ("url", "label_value", "index_prefix")),
    ):
        for key in keys:
            if f.get(prefix + key, "").strip():
                target[key] = f[prefix + key]
    body: dict[str, Any] = {"connection": conn, "metrics": metrics, "logs": logs}
    if f.get("display_name", "").strip():
        body["display_name"] = f["display_name"]
    return body


def _admin() -> str:
    sc = scope()
    if not sc.all_namespaces:
        raise refusal("clusters:write")
    return sc.username


@bp.get("/clusters")
@permission(None)
def clusters() -> Any:
    """Every cluster with its connection, sources and state (admins); readable names (others)."""
    sc = scope()
    if sc.all_namespaces:
        return page("clusters.html", clusters=_views(), editing=None, admin=True)
    h = hub()
    names = [n for n in h.clusters.names() if n == h.clusters.implicit.name or sc.may_cluster("nodes:read", n)]
    return page("clusters.html", clusters=[{"name": n, "display_name": h.clusters.get(n).display_name}
                                           for n in names], editing=None, admin=False)  # fmt: skip


@bp.get("/clusters/<name>")
@permission(None)
def cluster_edit(name: str) -> Any:
    if not scope().all_namespaces:
        raise NotFound(f"no cluster {name!r}", field="cluster")
    editing = hub().clusters.get(name)
    return page("clusters.html", clusters=_views(), editing=editing.to_dict(), admin=True)


@bp.post("/clusters")
@permission(None)
def cluster_add() -> Any:
    actor = _admin()
    target = url_for("views.clusters.clusters")
    body = _body_from_form()
    body["name"] = request.form.get("name", "")
    try:
        c = hub().clusters.add(body, actor=actor)
    except HubError as exc:
        return failed(exc, target)
    return done(_("clusters.added", name=c.name), target)


@bp.post("/clusters/<name>")
@permission(None)
def cluster_save(name: str) -> Any:
    actor = _admin()
    try:
        hub().clusters.edit(name, _body_from_form(), actor=actor)
    except HubError as exc:
        return failed(exc, url_for("views.clusters.cluster_edit", name=name))
    return done(_("clusters.saved", name=name), url_for("views.clusters.clusters"))


@bp.post("/clusters/<name>/delete")
@permission(None)
def cluster_remove(name: str) -> Any:
    actor = _admin()
    target = url_for("views.clusters.clusters")
    try:
        hub().clusters.remove(name, actor=actor)
    except HubError as exc:
        return failed(exc, target)
    return done(_("clusters.removed", name=name), target)
