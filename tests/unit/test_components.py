"""Component health: the pure pieces (states, runs, since, the bounded probe log) and the
service over a fake QueryBackend of our own interface (hub/collectors/components.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from hub.collectors.components import (
    LATEST_LIMIT,
    STEP,
    WINDOW,
    ComponentService,
    ProbeLog,
    ProbeResult,
    Segment,
    current_since,
    scrape_state,
    segments,
    worst,
)
from hub.collectors.prometheus import QuerySpec

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def test_scrape_state_and_worst() -> None:
    assert scrape_state(3, 3) == "up"
    assert scrape_state(0, 3) == "down"
    assert scrape_state(1, 3) == "degraded"
    assert scrape_state(0, 0) == "unknown"
    assert worst(["up", "unknown", "down"]) == "down"
    assert worst(["up", "disabled"]) == "up"
    assert worst([]) == "unknown"


def test_segments_merge_runs_and_mark_gaps_unknown() -> None:
    pts = [(0.0, "up"), (60.0, "up"), (120.0, "down"), (300.0, "down")]
    got = segments(pts, start=0.0, end=400.0, step=60.0)
    assert got == [
        Segment(0.0, 120.0, "up"),
        Segment(120.0, 180.0, "down"),
        Segment(180.0, 300.0, "unknown"),
        Segment(300.0, 360.0, "down"),
        Segment(360.0, 400.0, "unknown"),
    ]
    # the brute-force check: every second is covered once, by the state of its point
    for second in range(400):
        covering = [s for s in got if s.start <= second < s.end]
        assert len(covering) == 1


def test_current_since() -> None:
    hist = [Segment(0, 100, "up"), Segment(100, 200, "down"), Segment(200, 300, "down")]
    assert current_since(hist, "down", 0.0) == (100, False)
    assert current_since([Segment(0, 300, "up")], "up", 0.0) == (0, True)
    assert current_since(hist, "up", 0.0) == (None, False)


def test_probe_log_keeps_changes_only_and_is_bounded() -> None:
    log = ProbeLog(started=0.0, max_changes=4)
    for i in range(100):
        log.record("x", "up", float(i))
    hist, floor = log.history("x", 100.0)
    assert hist == [Segment(0.0, 100.0, "up")] and floor == 0.0
    for i in range(10):
        log.record("y", "up" if i % 2 else "down", 1000.0 + i)
    hist, _ = log.history("y", 1010.0)
    assert len(hist) == 4 and hist[-1] == Segment(1009.0, 1010.0, "up")
    # older than the window: dropped, the last change before it kept as the run's start
    log.record("z", "down", 0.0)
    log.record("z", "up", 10.0)
    log.record("z", "up", WINDOW + 100.0)
    hist, floor = log.history("z", WINDOW + 100.0)
    assert floor == 100.0 and hist == [Segment(100.0, WINDOW + 100.0, "up")]


class FakePrometheus:
    """Answers sum/count by job of ``up`` from a table job -> [(t, up, count)]."""

    def __init__(self, table: dict[str, list[tuple[float, float, float]]], fail: bool = False) -> None:
        self.table = table
        self.fail = fail
        self.sent: list[QuerySpec] = []

    def _rows(self, spec: QuerySpec) -> pd.DataFrame:
        col = 1 if spec.promql.startswith("sum") else 2
        rows: list[dict[str, Any]] = []
        for job, points in self.table.items():
            if f"{job}" not in spec.promql:
                continue
            for p in points:
                if spec.start is None:
                    if p[0] == max(q[0] for q in points):
                        rows.append({"job": job, "timestamp": spec.time, "value": p[col]})
                elif spec.start <= p[0] <= (spec.end or 0):
                    rows.append({"job": job, "timestamp": p[0], "value": p[col]})
        return pd.DataFrame(rows, columns=["job", "timestamp", "value"])

    def instant(self, promql: str, *, time: float | None = None, timeout: float | None = None) -> pd.DataFrame:
        return self._rows(QuerySpec(promql, time=time))

    def range(
        self, promql: str, *, start: float, end: float, step: float, timeout: float | None = None
    ) -> pd.DataFrame:
        return self._rows(QuerySpec(promql, start=start, end=end, step=step))

    def many(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[pd.DataFrame]:
        if self.fail:
            raise ConnectionError("connection refused")
        self.sent.extend(specs)
        return [self._rows(s) for s in specs]


def _by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in body["components"]}


def test_service_combines_prometheus_and_probes() -> None:
    now = 200_000.0  # not on the minute grid: the history's points are (multiples of STEP)
    first = (now - WINDOW) // STEP * STEP  # the grid point whose minute holds the window's start
    grid = [first + i * STEP for i in range(int(WINDOW / STEP) + 1)]
    assert grid[-1] <= now < grid[-1] + STEP
    etcd = [(t, 1.0 if i < 1000 else 0.0, 1.0) for i, t in enumerate(grid)]
    nodes = [(t, 2.0, 3.0) for t in grid]
    prom = FakePrometheus({"etcd": etcd, "node-exporter": nodes, "apiserver": [(now, 1.0, 1.0)]})
    probes = [
        ProbeResult("cluster", ok=False, detail="ConnectionError: refused"),
        ProbeResult("alert-engine", ok=True, detail="last cycle", last_ok=now - 42.0),
        ProbeResult("smtp", ok=False, detail="no SMTP host configured", configured=False),
        ProbeResult("prometheus", ok=True),
    ]
    service = ComponentService(prom, lambda: probes, clock=Clock(now))
    body = service.health()
    got = _by_name(body)
    assert got["etcd"]["state"] == "down"
    assert got["etcd"]["since"] == grid[1000]
    assert got["etcd"]["since_before_history"] is False
    assert got["node-exporter"]["state"] == "degraded"
    assert got["node-exporter"]["checks"][0]["targets_up"] == 2
    assert got["node-exporter"]["since_before_history"] is True
    # the API server: scraped up, but the hub's identity cannot reach it -> down, both shown
    assert got["apiserver"]["state"] == "down"
    assert [c["state"] for c in got["apiserver"]["checks"]] == ["up", "down", "disabled"]
    assert got["kube-scheduler"]["state"] == "unknown"
    assert got["alert-engine"]["lag_seconds"] == 42.0
    assert got["smtp"]["state"] == "disabled"
    assert got["log-store"]["state"] == "disabled"
    # the state now and the 24 h history: two instant and two range queries, whatever the jobs
    assert [spec.start is None for spec in prom.sent] == [True, True, False, False]
    assert prom.sent[2].start == grid[0] and prom.sent[2].end == grid[-1]


def test_prometheus_down_makes_scraped_components_unknown_not_down() -> None:
    service = ComponentService(
        FakePrometheus({}, fail=True), lambda: [ProbeResult("prometheus", ok=False, detail="refused")], clock=Clock(1e6)
    )
    got = _by_name(service.health())
    assert got["etcd"]["state"] == "unknown"
    assert "Prometheus does not answer" in got["etcd"]["checks"][0]["detail"]
    assert got["prometheus"]["state"] == "down"


def test_probe_history_accrues_with_since() -> None:
    clock = Clock(1000.0)
    state = {"ok": True}
    service = ComponentService(None, lambda: [ProbeResult("logs", ok=state["ok"], detail="es")], clock=clock)
    service.record_probes()
    clock.t, state["ok"] = 1600.0, False
    service.record_probes()
    clock.t = 2000.0
    got = _by_name(service.health())["log-store"]
    assert got["state"] == "down" and got["since"] == 1600.0
    assert got["history"] == [
        {"from": 1000.0, "to": 1600.0, "state": "up"},
        {"from": 1600.0, "to": 2000.0, "state": "down"},
    ]


def test_readyz_verbose_answers_name_the_failed_checks() -> None:
    from hub.collectors.components import readyz_result

    ok = "[+]ping ok\n[+]log ok\n[+]etcd ok\nreadyz check passed\n"
    assert readyz_result(ok) == ProbeResult("apiserver-readyz", ok=True, detail="readyz: all 3 checks ok")
    bad = "[+]ping ok\n[-]etcd failed: reason withheld\n[+]informer-sync ok\nreadyz check failed\n"
    r = readyz_result(bad)
    assert not r.ok and r.detail == "readyz: etcd failed; 2 checks ok"
    assert not readyz_result("<html>proxy error</html>").ok


def test_a_readyz_the_hub_may_not_read_is_unknown_not_down() -> None:
    probes = [
        ProbeResult("cluster", ok=True, detail="v1.31"),
        ProbeResult("apiserver-readyz", ok=False, detail="may not read /readyz (403)", unknown=True),
    ]
    got = _by_name(ComponentService(None, lambda: probes, clock=Clock(5000.0)).health())["apiserver"]
    assert [(c["source"], c["state"]) for c in got["checks"]] == [
        ("prometheus", "unknown"),
        ("hub", "up"),
        ("readyz", "unknown"),
    ]


def test_the_scraped_history_is_kept_and_only_its_unsettled_points_are_asked_again() -> None:
    from hub.collectors.components_history import ScrapedHistory

    now = 200_000.0
    table = {"etcd": [(float(t), 1.0, 1.0) for t in range(109_980, 200_160, 60)]}
    prom = FakePrometheus(table)
    history = ScrapedHistory(window=WINDOW, step=STEP)

    def ranges() -> list[tuple[float | None, float | None]]:
        asked = [(spec.start, spec.end) for spec in prom.sent if spec.start is not None]
        prom.sent.clear()
        return asked

    current, points = history.read(prom, 'up{job=~"etcd"}', now, timeout=1)
    assert current == {"etcd": (1.0, 1.0)}
    assert ranges() == [(113_580.0, 199_980.0)] * 2  # the minute grid over the window
    assert len(points["etcd"]) == 1441 + 1 and points["etcd"][-1][0] == now
    later = now + 100
    _, points = history.read(prom, 'up{job=~"etcd"}', later, timeout=1)
    # kept for good: what was at least two steps old when asked (up to 199,860); the rest again
    assert ranges() == [(199_920.0, 200_100.0)] * 2
    assert points["etcd"][0][0] == 113_700.0 and len(points["etcd"]) == 1441 + 1  # the oldest gone
    table["etcd"] = [(t, 0.0, 1.0) if t >= 199_920 else (t, u, n) for t, u, n in table["etcd"]]
    current, points = history.read(prom, 'up{job=~"etcd"}', later + 1, timeout=1)
    assert ranges() == [(200_040.0, 200_100.0)] * 2  # up to 199,980 kept by the last read
    assert current == {"etcd": (0.0, 1.0)} and [p[1][0] for p in points["etcd"][-4:]] == [1.0, 0.0, 0.0, 0.0]
    # 199,980 as it was asked at 200,100 (kept); 200,040 and 200,100 asked again: the change shows
    history.read(prom, 'up{job=~"etcd|apiserver"}', later + 2, timeout=1)  # other jobs: asked anew
    assert ranges() == [(113_700.0, 200_100.0)] * 2
    history.read(prom, 'up{job=~"etcd|apiserver"}', later - 500, timeout=1)  # the clock went back
    assert ranges() == [(113_160.0, 199_560.0)] * 2


def test_the_timer_keeps_the_history_so_an_answer_asks_only_its_last_minutes() -> None:
    now = 200_000.0
    prom = FakePrometheus({"etcd": [(float(t), 1.0, 1.0) for t in range(109_980, 200_160, 60)]})
    clock = Clock(now - 600)
    service = ComponentService(prom, lambda: [], clock=clock)
    service.keep_history()  # what the runtime's timer does at start
    assert next((s.start, s.end) for s in prom.sent if s.start is not None) == (112_980.0, 199_380.0)
    prom.sent.clear()
    clock.t = now
    service.health()
    assert [(s.start, s.end) for s in prom.sent if s.start is not None] == [(199_320.0, 199_980.0)] * 2


class SlowPrometheus(FakePrometheus):
    """A FakePrometheus whose answers wait until ``release`` is set (while ``hold`` is)."""

    def __init__(self, table: dict[str, list[tuple[float, float, float]]]) -> None:
        super().__init__(table)
        self.hold = threading.Event()
        self.release = threading.Event()
        self.calls = 0  # readings asked for, counted before any is held

    def many(self, specs: Sequence[QuerySpec], *, timeout: float | None = None) -> list[pd.DataFrame]:
        self.calls += 1
        if self.hold.is_set():
            assert self.release.wait(10), "the test never released the held answer"
        return super().many(specs, timeout=timeout)


def _release_and_go_live(service: ComponentService, prom: SlowPrometheus) -> None:
    """Let the held reading finish and wait for the service to keep it (not for Prometheus's
    answer: a view before the service has kept it joins that reading); from then on views wait
    for their own live reading, however loaded the machine."""
    prom.release.set()
    in_flight = service._in_flight
    assert in_flight is not None
    in_flight.result(timeout=5)
    prom.hold.clear()
    service.live_wait = service.timeout


def test_a_slow_prometheus_gives_the_newest_reading_with_its_time_and_the_next_answer_the_live_one() -> None:
    start = 200_000.0
    table = {"etcd": [(float(t), 1.0, 1.0) for t in range(109_980, 200_160, 60)]}
    prom = SlowPrometheus(table)
    clock = Clock(start)
    service = ComponentService(prom, lambda: [], clock=clock, live_wait=1.0)
    first = service.health()  # quick: live
    assert first["scraped_time"] == first["time"] == start
    assert _by_name(first)["etcd"]["state"] == "up"

    # etcd goes down; Prometheus now takes longer than the wait
    table["etcd"] = [(t, 0.0 if t >= 200_000 else u, n) for t, u, n in table["etcd"]]
    prom.hold.set()
    clock.t = start + 30
    slow = service.health()
    assert slow["time"] == start + 30 and slow["scraped_time"] == start  # the reading of 30 s ago
    etcd = _by_name(slow)["etcd"]
    assert etcd["state"] == "up" and etcd["history"][-1]["to"] == start  # as it was read, no later
    assert etcd["checks"][0]["targets_up"] == 1

    # the live reading went on in the background; once in, the next answer is live again
    _release_and_go_live(service, prom)
    clock.t = start + 31
    live = service.health()
    assert live["scraped_time"] == live["time"] == start + 31
    assert _by_name(live)["etcd"]["state"] == "down"


def test_without_a_recent_reading_an_answer_waits_for_the_live_one() -> None:
    prom = SlowPrometheus({"etcd": [(199_980.0, 1.0, 1.0)]})
    clock = Clock(200_000.0)
    service = ComponentService(prom, lambda: [], clock=clock, live_wait=0.01)
    service.health()
    # older than LATEST_LIMIT: the kept reading is not shown, the live one is awaited
    clock.t = 200_000.0 + LATEST_LIMIT + 1
    prom.hold.set()
    threading.Timer(0.2, prom.release.set).start()
    body = service.health()
    assert body["scraped_time"] == body["time"] == clock.t
    # a wait of the whole timeout means always live: no reading is shown instead
    prom.release.clear()
    always = ComponentService(prom, lambda: [], clock=clock, timeout=0.5, live_wait=0.5)
    prom.hold.clear()
    always.health()
    prom.hold.set()
    threading.Timer(0.1, prom.release.set).start()
    body = always.health()
    assert body["scraped_time"] == body["time"]


def test_views_during_a_slow_reading_join_it_instead_of_asking_prometheus_again() -> None:
    start = 200_000.0
    prom = SlowPrometheus({"etcd": [(float(t), 1.0, 1.0) for t in range(109_980, 200_160, 60)]})
    clock = Clock(start)
    service = ComponentService(prom, lambda: [], clock=clock, live_wait=0.5)
    service.health()  # the first, live: a reading is kept
    prom.hold.set()
    for i in range(1, 4):
        clock.t = start + i
        assert service.health()["scraped_time"] == start
    time.sleep(0.2)  # time for any reading queued behind the held one to reach Prometheus
    assert prom.calls == 2  # the held reading is the only one asked since the first: none queued
    _release_and_go_live(service, prom)
    clock.t = start + 10
    assert service.health()["scraped_time"] == start + 10  # once it is in, a view asks anew
    assert prom.calls == 3
