"""PersistentVolumeClaim usage from the kubelet's volume statistics, per claim (the ``volumes``
level), summed or maxed per workload and per project; and the predictive form "full within the
horizon at the current rate".

The node's root filesystem (``node_disk_*``) says nothing about a claim, and a full claim is one
of the commonest outages, so these read ``kubelet_volume_stats_*`` (labels ``namespace`` and
``persistentvolumeclaim``). A claim belongs to the workload whose pods mount it: kube-state-metrics'
``kube_pod_spec_volumes_persistentvolumeclaims_info`` maps claim -> pod, and the renderer's
``pod_workload`` maps pod -> workload, so a claim no pod mounts has no workload (it still has its
own row at the ``volumes`` level and counts for its project).

Utilisation per workload or project is the FULLEST claim's (max), not the sum over claims: a
workload with one full and one empty claim is in trouble, and the alert must say so.

The prediction is ``predict_linear(available[window], horizon)``: Prometheus' own least-squares
fit over the window, so a backtest over history evaluates exactly what a live rule does. Below 0
means the claim is full before the horizon at the rate of the window.
"""

from __future__ import annotations

from hub.collectors.metrics.query import Query, Template

PREDICT_WINDOW = "1h"  # the fit's window: long enough to smooth a write burst, short enough to follow a new trend
PREDICT_HORIZON_SECONDS = 6 * 3600

_CLAIM = "namespace, persistentvolumeclaim"


def _stat(name: str) -> Template:
    """One statistic per claim (max: a claim mounted on two nodes reports twice, same volume)."""

    def template(q: Query) -> str:
        return f"max by ({_CLAIM}) ({q.s('kubelet_volume_stats_' + name)})"

    return template


def _ratio(a: Template, b: Template) -> Template:
    def template(q: Query) -> str:
        return f"({a(q)}) / (({b(q)}) > 0)"

    return template


USED = _stat("used_bytes")
CAPACITY = _stat("capacity_bytes")
AVAILABLE = _stat("available_bytes")
INODES_USED = _stat("inodes_used")
INODES = _stat("inodes")
UTILISATION = _ratio(USED, CAPACITY)
INODES_UTILISATION = _ratio(INODES_USED, INODES)


def available_in(horizon_seconds: int = PREDICT_HORIZON_SECONDS, window: str = PREDICT_WINDOW) -> Template:
    """Bytes predicted available ``horizon_seconds`` from now by a linear fit over ``window``."""

    def template(q: Query) -> str:
        fit = f"predict_linear({q.s('kubelet_volume_stats_available_bytes')}[{window}], {horizon_seconds})"
        return f"min by ({_CLAIM}) ({fit})"

    return template


def _claim_workload(q: Query) -> str:
    """(namespace, persistentvolumeclaim) -> (kind, workload), value 1, through the pods mounting it."""
    mounts = (
        f"max by (namespace, pod, persistentvolumeclaim) ({q.s('kube_pod_spec_volumes_persistentvolumeclaims_info')})"
    )
    return (
        f"max by ({_CLAIM}, kind, workload) ({mounts} * on (namespace, pod) group_left (kind, workload) "
        f"{q.pod_workload()})"
    )


def per_workload(inner: Template, agg: str) -> Template:
    def template(q: Query) -> str:
        return (
            f"{agg} by (namespace, kind, workload) (({inner(q)}) * on ({_CLAIM}) group_left (kind, workload) "
            f"{_claim_workload(q)})"
        )

    return template


def per_namespace(inner: Template, agg: str) -> Template:
    def template(q: Query) -> str:
        return f"{agg} by (namespace) ({inner(q)})"

    return template


# (suffix, unit, description, per-claim template, aggregation to workloads and projects)
VOLUME_TABLE: list[tuple[str, str, str, Template, str]] = [
    ("used_bytes", "bytes", "Bytes used on the claim's volume", USED, "sum"),
    ("capacity_bytes", "bytes", "Capacity of the claim's volume", CAPACITY, "sum"),
    ("available_bytes", "bytes", "Bytes available on the claim's volume", AVAILABLE, "sum"),
    (
        "utilisation",
        "ratio",
        "Used relative to capacity (per workload or project: the fullest claim)",
        UTILISATION,
        "max",
    ),
    ("inodes_used", "count", "Inodes used on the claim's volume", INODES_USED, "sum"),
    (
        "inodes_utilisation",
        "ratio",
        "Inodes used relative to inodes (per workload or project: the fullest claim)",
        INODES_UTILISATION,
        "max",
    ),
    (
        "available_in_6h_bytes",
        "bytes",
        f"Bytes predicted available in 6 h by a linear fit over the last {PREDICT_WINDOW}; below 0: full within "
        "6 h at the current rate (per workload or project: the claim closest to full)",
        available_in(),
        "min",
    ),
]
