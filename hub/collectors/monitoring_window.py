"""A window statistic's ranking table from kept points instead of one subquery per step (no I/O
of its own: the monitoring service passes in the query backend that asks Prometheus).

Why: a live ranking by a window statistic (``window=24h&stat=avg``) is one table per subquery
step (:mod:`hub.collectors.monitoring_view`), and each table was one evaluation of
``avg_over_time((e)[1d:5m])``, i.e. of ``e`` at 288 times. At 20,000 pods one such evaluation of
the workload level (every pod's rate joined to its owner) took Prometheus 104 s at load 7, more
than any request may wait and close to what a background build may take, so the 24 h workload
ranking never came. The next step's table needs 287 of the same 288 points. So the points are
kept here, per (cluster, level, metric, window), and a table asks Prometheus only for the points
it does not hold yet -- the first time the whole window in range queries of
:data:`CHUNK_STEPS` points each (each well inside a request's timeout, and each kept as soon as
it came, so a build cut short by its budget leaves its progress to the next one), then one or
two points per step.

Why the answer is the subquery's: Prometheus 2.x evaluates ``(e)[w:s]`` at time ``t`` at the
multiples of ``s`` in ``[t - w, t]`` (both ends included), and a range query of ``e`` with its
start and end on those multiples and step ``s`` evaluates ``e`` at exactly those times. The
statistics then follow PromQL's ``*_over_time`` rules: ``avg`` is NaN when any point is NaN,
``max``/``min`` skip NaN points unless every point is NaN, a quantile sorts NaN first and
interpolates at rank ``q·(n−1)``. The integration test compares the table's values with
Prometheus's own subquery at the same time.

A point is kept for good once it was evaluated :data:`SETTLE_SECONDS` after its time (scrapes
that came late can no longer change it); a younger one is asked for again by the next table.
Only the levels of :data:`STEPPED_LEVELS` keep points: their entities are objects (nodes,
workloads, namespaces), hundreds to a few thousand; a pod level would keep 20,000 series × 288
points, so pods and containers keep the subquery.

A set of points belongs to the expression it was asked with: when the catalogue gives another
(a cluster moved to recorded series, a changed rate), the set starts again. The final points
outlive the process: :meth:`SteppedWindows.snapshot` gives them as bytes (an ``.npz`` archive of
plain arrays and a JSON manifest, no pickles) and :meth:`SteppedWindows.restore` takes them back,
so a restarted hub does not spend its first minutes (5.5-6.5 min at 20,000 pods, docs/scale.md)
asking Prometheus for whole windows again. ``kubehub serve`` writes them at shutdown
(hub/runtime/monitoring.py).

About 410 lines because the points, the statistics over them and their snapshot share one
private layout (:class:`_Point`, the grid) that no other module should see.
"""

from __future__ import annotations

import io
import json
import math
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pandas as pd

from hub.collectors.catalogue import STATS, Catalogue, Filters, resolution
from hub.collectors.prometheus import QueryBackend, Vector
from hub.errors import HubError

STEPPED_LEVELS = frozenset({"nodes", "workspaces", "namespaces", "workloads"})
# Points per range query while filling a window: 24 five-minute points are 2 h of a 24 h window,
# about 9 s of Prometheus at the measurement above; each chunk is kept when it arrives.
CHUNK_STEPS = 24
# Seconds after its time from which a point is final (two scrapes of the slowest usual interval).
SETTLE_SECONDS = 120.0
# Window point sets kept (least recently used dropped first): a few metrics × windows × clusters.
KEPT_WINDOWS = 32
# The snapshot's layout; another number is not read (the points are asked for again instead).
SNAPSHOT_FORMAT = 1

_LABEL_SKIP = frozenset({"series", "timestamp", "value"})

Identity = tuple[tuple[str, str], ...]  # a series' labels, sorted
# (cluster, its cluster label on a shared endpoint, level, metric, window seconds)
WindowKey = tuple[str, str, str, str, float]


@dataclass(frozen=True)
class _Point:
    """Every series' value at one time of the grid, and when Prometheus was asked for it."""

    series: tuple[Identity, ...]
    values: np.ndarray
    final: bool
    evaluated_at: float = math.inf  # restored points are final, whenever they were asked for


