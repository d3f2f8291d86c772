"""Builds the logs area into the hub: ``hub.logs`` is a
:class:`hub.collectors.logs.service.LogService` over the configured store, with the shipper fed
from the cluster service (:class:`ClusterPodSource`) when shipping is on.

Several clusters: the shipper follows every cluster of the registry that has a cluster service
(the implicit one as "", each added one by name, over its own connection and watch cache),
except those of ``logs.ship_skip_clusters`` (their node collectors send their lines). The set is
asked again at every round of the shipper, so an added cluster is followed within a round and a
removed one's poller stops. A cluster whose pod list is stale (its API server gone) fails its own
rounds only, positions unmoved, and resumes where it stopped.

One store per cluster: a registered cluster with ``logs.mode own`` gets its own Elasticsearch
store (:class:`OwnStores`: its ``logs.url`` and ``logs.index_prefix``, the hub's other
``elasticsearch.*`` settings), opened when the cluster is added or changed and closed when it
is removed or turned back to ``shared``; the service writes and reads that cluster's lines there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hub.collectors.logs.collection_store import LogCollectionStore
from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.fanout import ClusterLogStore
from hub.collectors.logs.service import LogService
from hub.collectors.logs.shipper import ContainerRef, PodRef, Shipper
from hub.collectors.logs.store import (
    LogStore,
)
from hub.errors import BackendUnavailable
from hub.scope import split_key
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.clusters.model import Cluster
    from hub.runtime import Hub
    from hub.tenancy.service import TenancyService

log = logging.getLogger("kubehub.logs")

LOG_LIMIT_BYTES = 8 * 1024 * 1024  # one read of one container; the rest comes next poll


class ClusterPodSource:
    """The shipper's PodSource over the cluster service (its watch cache and its API client).

    Looked up on every call, so a cluster service built or replaced later is picked up.
    """

    def __init__(self, cluster: Callable[[], Any], *, name: str = "") -> None:
        self._cluster = cluster
        self.name = name  # "" for the implicit cluster

    def _service(self) -> Any:
        cluster = self._cluster()
        if cluster is None:
            what = f"cluster {self.name} is not connected" if self.name else "no cluster is configured"
            raise BackendUnavailable("kubernetes API server", what)
        return cluster

    def list_pods(self, namespaces: Sequence[str] | None) -> list[PodRef]:
        cluster = self._service()
        # A stale pod list (the API server gone) would only send reads that fail, or follow pods
        # that no longer exist: the round stops here, positions unmoved, until it is current.
        stale = cluster.cache.stale_since(["pods"])
        if stale is not None:
            where = f"cluster {self.name}'s" if self.name else "the"
            raise BackendUnavailable(
                "kubernetes API server",
                f"{where} pod list is stale since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stale))}",
            )
        # Every line gets its namespace's UID from the same watch cache as the pod list.
        ns_uids = {ns.name: ns.uid for ns in cluster.namespaces()}
        out: list[PodRef] = []
        for pod in cluster.pods(namespaces):
            if not pod.node:
                continue  # not scheduled: no kubelet holds a log yet
            owner = cluster.pod_workload(pod)
            restarts = {s.name: s.restarts for s in pod.statuses}
            out.append(
                PodRef(
                    namespace=pod.namespace,
                    name=pod.name,
                    uid=pod.uid,
                    node=pod.node,
                    workload=owner[1] if owner else "",
                    containers=tuple(ContainerRef(c.name, restarts.get(c.name, 0)) for c in pod.containers),
                    namespace_uid=ns_uids.get(pod.namespace, ""),
                )
            )
        return out

    def read_log(
        self, *, namespace: str, pod: str, container: str, since_time: float | None, previous: bool = False
    ) -> str:
        cluster = self._service()
        query: dict[str, Any] = {"container": container, "timestamps": "true", "limitBytes": LOG_LIMIT_BYTES}
        if since_time is not None:
            # sinceTime has one-second precision: round down, the shipper skips what it has.
            query["sinceTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(since_time)))
        if previous:
            query["previous"] = "true"
        text = str(
            cluster.api.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                verb="get",
                resource="pods/log",
                namespace=namespace,
                name=pod,
                query=query,
                accept="text/plain, */*",
                raw=True,
            )
        )
        if len(text.encode("utf-8")) >= LOG_LIMIT_BYTES and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a cut line is read whole next time
        return text


class _UnavailableStore:
    """Stands in when the configured store cannot even be opened, so the hub still starts and
    /readyz and every log request say why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailable(self.name, self.reason)

    write = refresh = search = histogram = export = partitions = drop_before = drop_namespace_before = probe = _fail

    def close(self) -> None:
        pass


