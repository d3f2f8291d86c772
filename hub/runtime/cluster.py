"""Builds the cluster area's service into the hub.

``hub.cluster`` is a :class:`~hub.collectors.cluster.ClusterService`, or None when
no cluster is configured (KUBEHUB_KUBERNETES_KUBECONFIG=none, or nothing to connect with); the
web layer answers 503 naming the API server in that case. The tenancy service reaches
``ensure_namespace`` and ``namespace_created`` through ``hub.cluster`` when it needs them, and
is told each namespace's creation time and UID as the watch sees them (a recreated namespace
moves its project's log floor and UID).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hub.collectors.cluster import ClusterService
from hub.collectors.kubernetes import connect

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("kubehub.cluster")


def build(hub: Hub) -> None:
    settings = hub.settings.kubernetes
    api = connect(settings)
    if api is None:
        hub.cluster = None
        return
    service = ClusterService(
        api,
        clock=hub.clock,
        resync_seconds=settings.resync_seconds,
        initial_wait=settings.request_timeout,
    )
    hub.cluster = service

    def namespace_seen(event_type: str, namespace: Any) -> None:
        if event_type in ("ADDED", "MODIFIED") and namespace.created:
            hub.tenancy.observe_namespace(namespace.name, created=namespace.created, uid=namespace.uid)

    service.cache.subscribe("namespaces", namespace_seen)
