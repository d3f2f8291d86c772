"""Wiring: builds the hub's services from settings and runs its background work.

This is the only module that knows every area. Areas never import each other; where one needs
another (the alert engine needs metric queries, the log shipper needs the pod list) the
runtime passes a narrow callable or object in.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from hub.errors import ConfigError
from hub.metrics import HubMetrics
from hub.runtime.probing import together
from hub.settings import Settings, load_settings
from hub.store import StateStore, open_state_store
from hub.timeutil import Clock, SystemClock

if TYPE_CHECKING:
    from hub.alerts.jobs import BacktestJobs
    from hub.alerts.service import AlertService
    from hub.clusters.service import ClusterRegistry
    from hub.collectors.cluster import ClusterService
    from hub.collectors.components import ComponentService
    from hub.collectors.logs.service import LogService
    from hub.collectors.monitoring import MonitoringService
    from hub.collectors.prometheus import PrometheusClient
    from hub.runtime.alerting import AlertEngine
    from hub.runtime.cluster import ClusterReconciler
    from hub.runtime.leadership import Leadership
    from hub.tenancy.oidc import OidcClient
    from hub.tenancy.service import TenancyService

log = logging.getLogger("kubehub")
T = TypeVar("T")


@dataclass
class BackendStatus:
    name: str
    configured: bool
    ok: bool
    detail: str = ""
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        state = "ok" if self.ok else ("unreachable" if self.configured else "disabled")
        out: dict[str, Any] = {"name": self.name, "state": state}
        if self.detail:
            out["reason" if not self.ok else "detail"] = self.detail
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 1)
        return out


class Probed(Protocol):
    """A service /readyz asks: answers a one-line detail, raises when its backend is down."""

    def probe(self) -> str: ...


class Background(Protocol):
    """A service with a background loop (watch cache, shipper and retention, rule engine)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Hub:
    """Every service of one hub process, as typed attributes. Web views and the CLI reach areas
    only through this; each area's ``hub/runtime/<area>.py`` ``build(hub)`` sets its own.

    The optional ones are None when the backend they need is not configured (no cluster, no
    Prometheus); the web layer answers 503 naming that backend. The others are unset until their
    area's build() ran; code that may run before then (the hub's own lists below, a callable an
    earlier area was handed) asks the ``built_*`` method, None until then.
    """

    settings: Settings
    db: StateStore
    metrics: HubMetrics
    # The lease loop: the background work that must run once runs on its holder only.
    leadership: Leadership
    clock: Clock = field(default_factory=SystemClock)
    # Area services, set by the area's build() in AREAS order (later areas use earlier ones).
    tenancy: TenancyService = field(init=False)
    oidc: OidcClient | None = field(init=False, default=None)  # single sign-on, when configured
    cluster: ClusterService | None = field(init=False, default=None)  # the implicit cluster's
    clusters: ClusterRegistry = field(init=False)  # every cluster: the implicit one and the added ones
    added_clusters: dict[str, ClusterService] = field(default_factory=dict)  # the added clusters'
    cluster_errors: dict[str, str] = field(default_factory=dict)  # added clusters that cannot be configured
    cluster_reconciler: ClusterReconciler | None = field(init=False, default=None)
    background_started: bool = False
    prometheus: PrometheusClient | None = field(init=False, default=None)
    monitoring: MonitoringService = field(init=False)
    logs: LogService = field(init=False)
    alerting: AlertService = field(init=False)
    backtest_jobs: BacktestJobs = field(init=False)
    alert_engine: AlertEngine = field(init=False)
    components: ComponentService = field(init=False)  # platform component health
    component_probes: Background | None = field(init=False, default=None)  # records their probes
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    # -- the services of areas that may not be built yet (None until then) --------------------
    def built_clusters(self) -> ClusterRegistry | None:
        """The cluster registry once the cluster area built it (tenancy is built before it)."""
        return _once_set(lambda: self.clusters)

    def built_logs(self) -> LogService | None:
        return _once_set(lambda: self.logs)

    def built_backtest_jobs(self) -> BacktestJobs | None:
        return _once_set(lambda: self.backtest_jobs)

    def built_alert_engine(self) -> AlertEngine | None:
        return _once_set(lambda: self.alert_engine)

    def _probed(self) -> list[tuple[str, Probed]]:
        """The services /readyz lists, by the name it shows (the optional ones when configured)."""
        out: list[tuple[str, Probed]] = []
        if self.cluster is not None:
            out.append(("cluster", self.cluster))
        if self.prometheus is not None:
            out.append(("prometheus", self.prometheus))
        if self.oidc is not None:
            out.append(("oidc", self.oidc))
        if (logs := self.built_logs()) is not None:
            out.append(("logs", logs))
        if (engine := self.built_alert_engine()) is not None:
            out.append(("alert-engine", engine))
        return out

    def _background(self) -> list[tuple[str, Background]]:
        """The background work of every replica, in start order (stopped in reverse): the
        watch cache (the read side), backtest workers, and the lease loop, which runs
        :meth:`_leader_work` while this replica holds the lease."""
        out: list[tuple[str, Background]] = []
        if self.cluster is not None:
            out.append(("cluster", self.cluster))
        if self.cluster_reconciler is not None:  # the added clusters' services, and their registry loop
            out.append(("clusters", self.cluster_reconciler))
        if (jobs := self.built_backtest_jobs()) is not None:
            out.append(("backtest-jobs", _StopOnly(jobs)))
        if self.component_probes is not None:
            out.append(("component-probes", self.component_probes))
        out.append(("leadership", _LeaseLoop(self.leadership, self._leader_work())))
        return out

    def _leader_work(self) -> list[tuple[str, Background]]:
        """The work that must run once across replicas (log shipping and retention, the rule
        engine and outbox delivery), started and stopped with the lease."""
        out: list[tuple[str, Background]] = []
        if (logs := self.built_logs()) is not None:
            out.append(("logs", _Paused(logs)))
        if (engine := self.built_alert_engine()) is not None:
            out.append(("alert-engine", engine))
        return out

    # -- readiness ------------------------------------------------------------------------
    def readiness(self) -> list[BackendStatus]:
        """Every backend's probe, asked at the same time (hub/runtime/probing.py says why)."""
        calls = [self._probe_state, *(_timed_probe(name, service) for name, service in self._probed())]
        statuses = together(calls)
        for st in statuses:
            self.metrics.backend_up.labels(st.name).set(1 if st.ok else 0)
        return statuses

    def leader_status(self) -> dict[str, Any]:
        """Which replica leads and since when (/readyz): from the store, or this replica's own
        view while the store does not answer."""
        try:
            return self.leadership.status().to_dict()
        except Exception as exc:  # the state store is down: /readyz says so in its list
            local = self.leadership.fence()
            return {"replica": self.leadership.replica_id, "leading": local is not None, "reason": _one_line(exc)}

    def serving(self) -> BackendStatus:
        """Whether this replica can serve the console and API at all: the state store answers
        (``/readyz/serving``, the load balancer's probe; the other backends only degrade pages)."""
        status = self._probe_state()
        self.metrics.backend_up.labels(status.name).set(1 if status.ok else 0)
        return status

    def _probe_state(self) -> BackendStatus:
        try:
            self.db.query_one("SELECT 1")
            return BackendStatus(name="state", configured=True, ok=True, detail=self.db.describe())
        except Exception as exc:
            return BackendStatus(name="state", configured=True, ok=False, detail=_one_line(exc))

    # -- background work --------------------------------------------------------------------
    def start_background(self) -> None:
        """Start each service's background loop (watch cache, shipper, rule engine)."""
        self.background_started = True
        for name, service in self._background():
            log.info("starting %s", name)
            service.start()

    def close(self) -> None:
        self._stop.set()
        for _name, service in reversed(self._background()):
            try:
                service.stop()
            except Exception:  # shutting down: log and go on with the others
                log.exception("stopping a service failed")
        if (logs := self.built_logs()) is not None:
            try:
                logs.stop()  # closes the log store (the shipper was paused with the lease)
            except Exception:
                log.exception("stopping the log service failed")
        self.db.close()


