"""How the monitoring answer shows series (pure): a frame or an instant vector becomes the API's
``series`` list, keeping only a ranking page's entities in page order, and the page's entities
without a series become ``missing``; and which entities a page has (``entity_union``,
``narrow_to_page``). Apart from :mod:`hub.collectors.monitoring` so that module
stays the request pipeline (and under 600 lines)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hub.collectors import rankings
from hub.collectors.catalogue import Filters
from hub.collectors.prometheus import Vector, label_names


def series_of(
    frame: pd.DataFrame | Vector | None, keys: Sequence[str], page: Sequence[rankings.Key]
) -> tuple[list[dict[str, Any]], set[rankings.Key]]:
    """Frame -> API series and the entity keys they belong to. Levels with entities keep
    only the page's entities (an exact match of the whole key: a query narrowed to the page's
    names may return pods named alike in other namespaces) in page order; levels without
    entities order their series by labels.

    Plain lists from the frame's numpy columns: a page is a few dozen series, for which
    pandas indexing per series would cost more than the answer is worth.
    """
    if frame is None or frame.empty:
        return [], set()
    if isinstance(frame, Vector):
        return _vector_series(frame, keys, page)
    return _frame_series(frame, keys, page)


def _frame_series(
    frame: pd.DataFrame, keys: Sequence[str], page: Sequence[rankings.Key]
) -> tuple[list[dict[str, Any]], set[rankings.Key]]:
    labels = label_names(frame)
    ids = frame["series"].to_numpy()
    if len(ids) > 1 and bool((ids[1:] < ids[:-1]).any()):  # normally ordered by series, then time
        frame = frame.sort_values(["series", "timestamp"], kind="mergesort")
        ids = frame["series"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]).tolist()
    ends = [*starts[1:], len(ids)]
    ts = frame["timestamp"].to_numpy(dtype=float).tolist()
    raw = frame["value"].to_numpy(dtype=float)
    shown = raw.astype(object)
    shown[~np.isfinite(raw)] = None  # JSON has no NaN/Inf
    values = shown.tolist()
    columns = {label: frame[label].to_numpy(dtype=object) for label in labels}
    missing_label = np.full(len(ids), "", dtype=object)
    key_columns = [columns.get(k, missing_label) for k in keys]
    wanted = {key: n for n, key in enumerate(page)} if keys else {}
    out: list[tuple[Any, dict[str, Any], list[list[Any]]]] = []
    have: set[rankings.Key] = set()
    for i, (first, stop) in enumerate(zip(starts, ends, strict=True)):
        if keys:
            key = tuple(column[first] for column in key_columns)
            position = wanted.get(key)
            if position is None:
                continue
            have.add(key)
            rank: Any = (position, i)
        row = {label: column[first] for label, column in columns.items() if column[first] != ""}
        if not keys:
            rank = tuple(sorted(row.items()))
        out.append((rank, row, [[t, v] for t, v in zip(ts[first:stop], values[first:stop], strict=True)]))
    out.sort(key=lambda item: item[0])
    return [{"labels": row, "values": points} for _, row, points in out], have


def _vector_series(
    vector: Vector, keys: Sequence[str], page: Sequence[rankings.Key]
) -> tuple[list[dict[str, Any]], set[rankings.Key]]:
    """:func:`_series` of an instant :class:`Vector`, with the same answer a frame of it gives:
    labels in name order without empty ones, one ``[time, value]`` point (None for NaN/±Inf)."""
    wanted = {key: n for n, key in enumerate(page)} if keys else {}
    out: list[tuple[Any, dict[str, Any], list[list[Any]]]] = []
    have: set[rankings.Key] = set()
    for i, (labels, ts, value) in enumerate(zip(vector.metrics, vector.timestamps, vector.values, strict=True)):
        row = {name: labels[name] for name in sorted(labels) if labels[name] != ""}
        if keys:
            key = tuple(labels.get(k, "") for k in keys)
            position = wanted.get(key)
            if position is None:
                continue
            have.add(key)
            rank: Any = (position, i)
        else:
            rank = tuple(sorted(row.items()))
        out.append((rank, row, [[ts, value if math.isfinite(value) else None]]))
    out.sort(key=lambda item: item[0])
    return [{"labels": row, "values": points} for _, row, points in out], have


def missing_of(have: set[rankings.Key], keys: Sequence[str], page: Sequence[rankings.Key]) -> list[dict[str, str]]:
    """Entities of the page for which the metric has no series."""
    if not keys:
        return []
    return [dict(zip(keys, (str(v) for v in key), strict=True)) for key in dict.fromkeys(page) if key not in have]


# Filters field -> the entity label it restricts (used to narrow a query to one page).
FILTER_LABEL = {
    "nodes": "node",
    "workspaces": "workspace",
    "namespaces": "namespace",
    "kinds": "kind",
    "workloads": "workload",
    "pods": "pod",
    "containers": "container",
}


def entity_union(frames: Any, keys: Sequence[str]) -> list[rankings.Key]:
    """Every entity present in any of the frames, sorted by name."""
    found: set[rankings.Key] = set()
    for frame in frames:
        if frame is not None and not frame.empty and keys:
            found.update(rankings.key_tuples(frame, keys))
    return sorted(found)


def narrow_to_page(filters: Filters, keys: Sequence[str], page: Sequence[rankings.Key]) -> Filters:
    """``filters`` further restricted to the names on one page (then joined exactly)."""
    names: dict[str, list[str]] = {}
    for field_name, label in FILTER_LABEL.items():
        if label in keys:
            at = list(keys).index(label)
            names[field_name] = sorted({str(key[at]) for key in page if key[at]})
    return filters.narrowed(**names)
