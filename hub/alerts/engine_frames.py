"""Query frames prepared for evaluation (entity labels, keys and values as numpy arrays, rows
by namespace) and which rows a rule's target selects. Pure.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hub.alerts.engine_model import KIND_LABELS, NAME_LABELS, CompiledRule

COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
    "==": np.isclose,  # float equality with a tolerance: 0.1 + 0.2 == 0.3 should hold
    "!=": lambda a, b: ~np.isclose(a, b),
    "present": lambda a, b: np.ones(np.broadcast(a, b).shape, dtype=bool),  # a PromQL rule: any row breaches
}


@dataclass
class _Frame:
    """One query result prepared for matching: entity keys, values, labels, per-namespace rows.

    ``labels`` may be longer than the frame: a slice of a many-slot frame (SlotAggregates)
    shares its parent's labels and reads them from ``offset`` on, so that a replayed cycle
    copies nothing.
    """

    keys: np.ndarray
    values: np.ndarray
    labels: pd.DataFrame
    label_names: tuple[str, ...]
    by_namespace: dict[str, np.ndarray]
    all_rows: np.ndarray
    # For a frame that holds many slots (SlotAggregates): factorized namespace of every row and
    # the namespace names, from which a slice builds its own ``by_namespace``.
    namespaces: tuple[np.ndarray, Sequence[Any]] | None = None
    offset: int = 0
    _columns: dict[str, np.ndarray] = field(default_factory=dict)  # whole label columns, shared with slices
    _positions: dict[str | None, dict[str, int]] = field(default_factory=dict)

    def slice(self, lo: int, hi: int) -> _Frame:
        """Rows ``lo:hi`` as a frame of their own (row numbers start again at 0)."""
        by_ns: dict[str, np.ndarray] = {}
        if self.namespaces is not None:
            codes, names = self.namespaces
            by_ns = _rows_by_namespace(codes[lo:hi], names)
        return _Frame(
            self.keys[lo:hi],
            self.values[lo:hi],
            self.labels,
            self.label_names,
            by_ns,
            np.arange(hi - lo),
            offset=self.offset + lo,
            _columns=self._columns,
        )

    def has_label(self, name: str) -> bool:
        return name in self.labels.columns

    def column(self, name: str) -> np.ndarray:
        """A label column of this frame's rows, as an object array (the label must exist)."""
        whole = self._columns.get(name)
        if whole is None:
            whole = self._columns[name] = self.labels[name].to_numpy(dtype=object)
        return whole[self.offset : self.offset + len(self.keys)]

    def rows_for(self, namespace: str | None) -> np.ndarray:
        if namespace is None:
            return self.all_rows
        return self.by_namespace.get(namespace, _EMPTY)

    def positions(self, namespace: str | None) -> dict[str, int]:
        """entity key -> row, within a namespace (built lazily: only needed for tracked states)."""
        pos = self._positions.get(namespace)
        if pos is None:
            rows = self.rows_for(namespace)
            pos = {str(self.keys[r]): int(r) for r in rows}
            self._positions[namespace] = pos
        return pos

    def row_labels(self, row: int) -> dict[str, str]:
        rec = self.labels.iloc[self.offset + row]
        return {name: str(rec[name]) for name in self.label_names if name in rec.index and pd.notna(rec[name])}


_EMPTY = np.array([], dtype=np.int64)


def prepare_frame(frame: pd.DataFrame, entity_labels: Sequence[str], level: str) -> _Frame:
    """Index a query result: the entity key of every row and, for workloads, rows per namespace.

    Raises ValueError when a workload result carries no ``namespace`` label, because without
    it the per-tenant boundary cannot be enforced (better an error state than a leak).
    """
    names = _present_labels(frame, entity_labels, level)
    n = len(frame)
    if n == 0 or not names:
        values = frame["value"].to_numpy(dtype=float) if "value" in frame.columns and n else np.array([], dtype=float)
        keys = np.array(["" for _ in range(len(values))], dtype=object)
        return _Frame(keys, values, frame, names, {}, np.arange(len(values)))
    keys, values = _keys_and_values(frame, names)
    by_ns: dict[str, np.ndarray] = {}
    if "namespace" in frame.columns:
        codes, uniques = pd.factorize(frame["namespace"].astype(str))
        by_ns = _rows_by_namespace(codes, uniques)
    return _Frame(keys, values, fresh_index(frame), names, by_ns, np.arange(n))