def open_store(settings: Settings) -> LogStore:
    """The configured store; one that cannot be opened is replaced by a stand-in that says why."""
    if settings.logs.backend == "elasticsearch":
        from hub.collectors.logs.elasticsearch import ElasticsearchLogStore

        es = settings.elasticsearch
        return ElasticsearchLogStore(
            es.url,
            index_prefix=es.index_prefix,
            field_preset=es.field_preset,
            timeout=es.timeout,
            replicas=es.replicas,
            # indices another tool owns are not rewritten for the word rule either
            upgrade_old_indices=es.manage_retention,
        )
    try:
        return EmbeddedLogStore(settings.data_dir / "logs")
    except BackendUnavailable as exc:
        log.error("the embedded log store cannot be opened: %s", exc.message)
        return _UnavailableStore("embedded log store", exc.message)


def open_own_store(settings: Settings, cluster: Cluster) -> LogStore:
    """A cluster's own store (``logs.mode own``): Elasticsearch at its ``logs.url``, its indices
    under its ``logs.index_prefix`` (else the hub's prefix), written by the hub (field preset
    ``kubehub``), with the hub's timeout, replicas and retention settings."""
    from hub.collectors.logs.elasticsearch import ElasticsearchLogStore

    es = settings.elasticsearch
    try:
        inner: LogStore = ElasticsearchLogStore(
            cluster.logs.url,
            index_prefix=cluster.logs.index_prefix or es.index_prefix,
            timeout=es.timeout,
            replicas=es.replicas,
            upgrade_old_indices=es.manage_retention,
        )
    except Exception as exc:  # a store that cannot even be built says why on every request
        log.error("cluster %s's log store cannot be opened: %s", cluster.name, exc)
        inner = _UnavailableStore("elasticsearch", str(exc))
    return ClusterLogStore(cluster.name, inner)


class OwnStores:
    """cluster name -> its own store, for the clusters with ``logs.mode own``.

    Kept in step with the registry: at once by its listener (changes made through this
    replica), and by reading the registry again at most every ``refresh`` seconds (changes made
    through another replica). A store is reopened only when its URL or prefix changed."""

    def __init__(
        self,
        settings: Settings,
        clusters: Callable[[], Iterable[Cluster]],
        *,
        opener: Callable[[Settings, Cluster], LogStore] = open_own_store,
        refresh: float = 10.0,
    ) -> None:
        self.settings = settings
        self._clusters = clusters
        self._opener = opener
        self._refresh = refresh
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[tuple[str, str], LogStore]] = {}
        self._loaded_at: float | None = None

    def __call__(self) -> Mapping[str, LogStore]:
        now = time.monotonic()
        if self._loaded_at is None or now - self._loaded_at >= self._refresh:
            self.reload()
        return {name: store for name, (_, store) in self._stores.items()}

    def reload(self) -> None:
        try:
            clusters = list(self._clusters())
        except Exception as exc:  # the state store down: keep the stores known
            log.warning("reading the clusters' log sources failed: %s", exc)
            return
        with self._lock:
            self._loaded_at = time.monotonic()
            wanted = {c.name: c for c in clusters if c.logs.mode == "own" and not c.implicit}
            for name in set(self._stores) - set(wanted):
                self._drop(name)
            for cluster in wanted.values():
                self._put(cluster)

    def changed(self, name: str, cluster: Cluster | None) -> None:
        """The registry's listener: a cluster added, changed or removed here."""
        with self._lock:
            if cluster is None or cluster.logs.mode != "own" or cluster.implicit:
                self._drop(name)
            else:
                self._put(cluster)

    def _put(self, cluster: Cluster) -> None:
        key = (cluster.logs.url, cluster.logs.index_prefix)
        held = self._stores.get(cluster.name)
        if held is not None and held[0] == key:
            return
        self._drop(cluster.name)
        self._stores = {**self._stores, cluster.name: (key, self._opener(self.settings, cluster))}

    def _drop(self, name: str) -> None:
        held = self._stores.get(name)
        if held is None:
            return
        self._stores = {n: v for n, v in self._stores.items() if n != name}
        try:
            held[1].close()
        except Exception:
            log.exception("closing cluster %s's log store failed", name)

    def close(self) -> None:
        with self._lock:
            for name in list(self._stores):
                self._drop(name)


