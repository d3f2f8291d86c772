"""The scraped components' 24 h history, kept between answers and extended by its new points
only (pure, clock passed in through ``now``; the query backend is given per call).

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
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

import pandas as pd

from hub.collectors.prometheus import QueryBackend, QuerySpec

Counts = tuple[float, float]  # (targets up, targets) of one job at one time


class ScrapedHistory:
    """Grid points of (up, count) per job over the last ``window`` seconds, for one selector."""

    def __init__(self, *, window: float, step: float, settle: float | None = None) -> None:
        self.window, self.step = window, step
        self.settle = 2 * step if settle is None else settle
        self._selector = ""
        self._points: dict[float, dict[str, Counts]] = {}  # grid time -> job -> counts
        self._kept_until: float | None = None  # the latest grid point kept for good
        self._lock = threading.Lock()

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