def _timed_probe(name: str, service: Probed) -> Callable[[], BackendStatus]:
    """One service's probe as a readiness status with its latency (never raises)."""

    def probe() -> BackendStatus:
        started = time.perf_counter()
        try:
            detail = service.probe() or ""
            st = BackendStatus(name=name, configured=True, ok=True, detail=str(detail))
        except Exception as exc:  # readiness reports every failure as a reason, never raises
            st = BackendStatus(name=name, configured=True, ok=False, detail=_one_line(exc))
        st.latency_ms = (time.perf_counter() - started) * 1000
        return st

    return probe


@dataclass(frozen=True)
class _StopOnly:
    """Backtest jobs have no loop to start, only workers to stop at shutdown."""

    jobs: BacktestJobs

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self.jobs.stop()


@dataclass(frozen=True)
class _LeaseLoop:
    """The lease loop as a background service, with the leader's work it starts and stops."""

    leadership: Leadership
    work: list[tuple[str, Background]]

    def start(self) -> None:
        self.leadership.start(self.work)

    def stop(self) -> None:
        self.leadership.stop()


@dataclass(frozen=True)
class _Paused:
    """The log service as leader work: losing the lease pauses shipping and retention; the
    store stays open for this replica's searches (Hub.close closes it)."""

    logs: LogService

    def start(self) -> None:
        self.logs.start()

    def stop(self) -> None:
        self.logs.pause()


