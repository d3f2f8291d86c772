"""The components' 24 h histories: runs of one state (:class:`Segment`, :func:`segments`), the
hub-probed components' bounded log of state changes (:class:`ProbeLog`), and the scraped
components' history, kept between answers and extended by its new points only
(:class:`ScrapedHistory`). Pure: the clock comes in through ``now``, the query backend per call.

Why: the history is ``sum``/``count`` of ``up`` by job at one point a minute over 24 h. Asked
whole on every page view, that is two range queries over every ``up`` series for 1,440 steps:
at 1,000 nodes (1,009 ``up`` series, the kubelet's one per node) 0.7-2.6 s of Prometheus time
per view at load 7, the slowest page of the console tour on the scale sandbox (docs/scale.md).
Points long past do not change, so they are asked once: the points sit on a grid (multiples of
the step since the epoch, so two answers share them), a point is kept once it is ``settle``
seconds old (a scrape in flight when it was first asked may still land before it), and each
answer asks Prometheus only for the grid points it has not kept yet -- after the first, a
couple of steps. The current state is an instant query at ``now`` asked beside them, and it is
also the history's last point, so the state and the run it ends agree by construction.

The newest whole answer is kept too (:attr:`ScrapedHistory.latest`): when Prometheus is slow to
answer a page view, the components service shows that reading, saying how old it is, rather
than keep the page waiting (docs/components.md, "When Prometheus is slow").
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hub.collectors.prometheus import QueryBackend, QuerySpec

WINDOW = 24 * 3600.0
MAX_CHANGES = 512  # per hub-probed component: a probe flapping every minute fills 8.5 h of it

Counts = tuple[float, float]  # (targets up, targets) of one job at one time


@dataclass(frozen=True)
class Segment:
    """A run of one state over [start, end)."""

    start: float
    end: float
    state: str

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "state": self.state}


def segments(points: Sequence[tuple[float, str]], *, start: float, end: float, step: float) -> list[Segment]:
    """Runs of equal state from time-ordered (time, state) points, each point standing for
    [t, t + step). A missing point (no series: Prometheus saw no target of the job then) is
    "unknown". Clipped to [start, end]; a point at ``end`` (the current state) is kept as a
    zero-length run when it differs from the one before, so the current state always has one."""
    out: list[Segment] = []

    def push(a: float, b: float, state: str) -> None:
        a, b = max(a, start), min(b, end)
        if b < a or (b == a and a != end):
            return  # outside the window; a point at ``end`` itself stays, as a zero-length run
        if out and out[-1].state == state and abs(out[-1].end - a) < 1e-6:
            out[-1] = Segment(out[-1].start, b, state)
        elif out and out[-1].end > a:
            out.append(Segment(out[-1].end, b, state))
        else:
            out.append(Segment(a, b, state))

    cursor = start
    for t, state in points:
        if t - cursor > 1e-6:
            push(cursor, t, "unknown")
        push(t, t + step, state)
        cursor = t + step
    if end - cursor > 1e-6:
        push(cursor, end, "unknown")
    return out


def current_since(history: Sequence[Segment], state: str, floor: float) -> tuple[float | None, bool]:
    """When the current state's run began (the last segment of another state ends there), and
    whether it began at or before ``floor`` (the earliest history known)."""
    if not history or history[-1].state != state:
        return None, False
    since = history[-1].start
    for seg in reversed(history[:-1]):
        if seg.state != state:
            break
        since = seg.start
    return since, since <= floor + 1e-6


class ProbeLog:
    """State changes of the hub-probed components, bounded (``MAX_CHANGES`` per component,
    ``WINDOW`` of age, the last change before the window kept as the run's start)."""

    def __init__(self, *, started: float, max_changes: int = MAX_CHANGES) -> None:
        self.started = started
        self._max = max_changes
        self._changes: dict[str, deque[tuple[float, str]]] = {}
        self._lock = threading.Lock()

    def record(self, name: str, state: str, now: float) -> None:
        with self._lock:
            log = self._changes.setdefault(name, deque(maxlen=self._max))
            if not log or log[-1][1] != state:
                log.append((now, state))
            while len(log) > 1 and log[1][0] <= now - WINDOW:
                log.popleft()

    def history(self, name: str, now: float) -> tuple[list[Segment], float]:
        """(segments from the changes, the earliest time the log covers for this component)."""
        with self._lock:
            log = list(self._changes.get(name, ()))
        if not log:
            return [], now
        floor = max(log[0][0], now - WINDOW)
        out = []
        for i, (t, state) in enumerate(log):
            last = i + 1 == len(log)
            end = now if last else log[i + 1][0]
            if end > floor or last:  # the current run, even if it began this instant
                out.append(Segment(max(t, floor), max(end, t), state))
        return out, floor


@dataclass(frozen=True)
class Reading:
    """One whole answer of :meth:`ScrapedHistory.read`: each job's counts at ``at`` and each
    job's points over the window ending there."""

    at: float
    current: Mapping[str, Counts]
    points: Mapping[str, Sequence[tuple[float, Counts]]]


class ScrapedHistory:
    """Grid points of (up, count) per job over the last ``window`` seconds, for one selector."""

    def __init__(self, *, window: float, step: float, settle: float | None = None) -> None:
        self.window, self.step = window, step
        self.settle = 2 * step if settle is None else settle
        self._selector = ""
        self._points: dict[float, dict[str, Counts]] = {}  # grid time -> job -> counts
        self._kept_until: float | None = None  # the latest grid point kept for good
        self._latest: Reading | None = None
        self._lock = threading.Lock()

    @property
    def latest(self) -> Reading | None:
        """The newest answer :meth:`read` gave (by its ``now``), None before the first."""
        with self._lock:
            return self._latest

    def read(
        self, backend: QueryBackend, selector: str, now: float, *, timeout: float
    ) -> tuple[dict[str, Counts], dict[str, list[tuple[float, Counts]]]]:
        """(each job's counts at ``now``, each job's time-ordered points over the window ending
        at ``now``, the last one at ``now``). One ``many`` call: the instant pair at ``now`` and
        the range pair over the grid points not kept yet. Raises what the backend raises."""
        first = math.floor((now - self.window) / self.step) * self.step  # its run covers now - window
        last = math.floor(now / self.step) * self.step
        with self._lock:
            if selector != self._selector or (self._kept_until is not None and self._kept_until > now):
                self._selector, self._points, self._kept_until = selector, {}, None  # asked anew
                self._latest = None
            start = first if self._kept_until is None else max(first, self._kept_until + self.step)
        up, count = f"sum by (job) ({selector})", f"count by (job) ({selector})"
        specs = [QuerySpec(up, time=now), QuerySpec(count, time=now)]
        if start <= last:
            specs += [QuerySpec(q, start=start, end=last, step=self.step) for q in (up, count)]
        frames = backend.many(specs, timeout=timeout)
        current = _by_job(frames[0], frames[1]).get(now, {})
        with self._lock:
            if len(frames) > 2:
                asked = _by_job(frames[2], frames[3])
                for t in _grid(start, last, self.step):
                    self._points[t] = asked.get(t, {})  # no series then: no target of any job
                settled = math.floor((now - self.settle) / self.step) * self.step
                if settled >= start:
                    self._kept_until = max(settled, self._kept_until or settled)
            for t in [t for t in self._points if t < first]:
                del self._points[t]
            kept = sorted(self._points.items())
        history: dict[str, list[tuple[float, Counts]]] = {}
        for t, jobs in [*kept, (now, current)]:
            for job, counts in jobs.items():
                history.setdefault(job, []).append((t, counts))
        with self._lock:
            if self._selector == selector and (self._latest is None or self._latest.at <= now):
                self._latest = Reading(now, current, history)
        return current, history


def _grid(start: float, last: float, step: float) -> list[float]:
    return [start + i * step for i in range(round((last - start) / step) + 1)]


def _by_job(up: pd.DataFrame, count: pd.DataFrame) -> dict[float, dict[str, Counts]]:
    """time -> job -> (up, count) from the two answers (frames with job, timestamp, value)."""
    ups = _rows(up)
    out: dict[float, dict[str, Counts]] = {}
    for (t, job), n in _rows(count).items():
        out.setdefault(t, {})[job] = (ups.get((t, job), 0.0), n)
    return out


def _rows(frame: pd.DataFrame) -> Mapping[tuple[float, str], float]:
    if frame.empty or "job" not in frame.columns:
        return {}
    jobs: Sequence[str] = frame["job"].tolist()
    times: Sequence[float] = frame["timestamp"].tolist()
    values: Sequence[float] = frame["value"].tolist()
    return {(float(t), str(j)): float(v) for t, j, v in zip(times, jobs, values, strict=True)}
