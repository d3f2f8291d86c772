"""Rankings: order entities by a metric, break ties by name, missing values last.

Pure functions (no I/O), so that ordering, paging and the ``topk`` shortcut are tested without
Prometheus. The monitoring service decides which rows to fetch; these decide the order.

The service's hot path works on :class:`Entities` (key tuples and a float array): a ranking
page holds a few dozen entities, for which building pandas frames cost more than the ranking
itself (measured in-process: about 1.5 ms of frame construction and indexing per request
against a 3 ms raw ``topk``). The frame functions (:func:`entity_values`, :func:`rank`,
:func:`page_of`, :func:`select`, :func:`topk_is_exact`) are the same rules over frames, kept
for callers and tests that hold frames.

The shortcut: asking Prometheus for ``topk(n + slack, expr)`` instead of every entity keeps a
20,000-pod ranking as cheap as the raw ``topk``. :func:`is_exact` says when that answer is
enough to order the first ``n`` entities exactly by (value, name); when a tie at the boundary
could reach past what was fetched, the caller fetches the entities at least as good as the
boundary value (:func:`boundary_of`) and orders those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Key = tuple[str, ...]


@dataclass(frozen=True)
class Entities:
    """Entities in some order: their key tuples (label values in key order) and one value
    each (NaN: no value)."""

    keys: tuple[Key, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def page(self, *, page: int, limit: int) -> Entities:
        """Rows of 1-based ``page`` with ``limit`` rows per page (empty past the end)."""
        start = (page - 1) * limit
        return Entities(self.keys[start : start + limit], self.values[start : start + limit])

    def with_values(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))


def key_tuples(frame: pd.DataFrame, keys: Sequence[str]) -> list[Key]:
    """The entity key of every row (an absent label is "", as in PromQL)."""
    arrays = [
        frame[k].to_numpy(dtype=object) if k in frame.columns else np.full(len(frame), "", dtype=object) for k in keys
    ]
    return list(zip(*arrays, strict=True)) if arrays else [() for _ in range(len(frame))]


def last_values(frame: pd.DataFrame, keys: Sequence[str]) -> Entities:
    """One entry per entity: the last sample of each series (if Prometheus returned the same
    entity twice, the larger value), in answer order.

    Frames come ordered by series, then time (as Prometheus answers and the adapter keeps
    them), so the last sample of each series is where the series id changes.
    """
    if frame.empty:
        return Entities((), np.empty(0))
    series = frame["series"].to_numpy()
    ends = np.flatnonzero(np.r_[series[1:] != series[:-1], True])
    values = frame["value"].to_numpy(dtype=float)
    tuples = key_tuples(frame, keys)
    if len(ends) != len(frame):
        tuples = [tuples[i] for i in ends]
        values = values[ends]
    return _one_per_entity(tuples, values, keys)


def label_values(label_sets: Sequence[Mapping[str, str]], values: Sequence[float], keys: Sequence[str]) -> Entities:
    """:func:`last_values` of an instant answer held as one label set and one value per series
    (the adapter's ``Vector``): the ranking's hot path, with no frame to build."""
    if not label_sets:
        return Entities((), np.empty(0))
    tuples = [tuple(labels.get(k, "") for k in keys) for labels in label_sets]
    return _one_per_entity(tuples, np.asarray(values, dtype=float), keys)


def _one_per_entity(tuples: list[Key], values: np.ndarray, keys: Sequence[str]) -> Entities:
    if not keys:
        return Entities(tuple(tuples[:1]), values[:1])
    if len(set(tuples)) != len(tuples):  # rare: the same entity in two series
        best: dict[Key, float] = {}
        for key, value in zip(tuples, values, strict=True):
            if key not in best or value > best[key] or np.isnan(best[key]):
                best[key] = value
        tuples, values = list(best), np.array(list(best.values()), dtype=float)
    return Entities(tuple(tuples), np.asarray(values, dtype=float))


def order(values: Entities, *, descending: bool = True, universe: Sequence[Key] = ()) -> Entities:
    """Every entity in rank order: by value (``descending`` or not), ties by the key labels in
    order (ascending, "by name"), then entities without a value (NaN, or only in ``universe``)
    last, themselves by name. A key seen twice keeps its first value."""
    tuples = list(values.keys)
    vals = np.asarray(values.values, dtype=float)
    seen: dict[Key, int] = {}
    for i, key in enumerate(tuples):
        seen.setdefault(key, i)
    if len(seen) != len(tuples):
        keep = sorted(seen.values())
        tuples, vals = [tuples[i] for i in keep], vals[keep]
    if universe:
        extra = [key for key in dict.fromkeys(universe) if key not in seen]
        tuples = tuples + extra
        vals = np.concatenate([vals, np.full(len(extra), np.nan)])
    if not tuples:
        return Entities((), np.empty(0))
    missing = np.isnan(vals)
    primary = np.where(missing, 0.0, -vals if descending else vals)
    # Python's sort is stable and compares the key tuples by name, in key order: missing
    # last, then the value (negated for descending), then the names.
    ranked = sorted(range(len(tuples)), key=lambda i: (bool(missing[i]), float(primary[i]), tuples[i]))
    return Entities(tuple(tuples[i] for i in ranked), vals[ranked])


def is_exact(values: np.ndarray, *, needed: int, fetched: int, descending: bool = True) -> bool:
    """Whether ``values`` (what ``topk(fetched, ...)``/``bottomk`` returned) order the first
    ``needed`` entities exactly.

    It is exact when Prometheus returned fewer than ``fetched`` values (it returned them all),
    or when the ``needed``-th best value is strictly better than the last one fetched: then no
    entity left out can tie with the ones on the page.
    """
    present = np.asarray(values, dtype=float)
    present = present[~np.isnan(present)]
    if len(present) < fetched or needed <= 0:
        return True
    ordered = np.sort(present)
    if descending:
        ordered = ordered[::-1]
    boundary, last = ordered[min(needed, len(ordered)) - 1], ordered[-1]
    return bool(boundary > last) if descending else bool(boundary < last)


def boundary_of(values: np.ndarray, *, needed: int, descending: bool = True) -> float:
    """The ``needed``-th best value (the last one that still makes the page)."""
    present = np.asarray(values, dtype=float)
    present = np.sort(present[~np.isnan(present)])
    if descending:
        present = present[::-1]
    return float(present[min(needed, len(present)) - 1])


def slack(needed: int) -> int:
    """Extra rows asked of topk beyond the page so that a tie at the page boundary is
    usually resolved without a second query (a tenth, at least 5)."""
    return max(5, needed // 10)


# -- the same rules over frames ---------------------------------------------------------------


def _frame(keys: Sequence[str], entities: Entities) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for i, k in enumerate(keys):
        data[k] = np.array([t[i] for t in entities.keys], dtype=object)
    data["value"] = np.asarray(entities.values, dtype=float)
    return pd.DataFrame(data)


def _entities(frame: pd.DataFrame, keys: Sequence[str]) -> Entities:
    vals = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float) if len(frame) else np.empty(0)
    return Entities(tuple(key_tuples(frame, keys)), vals)


def entity_values(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """:func:`last_values` as a frame of the key columns and ``value``."""
    return _frame(keys, last_values(frame, keys))


def rank(
    values: pd.DataFrame,
    keys: Sequence[str],
    *,
    descending: bool = True,
    universe: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`order` over frames: the key columns and ``value`` of every entity in rank order."""
    extra = key_tuples(universe, keys) if universe is not None and not universe.empty else []
    return _frame(keys, order(_entities(values, keys), descending=descending, universe=extra))


def page_of(ranked: pd.DataFrame, *, page: int, limit: int) -> pd.DataFrame:
    """Rows of 1-based ``page`` with ``limit`` rows per page (empty past the end)."""
    start = (page - 1) * limit
    return ranked.iloc[start : start + limit].reset_index(drop=True)


def topk_is_exact(values: pd.DataFrame, *, needed: int, fetched: int, descending: bool = True) -> bool:
    """:func:`is_exact` over a frame's ``value`` column."""
    present = pd.to_numeric(values["value"], errors="coerce").to_numpy(dtype=float)
    return is_exact(present, needed=needed, fetched=fetched, descending=descending)


def boundary_value(values: pd.DataFrame, *, needed: int, descending: bool = True) -> float:
    """:func:`boundary_of` over a frame's ``value`` column."""
    present = pd.to_numeric(values["value"], errors="coerce").to_numpy(dtype=float)
    return boundary_of(present, needed=needed, descending=descending)


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