def shipped_namespaces(settings: Settings, tenancy: TenancyService) -> Callable[[], Sequence[str] | None]:
    """The namespaces the shipper follows: the configured list, else every project's namespace."""
    configured = [n.strip() for n in settings.logs.ship_namespaces.split(",") if n.strip()]

    def namespaces() -> Sequence[str] | None:
        if configured:
            return configured
        return sorted({p.namespace for p in tenancy.projects()})

    return namespaces


def cluster_namespaces(settings: Settings, tenancy: TenancyService) -> Callable[[str], Sequence[str] | None]:
    """The namespaces the shipper follows in one cluster ("" the implicit one): the configured
    list in every cluster, else the namespaces of that cluster's projects."""
    configured = [n.strip() for n in settings.logs.ship_namespaces.split(",") if n.strip()]
    implicit = settings.clusters.default_name

    def namespaces(cluster: str) -> Sequence[str] | None:
        if configured:
            return configured
        out = set()
        for p in tenancy.projects():
            owner, namespace = split_key(p.namespace)
            if (owner or implicit) == (cluster or implicit):
                out.add(namespace)
        return sorted(out)

    return namespaces


def shipped_clusters(hub: Hub) -> Callable[[], dict[str, ClusterPodSource]]:
    """The clusters the shipper follows now, each with its PodSource ("" is the implicit one)."""
    settings = hub.settings
    skip = {n.strip() for n in settings.logs.ship_skip_clusters.split(",") if n.strip()}
    implicit = settings.clusters.default_name
    sources: dict[str, ClusterPodSource] = {}

    def source(name: str) -> ClusterPodSource:
        if name not in sources:
            if name:
                sources[name] = ClusterPodSource(lambda: hub.added_clusters.get(name), name=name)
            else:
                sources[name] = ClusterPodSource(lambda: hub.cluster)
        return sources[name]

    def clusters() -> dict[str, ClusterPodSource]:
        out: dict[str, ClusterPodSource] = {}
        if hub.cluster is not None and implicit not in skip:
            out[""] = source("")
        for name in sorted(hub.added_clusters):
            if name not in skip and name != implicit:
                out[name] = source(name)
        return out

    return clusters


def build(hub: Hub) -> None:
    settings = hub.settings
    store = open_store(settings)
    own = OwnStores(settings, hub.clusters.all)
    hub.clusters.subscribe(own.changed)
    service = LogService(
        store=store,
        settings=settings,
        tenancy=hub.tenancy,
        clock=hub.clock,
        metrics=hub.metrics,
        cluster_names=lambda: hub.clusters.names(),
        project_retention=lambda: {  # by project key: cluster-2's shop is cluster-2/shop
            key: s.retention_days
            for key, s in LogCollectionStore(hub.db).rules().by_project.items()
            if s.retention_days is not None
        },
        cluster_stores=own,
    )
    if settings.logs.ship and (hub.cluster is not None or hub.clusters.names() != [settings.clusters.default_name]):
        implicit = settings.clusters.default_name
        service.shipper = Shipper(
            source=ClusterPodSource(lambda: hub.cluster) if hub.cluster is not None else None,
            sources=shipped_clusters(hub),
            sink=service.write,
            directory=settings.data_dir / "logs",
            namespaces=shipped_namespaces(settings, hub.tenancy),
            cluster_namespaces=cluster_namespaces(settings, hub.tenancy),
            rules=LogCollectionStore(hub.db, implicit=implicit).rules,  # per-project settings, by project key
            interval=settings.logs.ship_interval,
            spool_max_lines=settings.logs.spool_max_lines,
            clock=hub.clock,
        )
    hub.logs = service


__all__ = [
    "ClusterPodSource",
    "OwnStores",
    "build",
    "cluster_namespaces",
    "open_own_store",
    "open_store",
    "shipped_clusters",
]
