"""The control-plane level of the metric table: API server, etcd, scheduler and controller
manager series, per component.
"""

from __future__ import annotations

from hub.collectors.metrics.nodes import _sel
from hub.collectors.metrics.query import Query, Template, eq, nrx


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
