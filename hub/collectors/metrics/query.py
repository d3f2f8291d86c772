"""The catalogue's levels, filters and the PromQL renderer (:class:`Query`), the ONE place where the
caller's namespace scope enters PromQL (see ``hub/collectors/catalogue.py``), and :class:`Metric`.

Split out of the catalogue so the metric tables (``nodes``, ``namespaced``, ``components``) can
import the renderer without importing the catalogue that assembles them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hub.collectors.promql import one_of, quote, selector

# rate() window: wide enough to hold at least four samples at a 60 s scrape interval (the
# backfill's resolution) so that rates exist at every step of the history too.
RATE_WINDOW = "5m"


RATE_SECONDS = 300


LEVELS = ("cluster", "nodes", "workspaces", "namespaces", "workloads", "pods", "containers", "volumes", "components")


# Policies and people say "node", the API says "nodes".
LEVEL_ALIASES = {
    "node": "nodes",
    "workspace": "workspaces",
    "namespace": "namespaces",
    "project": "namespaces",
    "projects": "namespaces",
    "workload": "workloads",
    "pod": "pods",
    "container": "containers",
    "volume": "volumes",
    "pvc": "volumes",
    "pvcs": "volumes",
    "component": "components",
}


# The labels that identify one entity of a level, in tie-break (name) order.
ENTITY_LABELS: dict[str, tuple[str, ...]] = {
    "cluster": (),
    "nodes": ("node",),
    "workspaces": ("workspace",),
    "namespaces": ("namespace",),
    "workloads": ("namespace", "kind", "workload"),
    "pods": ("namespace", "pod"),
    "containers": ("namespace", "pod", "container"),
    # A PersistentVolumeClaim, as the kubelet's volume statistics name it.
    "volumes": ("namespace", "persistentvolumeclaim"),
    "components": (),
}


# Levels a tenant may query (scoped to their namespaces); the others need monitoring:cluster.
TENANT_LEVELS = frozenset({"workspaces", "namespaces", "workloads", "pods", "containers", "volumes"})


WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset")


# The filters each level understands; any other filter is refused (400) rather than ignored.
LEVEL_FILTERS: dict[str, frozenset[str]] = {
    "cluster": frozenset(),
    "nodes": frozenset({"nodes"}),
    "workspaces": frozenset({"workspaces"}),
    "namespaces": frozenset({"namespaces", "workspaces"}),
    "workloads": frozenset({"namespaces", "workspaces", "kinds", "workloads"}),
    "pods": frozenset({"namespaces", "workspaces", "nodes", "kinds", "workloads", "pods"}),
    "containers": frozenset({"namespaces", "workspaces", "nodes", "kinds", "workloads", "pods", "containers"}),
    "volumes": frozenset({"namespaces", "workspaces"}),
    "components": frozenset(),
}


# Labels each raw series carries (from docs/metrics-conventions.md). The renderer adds a
# filter's matcher only to series that carry the label; ``namespace`` marks series that the
# tenant scope must restrict.
_CADVISOR = frozenset({"namespace", "pod", "container", "node"})


_NODE = frozenset({"node"})


SERIES_LABELS: dict[str, frozenset[str]] = {
    "container_cpu_usage_seconds_total": _CADVISOR,
    "container_memory_working_set_bytes": _CADVISOR,
    "container_memory_usage_bytes": _CADVISOR,
    "container_network_receive_bytes_total": _CADVISOR,
    "container_network_transmit_bytes_total": _CADVISOR,
    **{
        name: _NODE
        for name in (
            "node_cpu_seconds_total",
            "node_memory_MemTotal_bytes",
            "node_memory_MemAvailable_bytes",
            "node_load1",
            "node_load5",
            "node_load15",
            "node_filesystem_size_bytes",
            "node_filesystem_avail_bytes",
            "node_filesystem_files",
            "node_filesystem_files_free",
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
            "node_disk_reads_completed_total",
            "node_disk_writes_completed_total",
            "node_network_receive_bytes_total",
            "node_network_transmit_bytes_total",
            "kube_node_info",
            "kube_node_status_condition",
            "kube_node_spec_unschedulable",
        )
    },
    "kube_pod_info": frozenset({"namespace", "pod", "node"}),
    "kube_pod_status_phase": frozenset({"namespace", "pod"}),
    "kube_pod_owner": frozenset({"namespace", "pod"}),
    "kube_pod_container_status_restarts_total": frozenset({"namespace", "pod", "container"}),
    "kube_pod_container_resource_requests": frozenset({"namespace", "pod", "container"}),
    "kube_pod_container_resource_limits": frozenset({"namespace", "pod", "container"}),
    "kube_namespace_labels": frozenset({"namespace"}),
    "kube_namespace_created": frozenset({"namespace"}),
    "kube_replicaset_owner": frozenset({"namespace"}),
    "kube_deployment_spec_replicas": frozenset({"namespace"}),
    "kube_deployment_status_replicas_available": frozenset({"namespace"}),
    "kube_statefulset_replicas": frozenset({"namespace"}),
    "kube_statefulset_status_replicas_ready": frozenset({"namespace"}),
    "kube_daemonset_status_desired_number_scheduled": frozenset({"namespace"}),
    "kube_daemonset_status_number_available": frozenset({"namespace"}),
    "kube_resourcequota": frozenset({"namespace"}),
    # the kubelet's volume statistics, one series per mounted PersistentVolumeClaim
    **{
        f"kubelet_volume_stats_{name}": frozenset({"namespace"})
        for name in ("used_bytes", "capacity_bytes", "available_bytes", "inodes", "inodes_used", "inodes_free")
    },
    "kube_pod_spec_volumes_persistentvolumeclaims_info": frozenset({"namespace", "pod"}),
    # control plane (cluster-scoped, admins only)
    "up": frozenset(),
    "etcd_server_has_leader": frozenset(),
    "etcd_server_leader_changes_seen_total": frozenset(),
    "etcd_server_proposals_committed_total": frozenset(),
    "etcd_server_proposals_failed_total": frozenset(),
    "etcd_mvcc_db_total_size_in_bytes": frozenset(),
    "etcd_disk_wal_fsync_duration_seconds_bucket": frozenset(),
    "etcd_disk_backend_commit_duration_seconds_bucket": frozenset(),
    "apiserver_request_total": frozenset(),
    "apiserver_request_duration_seconds_bucket": frozenset(),
    "scheduler_schedule_attempts_total": frozenset(),
    "scheduler_scheduling_attempt_duration_seconds_bucket": frozenset(),
    "workqueue_depth": frozenset(),
}


class EmptyScope(Exception):
    """The caller may see no namespace at all; there is nothing to query (not an error)."""


@dataclass(frozen=True)
class Filters:
    """Validated restrictions of one query. Names here are already grammar-checked.

    ``namespaces`` None means every namespace (platform admins without a filter); an empty
    tuple means none, and rendering then raises :class:`EmptyScope` so that nothing is sent.
    The other fields, when empty, do not filter.
    """

    namespaces: tuple[str, ...] | None = None
    nodes: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    # Several clusters: the cluster queried (its name, part of every cache key, never rendered)
    # and, when its series share an endpoint with other clusters' (``metrics.mode = shared``),
    # the value of their ``cluster`` label, matched by every selector. '' : no matcher.
    cluster: str = ""
    cluster_label: str = ""

    def narrowed(self, **names: Iterable[str]) -> Filters:
        """These filters further restricted to the given names (intersection semantics)."""
        changes: dict[str, Any] = {}
        for key, values in names.items():
            wanted = tuple(sorted(set(values)))
            current = getattr(self, key)
            if key == "namespaces":
                changes[key] = wanted if current is None else tuple(v for v in wanted if v in current)
            else:
                changes[key] = tuple(v for v in wanted if v in current) if current else wanted
        return replace(self, **changes)


@dataclass(frozen=True)
class Query:
    """Renders the pieces metric templates are made of, with the scope and filters applied."""

    filters: Filters = field(default_factory=Filters)
    rate: str = RATE_WINDOW

    # -- raw selectors ------------------------------------------------------------------
    def s(self, series: str, *static: str) -> str:
        """A selector of ``series`` with the template's ``static`` matchers, the tenant's
        namespace set (for every namespaced series) and the applicable filters."""
        labels = SERIES_LABELS[series]
        matchers = list(static)
        f = self.filters
        if "namespace" in labels and f.namespaces is not None:
            if not f.namespaces:
                raise EmptyScope()
            matchers.append(one_of("namespace", f.namespaces).render())
        if "node" in labels and f.nodes:
            matchers.append(one_of("node", f.nodes).render())
        if "pod" in labels and f.pods:
            matchers.append(one_of("pod", f.pods).render())
        if "container" in labels and f.containers:
            matchers.append(one_of("container", f.containers).render())
        if f.cluster_label:  # every series of a shared endpoint carries it (target label)
            matchers.append(one_of("cluster", (f.cluster_label,)).render())
        return selector(series, matchers)

    def rate_of(self, series: str, *static: str) -> str:
        return f"rate({self.s(series, *static)}[{self.rate}])"

    # -- joins ------------------------------------------------------------------------
    def ns_workspace(self) -> str:
        """namespace -> workspace (value 1) from the namespace's workspace label."""
        static = ['label_kubesphere_io_workspace!=""']
        if self.filters.workspaces:
            static.append(one_of("label_kubesphere_io_workspace", self.filters.workspaces).render())
        labels = self.s("kube_namespace_labels", *static)
        return f"max by (namespace, workspace) ({_relabel(labels, 'workspace', 'label_kubesphere_io_workspace')})"

    def _kinds(self) -> tuple[str, ...]:
        return self.filters.kinds or WORKLOAD_KINDS

    def _names(self, label: str) -> list[str]:
        return [one_of(label, self.filters.workloads).render()] if self.filters.workloads else []

    def pod_workload(self) -> str:
        """(namespace, pod) -> (kind, workload), value 1; a Deployment's pods via their ReplicaSet."""
        parts = []
        for kind in self._kinds():
            if kind == "deployment":
                rs = self.s("kube_replicaset_owner", 'owner_kind="Deployment"', *self._names("owner_name"))
                owned = self.s("kube_pod_owner", 'owner_kind="ReplicaSet"')
                # ReplicaSet -> Deployment, keyed like the pod's owner (owner_name = replicaset).
                by_rs = _relabel(_relabel(rs, "workload", "owner_name"), "owner_name", "replicaset")
                joined = (
                    f"{owned} * on (namespace, owner_name) group_left (workload) "
                    f"max by (namespace, owner_name, workload) ({by_rs})"
                )
                parts.append(_with_kind(kind, f"max by (namespace, pod, workload) ({joined})"))
            else:
                owner_kind = {"statefulset": "StatefulSet", "daemonset": "DaemonSet"}[kind]
                pods = self.s("kube_pod_owner", f'owner_kind="{owner_kind}"', *self._names("owner_name"))
                parts.append(
                    _with_kind(kind, f"max by (namespace, pod, workload) ({_relabel(pods, 'workload', 'owner_name')})")
                )
        return "max by (namespace, pod, kind, workload) (" + " or ".join(parts) + ")"

    def workload_series(self, series_by_kind: Mapping[str, str]) -> str:
        """One kube-state-metrics gauge per workload kind, unified as (namespace, kind, workload)."""
        parts = []
        for kind in self._kinds():
            series = series_by_kind.get(kind)
            if series is None:
                continue
            sel = self.s(series, *self._names(kind))
            parts.append(_with_kind(kind, _relabel(sel, "workload", kind)))
        return "max by (namespace, kind, workload) (" + " or ".join(parts) + ")"

    def pods_on_nodes(self) -> str:
        """(namespace, pod, node) for the pods of the node filter (value 1)."""
        pods = self.s("kube_pod_info", 'node!=""')
        return f"max by (namespace, pod, node) ({pods})"

    # -- level plumbing -----------------------------------------------------------------
    def by_workspace(self, ns_expr: str, agg: str = "sum") -> str:
        return f"{agg} by (workspace) (({ns_expr}) * on (namespace) group_left (workspace) {self.ns_workspace()})"

    def by_workload(self, pod_expr: str, agg: str = "sum") -> str:
        return (
            f"{agg} by (namespace, kind, workload) (({pod_expr}) * on (namespace, pod) "
            f"group_left (kind, workload) {self.pod_workload()})"
        )

    def restrict(self, level: str, expr: str) -> str:
        """The final restriction for filters that cannot be pushed into every selector."""
        f = self.filters
        if level in ("namespaces", "workloads", "pods", "containers", "volumes") and f.workspaces:
            expr = f"({expr}) and on (namespace) {self.ns_workspace()}"
        if level in ("pods", "containers"):
            if f.nodes:
                expr = f"({expr}) and on (namespace, pod) {self.pods_on_nodes()}"
            if f.kinds or f.workloads:
                expr = f"({expr}) and on (namespace, pod) {self.pod_workload()}"
        return expr


