"""The namespaced levels of the metric table (workspaces, namespaces, workloads, pods,
containers): cAdvisor usage aggregated per level, requests, limits, quotas, pod counts, restarts
and replicas.
"""

from __future__ import annotations

from hub.collectors.metrics.nodes import _CONTAINERS
from hub.collectors.metrics.query import Query, Template, eq, rx

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
