"""A caller's scope: the one value every area's service enforces (pure, in the core).

``hub.tenancy`` decides it (``TenancyService.scope`` builds it from the principal's memberships
and the project list, and caches it); the areas apply it themselves — the monitoring, logs,
alerting and cluster services and the audit log take a :class:`Scope` and never ask the
tenancy service again, and the web layer only passes it through. That is why it lives here,
below the areas: ``hub.collectors`` and ``hub.alerts`` may not import ``hub.tenancy``.

One answer for a namespace outside the scope, everywhere it is *named* by the caller (a query
parameter, a filter, a body field): 403 "you lack the permission P in namespace N", the same
bytes whether N exists or not, so a tenant cannot probe names (:meth:`Scope.check`). Objects
reached by id (an alert, a silence) outside the scope answer 404 "no alert X", as an unknown
id does.

Cluster-level objects (nodes, cluster and node metrics, node-level policies and alerts) are
decided here too: ``cluster_grants`` holds the permissions the caller has on each cluster (a
cluster role, a cluster-level custom role) and ``default_cluster`` names the implicit cluster
(``clusters.default_name``, :data:`DEFAULT_CLUSTER` unless configured); every cluster check
names the cluster, defaulting to that one, so several clusters only add names.

Several clusters: the scope keys namespaces by (cluster, namespace) (:attr:`Scope.keys`). The
value :func:`hub.tenancy.scope.scope_for` returns is the *view* of the implicit cluster, and
:meth:`Scope.for_cluster` gives the view of any other: its ``namespaces``, ``grants``, ``roles``
and node-level checks are that cluster's only, by plain namespace name. So an area handed a
cluster's view applies it exactly as before, and ``retail-api`` of cluster-2 (another tenant's)
is simply not in the default view's allow-list, nor the other way round. A project of an added
cluster is stored under the key ``<cluster>/<namespace>`` (:func:`project_key`; ``/`` never
occurs in a namespace name), a project of the implicit cluster under its namespace as before,
so a single-cluster install's rows and scopes are unchanged.

No store, no clock: the property tests throw random memberships at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hub.errors import Forbidden

DEFAULT_CLUSTER = "default"
KEY_SEPARATOR = "/"  # never part of a namespace or cluster name (DNS-1123 labels)


def project_key(cluster: str, namespace: str, default_cluster: str = DEFAULT_CLUSTER) -> str:
    """The hub's key of the project of ``namespace`` in ``cluster`` ('' or the implicit cluster:
    the namespace itself, so single-cluster rows keep their keys)."""
    if not cluster or cluster == default_cluster:
        return namespace
    return f"{cluster}{KEY_SEPARATOR}{namespace}"


def split_key(key: str) -> tuple[str, str]:
    """(cluster, namespace) of a project key; the cluster is '' for the implicit one."""
    cluster, sep, namespace = key.partition(KEY_SEPARATOR)
    return (cluster, namespace) if sep else ("", key)


# A project permission asked about a node-level object (no namespace) is its node-level twin:
# an alert of a node is read with node-alerts:read, not with a project's alerts:read.
NODE_LEVEL_TWIN = {"alerts:read": "node-alerts:read", "alerts:write": "node-alerts:write"}


def refusal(permission: str, namespace: str | None = None) -> Forbidden:
    """The one answer for a permission not held where asked (a foreign or unknown namespace)."""
    where = f" in namespace {namespace}" if namespace else ""
    return Forbidden(f"you lack the permission {permission}{where}")


@dataclass(frozen=True)
class LogFloors:
    """How a tenant's log queries tell a namespace from an earlier one of the same name.

    A line stamped with a namespace UID is the current namespace's exactly when that UID is
    ``uids[namespace]``, whatever its time: history shipped from the namespace's own pods is
    shown even when it predates the namespace object (seeded or backfilled logs), and a
    predecessor's lines are hidden. A line without a UID, or of a namespace whose UID is not
    known, is shown from ``created[namespace]`` (the creation time) on. The stores apply this
    (``LogQuery.visibility`` and ``LogQuery.namespace_uids``).
    """

    created: Mapping[str, float]
    uids: Mapping[str, str]


@dataclass(frozen=True, eq=False)
class Scope:
    """Who the caller is and what they may read and write.

    ``all_namespaces`` is true only for platform admins: queries then carry no namespace filter
    and node-level (cluster) objects are theirs. ``cluster_grants`` maps a cluster name to the
    permissions held on it by anyone else (cluster roles, cluster-level custom roles).
    Otherwise ``namespaces`` (namespace -> its creation time, the log floor) is the complete
    allow-list and an empty one means "see nothing" (never "no filter"). ``workspaces`` maps
    each listed namespace to its workspace, ``uids`` to its current metadata.uid (the log
    predecessor rule), ``roles`` to the caller's effective project role there, and ``grants`` to
    the project permissions held there (its role's and any custom role's).
    """

    all_namespaces: bool
    namespaces: Mapping[str, float]
    workspaces: Mapping[str, str] = field(default_factory=dict)
    uids: Mapping[str, str] = field(default_factory=dict)
    username: str = ""
    roles: Mapping[str, str] = field(default_factory=dict)
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    cluster_grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    default_cluster: str = DEFAULT_CLUSTER
    # Several clusters: which cluster this view is of ('' = the implicit one), every cluster's
    # view by name (shared by all views of one scope), and the clusters the caller may pick:
    # those of their projects, those granted to their workspaces, those of their cluster roles.
    cluster_name: str = ""
    views: Mapping[str, Scope] = field(default_factory=dict, repr=False)
    granted_clusters: frozenset[str] = frozenset()
    _whole_floors: LogFloors | None = field(default=None, init=False, repr=False)

    @property
    def at(self) -> str:
        """The name of the cluster this view is of."""
        return self.cluster_name or self.default_cluster

    @property
    def cluster(self) -> bool:
        """Whether this view's cluster's nodes and their facts are visible (nodes:read)."""
        return self.may_cluster("nodes:read")

    def may_cluster(self, permission: str, cluster: str | None = None) -> bool:
        """Whether the caller holds a cluster-level ``permission`` on ``cluster`` (None: this
        view's cluster, the implicit one unless :meth:`for_cluster` chose another)."""
        return self.all_namespaces or permission in self.cluster_grants.get(cluster or self.at, ())

    def for_cluster(self, name: str | None) -> Scope:
        """The view of cluster ``name`` (None or '': the implicit cluster): the same caller, the
        namespaces and grants they hold *there*. A cluster they hold nothing in is an empty view
        (sees no namespace, node checks answer by its cluster grants), never another's view, so
        naming a cluster can only narrow."""
        name = name or self.default_cluster
        if name == self.at:
            return self
        view = self.views.get(name)
        if view is not None:
            return view
        return Scope(
            all_namespaces=self.all_namespaces,
            namespaces={},
            username=self.username,
            cluster_grants=self.cluster_grants,
            default_cluster=self.default_cluster,
            cluster_name=name,
            views=self.views,
            granted_clusters=self.granted_clusters,
        )

    @cached_property
    def keys(self) -> frozenset[tuple[str, str]]:
        """Every (cluster, namespace) the caller reaches, over all clusters."""
        views = dict(self.views) or {self.at: self}
        return frozenset((c, ns) for c, v in views.items() for ns in v.namespaces)

    @cached_property
    def keyed(self) -> Scope:
        """One scope over every cluster with namespaces named by their project keys
        (:func:`project_key`: plain in the implicit cluster, ``<cluster>/<ns>`` elsewhere), for
        the areas whose stores key rows by project (alerting): ``retail-api`` and
        ``cluster-2/retail-api`` are then two names, never confused. Node-level checks are the
        implicit cluster's."""
        views = dict(self.views) or {self.at: self}
        default = self.default_cluster

        def merged(attr: str) -> dict[str, Any]:
            return {
                project_key(c, ns, default): value
                for c, view in sorted(views.items())
                for ns, value in getattr(view, attr).items()
            }

        return Scope(
            all_namespaces=self.all_namespaces,
            namespaces=merged("namespaces"),
            workspaces=merged("workspaces"),
            uids=merged("uids"),
            username=self.username,
            roles=merged("roles"),
            grants=merged("grants"),
            cluster_grants=self.cluster_grants,
            default_cluster=default,
            granted_clusters=self.granted_clusters,
        )

    def may_read_cluster(self, name: str) -> bool:
        """Whether the caller may pick cluster ``name`` at all (a switcher entry): platform admins
        every one; others a cluster of their projects, of their workspaces' grants, or of a
        cluster role."""
        return self.all_namespaces or name in self.granted_clusters or bool(self.cluster_grants.get(name))

    @cached_property
    def visible(self) -> tuple[str, ...] | None:
        """The namespaces as a sorted tuple for store filters; None: every namespace."""
        return None if self.all_namespaces else tuple(sorted(self.namespaces))

    def allows(self, namespace: str | None) -> bool:
        """Whether objects of ``namespace`` are visible; None or "": node-level alerting objects
        (node alerts, cluster-wide silences), visible with node-alerts:read."""
        if not namespace:
            return self.may("alerts:read", None)
        return self.all_namespaces or namespace in self.namespaces

    def may(self, permission: str, namespace: str | None) -> bool:
        """Whether the caller holds a project ``permission`` in ``namespace``; with no namespace
        (a node-level object) whether they hold its node-level twin on the default cluster."""
        if self.all_namespaces:
            return True
        if not namespace:
            return self.may_cluster(NODE_LEVEL_TWIN.get(permission, permission))
        return permission in self.grants.get(namespace, ())

    def check(self, permission: str, namespace: str | None) -> None:
        """Raise the one refusal (403, same words for unknown and foreign) unless :meth:`may`."""
        if not self.may(permission, namespace):
            raise refusal(permission, namespace)

    def check_cluster(self, permission: str, cluster: str | None = None) -> None:
        """Cluster-level reads and writes (nodes, cluster metrics): the one refusal unless the
        caller holds ``permission`` on ``cluster`` (:meth:`may_cluster`)."""
        if not self.may_cluster(permission, cluster):
            raise refusal(permission)

    def named(self, permission: str, requested: Iterable[str] | None) -> list[str] | None:
        """The namespaces a request names, each checked (any outside: the one 403, the request
        refused whole rather than silently narrowed); none named: every one the caller may
        read (None for platform admins: no filter)."""
        wanted = sorted({n for n in (requested or ()) if n})
        for namespace in wanted:
            self.check(permission, namespace)
        if wanted:
            return wanted
        if self.all_namespaces:
            return None
        # Every log or metrics request that names no namespace asks this: kept per permission
        # for the scope's life (one request, or as long as the tenancy cache keeps it).
        memo = self._memo
        key = ("named", permission)
        if key not in memo:
            memo[key] = tuple(n for n in self.visible or () if permission in self.grants.get(n, ()))
        return list(memo[key])

    @cached_property
    def _memo(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """Answers derived from this (immutable) scope, computed once."""
        return {}

    def floor(self, namespace: str) -> float:
        """The creation time of a namespace: its logs without a namespace UID are visible only
        from then on (a recreated namespace does not inherit its predecessor's lines)."""
        return self.namespaces.get(namespace, 0.0)

    def log_floors(self, namespaces: Iterable[str]) -> LogFloors:
        """The predecessor rule (:class:`LogFloors`) for reading ``namespaces`` as this scope's
        principal. Platform admins get none: they investigate the cluster as a whole, a
        predecessor's lines included."""
        wanted = list(namespaces)
        if self.all_namespaces:
            return LogFloors(created=dict.fromkeys(wanted, 0.0), uids={})
        # Every namespace of the scope (a tenant's search naming none) is the common case and
        # costs a dict per namespace: built once per scope (LogFloors is frozen and only read).
        whole = len(wanted) == len(self.namespaces) and tuple(wanted) == self.visible
        if whole and self._whole_floors is not None:
            return self._whole_floors
        created = {ns: float(self.namespaces.get(ns, 0.0)) for ns in wanted}
        uids = self.uids
        floors = LogFloors(created=created, uids={ns: uids[ns] for ns in wanted if uids.get(ns)})
        if whole:
            object.__setattr__(self, "_whole_floors", floors)
        return floors

    def restrict(self, requested: Iterable[str] | None) -> list[str] | None:
        """Intersect a requested namespace list with the scope (for listings that narrow, such
        as the console's namespace pickers). Returns None for "every namespace" (admins asking
        for no filter), else the allowed subset (possibly empty, which must yield no data)."""
        wanted = [n for n in (requested or []) if n]
        if self.all_namespaces:
            return wanted or None
        if not wanted:
            return sorted(self.namespaces)
        return [n for n in wanted if n in self.namespaces]

    def projects(self) -> list[tuple[str, str, str | None]]:
        """(workspace, namespace, effective role) of every project the caller reaches, sorted;
        a platform admin's role is None where they hold none themselves."""
        return sorted((self.workspaces.get(ns, ""), ns, self.roles.get(ns)) for ns in self.namespaces)
