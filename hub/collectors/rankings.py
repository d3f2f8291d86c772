"""Rankings with pandas: order entities by a metric, break ties by name, missing values last.

Pure functions over frames (no I/O), so that ordering, paging and the ``topk`` shortcut are
tested without Prometheus. The monitoring service decides which rows to fetch; these decide the
order.

The shortcut: asking Prometheus for ``topk(n + slack, expr)`` instead of every entity keeps a
20,000-pod ranking as cheap as the raw ``topk``. :func:`topk_is_exact` says when that answer is
enough to order the first ``n`` entities exactly by (value, name); when a tie at the boundary
could reach past what was fetched, the caller fetches the entities at least as good as the
boundary value (:func:`boundary_value`) and orders those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def key_tuples(frame: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, ...]]:
    """The entity key of every row (an absent label is "", as in PromQL)."""
    arrays = [
        frame[k].to_numpy(dtype=object) if k in frame.columns else np.full(len(frame), "", dtype=object) for k in keys
    ]
    return list(zip(*arrays, strict=True)) if arrays else [() for _ in range(len(frame))]


def _keyed(keys: Sequence[str], tuples: Sequence[tuple[str, ...]], values: np.ndarray) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for i, k in enumerate(keys):
        data[k] = np.array([t[i] for t in tuples], dtype=object)
    data["value"] = np.asarray(values, dtype=float)
    return pd.DataFrame(data)


def entity_values(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per entity: the key columns and ``value`` (the last sample of each series;
    if Prometheus returned the same entity twice, the larger value).

    Frames come ordered by series, then time (as Prometheus answers and the adapter keeps
    them), so the last sample of each series is where the series id changes.
    """
    cols = list(keys)
    if frame.empty:
        return _keyed(cols, [], np.empty(0))
    series = frame["series"].to_numpy()
    ends = np.flatnonzero(np.r_[series[1:] != series[:-1], True])
    last = frame.iloc[ends] if len(ends) != len(frame) else frame
    tuples = key_tuples(last, cols)
    values = last["value"].to_numpy(dtype=float)
    if not cols:
        return _keyed(cols, tuples[:1], values[:1])
    if len(set(tuples)) != len(tuples):  # rare: the same entity in two series
        best: dict[tuple[str, ...], float] = {}
        for key, value in zip(tuples, values, strict=True):
            if key not in best or value > best[key] or np.isnan(best[key]):
                best[key] = value
        tuples, values = list(best), np.array(list(best.values()), dtype=float)
    return _keyed(cols, tuples, values)


def rank(
    values: pd.DataFrame,
    keys: Sequence[str],
    *,
    descending: bool = True,
    universe: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every entity in rank order: by value (``descending`` or not), ties by the key labels in
    order (ascending, "by name"), then entities without a value (NaN, or only in ``universe``)
    last, themselves by name. Returns the key columns and ``value``."""
    cols = list(keys)
    tuples = key_tuples(values, cols)
    vals = pd.to_numeric(values["value"], errors="coerce").to_numpy(dtype=float) if len(values) else np.empty(0)
    seen: dict[tuple[str, ...], int] = {}
    for i, key in enumerate(tuples):
        seen.setdefault(key, i)
    if len(seen) != len(tuples):
        keep = sorted(seen.values())
        tuples, vals = [tuples[i] for i in keep], vals[keep]
    if universe is not None and not universe.empty:
        extra = [key for key in dict.fromkeys(key_tuples(universe, cols)) if key not in seen]
        tuples = tuples + extra
        vals = np.concatenate([vals, np.full(len(extra), np.nan)])
    if not tuples:
        return _keyed(cols, [], np.empty(0))
    missing = np.isnan(vals)
    # One lexicographic sort: missing last, then the value (negated for descending), then
    # the names in key order (np.lexsort takes its most significant key last).
    primary = np.where(missing, 0.0, -vals if descending else vals)
    names = [np.array([t[i] for t in tuples], dtype=object).astype(str) for i in range(len(cols))]
    order = np.lexsort((*reversed(names), primary, missing))
    return _keyed(cols, [tuples[i] for i in order], vals[order])


def page_of(ranked: pd.DataFrame, *, page: int, limit: int) -> pd.DataFrame:
    """Rows of 1-based ``page`` with ``limit`` rows per page (empty past the end)."""
    start = (page - 1) * limit
    return ranked.iloc[start : start + limit].reset_index(drop=True)


def topk_is_exact(values: pd.DataFrame, *, needed: int, fetched: int, descending: bool = True) -> bool:
    """Whether ``values`` (what ``topk(fetched, ...)``/``bottomk`` returned) order the first
    ``needed`` entities exactly.

    It is exact when Prometheus returned fewer than ``fetched`` values (it returned them all),
    or when the ``needed``-th best value is strictly better than the last one fetched: then no
    entity left out can tie with the ones on the page.
    """
    present = pd.to_numeric(values["value"], errors="coerce").dropna().to_numpy(dtype=float)
    if len(present) < fetched:
        return True
    if needed <= 0:
        return True
    ordered = np.sort(present)
    if descending:
        ordered = ordered[::-1]
    boundary, last = ordered[min(needed, len(ordered)) - 1], ordered[-1]
    return bool(boundary > last) if descending else bool(boundary < last)


def boundary_value(values: pd.DataFrame, *, needed: int, descending: bool = True) -> float:
    """The ``needed``-th best value (the last one that still makes the page)."""
    present = np.sort(pd.to_numeric(values["value"], errors="coerce").dropna().to_numpy(dtype=float))
    if descending:
        present = present[::-1]
    return float(present[min(needed, len(present)) - 1])


def slack(needed: int) -> int:
    """Extra rows asked of topk beyond the page so that a tie at the page boundary is
    usually resolved without a second query (a tenth, at least 5)."""
    return max(5, needed // 10)


def select(frame: pd.DataFrame, keys: Sequence[str], wanted: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose key labels are one of ``wanted``'s rows (an exact match of the
    whole key: the query may have fetched a superset, e.g. pods named alike in other
    namespaces). Row order is kept."""
    cols = list(keys)
    if not cols or frame.empty:
        return frame
    picked = set(key_tuples(wanted, cols))
    mask = np.fromiter((key in picked for key in key_tuples(frame, cols)), dtype=bool, count=len(frame))
    return frame if mask.all() else frame[mask]