def fresh_index(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame.reset_index(drop=True)``, without the copy when the index already is 0..n-1
    (most answers: a copy per query per cycle was a visible share of a cycle's pandas time)."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    return frame.reset_index(drop=True)


def _present_labels(frame: pd.DataFrame, entity_labels: Sequence[str], level: str) -> tuple[str, ...]:
    if level == "workload" and "namespace" not in frame.columns and len(frame):
        raise ValueError("the workload query result has no namespace label; refusing to evaluate it")
    if tuple(entity_labels) == ("*",):  # a PromQL rule: the entity is the row's whole label set
        return tuple(sorted(str(c) for c in frame.columns if c not in ("timestamp", "value", "series", "__name__")))
    return tuple(n for n in entity_labels if n in frame.columns)


def _keys_and_values(frame: pd.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The entity key ("label/label/...") and the numeric value of every row.

    Joined in plain Python over the columns' object arrays (``str`` of each value, as pandas'
    ``astype(str)`` gives): the pandas string additions this replaced cost a few hundred
    microseconds of overhead per column per query, every cycle."""
    columns = [frame[c].to_numpy(dtype=object) for c in names]
    if len(columns) == 1:
        joined = [str(v) for v in columns[0]]
    else:
        joined = ["/".join(map(str, row)) for row in zip(*columns, strict=True)]
    keys = np.empty(len(joined), dtype=object)
    keys[:] = joined
    raw = frame["value"]
    values = (
        raw.to_numpy(dtype=float)
        if raw.dtype.kind == "f"
        else pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    )
    return keys, values


def _rows_by_namespace(codes: np.ndarray, uniques: Sequence[Any]) -> dict[str, np.ndarray]:
    """Row numbers per namespace, in row order, from factorized namespace codes."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return {str(ns): order[bounds[i] : bounds[i + 1]] for i, ns in enumerate(uniques) if bounds[i] < bounds[i + 1]}


def _label_column(frame: _Frame, candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if frame.has_label(c)), None)


def target_mask(cr: CompiledRule, frame: _Frame, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` the rule's target selects (all of them for the default target)."""
    target = cr.policy.target
    if target.everything or len(rows) == 0:
        return np.ones(len(rows), dtype=bool)
    mask = np.ones(len(rows), dtype=bool)
    blank = np.array([""] * len(rows), dtype=object)
    if target.nodes:
        col = "node" if frame.has_label("node") else (frame.label_names[0] if frame.label_names else None)
        names = frame.column(col)[rows] if col else blank
        mask &= np.array([any(fnmatch.fnmatchcase(str(v), pat) for pat in target.nodes) for v in names], dtype=bool)
    if target.workloads:
        kcol, ncol = _label_column(frame, KIND_LABELS), _label_column(frame, NAME_LABELS)
        kinds = frame.column(kcol)[rows] if kcol else blank
        wnames = frame.column(ncol)[rows] if ncol else blank
        sel = np.zeros(len(rows), dtype=bool)
        for ref in target.workloads:
            sel |= np.array(
                [
                    (ref.kind == "*" or str(k).lower() == ref.kind) and fnmatch.fnmatchcase(str(w), ref.name)
                    for k, w in zip(kinds, wnames, strict=True)
                ],
                dtype=bool,
            )
        mask &= sel
    for label, pattern in target.selector:
        if not frame.has_label(label):
            return np.zeros(len(rows), dtype=bool)
        vals = frame.column(label)[rows]
        mask &= np.array([fnmatch.fnmatchcase(str(v), pattern) for v in vals], dtype=bool)
    return mask
