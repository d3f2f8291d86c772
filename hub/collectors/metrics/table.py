"""The whole metric table, assembled from the per-level tables (``_build``), and the series that
name each level's entities (rankings' universes and totals).
"""

from __future__ import annotations

from hub.collectors.metrics.components import _COMPONENTS
from hub.collectors.metrics.namespaced import (
    _DESIRED,
    _pod_count,
    _pods_of_quota,
    _quota_ratio,
    _raw_t,
    _replicas,
    _restarts,
    _usage_table,
    _workload_restarts,
    _workspace_namespaces,
)
from hub.collectors.metrics.nodes import (
    _ABNORMAL,
    _NODE_SEL,
    _NODE_TABLE,
    _NOT_READY,
    _READY,
    _RUNNING,
    _bind,
    _load,
    _node_pod_count,
    _phase_by_node,
    _sel,
)
from hub.collectors.metrics.query import ENTITY_LABELS, RATE_WINDOW, Metric, Template
from hub.collectors.metrics.volumes import VOLUME_TABLE, per_namespace, per_workload


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

    for suffix, unit, words, template, agg in VOLUME_TABLE:
        add("volumes", f"volume_{suffix}", unit, words, template)
        add("workloads", f"workload_pvc_{suffix}", unit, words, per_workload(template, agg))
        add("namespaces", f"namespace_pvc_{suffix}", unit, words, per_namespace(template, agg))

    for name, unit, words, template, labels in _COMPONENTS:
        add("components", name, unit, words, template, labels)
    return out


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
    "volumes": _raw_t("kubelet_volume_stats_capacity_bytes"),
}