def eq(label: str, value: str) -> str:
    """A static equality matcher of a template (catalogue constants only, never user input)."""
    return f"{label}={quote(value)}"


def rx(label: str, regex: str) -> str:
    """A static regex matcher of a template (catalogue constants only, never user input)."""
    return f"{label}=~{quote(regex)}"


def nrx(label: str, regex: str) -> str:
    """A static negative regex matcher of a template (catalogue constants only)."""
    return f"{label}!~{quote(regex)}"


def _relabel(expr: str, dst: str, src: str) -> str:
    return f'label_replace({expr}, "{dst}", "$1", "{src}", "(.+)")'


def _with_kind(kind: str, expr: str) -> str:
    # An empty source label with an empty regex always matches, so this just sets the label.
    return f'label_replace({expr}, "kind", {quote(kind)}, "", "")'


Template = Callable[[Query], str]


@dataclass(frozen=True)
class Metric:
    """One catalogue entry. ``labels`` are the labels of its series (the level's entity labels,
    or for control-plane metrics the breakdown such as ``verb``)."""

    name: str
    level: str
    unit: str
    description: str
    template: Template = field(repr=False, compare=False)
    labels: tuple[str, ...] = ()

    def render(self, query: Query) -> str:
        return query.restrict(self.level, self.template(query))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "unit": self.unit,
            "description": self.description,
            "labels": list(self.labels),
            "promql": self.render(Query()),
        }
