"""Builds the monitoring area's services into the hub.

``hub.monitoring`` is always there (the catalogue needs no backend);
``hub.prometheus`` only when a Prometheus URL is configured, so that /readyz lists
Prometheus by name and an unconfigured one is not reported as down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.collectors.catalogue import default_catalogue
from hub.collectors.monitoring import MonitoringService
from hub.collectors.monitoring_shared import SHARE_SECONDS
from hub.collectors.prometheus import PrometheusClient

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
    )
