"""The cluster registry: the implicit cluster of the settings plus the clusters admins added.

What it owns: validation (:func:`hub.clusters.model.parse_cluster`), storage
(:class:`hub.store.clusters.ClusterStore`), sealing credentials (:class:`SecretBox`) and the
audit entries of every change. What it does not: connecting. The runtime subscribes with
:meth:`ClusterRegistry.subscribe` and starts, restarts or stops one cluster service per cluster
as they change, so this module stays free of any Kubernetes client.

Credentials leave this module in one place only, :meth:`ClusterRegistry.credentials`, which the
runtime calls to connect; every view (``to_dict``), audit entry and log line carries only the
kind of credential stored, never the value.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from hub.clusters.model import Cluster, ClusterSpec, Connection, LogSource, MetricsSource, parse_cluster
from hub.clusters.secretbox import SealError, SecretBox
from hub.errors import BackendUnavailable, Conflict, NotFound, Unprocessable
from hub.settings import Settings
from hub.store.audit import AuditStore
from hub.store.clusters import ClusterExists, ClusterRecord, ClusterStore
from hub.timeutil import Clock

log = logging.getLogger("kubehub.clusters")

Listener = Callable[[str, "Cluster | None"], None]  # (name, cluster or None when removed)


def implicit_cluster(settings: Settings) -> Cluster:
    """Today's single cluster, named ``clusters.default_name``, from the kubernetes/prometheus/logs settings."""
    k = settings.kubernetes
    value = k.kubeconfig.strip()
    if value.lower() == "none":
        conn = Connection("none")
    elif value:
        conn = Connection("kubeconfig", kubeconfig_path=value, context=k.context)
    else:
        conn = Connection("auto", context=k.context)  # in-cluster in a pod, else ~/.kube/config
    label = settings.clusters.default_metrics_label
    if not settings.prometheus.url:
        metrics = MetricsSource("none")
    elif label:
        metrics = MetricsSource("shared", settings.prometheus.url.rstrip("/"), label)
    else:
        metrics = MetricsSource("own", settings.prometheus.url.rstrip("/"))
    name = settings.clusters.default_name
    return Cluster(name, name, conn, metrics, LogSource("shared", "", name), implicit=True)


def _spec_json(c: Cluster) -> str:
    d = c.to_dict()
    for key in ("name", "implicit", "created", "updated"):
        d.pop(key)
    d["connection"]["credentials"] = c.connection.credential_kind
    return json.dumps(d, sort_keys=True)


def _from_record(r: ClusterRecord) -> Cluster:
    d = json.loads(r.spec)
    c, m, lg = d["connection"], d["metrics"], d["logs"]
    conn = Connection(
        c["mode"], c.get("kubeconfig_path", ""), c.get("context", ""), c.get("server", ""), c.get("ca_cert", ""),
        credential_kind=c.get("credentials", "") or "",
    )  # fmt: skip
    return Cluster(
        name=r.name,
        display_name=d.get("display_name") or r.name,
        connection=conn,
        metrics=MetricsSource(m["mode"], m.get("url", ""), m.get("label_value", "")),
        logs=LogSource(lg["mode"], lg.get("url", ""), lg.get("label_value", ""), lg.get("index_prefix", "")),
        created=r.created,
        updated=r.updated,
    )