def grid(at: float, window: float, step: int) -> list[int]:
    """The times (whole seconds) at which Prometheus evaluates ``(e)[window:step]`` at ``at``:
    the multiples of ``step`` in ``[at - window, at]``, worked out in milliseconds, the
    resolution at which Prometheus compares them."""
    at_ms = math.floor(at * 1000)
    step_ms = step * 1000
    first = -((-(at_ms - round(window * 1000))) // step_ms) * step_ms  # ceil to the step
    last = (at_ms // step_ms) * step_ms
    return [t // 1000 for t in range(first, last + 1, step_ms)]


class WindowPoints:
    """The points of one (cluster, level, metric, window) kept between tables (thread-safe)."""

    def __init__(self, step: int, expr: str = "") -> None:
        self.step = step
        self.expr = expr  # the inner expression the points are values of
        self._points: dict[int, _Point] = {}
        self._lock = threading.Lock()

    def wanted(self, times: list[int]) -> list[tuple[int, int]]:
        """(start, end) of the range queries that fetch the times a table over ``times`` lacks:
        runs of consecutive grid times, at most :data:`CHUNK_STEPS` points each. A point not
        kept for good is asked for again unless it was asked for at the window's newest time or
        later: a table is the answer for its whole subquery step (monitoring.py keeps it until
        the step ends), so a point asked for within that step is as good as one asked for now
        (and the points a restart's catch-up asked for serve the first table after it)."""
        newest = times[-1] if times else math.inf
        with self._lock:
            todo = [t for t in times if not ((p := self._points.get(t)) and (p.final or p.evaluated_at >= newest))]
        chunks: list[tuple[int, int]] = []
        for t in todo:
            if chunks and t == chunks[-1][1] + self.step and (t - chunks[-1][0]) // self.step < CHUNK_STEPS:
                chunks[-1] = (chunks[-1][0], t)
            else:
                chunks.append((t, t))
        return chunks

    def put(self, start: int, end: int, frame: pd.DataFrame, *, evaluated_at: float) -> None:
        """Keep a range answer's points for every grid time in ``[start, end]`` (a time where
        no series had a value is kept too, as empty)."""
        by_time: dict[int, tuple[list[Identity], list[float]]] = {t: ([], []) for t in range(start, end + 1, self.step)}
        if not frame.empty:
            labels = [c for c in frame.columns if c not in _LABEL_SKIP]
            identities = _identities(frame, labels)
            stamps = np.rint(frame["timestamp"].to_numpy(dtype=float)).astype(np.int64)
            for identity, stamp, value in zip(identities, stamps, frame["value"].to_numpy(dtype=float), strict=True):
                slot = by_time.get(int(stamp))
                if slot is not None:
                    slot[0].append(identity)
                    slot[1].append(value)
        with self._lock:
            for t, (series, values) in by_time.items():
                final = evaluated_at - t >= SETTLE_SECONDS
                self._points[t] = _Point(tuple(series), np.asarray(values, dtype=float), final, evaluated_at)

    def forget_before(self, first: int) -> None:
        """Drop the points older than the window's first time."""
        with self._lock:
            for t in [t for t in self._points if t < first]:
                del self._points[t]

    def statistic(self, times: list[int], stat: str, *, at: float) -> Vector:
        """``stat`` over the points at ``times`` for every series with at least one of them, as
        the instant answer of ``<stat>_over_time((e)[window:step]) >= -Inf`` at ``at`` (NaN
        results dropped). Every time must have been fetched (:meth:`put`), final or not."""
        with self._lock:
            points = [self._points[t] for t in times]
        index: dict[Identity, int] = {}
        for point in points:
            for identity in point.series:
                index.setdefault(identity, len(index))
        matrix = np.full((len(index), len(points)), np.nan)
        present = np.zeros((len(index), len(points)), dtype=bool)
        for column, point in enumerate(points):
            rows = np.fromiter((index[i] for i in point.series), dtype=np.int64, count=len(point.series))
            matrix[rows, column] = point.values
            present[rows, column] = True
        values = over_time(matrix, present, stat)
        keep = ~np.isnan(values)
        identities = [identity for identity, kept in zip(index, keep, strict=True) if kept]
        return Vector(
            tuple(dict(identity) for identity in identities),
            tuple(at for _ in identities),
            tuple(float(v) for v in values[keep]),
        )


def _time_left(until: float, now: Callable[[], float]) -> Callable[[], float]:
    """Seconds left until ``until`` (at least a millisecond: a query then fails at once)."""
    return lambda: max(0.001, until - now())


def over_time(matrix: np.ndarray, present: np.ndarray, stat: str) -> np.ndarray:
    """Per row, ``stat`` over the row's present points with PromQL's NaN rules (module
    docstring); a row without points is NaN."""
    how = STATS[stat]
    counts = present.sum(axis=1)
    out = np.full(matrix.shape[0], np.nan)
    has = counts > 0
    if isinstance(how, float):
        for row in np.flatnonzero(has):
            out[row] = _quantile(how, matrix[row, present[row]])
        return out
    if how == "avg":
        summed = np.where(present, matrix, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[has] = summed[has] / counts[has]
        return out
    # max/min skip NaN points: the matrix is NaN where a row has no point too, so a row's valid
    # values are its non-NaN cells, and a row without any is NaN.
    valid = ~np.isnan(matrix)
    reduce = np.max if how == "max" else np.min
    reduced = reduce(np.where(valid, matrix, -np.inf if how == "max" else np.inf), axis=1)
    return np.where(valid.any(axis=1), reduced, np.nan)


def _quantile(q: float, values: np.ndarray) -> float:
    """PromQL's quantile of points: NaN sorted first, linear between the two nearest ranks."""
    ordered = np.concatenate([values[np.isnan(values)], np.sort(values[~np.isnan(values)])])
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return float(ordered[lower] * (1 - weight) + ordered[upper] * weight)


def _identities(frame: pd.DataFrame, labels: list[str]) -> list[Identity]:
    """Each row's label set (sorted pairs, absent labels left out), one tuple per series."""
    columns = [frame[c].to_numpy(dtype=object) for c in labels]
    if "series" in frame.columns:
        out: list[Identity] = []
        known: dict[int, Identity] = {}
        for row, series in enumerate(frame["series"].to_numpy()):
            identity = known.get(int(series))
            if identity is None:
                identity = known[int(series)] = _row_identity(labels, columns, row)
            out.append(identity)
        return out
    return [_row_identity(labels, columns, row) for row in range(len(frame))]


def _row_identity(labels: list[str], columns: list[np.ndarray], row: int) -> Identity:
    pairs = ((name, column[row]) for name, column in zip(labels, columns, strict=True))
    return tuple(sorted((name, value) for name, value in pairs if isinstance(value, str) and value))


class SteppedWindows:
    """The kept points of every stepped window ranking (bounded: :data:`KEPT_WINDOWS` sets)."""

    def __init__(self) -> None:
        self._sets: OrderedDict[WindowKey, WindowPoints] = OrderedDict()
        self._lock = threading.Lock()

    def points(self, key: WindowKey, step: int, expr: str = "") -> WindowPoints:
        """The set of ``key``; a new one if it was kept for another step or expression."""
        with self._lock:
            found = self._sets.get(key)
            if found is None or found.step != step or found.expr != expr:
                found = self._sets[key] = WindowPoints(step, expr)
            self._sets.move_to_end(key)
            while len(self._sets) > KEPT_WINDOWS:
                self._sets.popitem(last=False)
            return found

    def keys(self) -> list[WindowKey]:
        """The keys of the sets kept, least recently used first."""
        with self._lock:
            return list(self._sets)

    def catch_up(
        self,
        catalogue: Catalogue,
        backend_of: Callable[[str], QueryBackend],
        *,
        at: float,
        now: Callable[[], float],
        budget: float,
    ) -> tuple[int, list[str]]:
        """Ask for the points every kept set lacks for its window ending ``at`` (after a restart:
        those since the last stop), each set within ``budget`` seconds; how many sets are whole,
        and why each other one is not. Why: the points a restart read back end at the stop, so
        the first ranking after it waited for the rest (20-40 s at 20,000 pods under load,
        docs/scale.md); asked for here, at start, that caller finds them kept."""
        whole, problems = 0, []
        for key in self.keys():
            cluster, label, level, metric, window = key
            remaining = _time_left(now() + budget, now)
            try:
                self._filled(
                    key, catalogue, backend_of(cluster), Filters(cluster=cluster, cluster_label=label),
                    at=at, remaining=remaining, now=now,
                )  # fmt: skip
            except HubError as exc:
                problems.append(f"{level}/{metric} over {window:g} s: {exc.message}")
                continue
            whole += 1
        return whole, problems

    def snapshot(self, out: BinaryIO) -> None:
        """Write the final points of every set to ``out`` as an ``.npz`` archive: a JSON manifest
        (per set its key, step, expression, series and times) and, per set, the series index and
        value of every point, time after time. Points not yet final are left out."""
        with self._lock:
            sets = list(self._sets.items())
        manifest: list[dict[str, object]] = []
        arrays: dict[str, np.ndarray] = {}
        for n, (key, kept) in enumerate(sets):
            with kept._lock:
                final = sorted(((t, p) for t, p in kept._points.items() if p.final), key=lambda tp: tp[0])
            if not final:
                continue
            # Consecutive points mostly hold the same series: their index rows are made once.
            index: dict[Identity, int] = {}
            rows: list[np.ndarray] = []
            last: tuple[Identity, ...] | None = None
            for _, point in final:
                if point.series != last:
                    for identity in point.series:
                        index.setdefault(identity, len(index))
                    made = np.fromiter((index[i] for i in point.series), dtype=np.int32, count=len(point.series))
                    last = point.series
                rows.append(made)
            manifest.append(
                {
                    "key": list(key),
                    "step": kept.step,
                    "expr": kept.expr,
                    "series": [[list(pair) for pair in identity] for identity in index],
                    "times": [t for t, _ in final],
                    "counts": [len(p.series) for _, p in final],
                    "arrays": n,
                }
            )
            arrays[f"rows{n}"] = np.concatenate(rows)
            arrays[f"values{n}"] = np.concatenate([p.values for _, p in final]).astype(float)
        head = json.dumps({"format": SNAPSHOT_FORMAT, "sets": manifest}).encode()
        arrays["manifest"] = np.frombuffer(head, dtype=np.uint8)
        np.savez(out, allow_pickle=False, **arrays)

    def restore(self, source: bytes | BinaryIO) -> int:
        """Take back the sets of :meth:`snapshot` (kept ones of the same key are replaced); the
        number of points restored. Raises ValueError for bytes that are not such a snapshot;
        nothing is changed then."""
        try:
            with np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False) as archive:
                head = json.loads(archive["manifest"].tobytes())
                found = head.get("format") if isinstance(head, dict) else None
                if found != SNAPSHOT_FORMAT:
                    raise ValueError(f"format {found}, this hub reads {SNAPSHOT_FORMAT}")
                restored: list[tuple[WindowKey, WindowPoints]] = []
                for entry in head["sets"]:
                    cluster, label, level, metric, window = entry["key"]
                    key: WindowKey = (str(cluster), str(label), str(level), str(metric), float(window))
                    kept = WindowPoints(int(entry["step"]), str(entry["expr"]))
                    series = [tuple((str(n), str(v)) for n, v in identity) for identity in entry["series"]]
                    rows = archive[f"rows{entry['arrays']}"].tolist()  # plain ints: a fast lookup each
                    values = archive[f"values{entry['arrays']}"].astype(float)
                    if rows and min(rows) < 0:
                        raise ValueError("a negative series index")
                    shown: list[int] = []
                    at = 0
                    ids: tuple[Identity, ...] = ()
                    for t, count in zip(entry["times"], entry["counts"], strict=True):
                        part = rows[at : at + count]
                        if len(part) != len(ids) or part != shown:  # else the same series as before
                            ids, shown = tuple([series[r] for r in part]), part
                        kept._points[int(t)] = _Point(ids, values[at : at + count].copy(), True)
                        at += count
                    if at != len(rows) or len(rows) != len(values):
                        raise ValueError("its arrays do not match its manifest")
                    restored.append((key, kept))
        except (ValueError, OSError, EOFError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a window snapshot: {exc}") from exc
        with self._lock:
            for key, kept in restored[-KEPT_WINDOWS:]:
                self._sets[key] = kept
                self._sets.move_to_end(key)
            while len(self._sets) > KEPT_WINDOWS:
                self._sets.popitem(last=False)
        return sum(len(kept._points) for _, kept in restored)

    def statistic(
        self,
        key: WindowKey,
        catalogue: Catalogue,
        backend: QueryBackend,
        filters: Filters,
        *,
        stat: str,
        at: float,
        remaining: Callable[[], float],
        now: Callable[[], float],
    ) -> Vector:
        """``stat`` over the window ending at ``at`` for every series of the metric and window
        ``key`` names, asking ``backend`` for the points not kept for
        good, in range queries each given what is ``remaining`` of the caller's budget. A failed
        query raises; the chunks that came before it stay kept."""
        points, times = self._filled(key, catalogue, backend, filters, at=at, remaining=remaining, now=now)
        return points.statistic(times, stat, at=at)

    # fmt: off
    def _filled(
        self, key: WindowKey, catalogue: Catalogue, backend: QueryBackend, filters: Filters, *,
        at: float, remaining: Callable[[], float], now: Callable[[], float],
    ) -> tuple[WindowPoints, list[int]]:
        # fmt: on
        """The set of ``key`` with every point of its window ending at ``at`` asked for, and
        that window's times (:meth:`statistic` says how)."""
        _, _, level, metric, window = key
        step = resolution(window)
        inner = catalogue.expr(level, metric, filters, rate_seconds=2 * step)  # window_expr's inner
        points = self.points(key, step, inner)
        times = grid(at, window, step)
        if times:  # a window's worth before this one stays for a build still under way
            points.forget_before(times[0] - round(window))
        # Newest first: a build cut short still leaves the points every next table needs.
        for start, end in reversed(points.wanted(times)):
            frame = backend.range(inner, start=start, end=end, step=step, timeout=remaining())
            points.put(start, end, frame, evaluated_at=now())
        return points, times