def _once_set(read: Callable[[], T]) -> T | None:
    """The value ``read`` returns, or None while the attribute it reads is unset (a dataclass
    ``field(init=False)`` without a default has no value until its area's build() assigns one)."""
    try:
        return read()
    except AttributeError:
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def build_hub(settings: Settings | None = None, *, clock: Clock | None = None, background: bool = False) -> Hub:
    """Build a hub from settings: open and migrate the state store, then build each area.

    Nothing here contacts an optional backend synchronously, so an unreachable Prometheus or
    Elasticsearch shows in /readyz instead of stopping start-up.
    """
    settings = settings or load_settings()
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("KUBEHUB_DATA_DIR", f"cannot create {settings.data_dir}: {exc.strerror}") from exc
    db = open_state_store(settings)
    db.migrate()
    metrics = HubMetrics()
    clock = clock or SystemClock()
    leadership = _leadership(settings, db, metrics, clock)
    hub = Hub(settings=settings, db=db, metrics=metrics, leadership=leadership, clock=clock)
    for module in AREAS:
        importlib.import_module(f"hub.runtime.{module}").build(hub)
    if background:
        hub.start_background()
    return hub


def _leadership(settings: Settings, db: StateStore, metrics: HubMetrics, clock: Clock) -> Leadership:
    from hub.runtime.leadership import Leadership, default_replica_id
    from hub.store.leases import LeaseStore

    def publish(status: Any) -> None:
        metrics.leader.set(1 if status.leading else 0)
        metrics.leader_info.clear()
        metrics.leader_info.labels(status.replica, status.leader or "").set(1)
        metrics.leader_since.set(status.since or 0)
        metrics.lease_token.set(status.token or 0)

    leader = settings.leader
    return Leadership(
        LeaseStore(db),
        replica_id=leader.replica_id or default_replica_id(),
        lease_seconds=leader.lease_seconds,
        clock=clock,
        on_change=publish,
    )


# Each area has one module ``hub/runtime/<area>.py`` with ``build(hub) -> None`` that sets its
# service attribute(s) on the hub. Order matters: later areas may use earlier services.
AREAS: list[str] = ["tenancy", "sso", "cluster", "monitoring", "logs", "alerting", "components"]
