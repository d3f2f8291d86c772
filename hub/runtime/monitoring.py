"""Builds the monitoring area's services into the hub.

``hub.monitoring`` is always there (the catalogue needs no backend);
``hub.prometheus`` only when a Prometheus URL is configured, so that /readyz lists
Prometheus by name and an unconfigured one is not reported as down.

Several clusters: the monitoring service asks :func:`sources` for a cluster's backend and label,
read from the cluster registry (``hub.clusters``) at each request, so an admin's change to a
cluster's metrics source applies at once. A URL equal to ``prometheus.url`` reuses the hub's own
client; another URL gets one client of its own, kept per URL.

Ranking tables in use are built again ahead of their expiry on two threads of their own
(``kubehub-table-renewal``): long-lived, so that their store connections are opened once; a
renewal running at exit delays it by at most the Prometheus timeout.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from hub.collectors.catalogue import default_catalogue
from hub.collectors.monitoring import MetricsSources, MonitoringService
from hub.collectors.monitoring_shared import SHARE_SECONDS, TABLE_SECONDS
from hub.collectors.prometheus import PrometheusClient, QueryBackend

if TYPE_CHECKING:
    from hub.runtime import Hub


def build(hub: Hub) -> None:
    settings = hub.settings.prometheus
    client = None
    if settings.url:
        counter = hub.metrics.prometheus_queries

        def count(kind: str, outcome: str) -> None:
            counter.labels(kind, outcome).inc()

        client = PrometheusClient(settings.url, timeout=settings.timeout, on_query=count)
        hub.prometheus = client
    hub.monitoring = MonitoringService(
        default_catalogue(),
        client,
        clock=hub.clock,
        timeout=settings.timeout,
        max_points=settings.max_points,
        share_seconds=SHARE_SECONDS,
        table_seconds=TABLE_SECONDS,
        sources=sources(hub, client),
        default_cluster=hub.settings.clusters.default_name,
        spawn=ThreadPoolExecutor(max_workers=2, thread_name_prefix="kubehub-table-renewal").submit,
    )


def sources(hub: Hub, own: PrometheusClient | None) -> MetricsSources:
    """A cluster's name -> (its query backend, its ``cluster`` label value or '')."""
    settings = hub.settings.prometheus
    clients: dict[str, PrometheusClient] = {}
    lock = threading.Lock()

    def source(name: str) -> tuple[QueryBackend | None, str]:
        registry = hub.built_clusters()
        if registry is None:
            return own, ""
        metrics = registry.get(name).metrics  # NotFound naming cluster for an unknown one
        label = metrics.label_value if metrics.mode == "shared" else ""
        url = metrics.url.rstrip("/")
        if metrics.mode == "none" or not url:
            return None, label
        if own is not None and url == settings.url.rstrip("/"):
            return own, label
        with lock:
            client = clients.get(url)
            if client is None:
                client = clients[url] = PrometheusClient(url, timeout=settings.timeout)
        return client, label

    return source
