"""The hub's own metrics, served at ``/metrics`` in Prometheus exposition format.

One registry per process (not the library's global default) so that tests which build many
apps in one process do not collide on duplicate metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "kubehub_http_requests_total",
            "HTTP requests served",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "kubehub_http_request_duration_seconds",
            "Server time of HTTP requests",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.backend_up = Gauge(
            "kubehub_backend_up", "Whether a backend answered its last probe", ["backend"], registry=r
        )
        self.alert_cycles = Counter("kubehub_alert_cycles_total", "Rule engine cycles run", ["result"], registry=r)
        self.alert_cycle_seconds = Histogram(
            "kubehub_alert_cycle_seconds", "Wall time of one rule engine cycle", registry=r
        )
        self.alert_queries = Counter(
            "kubehub_alert_queries_total", "PromQL queries sent by the rule engine", registry=r
        )
        self.prometheus_queries = Counter(
            "kubehub_prometheus_queries_total",
            "PromQL queries the hub sent to Prometheus, by kind (instant|range) and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.notices = Counter("kubehub_notices_total", "Notices by outcome", ["outcome"], registry=r)
        self.outbox_depth = Gauge("kubehub_outbox_depth", "Notices waiting in the outbox", registry=r)
        self.log_lines_shipped = Counter(
            "kubehub_log_lines_shipped_total", "Log lines written to the log store", registry=r
        )
        self.leader = Gauge(
            "kubehub_leader", "1 while this replica holds the lease of the background work, else 0", registry=r
        )
        self.leader_info = Gauge(
            "kubehub_leader_info",
            "1 for this replica and the live lease's holder (leader empty while nobody holds it)",
            ["replica", "leader"],
            registry=r,
        )
        self.leader_since = Gauge(
            "kubehub_leader_since_seconds",
            "Epoch seconds since when the live lease's holder leads (0 while nobody holds it)",
            registry=r,
        )
        self.lease_token = Gauge(
            "kubehub_lease_token", "Fencing token of the live lease this replica last saw (0: none)", registry=r
        )
        self.cache_objects = Gauge(
            "kubehub_cache_objects", "Objects in the Kubernetes watch cache", ["resource"], registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
