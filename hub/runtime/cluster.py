"""Builds the cluster area's service into the hub.

``hub.cluster`` is a :class:`~hub.collectors.cluster.ClusterService`, or None when
no cluster is configured (KUBEHUB_KUBERNETES_KUBECONFIG=none, or nothing to connect with); the
web layer answers 503 naming the API server in that case. The tenancy service reaches
``ensure_namespace`` and ``namespace_created`` through ``hub.cluster`` when it needs them, and
is told each namespace's creation time and UID as the watch sees them (a recreated namespace
moves its project's log floor and UID).

Several clusters: ``hub.clusters`` is the :class:`~hub.clusters.service.ClusterRegistry` (the
implicit cluster of the settings plus the ones admins added), and ``hub.added_clusters`` maps
every *added* cluster's name to its own ClusterService (own connection, own watch cache), built
here and rebuilt, started or stopped whenever the registry changes. ``hub.cluster`` stays the
implicit cluster's service, so single-cluster installs and today's routes are unchanged. A
cluster whose API server goes away shows ``stale_since`` on its own service only; the others'
watches never wait on it. Only the implicit cluster feeds tenancy's namespace observations
(projects live in it until the scope carries the cluster).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from hub.clusters.model import Cluster
from hub.clusters.secretbox import SecretBox
from hub.clusters.service import ClusterRegistry, implicit_cluster
from hub.collectors.cluster import ClusterService
from hub.collectors.kubernetes import connect, connect_cluster
from hub.store.audit import AuditStore
from hub.store.clusters import ClusterStore

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("kubehub.cluster")


def build(hub: Hub) -> None:
    _build_registry(hub)
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


def _build_registry(hub: Hub) -> None:
    key = hub.settings.clusters.secret_key
    registry = ClusterRegistry(
        ClusterStore(hub.db),
        implicit=implicit_cluster(hub.settings),
        box=SecretBox(key) if key else None,
        clock=hub.clock,
        audit=AuditStore(hub.db),
    )
    hub.clusters = registry
    reconciler = ClusterReconciler(hub)
    reconciler.reconcile()
    hub.cluster_reconciler = reconciler
    registry.subscribe(lambda name, _cluster: reconciler.reconcile(changed=name))


class ClusterReconciler:
    """Keeps ``hub.added_clusters`` in step with the stored clusters.

    Another replica (or ``kubehub`` run elsewhere against the same database) may add, change or
    remove a cluster; this replica learns of it on its next round (every ``interval`` seconds
    while the background runs), and at once for changes made through itself (the registry's
    listener). A cluster is rebuilt when its stored ``updated`` time moved.
    """

    def __init__(self, hub: Hub, *, interval: float = 10.0) -> None:
        self.hub = hub
        self.interval = interval
        self.built: dict[str, float | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reconcile(self, *, changed: str | None = None) -> None:
        """``changed``: a cluster this process just changed (rebuilt whatever its times say)."""
        hub = self.hub
        with self._lock:
            wanted = {c.name: c for c in hub.clusters.all() if not c.implicit}
            stale = [n for n in self.built if n not in wanted or wanted[n].updated != self.built[n] or n == changed]
            for name in stale:
                old = hub.added_clusters.pop(name, None)
                if old is not None:
                    old.stop()
                hub.cluster_errors.pop(name, None)
                del self.built[name]
            for name, cluster in wanted.items():
                if name in self.built:
                    continue
                self.built[name] = cluster.updated
                service = _service_for(hub, cluster)
                if service is not None:
                    hub.added_clusters[name] = service
                    if hub.background_started:
                        service.start()

    def start(self) -> None:
        for service in list(self.hub.added_clusters.values()):
            service.start()
        self._thread = threading.Thread(target=self._loop, name="cluster-registry", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception:  # the state store may be down: try again next round
                log.exception("reconciling the clusters failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for service in list(self.hub.added_clusters.values()):
            service.stop()


def _service_for(hub: Hub, cluster: Cluster) -> ClusterService | None:
    """The added cluster's service, or None (logged) when it cannot even be configured: a
    missing kubeconfig file or an undecryptable credential must not stop the hub or the other
    clusters; the cluster then lists with its error in GET /api/v1/clusters."""
    conn = cluster.connection
    try:
        credential = hub.clusters.credentials(cluster.name) if conn.has_credentials else None
        api = connect_cluster(
            hub.settings.kubernetes,
            name=cluster.name,
            mode=conn.mode,
            kubeconfig_path=conn.kubeconfig_path,
            context=conn.context,
            credential=credential,
            server=conn.server,
            ca_cert=conn.ca_cert,
            work_dir=hub.settings.data_dir / "clusters" / cluster.name,
            description=f"{cluster.name}: {conn.describe()}",
        )
    except Exception as exc:  # reported per cluster, never fatal to the hub
        hub.cluster_errors[cluster.name] = str(exc)
        log.warning("cluster %s cannot be connected: %s", cluster.name, exc)
        return None
    hub.cluster_errors.pop(cluster.name, None)
    settings = hub.settings.kubernetes
    return ClusterService(api, clock=hub.clock, resync_seconds=settings.resync_seconds,
                          initial_wait=settings.request_timeout)  # fmt: skip
