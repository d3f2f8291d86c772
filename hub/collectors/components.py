"""Health of the platform's own components (GET /api/v1/components; docs/components.md).

Why a service of its own: an operator asks "is the platform itself well?" before "is my
workload well?", and the answer comes from two places that each see only part of it.

* **Prometheus** scrapes the control plane and the exporters (``up{job=...}``, the jobs of
  deploy/prometheus/prometheus-sandbox.yml). Their state now is an instant query and their
  24 h history range queries of ``sum``/``count`` of ``up`` by job, kept between answers and
  extended by the new points only (:mod:`hub.collectors.components_history`).
* **The hub's own probes** (the same ones /readyz runs: the state store, the log store, the
  rule engine with its last completed cycle, SMTP, the leader lease, the API server as the
  hub's identity reaches it, Prometheus itself). Prometheus has no history of these, so the
  service records each probe's state changes in a bounded in-memory log (``ProbeLog`` of
  :mod:`hub.collectors.components_history`, at most ``MAX_CHANGES`` per component and 24 h):
  per replica, lost on restart, which the answer says (``history_since``).

Prometheus is the slowest of these sources when it is loaded (an instant query of ``up`` took
93-305 ms on the scale sandbox at load 8), so an answer waits ``live_wait`` for its live reading
and otherwise shows the newest kept one, with its time (``scraped_time``).

Pure apart from the two narrow inputs it is given (a :class:`~hub.collectors.prometheus.
QueryBackend` and a callable returning probe results); the clock is passed in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hub.collectors.components_history import (
    WINDOW,
    Counts,
    ProbeLog,
    ScrapedHistory,
    Segment,
    current_since,
    segments,
)
from hub.collectors.prometheus import QueryBackend
from hub.timeutil import Clock

PERMISSION = "monitoring:cluster"
STEP = 60.0  # history resolution of the scraped components: 1,440 points per job per answer
# The oldest reading of the scraped components an answer may show when Prometheus is slow: the
# runtime reads them every minute (hub/runtime/components.py), so two of its ticks.
LATEST_LIMIT = 120.0

# A reading of the scraped components: each job's counts, each job's history, why Prometheus
# gave none ("" when it answered), and the time it was read at.
Scraped = tuple[Mapping[str, Counts], dict[str, list[Segment]], str, float]

# Worse first: a component's state is the worst of its checks.
STATES = ("down", "degraded", "unknown", "up", "disabled")


@dataclass(frozen=True)
class Component:
    """One platform component: the Prometheus job that scrapes it and/or the hub probe that
    checks it. ``primary`` names the check whose history the answer shows."""

    name: str
    kind: str  # control-plane | exporter | monitoring | hub | delivery
    job: str = ""
    probe: str = ""
    readyz: str = ""  # the component's own verbose readiness, read by the hub (API server)

    @property
    def primary(self) -> str:
        return "prometheus" if self.job else "hub"


COMPONENTS: tuple[Component, ...] = (
    Component("apiserver", "control-plane", job="apiserver", probe="cluster", readyz="apiserver-readyz"),
    Component("etcd", "control-plane", job="etcd"),
    Component("kube-scheduler", "control-plane", job="kube-scheduler"),
    Component("kube-controller-manager", "control-plane", job="kube-controller-manager"),
    Component("kubelet", "exporter", job="kubelet"),
    Component("kube-state-metrics", "exporter", job="kube-state-metrics"),
    Component("node-exporter", "exporter", job="node-exporter"),
    Component("prometheus", "monitoring", probe="prometheus"),
    Component("log-store", "hub", probe="logs"),
    Component("state-store", "hub", probe="state"),
    Component("inventory-collector", "hub", probe="inventory"),
    Component("log-shipper", "hub", probe="log-shipper"),
    Component("alert-engine", "hub", probe="alert-engine"),
    Component("leader-lease", "hub", probe="leader"),
    Component("smtp", "delivery", probe="smtp"),
)


@dataclass(frozen=True)
class ProbeResult:
    """One hub probe's answer. ``configured`` False: the hub runs without that backend
    (state "disabled", never "down"). ``last_ok`` is the end of the last successful cycle of a
    loop (the rule engine), from which the answer derives ``lag_seconds``."""

    name: str
    ok: bool
    detail: str = ""
    configured: bool = True
    last_ok: float | None = None
    unknown: bool = False  # the hub may not ask (403): neither up nor down


@dataclass(frozen=True)
class Check:
    source: str  # prometheus | hub
    state: str
    detail: str = ""
    targets_up: int | None = None
    targets: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "state": self.state}
        if self.detail:
            out["detail"] = self.detail
        if self.targets is not None:
            out["targets_up"], out["targets"] = self.targets_up, self.targets
        return out


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    kind: str
    state: str
    since: float | None  # start of the current state's run; None: not known
    since_before: bool  # the run began before the history shown (window or log start)
    checks: tuple[Check, ...]
    history: tuple[Segment, ...]
    job: str = ""
    last_ok: float | None = None
    lag_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "since": self.since,
            "since_before_history": self.since_before,
            "checks": [c.to_dict() for c in self.checks],
            "history": [s.to_dict() for s in self.history],
        }
        if self.job:
            out["job"] = self.job
        if self.last_ok is not None:
            out["last_ok"] = self.last_ok
            out["lag_seconds"] = self.lag_seconds
        return out


def worst(states: Iterable[str]) -> str:
    ranked = sorted(states, key=STATES.index)
    return ranked[0] if ranked else "unknown"


def scrape_state(targets_up: float, targets: float) -> str:
    """up when every target of a job answers, down when none does, degraded in between."""
    if targets <= 0:
        return "unknown"
    if targets_up >= targets:
        return "up"
    return "down" if targets_up <= 0 else "degraded"


@dataclass
class ComponentService:
    """Answers GET /api/v1/components. ``prometheus`` None: scraped components are
    "unknown" (named as such), never "down"."""

    prometheus: QueryBackend | None
    probes: Callable[[], Sequence[ProbeResult]]
    clock: Clock
    timeout: float = 10.0
    # Seconds an answer waits for Prometheus's live reading of the scraped components before it
    # shows the newest kept one (at most LATEST_LIMIT old, its time in ``scraped_time``); at
    # ``timeout`` or more an answer always waits for the live one.
    live_wait: float = 0.15
    components: tuple[Component, ...] = COMPONENTS
    log: ProbeLog = field(init=False)
    scraped: ScrapedHistory = field(init=False)  # kept between answers: components_history says why
    # Where health() reads the scraped components while it probes: kept, because starting a
    # thread for each view cost ~12 ms at 20,000 pods under load 8.
    _beside: ThreadPoolExecutor = field(init=False)
    # The live reading under way, if any: a view that finds one joins it instead of asking
    # Prometheus again (views that stop waiting would otherwise queue readings without bound).
    _in_flight: Future[Scraped] | None = field(init=False, default=None)
    _flight_lock: threading.Lock = field(init=False)
    _jobs: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.log = ProbeLog(started=self.clock.now())
        self.scraped = ScrapedHistory(window=WINDOW, step=STEP)
        self._beside = ThreadPoolExecutor(max_workers=4, thread_name_prefix="components-scraped")
        self._flight_lock = threading.Lock()
        self._jobs = tuple(sorted({c.job for c in self.components if c.job}))

    # -- hub probes ------------------------------------------------------------------------
    def record_probes(self, now: float | None = None) -> dict[str, ProbeResult]:
        """Run the hub's probes once and log their states (the runtime calls this on a timer
        too, so history accrues between page views)."""
        now = self.clock.now() if now is None else now
        results = {r.name: r for r in self.probes()}
        for r in results.values():
            self.log.record(r.name, _probe_state(r), now)
        return results

    # -- scraped components ------------------------------------------------------------------
    def keep_history(self) -> None:
        """Extends the kept history of the scraped components to now (the runtime's timer
        calls it at start and every minute, so a page view finds it all but the last minutes
        and never waits for a whole day's range; a failure is the next answer's to report)."""
        self._scraped(self._second())

    def _second(self) -> float:
        """Now in whole seconds: the adapter sends range bounds in whole seconds, and the
        history's last point must fall on ``now`` exactly."""
        return float(int(self.clock.now()))

    def _scraped(self, now: float) -> Scraped:
        """(each job's counts at ``now``, each job's history, why Prometheus gave none, ``now``)."""
        jobs = self._jobs
        if self.prometheus is None or not jobs:
            return {}, {}, "Prometheus is not configured", now
        selector = f'up{{job=~"{"|".join(jobs)}"}}'
        try:
            current, points = self.scraped.read(self.prometheus, selector, now, timeout=self.timeout)
        except Exception as exc:  # Prometheus down: every scraped component is unknown, said why
            return {}, {}, f"Prometheus does not answer: {_one_line(exc)}", now
        return current, self._histories(points, start=now - WINDOW, end=now), "", now

    def _histories(
        self, points: Mapping[str, Sequence[tuple[float, Counts]]], *, start: float, end: float
    ) -> dict[str, list[Segment]]:
        return {
            job: segments(
                [(t, scrape_state(up, n)) for t, (up, n) in points.get(job, [])], start=start, end=end, step=STEP
            )
            for job in self._jobs
        }

    def _live_reading(self, now: float) -> Future[Scraped]:
        """The live reading under way, or a new one asked at ``now``."""
        with self._flight_lock:
            if self._in_flight is None or self._in_flight.done():
                self._in_flight = self._beside.submit(self._scraped, now)
            return self._in_flight

    def _live_or_latest(self, pending: Future[Scraped], now: float, began: float) -> Scraped:
        """The live reading if it comes within ``live_wait`` of ``began`` (monotonic), else the
        newest kept one when it is at most LATEST_LIMIT old; without one, the live reading
        however long it takes (up to ``timeout``). The live reading goes on in the background
        and is kept, so the next answer finds a newer one."""
        latest = self.scraped.latest
        if self.live_wait >= self.timeout or latest is None or now - latest.at > LATEST_LIMIT:
            return pending.result()
        try:
            return pending.result(timeout=max(0.0, self.live_wait - (time.monotonic() - began)))
        except TimeoutError:
            return latest.current, self._histories(latest.points, start=now - WINDOW, end=latest.at), "", latest.at

    def health(self) -> dict[str, Any]:
        """Every component's state and 24 h history. The hub's probes (a round trip to each
        backend) and the scraped components' Prometheus queries are asked at the same time:
        one after the other they were 114 and 133 ms of a 310 ms page on the scale sandbox at
        load 8 (docs/scale.md, "Large, seventh look"). ``scraped_time`` is when the scraped
        components were read: ``time`` itself unless Prometheus was slow (:meth:`_live_or_latest`)."""
        began = time.monotonic()
        now = self._second()
        scraped = self._live_reading(now)
        probes = self.record_probes(now)
        current, scraped_history, prom_reason, read_at = self._live_or_latest(scraped, now, began)
        out = []
        for comp in self.components:
            out.append(self._one(comp, now, probes, current, scraped_history, prom_reason).to_dict())
        return {
            "time": now,
            "scraped_time": read_at,
            "window_seconds": WINDOW,
            "step_seconds": STEP,
            "history_since": self.log.started,
            "components": out,
        }

    def _one(
        self,
        comp: Component,
        now: float,
        probes: Mapping[str, ProbeResult],
        current: Mapping[str, tuple[float, float]],
        scraped_history: Mapping[str, list[Segment]],
        prom_reason: str,
    ) -> ComponentHealth:
        checks: list[Check] = []
        history: list[Segment] = []
        floor = now - WINDOW
        if comp.job:
            if prom_reason:
                checks.append(Check("prometheus", "unknown", prom_reason))
            elif comp.job in current:
                n_up, n = current[comp.job]
                detail = f"{int(n_up)} of {int(n)} targets of job {comp.job} up"
                checks.append(Check("prometheus", scrape_state(n_up, n), detail, int(n_up), int(n)))
            else:
                checks.append(Check("prometheus", "unknown", f"Prometheus has no target of job {comp.job}"))
            history = scraped_history.get(comp.job, [])
        result = probes.get(comp.probe) if comp.probe else None
        if comp.probe:
            if result is None:
                checks.append(Check("hub", "disabled", "not configured"))
            else:
                checks.append(Check("hub", _probe_state(result), result.detail))
            if not comp.job:
                history, floor = self.log.history(comp.probe, now)
        if comp.readyz:
            ready = probes.get(comp.readyz)
            if ready is None:
                checks.append(Check("readyz", "disabled", "not configured"))
            else:
                checks.append(Check("readyz", _probe_state(ready), ready.detail))
        state = worst(c.state for c in checks)
        primary = checks[0].state
        since, before = current_since(history, primary, floor)
        last_ok = result.last_ok if result is not None else None
        return ComponentHealth(
            name=comp.name,
            kind=comp.kind,
            state=state,
            since=since,
            since_before=before,
            checks=tuple(checks),
            history=tuple(history),
            job=comp.job,
            last_ok=last_ok,
            lag_seconds=None if last_ok is None else round(max(0.0, now - last_ok), 3),
        )


def readyz_result(text: str, *, name: str = "apiserver-readyz") -> ProbeResult:
    """A ``/readyz?verbose`` answer (``[+]ping ok`` / ``[-]etcd failed: reason withheld`` lines,
    then ``readyz check passed`` or ``... failed``) as a probe result naming the failed checks."""
    lines = [line.strip() for line in text.splitlines()]
    passed = [line[3:].split(" ")[0] for line in lines if line.startswith("[+]")]
    failed = [line[3:].split(" ")[0] for line in lines if line.startswith("[-]")]
    if failed:
        return ProbeResult(name, ok=False, detail=f"readyz: {', '.join(failed)} failed; {len(passed)} checks ok")
    if not passed:
        return ProbeResult(name, ok=False, detail="readyz: no checks in the answer")
    return ProbeResult(name, ok=True, detail=f"readyz: all {len(passed)} checks ok")


def _probe_state(r: ProbeResult) -> str:
    if not r.configured:
        return "disabled"
    if r.unknown:
        return "unknown"
    return "up" if r.ok else "down"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
