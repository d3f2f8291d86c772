"""Builds the cluster area's service into the hub.

``hub.services["cluster"]`` is a :class:`~hub.collectors.cluster.ClusterService`, or None when
no cluster is configured (KUBEHUB_KUBERNETES_KUBECONFIG=none, or nothing to connect with); the
web layer answers 503 naming the API server in that case. The tenancy service reaches
``ensure_namespace`` and ``namespace_created`` through ``hub.services`` when it needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.collectors.cluster import ClusterService
from hub.collectors.kubernetes import connect

if TYPE_CHECKING:
    from hub.runtime import Hub


def build(hub: Hub) -> None:
    settings = hub.settings.kubernetes
    api = connect(settings)
    if api is None:
        hub.services["cluster"] = None
        return
    hub.services["cluster"] = ClusterService(
        api,
        clock=hub.clock,
        resync_seconds=settings.resync_seconds,
        initial_wait=settings.request_timeout,
    )
