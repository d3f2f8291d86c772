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
from dataclasses import dataclass, field
from typing import Any

from hub.errors import ConfigError
from hub.metrics import HubMetrics
from hub.settings import Settings, load_settings
from hub.store import StateStore, open_state_store
from hub.timeutil import Clock, SystemClock

log = logging.getLogger("kubehub")


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


@dataclass
class Hub:
    """Every service of one hub process. Web views and the CLI reach areas only through this."""

    settings: Settings
    db: StateStore
    metrics: HubMetrics
    clock: Clock = field(default_factory=SystemClock)
    # Area services; each is built by its area's ``build_*`` below and may be None when the
    # backend it needs is not configured.
    services: dict[str, Any] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __getattr__(self, name: str) -> Any:
        services = self.__dict__.get("services", {})
        if name in services:
            return services[name]
        raise AttributeError(name)

    # -- readiness ------------------------------------------------------------------------
    def readiness(self) -> list[BackendStatus]:
        statuses = [self._probe_state()]
        for name, service in self.services.items():
            probe = getattr(service, "probe", None)
            if probe is None:
                continue
            started = time.perf_counter()
            try:
                detail = probe() or ""
                st = BackendStatus(name=name, configured=True, ok=True, detail=str(detail))
            except Exception as exc:  # readiness reports every failure as a reason, never raises
                st = BackendStatus(name=name, configured=True, ok=False, detail=_one_line(exc))
            st.latency_ms = (time.perf_counter() - started) * 1000
            statuses.append(st)
        for st in statuses:
            self.metrics.backend_up.labels(st.name).set(1 if st.ok else 0)
        return statuses

    def _probe_state(self) -> BackendStatus:
        try:
            self.db.query_one("SELECT 1")
            return BackendStatus(name="state", configured=True, ok=True, detail=self.db.describe())
        except Exception as exc:
            return BackendStatus(name="state", configured=True, ok=False, detail=_one_line(exc))

    # -- background work --------------------------------------------------------------------
    def start_background(self) -> None:
        """Start each service's background loop (watch cache, shipper, rule engine)."""
        for name, service in self.services.items():
            start = getattr(service, "start", None)
            if start is not None:
                log.info("starting %s", name)
                start()

    def close(self) -> None:
        self._stop.set()
        for service in reversed(list(self.services.values())):
            stop = getattr(service, "stop", None)
            if stop is not None:
                try:
                    stop()
                except Exception:  # shutting down: log and go on with the others
                    log.exception("stopping a service failed")
        self.db.close()


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
    hub = Hub(settings=settings, db=db, metrics=HubMetrics(), clock=clock or SystemClock())
    for module in AREAS:
        importlib.import_module(f"hub.runtime.{module}").build(hub)
    if background:
        hub.start_background()
    return hub


# Each area has one module ``hub/runtime/<area>.py`` with ``build(hub) -> None`` that puts its
# service(s) into ``hub.services``. Order matters: later areas may use earlier services.
AREAS: list[str] = ["tenancy", "cluster", "monitoring", "logs", "alerting"]
