"""Builds the component-health service (``hub.components``; docs/components.md).

The service itself is pure (hub/collectors/components.py); here it gets its two inputs: the
Prometheus client, and the hub's probes — the /readyz probes, the leader lease and an SMTP
check (connect and read the relay's 220 greeting with the standard library's ``smtplib``: no
login, no mail, so a probe never sends anything). A daemon thread records the probes every
``PROBE_SECONDS`` so the hub-probed components' history accrues between page views, and keeps
the scraped components' history (kept in memory, hub/collectors/components_history.py) up to
date at start and on every tick, so a page view asks Prometheus for a minute or two of it.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from typing import TYPE_CHECKING

from hub.collectors.components import ComponentService, ProbeResult, readyz_result
from hub.errors import HubError
from hub.runtime.probing import started

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.settings import SmtpSettings

log = logging.getLogger(__name__)

PROBE_SECONDS = 60.0


def smtp_probe(settings: SmtpSettings) -> ProbeResult:
    """The relay answers a connection with its greeting (implicit TLS when configured so)."""
    if not settings.host:
        return ProbeResult("smtp", ok=False, detail="no SMTP host configured", configured=False)
    timeout = min(settings.timeout, 5.0)
    try:
        cls = smtplib.SMTP_SSL if settings.security == "tls" else smtplib.SMTP
        with cls(settings.host, settings.port, timeout=timeout) as conn:
            code, _ = conn.noop()
        if code != 250:
            return ProbeResult("smtp", ok=False, detail=f"NOOP answered {code}")
        return ProbeResult("smtp", ok=True, detail=f"{settings.host}:{settings.port} answers")
    except (OSError, smtplib.SMTPException) as exc:
        return ProbeResult("smtp", ok=False, detail=f"{settings.host}:{settings.port}: {type(exc).__name__}: {exc}")


def readyz_probe(hub: Hub) -> ProbeResult:
    """The API server's own verbose readiness, as the hub's identity may read it (the
    ``system:public-info-viewer`` role grants /readyz to everyone by default; a 401/403 is
    "unknown", not "down")."""
    name = "apiserver-readyz"
    if hub.cluster is None:
        return ProbeResult(name, ok=False, detail="no cluster configured", configured=False)
    try:
        text = hub.cluster.api.request(
            "GET", "/readyz", query={"verbose": "true"}, verb="get", resource="readyz", raw=True, accept="text/plain"
        )
    except HubError as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            return ProbeResult(
                name, ok=False, detail=f"the hub's identity may not read /readyz ({status})", unknown=True
            )
        if "[-]" in str(exc):  # a failing /readyz answers 500 with the verbose list
            return readyz_result(str(exc), name=name)
        return ProbeResult(name, ok=False, detail=f"/readyz: {exc}")
    return readyz_result(str(text), name=name)


def collector_probes(hub: Hub) -> list[ProbeResult]:
    """The hub's two collectors: the watch cache of the implicit cluster (every kind listed
    and watching; ``last_ok`` is the moment it lost the API server, so the answer's lag is how
    stale the inventory is) and the log shipper (following containers; down while paused for
    backpressure or failing)."""
    out = []
    cluster = hub.cluster
    if cluster is None:
        out.append(ProbeResult("inventory", ok=False, detail="no cluster configured", configured=False))
    else:
        stores = cluster.cache.stores
        synced = sum(1 for st in stores.values() if st.synced.is_set())
        stale = cluster.cache.stale_since()
        detail = f"{synced}/{len(stores)} kinds loaded"
        if stale is not None:
            out.append(
                ProbeResult("inventory", ok=False, detail=f"{detail}; watches lost the API server", last_ok=stale)
            )
        else:
            out.append(ProbeResult("inventory", ok=synced == len(stores), detail=detail))
    logs = hub.built_logs()
    shipper = logs.shipper if logs is not None else None
    if shipper is None:
        out.append(ProbeResult("log-shipper", ok=False, detail="log shipping is off", configured=False))
    else:
        st = shipper.status()
        detail = f"{st.followed} containers followed, {st.spooled_lines} lines spooled, {st.delivered} delivered"
        if st.paused:
            out.append(ProbeResult("log-shipper", ok=False, detail=f"{detail}; paused: spool full"))
        elif st.last_error:
            out.append(ProbeResult("log-shipper", ok=False, detail=f"{detail}; {st.last_error}"))
        else:
            out.append(ProbeResult("log-shipper", ok=True, detail=detail))
    return out


def build(hub: Hub) -> None:
    def probes() -> list[ProbeResult]:
        # The probes outside readiness go to the probe pool first, then readiness sends its own
        # there from this thread: all at the same time, and no pool thread waits on another.
        lease_of = started(hub.leader_status)
        smtp = started(lambda: smtp_probe(hub.settings.smtp))
        readyz = started(lambda: readyz_probe(hub))
        collectors = started(lambda: collector_probes(hub))
        out = []
        engine = hub.built_alert_engine()
        for st in hub.readiness():
            last_ok = engine.last_ok if engine is not None and st.name == "alert-engine" else None
            out.append(ProbeResult(st.name, ok=st.ok, detail=st.detail, last_ok=last_ok))
        lease = lease_of()
        leader = lease.get("leader")
        if "reason" in lease:
            out.append(ProbeResult("leader", ok=False, detail=str(lease["reason"])))
        else:
            detail = f"held by {leader}" if leader else "no replica holds the lease"
            out.append(ProbeResult("leader", ok=bool(leader), detail=detail))
        out.append(smtp())
        out.append(readyz())
        out.extend(collectors())
        # readiness() publishes its probes as kubehub_backend_up; the others too, for the
        # component templates of rules/ (component-smtp, component-leader-lease, ...)
        published = {"leader", "smtp", "inventory", "log-shipper"}
        for r in out:
            if r.name in published and r.configured:
                hub.metrics.backend_up.labels(r.name).set(1 if r.ok else 0)
        return out

    prom = hub.settings.prometheus
    hub.components = ComponentService(
        hub.prometheus, probes, clock=hub.clock, timeout=prom.timeout, live_wait=prom.components_wait
    )
    hub.component_probes = ProbeTimer(hub.components)


class ProbeTimer:
    """Records the probes every ``PROBE_SECONDS`` (every replica: each keeps its own log), and
    keeps the scraped components' history up to date at start and on every tick."""

    def __init__(self, service: ComponentService, seconds: float = PROBE_SECONDS) -> None:
        self.service = service
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="component-probes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._keep_history()  # at start: the first page view does not wait for 24 h of history
        while not self._stop.wait(self.seconds):
            try:
                self.service.record_probes()
            except Exception:  # a probe that raises is a bug; the next tick tries again
                pass
            self._keep_history()

    def _keep_history(self) -> None:
        try:
            self.service.keep_history()
        except Exception:  # a bug; the next tick (or the next answer) tries again
            log.exception("keeping the scraped components' history failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
