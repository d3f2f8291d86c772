"""The metric catalogue: for each level, the metrics with unit, description and PromQL.

The PromQL is written against the raw series of ``docs/metrics-conventions.md`` only: no
recording rule is needed for any metric, so every metric works the same over the promtool
backfill as over live data (recording rules are evaluated only from the moment Prometheus runs
them). ``deploy/prometheus/kubehub-rules.yaml`` records a few of the same expressions under
``kubehub:`` names for dashboards outside the hub; the catalogue does not depend on them.

Every metric is a function of a :class:`Query` renderer. The renderer is the ONE place where the
caller's namespace scope enters PromQL: :meth:`Query.s` writes every raw selector and adds the
exact namespace matcher set to each namespaced series. Filters the caller chose (nodes, pods,
workloads, workspace) are added there too or as a final ``and on (...)`` restriction, so no
metric template ever sees a user-supplied string.

Workspace membership of a namespace is read in PromQL from
``kube_namespace_labels{label_kubesphere_io_workspace}`` (joined with ``group_left``), so it
is correct at every point of history too, including for namespaces that moved between
workspaces; the tenancy service's project list is not consulted here (see docs/monitoring.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hub.collectors.promql import duration, one_of, quote, selector, validate_name
from hub.errors import InvalidInput

# rate() window: wide enough to hold at least four samples at a 60 s scrape interval (the
# backfill's resolution) so that rates exist at every step of the history too.
RATE_WINDOW = "5m"
RATE_SECONDS = 300

LEVELS = ("cluster", "nodes", "workspaces", "namespaces", "workloads", "pods", "containers", "components")

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
    "components": (),
}

# Levels a tenant may query (scoped to their namespaces); the others need monitoring:cluster.
TENANT_LEVELS = frozenset({"workspaces", "namespaces", "workloads", "pods", "containers"})

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
        if level in ("namespaces", "workloads", "pods", "containers") and f.workspaces:
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


# ---------------------------------------------------------------------------------------
# Templates. ``q`` is the renderer; every raw series goes through ``q.s`` / ``q.rate_of``.
# ---------------------------------------------------------------------------------------

_CONTAINERS = ('container!=""', 'container!="POD"')  # real containers, not the pod cgroup or pause
_NODE_SEL = ('node!=""',)
_ROOT_FS = ('node!=""', 'mountpoint="/"')
_NET_DEV = ('node!=""', 'device!="lo"')
_IDLE = ('node!=""', 'mode="idle"')
_RUNNING = ('phase="Running"',)
_ABNORMAL = ('phase=~"Pending|Failed|Unknown"',)
_READY = ('condition="Ready"', 'status="true"')
_NOT_READY = ('condition="Ready"', 'status=~"false|unknown"')

# ---- cluster and node level: each expression takes the renderer and a grouping clause, ""
# for the cluster or " by (node)" for nodes, so one definition serves both levels.
NodeExpr = Callable[[Query, str], str]


def _gauge(series: str, *static: str) -> NodeExpr:
    # max by (node) first: one value per node even where a node reports a series twice
    # (several filesystems of the same mountpoint, a re-labelled target).
    def expr(q: Query, by: str) -> str:
        return f"sum{by} (max by (node) ({q.s(series, *static)}))"

    return expr


def _rate(series: str, *static: str) -> NodeExpr:
    def expr(q: Query, by: str) -> str:
        return f"sum{by} ({q.rate_of(series, *static)})"

    return expr


def _minus(a: NodeExpr, b: NodeExpr) -> NodeExpr:
    def expr(q: Query, by: str) -> str:
        return f"{a(q, by)} - {b(q, by)}"

    return expr


def _share_not(part: NodeExpr, whole: NodeExpr) -> NodeExpr:
    def expr(q: Query, by: str) -> str:
        return f"1 - {part(q, by)} / {whole(q, by)}"

    return expr


def _load(n: str) -> NodeExpr:
    def expr(q: Query, by: str) -> str:
        if by:
            return f"max by (node) ({q.s('node_load' + n, *_NODE_SEL)})"
        return f"sum({q.s('node_load' + n, *_NODE_SEL)}) / {_CPU_TOTAL(q, '')}"

    return expr


# All modes' CPU seconds per second add up to the node's cores, whatever its cpu labels.
_CPU_TOTAL = _rate("node_cpu_seconds_total", *_NODE_SEL)
_CPU_IDLE = _rate("node_cpu_seconds_total", *_IDLE)
_MEM_TOTAL = _gauge("node_memory_MemTotal_bytes", *_NODE_SEL)
_MEM_AVAIL = _gauge("node_memory_MemAvailable_bytes", *_NODE_SEL)
_FS_SIZE = _gauge("node_filesystem_size_bytes", *_ROOT_FS)
_FS_AVAIL = _gauge("node_filesystem_avail_bytes", *_ROOT_FS)
_FS_FILES = _gauge("node_filesystem_files", *_ROOT_FS)
_FS_FREE = _gauge("node_filesystem_files_free", *_ROOT_FS)

# (suffix, unit, description, expression) shared by the cluster and nodes levels.
_NODE_TABLE: list[tuple[str, str, str, NodeExpr]] = [
    ("cpu_utilisation", "ratio", "Share of CPU time not idle", _share_not(_CPU_IDLE, _CPU_TOTAL)),
    ("cpu_usage", "cores", "CPU cores busy", _minus(_CPU_TOTAL, _CPU_IDLE)),
    ("cpu_total", "cores", "CPU cores", _CPU_TOTAL),
    ("memory_utilisation", "ratio", "Share of memory not available to new work", _share_not(_MEM_AVAIL, _MEM_TOTAL)),
    ("memory_usage", "bytes", "Memory in use (total minus available)", _minus(_MEM_TOTAL, _MEM_AVAIL)),
    ("memory_total", "bytes", "Memory installed", _MEM_TOTAL),
    ("disk_size_usage", "bytes", "Root filesystem space used", _minus(_FS_SIZE, _FS_AVAIL)),
    ("disk_size_capacity", "bytes", "Root filesystem size", _FS_SIZE),
    ("disk_size_utilisation", "ratio", "Share of root filesystem space used", _share_not(_FS_AVAIL, _FS_SIZE)),
    ("disk_inode_usage", "count", "Root filesystem inodes used", _minus(_FS_FILES, _FS_FREE)),
    ("disk_inode_utilisation", "ratio", "Share of root filesystem inodes used", _share_not(_FS_FREE, _FS_FILES)),
    ("disk_read_throughput", "bytes/s", "Disk bytes read per second", _rate("node_disk_read_bytes_total", *_NODE_SEL)),
    (
        "disk_write_throughput",
        "bytes/s",
        "Disk bytes written per second",
        _rate("node_disk_written_bytes_total", *_NODE_SEL),
    ),
    (
        "disk_read_iops",
        "ops/s",
        "Disk reads completed per second",
        _rate("node_disk_reads_completed_total", *_NODE_SEL),
    ),
    (
        "disk_write_iops",
        "ops/s",
        "Disk writes completed per second",
        _rate("node_disk_writes_completed_total", *_NODE_SEL),
    ),
    (
        "net_bytes_received",
        "bytes/s",
        "Network bytes received per second (loopback excluded)",
        _rate("node_network_receive_bytes_total", *_NET_DEV),
    ),
    (
        "net_bytes_transmitted",
        "bytes/s",
        "Network bytes sent per second (loopback excluded)",
        _rate("node_network_transmit_bytes_total", *_NET_DEV),
    ),
]


def _bind(expr: NodeExpr, by: str) -> Template:
    def template(q: Query) -> str:
        return expr(q, by)

    return template


def _phase_by_node(phase: tuple[str, ...]) -> Template:
    def template(q: Query) -> str:
        # Nodes without such pods answer 0 (joined from the node list), not nothing.
        return (
            f"sum by (node) ({q.s('kube_pod_status_phase', *phase)} * on (namespace, pod) group_left (node) "
            f"{q.pods_on_nodes()}) or max by (node) (0 * {q.s('kube_node_info', *_NODE_SEL)})"
        )

    return template


def _sel(fmt: str, series: str, *static: str) -> Template:
    """A template that puts one selector into ``fmt`` at ``{}``."""

    def template(q: Query) -> str:
        return fmt.format(q.s(series, *static))

    return template


def _node_pod_count(q: Query) -> str:
    return (
        f"count by (node) ({q.s('kube_pod_info', *_NODE_SEL)}) "
        f"or max by (node) (0 * {q.s('kube_node_info', *_NODE_SEL)})"
    )


# ---- namespaced levels ------------------------------------------------------------------


def _aggregate(level: str, by: str, inner: Template) -> Template:
    """``inner`` (container or pod series of the scoped namespaces) summed up to the level."""

    def template(q: Query) -> str:
        if level == "workspaces":
            return q.by_workspace(f"sum by (namespace) ({inner(q)})")
        if level == "workloads":
            return q.by_workload(f"sum by (namespace, pod) ({inner(q)})")
        return f"sum by ({by}) ({inner(q)})"

    return template


def _rate_t(series: str, *static: str) -> Template:
    def template(q: Query) -> str:
        return q.rate_of(series, *static)

    return template


def _raw_t(series: str, *static: str) -> Template:
    def template(q: Query) -> str:
        return q.s(series, *static)

    return template


_CPU_T = _rate_t("container_cpu_usage_seconds_total", *_CONTAINERS)
_WSS_T = _raw_t("container_memory_working_set_bytes", *_CONTAINERS)
_MEM_T = _raw_t("container_memory_usage_bytes", *_CONTAINERS)
# Network is counted at pod level (the pod's sandbox holds the interface), so no container filter.
_RX_T = _rate_t("container_network_receive_bytes_total")
_TX_T = _rate_t("container_network_transmit_bytes_total")


def _resource_t(series: str, resource: str) -> Template:
    return _raw_t(series, eq("resource", resource))


def _ratio(a: Template, b: Template) -> Template:
    """a / b, where b > 0: a zero request or limit gives no value rather than +Inf."""

    def template(q: Query) -> str:
        return f"({a(q)}) / (({b(q)}) > 0)"

    return template


def _usage_table(level: str, by: str) -> list[tuple[str, str, str, Template]]:
    """(suffix, unit, description, template): usage, requests, limits and relative usage."""
    cpu = _aggregate(level, by, _CPU_T)
    wss = _aggregate(level, by, _WSS_T)
    rows: list[tuple[str, str, str, Template]] = [
        ("cpu_usage", "cores", "CPU cores used", cpu),
        ("memory_usage", "bytes", "Memory used without page cache (working set)", wss),
        ("memory_usage_with_cache", "bytes", "Memory used including page cache", _aggregate(level, by, _MEM_T)),
    ]
    if level != "containers":
        rows += [
            ("net_bytes_received", "bytes/s", "Network bytes received per second", _aggregate(level, by, _RX_T)),
            ("net_bytes_transmitted", "bytes/s", "Network bytes sent per second", _aggregate(level, by, _TX_T)),
        ]
    if level == "workspaces":
        return rows
    req_cpu = _aggregate(level, by, _resource_t("kube_pod_container_resource_requests", "cpu"))
    lim_cpu = _aggregate(level, by, _resource_t("kube_pod_container_resource_limits", "cpu"))
    req_mem = _aggregate(level, by, _resource_t("kube_pod_container_resource_requests", "memory"))
    lim_mem = _aggregate(level, by, _resource_t("kube_pod_container_resource_limits", "memory"))
    rows += [
        ("cpu_requests", "cores", "CPU cores requested", req_cpu),
        ("cpu_limits", "cores", "CPU cores limit", lim_cpu),
        ("memory_requests", "bytes", "Memory requested", req_mem),
        ("memory_limits", "bytes", "Memory limit", lim_mem),
        ("cpu_usage_of_requests", "ratio", "CPU used relative to CPU requested", _ratio(cpu, req_cpu)),
        ("cpu_usage_of_limits", "ratio", "CPU used relative to the CPU limit", _ratio(cpu, lim_cpu)),
        (
            "memory_usage_of_requests",
            "ratio",
            "Working-set memory relative to memory requested",
            _ratio(wss, req_mem),
        ),
        ("memory_usage_of_limits", "ratio", "Working-set memory relative to the memory limit", _ratio(wss, lim_mem)),
    ]
    return rows


def _pods(phase: tuple[str, ...] | None) -> Template:
    """1 per pod (of a phase, or every pod); max by pod: one value per pod even where a pod's
    series briefly exist twice."""

    def template(q: Query) -> str:
        sel = q.s("kube_pod_status_phase", *phase) if phase else q.s("kube_pod_info")
        return f"max by (namespace, pod) ({sel})"

    return template


def _pod_count(level: str, phase: tuple[str, ...] | None) -> Template:
    pods = _pods(phase)

    def template(q: Query) -> str:
        if level == "workspaces":
            return q.by_workspace(f"sum by (namespace) ({pods(q)})")
        if level == "workloads":
            return q.by_workload(pods(q))
        # Namespaces without pods answer 0, not nothing.
        return f"sum by (namespace) ({pods(q)}) or max by (namespace) (0 * {q.s('kube_namespace_created')})"

    return template


def _restarts(by: str) -> Template:
    def template(q: Query) -> str:
        return f"sum by ({by}) (increase({q.s('kube_pod_container_status_restarts_total')}[{q.rate}]))"

    return template


def _workload_restarts(q: Query) -> str:
    return q.by_workload(_restarts("namespace, pod")(q))


def _quota_ratio(resource: str, quota_resources: str) -> Template:
    def template(q: Query) -> str:
        requested = f"sum by (namespace) ({q.s('kube_pod_container_resource_requests', eq('resource', resource))})"
        hard = f"max by (namespace) ({q.s('kube_resourcequota', eq('type', 'hard'), rx('resource', quota_resources))})"
        return f"({requested}) / (({hard}) > 0)"

    return template


def _pods_of_quota(q: Query) -> str:
    pods = f"count by (namespace) ({q.s('kube_pod_info')})"
    hard = f"max by (namespace) ({q.s('kube_resourcequota', eq('type', 'hard'), eq('resource', 'pods'))})"
    return f"({pods}) / (({hard}) > 0)"


def _replicas(which: str) -> Template:
    def template(q: Query) -> str:
        desired = q.workload_series(_DESIRED)
        available = q.workload_series(_AVAILABLE)
        if which == "desired":
            return desired
        if which == "available":
            return available
        unavailable = f"clamp_min({desired} - {available}, 0)"
        if which == "unavailable":
            return unavailable
        return f"{unavailable} / ({desired} > 0)"

    return template


def _workspace_namespaces(q: Query) -> str:
    return f"count by (workspace) ({q.ns_workspace()})"


# ---- control plane -------------------------------------------------------------------------


def _job(name: str) -> str:
    return eq("job", name)


def _p99(series: str, by: str, *static: str) -> Template:
    def template(q: Query) -> str:
        return f"histogram_quantile(0.99, sum by ({by}) ({q.rate_of(series, *static)}))"

    return template


def _rate_by(fmt: str, series: str, *static: str) -> Template:
    def template(q: Query) -> str:
        return fmt.format(q.rate_of(series, *static))

    return template


_COMPONENTS: list[tuple[str, str, str, Template, tuple[str, ...]]] = [
    ("etcd_up", "count", "etcd members answering scrapes", _sel("sum({})", "up", _job("etcd")), ()),
    (
        "etcd_has_leader",
        "ratio",
        "1 when every etcd member sees a leader",
        _sel("min({})", "etcd_server_has_leader", _job("etcd")),
        (),
    ),
    (
        "etcd_leader_changes",
        "count",
        "Leader changes in the last hour",
        _sel("sum(increase({}[1h]))", "etcd_server_leader_changes_seen_total", _job("etcd")),
        (),
    ),
    (
        "etcd_proposals_committed_rate",
        "ops/s",
        "Raft proposals committed per second",
        _rate_by("sum({})", "etcd_server_proposals_committed_total", _job("etcd")),
        (),
    ),
    (
        "etcd_proposals_failed_rate",
        "ops/s",
        "Raft proposals failed per second",
        _rate_by("sum({})", "etcd_server_proposals_failed_total", _job("etcd")),
        (),
    ),
    (
        "etcd_db_size",
        "bytes",
        "Size of the etcd database (largest member)",
        _sel("max({})", "etcd_mvcc_db_total_size_in_bytes", _job("etcd")),
        (),
    ),
    (
        "etcd_wal_fsync_latency_p99",
        "seconds",
        "99th percentile of WAL fsync duration",
        _p99("etcd_disk_wal_fsync_duration_seconds_bucket", "le", _job("etcd")),
        (),
    ),
    (
        "etcd_backend_commit_latency_p99",
        "seconds",
        "99th percentile of backend commit duration",
        _p99("etcd_disk_backend_commit_duration_seconds_bucket", "le", _job("etcd")),
        (),
    ),
    ("apiserver_up", "count", "API servers answering scrapes", _sel("sum({})", "up", _job("apiserver")), ()),
    (
        "apiserver_request_rate",
        "ops/s",
        "API requests per second by verb",
        _rate_by("sum by (verb) ({})", "apiserver_request_total", _job("apiserver")),
        ("verb",),
    ),
    (
        "apiserver_request_latency_p99",
        "seconds",
        "99th percentile of API request duration by verb (long-running WATCH and CONNECT excluded)",
        _p99("apiserver_request_duration_seconds_bucket", "verb, le", _job("apiserver"), nrx("verb", "WATCH|CONNECT")),
        ("verb",),
    ),
    ("scheduler_up", "count", "Schedulers answering scrapes", _sel("sum({})", "up", _job("kube-scheduler")), ()),
    (
        "scheduler_attempt_rate",
        "ops/s",
        "Scheduling attempts per second by result",
        _rate_by("sum by (result) ({})", "scheduler_schedule_attempts_total", _job("kube-scheduler")),
        ("result",),
    ),
    (
        "scheduler_attempt_latency_p99",
        "seconds",
        "99th percentile of scheduling attempt duration",
        _p99("scheduler_scheduling_attempt_duration_seconds_bucket", "le", _job("kube-scheduler")),
        (),
    ),
    (
        "controller_manager_up",
        "count",
        "Controller managers answering scrapes",
        _sel("sum({})", "up", _job("kube-controller-manager")),
        (),
    ),
    (
        "controller_manager_workqueue_depth",
        "count",
        "Items waiting in each controller's work queue",
        _sel("sum by (name) ({})", "workqueue_depth", _job("kube-controller-manager")),
        ("name",),
    ),
]


def _build() -> list[Metric]:
    out: list[Metric] = []

    def add(
        level: str, name: str, unit: str, description: str, template: Template, labels: tuple[str, ...] | None = None
    ) -> None:
        out.append(
            Metric(
                name=name,
                level=level,
                unit=unit,
                description=description,
                template=template,
                labels=ENTITY_LABELS[level] if labels is None else labels,
            )
        )

    for level, prefix, by in (("cluster", "cluster", ""), ("nodes", "node", " by (node)")):
        for suffix, unit, words, expr in _NODE_TABLE:
            add(level, f"{prefix}_{suffix}", unit, words, _bind(expr, by))
        for n in ("1", "5", "15"):
            words = f"{n}-minute load average" + (" of all nodes per CPU core" if level == "cluster" else "")
            add(level, f"{prefix}_load{n}", "load", words, _bind(_load(n), by))

    add("cluster", "cluster_pod_count", "count", "Pods known to the cluster", _sel("count({})", "kube_pod_info"))
    add(
        "cluster",
        "cluster_pod_running_count",
        "count",
        "Pods in phase Running",
        _sel("sum({})", "kube_pod_status_phase", *_RUNNING),
    )
    add(
        "cluster",
        "cluster_pod_abnormal_count",
        "count",
        "Pods in phase Pending, Failed or Unknown",
        _sel("sum({})", "kube_pod_status_phase", *_ABNORMAL),
    )
    add("cluster", "cluster_node_count", "count", "Nodes", _sel("count({})", "kube_node_info", *_NODE_SEL))
    add(
        "cluster",
        "cluster_node_online_count",
        "count",
        "Nodes whose Ready condition is true",
        _sel("sum({})", "kube_node_status_condition", *_READY),
    )
    add(
        "cluster",
        "cluster_node_offline_count",
        "count",
        "Nodes whose Ready condition is false or unknown",
        _sel("sum({})", "kube_node_status_condition", *_NOT_READY),
    )

    add("nodes", "node_pod_count", "count", "Pods scheduled on the node", _node_pod_count)
    add("nodes", "node_pod_running_count", "count", "Pods on the node in phase Running", _phase_by_node(_RUNNING))
    add(
        "nodes",
        "node_pod_abnormal_count",
        "count",
        "Pods on the node in phase Pending, Failed or Unknown",
        _phase_by_node(_ABNORMAL),
    )
    add(
        "nodes",
        "node_ready",
        "ratio",
        "1 when the node's Ready condition is true, else 0",
        _sel("max by (node) ({})", "kube_node_status_condition", *_READY),
    )
    add(
        "nodes",
        "node_unschedulable",
        "ratio",
        "1 when the node is cordoned",
        _sel("max by (node) ({})", "kube_node_spec_unschedulable", *_NODE_SEL),
    )

    for level, prefix, by in (
        ("workspaces", "workspace", "workspace"),
        ("namespaces", "namespace", "namespace"),
        ("workloads", "workload", "namespace, kind, workload"),
        ("pods", "pod", "namespace, pod"),
        ("containers", "container", "namespace, pod, container"),
    ):
        for suffix, unit, words, template in _usage_table(level, by):
            add(level, f"{prefix}_{suffix}", unit, words, template)
        if level in ("workspaces", "namespaces", "workloads"):
            add(level, f"{prefix}_pod_count", "count", "Pods", _pod_count(level, None))
            add(level, f"{prefix}_pod_running_count", "count", "Pods in phase Running", _pod_count(level, _RUNNING))
            add(
                level,
                f"{prefix}_pod_abnormal_count",
                "count",
                "Pods in phase Pending, Failed or Unknown",
                _pod_count(level, _ABNORMAL),
            )

    add(
        "workspaces",
        "workspace_namespace_count",
        "count",
        "Projects (namespaces) in the workspace",
        _workspace_namespaces,
    )
    add(
        "namespaces",
        "namespace_cpu_requests_of_quota",
        "ratio",
        "CPU requested relative to the quota's hard CPU requests",
        _quota_ratio("cpu", "requests.cpu|cpu"),
    )
    add(
        "namespaces",
        "namespace_memory_requests_of_quota",
        "ratio",
        "Memory requested relative to the quota's hard memory requests",
        _quota_ratio("memory", "requests.memory|memory"),
    )
    add(
        "namespaces",
        "namespace_pod_count_of_quota",
        "ratio",
        "Pods relative to the quota's hard pod count",
        _pods_of_quota,
    )
    add("workloads", "workload_replicas_desired", "count", "Replicas the workload asks for", _replicas("desired"))
    add(
        "workloads",
        "workload_replicas_available",
        "count",
        "Replicas available (ready for StatefulSets)",
        _replicas("available"),
    )
    add(
        "workloads",
        "workload_replicas_unavailable",
        "count",
        "Desired replicas that are not available",
        _replicas("unavailable"),
    )
    add(
        "workloads",
        "workload_unavailable_ratio",
        "ratio",
        "Share of desired replicas not available",
        _replicas("ratio"),
    )
    add(
        "workloads",
        "workload_container_restarts",
        "count",
        f"Container restarts in the last {RATE_WINDOW}",
        _workload_restarts,
    )
    add(
        "pods",
        "pod_container_restarts",
        "count",
        f"Container restarts in the last {RATE_WINDOW}",
        _restarts("namespace, pod"),
    )
    add(
        "containers",
        "container_restarts",
        "count",
        f"Restarts in the last {RATE_WINDOW}",
        _restarts("namespace, pod, container"),
    )

    for name, unit, words, template, labels in _COMPONENTS:
        add("components", name, unit, words, template, labels)
    return out


_DESIRED = {
    "deployment": "kube_deployment_spec_replicas",
    "statefulset": "kube_statefulset_replicas",
    "daemonset": "kube_daemonset_status_desired_number_scheduled",
}
_AVAILABLE = {
    "deployment": "kube_deployment_status_replicas_available",
    "statefulset": "kube_statefulset_status_replicas_ready",
    "daemonset": "kube_daemonset_status_number_available",
}

# Universe of entities per level, for rankings (entities without a value come last) and totals.
# Entities per level, for rankings (entities without a value come last) and totals. Raw
# series where one series is one entity: counting them is what makes a ranking's total cheap
# (no aggregation over 20,000 pods); duplicates are merged by the ranking itself.
_ENTITIES: dict[str, Template] = {
    "nodes": _raw_t("kube_node_info", *_NODE_SEL),
    "workspaces": lambda q: f"max by (workspace) ({q.ns_workspace()})",
    "namespaces": _raw_t("kube_namespace_created"),
    "workloads": lambda q: (
        f"max by (namespace, kind, workload) (({q.workload_series(_DESIRED)}) or "
        f"max by (namespace, kind, workload) ({q.pod_workload()}))"
    ),
    "pods": _raw_t("kube_pod_info"),
    "containers": _raw_t("kube_pod_container_status_restarts_total"),
}

AGGREGATIONS = ("avg", "max", "min", "last")
STATS = {"avg": "avg", "max": "max", "min": "min", "p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def resolution(window_seconds: float) -> int:
    """Subquery step for a window: about 288 points per window (5 min over a day), never
    finer than 15 s (no scrape interval is finer) so subqueries stay cheap."""
    return max(15, round(window_seconds / 288))


class Catalogue:
    """Level -> metric -> PromQL, and the query shapes built on it (rankings, alerts)."""

    def __init__(self, metrics: Iterable[Metric] | None = None) -> None:
        self._metrics: dict[str, dict[str, Metric]] = {level: {} for level in LEVELS}
        for m in metrics if metrics is not None else _build():
            if m.name in self._metrics[m.level]:
                raise ValueError(f"duplicate metric {m.name} at {m.level}")
            self._metrics[m.level][m.name] = m

    # -- lookup -------------------------------------------------------------------------
    @staticmethod
    def level(name: str, *, field: str = "level") -> str:
        """The canonical level for ``name`` (accepting singular forms), or 400 listing them."""
        canonical = LEVEL_ALIASES.get(name, name)
        if canonical not in LEVELS:
            raise InvalidInput(f"unknown level {name!r}; valid levels: {', '.join(LEVELS)}", field=field)
        return canonical

    def metric_names(self, level: str) -> list[str]:
        return list(self._metrics[self.level(level)])

    def units(self, level: str) -> dict[str, str]:
        """{metric: unit} of a level (what alert policy validation wants)."""
        return {m.name: m.unit for m in self._metrics[self.level(level)].values()}

    def metric(self, level: str, name: str, *, field: str = "metrics") -> Metric:
        level = self.level(level)
        found = self._metrics[level].get(name)
        if found is None:
            raise InvalidInput(
                f"unknown {level} metric {name!r}; valid names: {', '.join(self._metrics[level])}", field=field
            )
        return found

    def metrics(self, level: str) -> list[Metric]:
        return list(self._metrics[self.level(level)].values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": [
                {
                    "level": level,
                    "labels": list(ENTITY_LABELS[level]),
                    "filters": sorted(LEVEL_FILTERS[level]),
                    "metrics": [m.to_dict() for m in self._metrics[level].values()],
                }
                for level in LEVELS
            ]
        }

    # -- query shapes ---------------------------------------------------------------------
    def expr(self, level: str, name: str, filters: Filters | None = None, *, rate_seconds: float | None = None) -> str:
        """The PromQL of one metric with scope and filters applied (raises EmptyScope).

        ``rate_seconds`` widens the rate() window (range queries pass twice their step, so a
        long chart stays continuous over coarse history and reads fewer samples per point).
        """
        rate = RATE_WINDOW if rate_seconds is None or rate_seconds <= RATE_SECONDS else duration(rate_seconds)
        return self.metric(level, name).render(Query(filters or Filters(), rate=rate))

    def entities_expr(self, level: str, filters: Filters | None = None) -> str | None:
        """Every entity of a level (value 1), or None for levels without entities."""
        level = self.level(level)
        template = _ENTITIES.get(level)
        if template is None:
            return None
        q = Query(filters or Filters())
        return q.restrict(level, template(q))

    def window_expr(
        self, level: str, name: str, *, stat: str, window_seconds: float, filters: Filters | None = None
    ) -> str:
        """The metric's ``stat`` (avg, max, min, pNN) over the window ending at the query time."""
        if stat not in STATS:
            raise InvalidInput(f"unknown stat {stat!r}; valid: {', '.join(STATS)}", field="stat")
        step = resolution(window_seconds)
        inner = self.expr(level, name, filters, rate_seconds=2 * step)
        rng = f"[{duration(window_seconds)}:{duration(step)}]"
        how = STATS[stat]
        if isinstance(how, float):
            return f"quantile_over_time({how}, ({inner}){rng})"
        return f"{how}_over_time(({inner}){rng})"

    def alert_query(
        self,
        level: str,
        metric: str,
        aggregation: str,
        period_seconds: float,
        namespace: str | None = None,
    ) -> tuple[str, list[str]]:
        """ONE PromQL query giving, for every entity of ``level``, ``metric`` aggregated over
        the check period that ends at the evaluation time; and the entity label names.

        ``aggregation`` is avg | max | min | last; ``last`` is the metric's value at the
        evaluation time. ``namespace`` (validated as a DNS-1123 label) restricts a workload-level
        query to one project with an exact matcher; None queries every namespace (the engine
        batches rules of all tenants into one query and assigns entities afterwards).
        Evaluated at a slot's end (a multiple of the period) it is the value the alert engine
        compares: the same points, ``<agg>_over_time((m)[<period>-1ms:<step>])`` (the engine
        fetches ``m`` itself at those points and aggregates them for every rule at once). The
        raw series are used, so it works over the backfill.
        """
        level = self.level(level)
        if aggregation not in AGGREGATIONS:
            raise InvalidInput(
                f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}", field="aggregation"
            )
        if period_seconds <= 0:
            raise InvalidInput("period must be positive", field="period")
        filters = Filters()
        if namespace is not None:
            filters = Filters(namespaces=(validate_name(namespace, grammar="label", field="namespace"),))
        m = self.metric(level, metric, field="metric")
        inner = m.render(Query(filters))
        if aggregation == "last":
            return inner, list(m.labels)
        # Ranges include both ends in Prometheus 2.x: 1 ms less keeps the previous slot's last
        # point out, so the points are exactly the slot's (period - step, ..., end].
        whole = round(period_seconds)
        rng = f"[{whole * 1000 - 1}ms:{duration(resolution_for_period(whole))}]"
        return f"{aggregation}_over_time(({inner}){rng})", list(m.labels)


