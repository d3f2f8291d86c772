"""Console: the cluster switcher and the multi-cluster overview (docs/cluster.md "Several clusters").

The switcher (in the layout header, when the hub knows more than one cluster) lists the clusters
the caller may pick (``Scope.may_read_cluster``: platform admins every one, others the clusters
of their projects, of their workspaces' grants and of their cluster roles). Picking one opens
the same page with ``?cluster=<name>``, which stays the one way a request names its cluster
(``web.access.request_cluster``); the choice is kept in the session, and a later page that
lists cluster objects (nodes, workloads, pods, logs) named without a cluster is sent to itself
with the remembered one, so the choice follows the user from page to page. Picking the implicit
cluster forgets the choice; a remembered cluster the caller may no longer pick is forgotten.

The overview (``/clusters/overview``) shows each cluster the caller may pick: its state
(live, stale with ``stale_since``, or unreachable), nodes, pods and alerts firing, all read
through the caller's view of that cluster (``Scope.for_cluster``), so a tenant counts only the
pods and alerts of their own projects there, and nodes only with the node permission there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, redirect, request, session

from hub.errors import HubError
from hub.model import iso_or_none
from hub.scope import Scope
from web.access import optional_principal, permission, scope, tenancy
from web.util import hub
from web.views.common import page

bp = Blueprint("switcher", __name__)

SESSION_KEY = "cluster"
# Pages that list one cluster's objects and so follow the switcher's choice.
FOLLOWING_PREFIXES = ("views.cluster.",)
FOLLOWING = ("views.logs.search",)
ALERTS_COUNTED = 1000  # alerts firing are counted up to this many per cluster ("1000+" beyond)


def _follows(endpoint: str) -> bool:
    return endpoint in FOLLOWING or endpoint.startswith(FOLLOWING_PREFIXES)


def _pickable(sc: Scope) -> list[str]:
    h = hub()
    return [n for n in h.clusters.names() if n == h.clusters.implicit.name or sc.may_read_cluster(n)]


def follow_choice() -> Any:
    """before_request of every console page (registered on the console blueprint, so it runs
    after the app's authentication): remember a ``?cluster=`` a page was opened with; send a
    following page opened without one to itself with the remembered cluster."""
    endpoint = request.endpoint or ""
    if request.method != "GET" or not endpoint.startswith("views.") or optional_principal() is None:
        return None
    h = hub()
    implicit = h.clusters.implicit.name
    asked = request.args.get("cluster")
    whole = tenancy().scope(optional_principal())  # type: ignore[arg-type]
    if asked is not None:
        if asked in ("", implicit):
            session.pop(SESSION_KEY, None)
        elif asked in _pickable(whole):
            session[SESSION_KEY] = asked
        return None
    remembered = session.get(SESSION_KEY)
    if not remembered or not _follows(endpoint):
        return None
    if remembered not in _pickable(whole):
        session.pop(SESSION_KEY, None)
        return None
    args = request.args.to_dict(flat=False)
    args["cluster"] = [remembered]
    return redirect(f"{request.path}?{urlencode(args, doseq=True)}", code=302)


@bp.app_context_processor
def _switcher_helpers() -> dict[str, Any]:
    return {"cluster_switcher": cluster_switcher, "implicit_cluster": lambda: hub().clusters.implicit.name}


def cluster_switcher() -> dict[str, Any] | None:
    """The header's switcher: the current cluster and the ones to pick, each with the URL of
    this page in that cluster; None when there is nothing to switch."""
    principal = optional_principal()
    if principal is None:
        return None
    h = hub()
    names = _pickable(tenancy().scope(principal))
    if len(names) < 2:
        return None
    implicit = h.clusters.implicit.name
    current = request.args.get("cluster") or session.get(SESSION_KEY) or implicit
    if current not in names:
        current = implicit
    items = []
    for name in names:
        args = request.args.to_dict(flat=False)
        args["cluster"] = [name]
        args.pop("from", None)  # a page number of another cluster's list means nothing here
        items.append(
            {
                "name": name,
                "display_name": h.clusters.get(name).display_name or name,
                "url": f"{request.path}?{urlencode(args, doseq=True)}",
                "active": name == current,
            }
        )
    return {"current": current, "items": items}


def _row(name: str, whole: Scope) -> dict[str, Any]:
    h = hub()
    c = h.clusters.get(name)
    view = whole.for_cluster(name)
    service = h.cluster if c.implicit else h.added_clusters.get(name)
    row: dict[str, Any] = {
        "name": name,
        "display_name": c.display_name or name,
        "state": "unconfigured" if service is None else "live",
        "stale_since": None,
        "error": "" if c.implicit else h.cluster_errors.get(name, ""),
        "nodes": None,
        "nodes_ready": None,
        "pods": None,
        "alerts_firing": None,
    }
    if service is not None:
        stale = service.cache.stale_since()
        row["state"] = "stale" if stale else "live"
        row["stale_since"] = iso_or_none(stale)
        try:
            if view.may_cluster("nodes:read", name):
                # The cached objects, not the node table's view (which sums every pod's requests
                # per node): the overview only counts.
                nodes = service.nodes()
                row["nodes"] = len(nodes)
                row["nodes_ready"] = sum(1 for n in nodes if n.ready)
            visible = view.visible  # None: every namespace (platform admins)
            row["pods"] = len(service.pods(list(visible) if visible is not None else None))
        except HubError as exc:  # a cluster that cannot be read at all: said in its row
            row["state"], row["error"] = "unreachable", exc.message
    row["alerts_firing"] = _firing(name, view)
    return row


def _firing(name: str, view: Scope) -> int | None:
    """Alerts firing in this cluster that the caller may read; None when the alert engine
    cannot say (its store is down). Alerts that name no cluster are the implicit cluster's."""
    alerting = hub().alerting
    if alerting is None:
        return None
    try:
        rows, _total = alerting.alerts(view, states=("firing",), limit=ALERTS_COUNTED)
    except HubError:
        return None
    implicit_name = hub().clusters.implicit.name
    return sum(1 for r in rows if (r.get("cluster") or implicit_name) == name)


@bp.get("/clusters/overview")
@permission(None)
def overview() -> Any:
    """Every cluster the caller may pick, with its state, nodes, pods and alerts firing."""
    whole = tenancy().scope(optional_principal())  # type: ignore[arg-type]
    rows = [_row(name, whole) for name in _pickable(whole)]
    return page("clusters_overview.html", clusters=rows, admin=scope().all_namespaces)
