"""The cluster and node levels of the metric table: node-exporter and kube-state-metrics series
rendered per node or for the whole cluster (one expression, two groupings).
"""

from __future__ import annotations

from collections.abc import Callable

from hub.collectors.metrics.query import Query, Template

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