def resolution_for_period(period_seconds: float) -> int:
    """Subquery step inside one check period: the alert engine's step (``hub.alerts.engine.step_for``,
    which this layer may not import; a unit test holds the two equal). A divisor of the period,
    so that a point falls on every slot's end: the largest giving 4 points and, for periods of
    a minute or more, at least 15 s; else the largest giving 4 to 60 points; else the most up
    to 60 (docs/alerting.md, "Periods and steps")."""
    period = max(1, round(period_seconds))
    divisors = [d for d in range(1, math.isqrt(period) + 1) if period % d == 0]
    divisors = sorted({*divisors, *(period // d for d in divisors)})
    fit = [d for d in divisors if 4 <= period // d <= 60]
    coarse = [d for d in fit if d >= (15 if period >= 60 else 1)]
    if coarse or fit:
        return (coarse or fit)[-1]
    return min(d for d in divisors if period // d <= 60)


_DEFAULT: Catalogue | None = None


def default_catalogue() -> Catalogue:
    """The built-in catalogue (built once; metrics are immutable)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Catalogue()
    return _DEFAULT


# ---------------------------------------------------------------------------------------
# deploy/prometheus/kubehub-rules.yaml
# ---------------------------------------------------------------------------------------

# Cheap, low-cardinality metrics worth having as series for dashboards and Prometheus-side
# alerting outside the hub. The hub itself never reads them (see the module docstring).
RECORDED = (
    ("cluster", "cluster_cpu_utilisation"),
    ("cluster", "cluster_memory_utilisation"),
    ("cluster", "cluster_pod_running_count"),
    ("cluster", "cluster_node_offline_count"),
    ("nodes", "node_cpu_utilisation"),
    ("nodes", "node_memory_utilisation"),
    ("nodes", "node_disk_size_utilisation"),
    ("namespaces", "namespace_cpu_usage"),
    ("namespaces", "namespace_memory_usage"),
)
RULES_HEADER = """\
# Recording rules generated from hub/collectors/catalogue.py (python -m hub.collectors.catalogue).
# Do not edit by hand: a unit test compares this file with the catalogue.
#
# The hub does NOT depend on these: its queries read the raw series of
# docs/metrics-conventions.md, because recording rules only exist from the moment Prometheus
# evaluates them and the hub's charts, window rankings and alert backtests must work over
# older history too (e.g. a promtool backfill). These are the same expressions recorded as
# kubehub:<metric> for dashboards and alerting outside the hub.
"""


def recording_rules(catalogue: Catalogue | None = None) -> dict[str, Any]:
    cat = catalogue or default_catalogue()
    rules: list[dict[str, Any]] = [
        {"record": "kubehub:namespace_workspace:info", "expr": Query().ns_workspace()},
    ]
    for level, name in RECORDED:
        rules.append({"record": f"kubehub:{name}", "expr": cat.expr(level, name)})
    # One minute is plenty for dashboards and keeps the cost small next to the scrapes.
    return {"groups": [{"name": "kubehub", "interval": "1m", "rules": rules}]}


def render_rules_file() -> str:
    import yaml

    return RULES_HEADER + yaml.safe_dump(recording_rules(), sort_keys=False, width=100_000)


if __name__ == "__main__":
    print(render_rules_file(), end="")


def catalogue_markdown(catalogue: Catalogue | None = None) -> str:
    """The metric tables of docs/monitoring.md (a unit test keeps the two in step)."""
    cat = catalogue or default_catalogue()
    lines: list[str] = []
    for level in LEVELS:
        labels = ", ".join(f"`{k}`" for k in ENTITY_LABELS[level]) or "none (one value)"
        lines += [f"### {level}", "", f"Entity labels: {labels}.", "", "| metric | unit | meaning |", "|---|---|---|"]
        for m in cat.metrics(level):
            extra = f" (by {', '.join(m.labels)})" if level == "components" and m.labels else ""
            lines.append(f"| `{m.name}` | {m.unit} | {m.description}{extra} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
