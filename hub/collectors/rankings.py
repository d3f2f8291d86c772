"""Rankings with pandas: order entities by a metric, break ties by name, missing values last.

Pure functions over frames (no I/O), so that ordering, paging and the ``topk`` shortcut are
tested without Prometheus. The monitoring service decides which rows to fetch; these decide the
order.

The shortcut: asking Prometheus for ``topk(n + slack, expr)`` instead of every entity keeps a
20,000-pod ranking as cheap as the raw ``topk``. :func:`topk_is_exact` says when that answer is
enough to order the first ``n`` entities exactly by (value, name); when ties at the boundary
could reach past what was fetched, the caller fetches every value instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Page:
    """One page of a ranking: ``keys`` is a frame of the entity labels in rank order with a
    ``value`` column (NaN for entities without a value); ``total`` counts every entity."""

    keys: pd.DataFrame
    total: int


def entity_values(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per entity: the key columns and ``value`` (the last sample of each series;
    if Prometheus returned the same entity twice, the larger value)."""
    cols = list(keys)
    if frame.empty:
        return pd.DataFrame({**{k: pd.Series([], dtype=object) for k in cols}, "value": pd.Series([], dtype=float)})
    data = frame.copy()
    for k in cols:
        if k not in data.columns:
            data[k] = ""
    data = data.sort_values(["series", "timestamp"]).drop_duplicates("series", keep="last")
    if not cols:
        return data[["value"]].head(1).reset_index(drop=True)
    out = data.groupby(cols, sort=False, dropna=False)["value"].max().reset_index()
    return out[[*cols, "value"]]


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
    frame = values[[*cols, "value"]].copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    if universe is not None and not universe.empty:
        extra = universe[cols].drop_duplicates()
        merged = extra.merge(frame[cols], on=cols, how="left", indicator=True)
        absent = merged.loc[merged["_merge"] == "left_only", cols]
        if not absent.empty:
            absent = absent.assign(value=np.nan)
            frame = pd.concat([frame, absent], ignore_index=True)
    frame = frame.drop_duplicates(cols, keep="first")
    missing = frame["value"].isna().to_numpy()
    # Sort key for value: negate for descending so that one ascending lexicographic sort
    # (value, then names) gives "largest first, ties by name".
    primary = frame["value"].to_numpy(dtype=float)
    primary = np.where(missing, 0.0, -primary if descending else primary)
    ordered = frame.assign(_missing=missing, _primary=primary)
    ordered = ordered.sort_values(["_missing", "_primary", *cols], kind="mergesort", na_position="last")
    return ordered[[*cols, "value"]].reset_index(drop=True)


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


def slack(needed: int) -> int:
    """Extra rows asked of topk beyond the page so that a tie at the page boundary is
    usually resolved without a second query (a tenth, at least 5)."""
    return max(5, needed // 10)


def select(frame: pd.DataFrame, keys: Sequence[str], wanted: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose key labels are one of ``wanted``'s rows (an exact join: the
    query may have fetched a superset, e.g. pods named alike in other namespaces)."""
    cols = list(keys)
    if not cols:
        return frame
    if frame.empty:
        return frame
    data = frame.copy()
    for k in cols:
        if k not in data.columns:
            data[k] = ""
    picked = wanted[cols].drop_duplicates()
    return data.merge(picked, on=cols, how="inner")