class ClusterRegistry:
    def __init__(
        self, store: ClusterStore, *, implicit: Cluster, box: SecretBox | None, clock: Clock, audit: AuditStore | None
    ) -> None:
        self.store = store
        self.implicit = implicit
        self.box = box
        self.clock = clock
        self.audit = audit
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    # ---- reading ------------------------------------------------------------------------------

    def all(self) -> list[Cluster]:
        """The implicit cluster first, then the stored ones by name."""
        return [self.implicit, *(_from_record(r) for r in self.store.all() if r.name != self.implicit.name)]

    def names(self) -> list[str]:
        """As :meth:`all`'s names, without reading and parsing each cluster's spec (log and
        metrics reads ask this on every request)."""
        return [self.implicit.name, *(n for n in self.store.names() if n != self.implicit.name)]

    def get(self, name: str) -> Cluster:
        if name == self.implicit.name:
            return self.implicit
        record = self.store.get(name)
        if record is None:
            raise NotFound(f"no cluster {name!r}", field="cluster")
        return _from_record(record)

    def credentials(self, name: str) -> tuple[str, str] | None:
        """(kind, secret) for connecting: the runtime's only way to the sealed value."""
        record = self.store.get(name)
        if record is None or not record.sealed:
            return None
        if self.box is None:
            raise BackendUnavailable(
                "cluster credentials",
                f"cluster {name!r} has stored credentials but KUBEHUB_CLUSTERS_SECRET_KEY is unset",
            )
        try:
            return self.box.open(name, record.sealed.encode("ascii"))
        except SealError as exc:
            raise BackendUnavailable("cluster credentials", str(exc)) from exc

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # ---- changing (platform admins) -------------------------------------------------------------

    def add(self, body: Any, *, actor: str) -> Cluster:
        spec = parse_cluster(body)
        name = spec.cluster.name
        if name == self.implicit.name:
            raise Conflict(f"cluster {name!r} exists (the hub's own, from its settings)", field="name")
        now = self.clock.now()
        sealed = self._seal(spec)
        with self._lock:
            try:
                self.store.insert(ClusterRecord(name, _spec_json(spec.cluster), sealed, now, now))
            except ClusterExists as exc:
                raise Conflict(f"cluster {name!r} exists", field="name") from exc
        cluster = self.get(name)
        self._record(actor, "cluster.add", cluster, spec)
        self._notify(name, cluster)
        return cluster

    def edit(self, name: str, body: Any, *, actor: str) -> Cluster:
        if name == self.implicit.name:
            raise Unprocessable(
                f"cluster {name!r} is configured by the hub's settings (kubernetes.*, prometheus.*); change them there",
                field="cluster",
            )
        existing = self.get(name)
        spec = parse_cluster(body, name=name, existing=existing)
        sealed = self._seal(spec)
        keep = not spec.new_credentials and not spec.drop_credentials
        with self._lock:
            if not self.store.update(
                name, _spec_json(spec.cluster), sealed=sealed, keep_sealed=keep, updated=self.clock.now()
            ):
                raise NotFound(f"no cluster {name!r}", field="cluster")
        cluster = self.get(name)
        self._record(actor, "cluster.edit", cluster, spec)
        self._notify(name, cluster)
        return cluster

    def remove(self, name: str, *, actor: str) -> None:
        if name == self.implicit.name:
            raise Unprocessable(f"cluster {name!r} is the hub's own (from its settings) and cannot be removed",
                                field="cluster")  # fmt: skip
        cluster = self.get(name)
        with self._lock:
            if not self.store.delete(name):
                raise NotFound(f"no cluster {name!r}", field="cluster")
        self._record(actor, "cluster.remove", cluster, None)
        self._notify(name, None)

    # ---- helpers ----------------------------------------------------------------------------------

    def _seal(self, spec: ClusterSpec) -> str | None:
        secret = spec.kubeconfig if spec.kubeconfig is not None else spec.token
        if secret is None:
            return None
        if self.box is None:
            where = "connection.kubeconfig" if spec.kubeconfig is not None else "connection.token"
            raise Unprocessable(
                f"{where}: the hub stores credentials only encrypted, and KUBEHUB_CLUSTERS_SECRET_KEY is unset "
                "(give connection.kubeconfig_path instead, or set the key)",
                field=where,
            )
        kind = spec.cluster.connection.credential_kind
        return self.box.seal(spec.cluster.name, kind, secret).decode("ascii")

    def _record(self, actor: str, action: str, cluster: Cluster, spec: ClusterSpec | None) -> None:
        detail: dict[str, Any] = {
            "connection": cluster.connection.describe(),
            "metrics": cluster.metrics.mode,
            "logs": cluster.logs.mode,
        }
        if spec is not None:
            detail["credentials"] = (
                "replaced" if spec.new_credentials else "removed" if spec.drop_credentials else "unchanged"
            )
        log.info("%s %s by %s (%s)", action, cluster.name, actor, detail["connection"])
        if self.audit is not None:
            self.audit.append(
                at=self.clock.now(), actor=actor, action=action, target=f"cluster/{cluster.name}", result="ok",
                namespaces=[], detail=detail,
            )  # fmt: skip

    def _notify(self, name: str, cluster: Cluster | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, cluster)
            except Exception:  # one failing subscriber must not undo a stored change
                log.exception("cluster listener failed for %s", name)
