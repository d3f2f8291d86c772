"""A whole cycle's evaluation: each planned query's frame aggregated per period slot, then
every due rule stepped over its entities (new breaches and tracked states alike). Pure; the
backtest replays history through the same code.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hub.alerts.engine_frames import (
    COMPARE,
    _Frame,
    _keys_and_values,
    _present_labels,
    fresh_index,
    prepare_frame,
    target_mask,
)
from hub.alerts.engine_model import (
    KIND_LABELS,
    NAME_LABELS,
    CompiledRule,
    EntityState,
    Evaluation,
    FetchKey,
    Plan,
    PlannedQuery,
    QueryKey,
    RuleHealth,
    fetch_key,
)
from hub.alerts.engine_step import step
from hub.alerts.policy import Policy

_VALUE_COLUMNS = ("series", "timestamp", "value")


_TS_EPS = 1e-3  # Prometheus timestamps are milliseconds


_PANDAS_AGG = {"avg": "mean", "max": "max", "min": "min"}  # a rule's aggregation -> pandas' name


def _aggregated(values: Any, aggregation: str) -> pd.Series:
    """One aggregation of grouped point values, with Prometheus's NaN rules: ``avg_over_time``
    is NaN when any point is NaN (pandas would skip it), ``max``/``min`` skip NaN points unless
    all are NaN (as pandas does). A NaN result is "no data" for the rule."""
    out = values.agg(_PANDAS_AGG[aggregation])
    if aggregation == "avg":
        out = out.where(values.count() == values.size())
    return out


def aggregate(frame: pd.DataFrame, q: PlannedQuery) -> dict[str, pd.DataFrame]:
    """Each aggregation of ``q`` per entity over the slot's points: label columns + ``value``.

    The frame is a range answer (label columns, ``timestamp``, ``value``; ``series`` optional).
    Only points inside ``(at - period, at]`` count; ``last`` is the point AT the slot's end (an
    entity without one has no data for ``last``). A frame without ``timestamp`` holds one
    point per entity, taken to be at the slot's end.
    """
    if "timestamp" not in frame.columns:
        return {agg: frame for agg in q.aggregations}
    labels = [c for c in frame.columns if c not in _VALUE_COLUMNS]
    eps = _TS_EPS
    ts = frame["timestamp"].to_numpy(dtype=float)
    window = (ts > q.at - q.period + eps) & (ts <= q.at + eps)
    inside = frame if window.all() else frame[window]  # a one-point fetch: every row (no copy)
    out: dict[str, pd.DataFrame] = {}
    if inside.empty:
        empty = pd.DataFrame({**{c: pd.Series([], dtype=object) for c in labels}, "value": pd.Series([], dtype=float)})
        return {agg: empty for agg in q.aggregations}
    grouped: Any = None
    first: pd.DataFrame | None = None
    for agg in q.aggregations:
        if agg == "last":
            at = np.abs(inside["timestamp"].to_numpy(dtype=float) - q.at) <= eps
            at_end = inside if at.all() else inside[at]
            out[agg] = fresh_index(at_end[[*labels, "value"]])
            continue
        if grouped is None:  # only for a real aggregation: a "last" fetch (every PromQL rule's) needs no grouping
            grouped = inside.groupby("series" if "series" in inside.columns else labels, sort=False)
            first = grouped[labels].first() if labels else None
        values = _aggregated(grouped["value"], agg)
        part = first.copy() if first is not None else pd.DataFrame(index=values.index)
        part["value"] = values
        out[agg] = part.reset_index(drop=True)
    return out


class SlotAggregates:
    """A whole range answer aggregated per period slot at once, for replays (backtests).

    The live engine fetches each slot's points and runs :func:`aggregate` and
    :func:`prepare_frame` on them; a day replayed that way spends most of its time in pandas
    calls on tiny frames. This does the same grouping for every slot in one vectorised pass
    and hands out each slot's prepared frame by slicing. The result per slot is the same as
    ``prepare_frame(aggregate(points of the slot, q)[aggregation], ...)`` (a unit test holds
    the two to that).

    ``frame`` holds the points of many consecutive slots, as fetched with ``step``; a point
    belongs to the slot ``at`` when it lies in ``[at - period + step, at]``, the points a live
    fetch of that slot asks for.
    """

    def __init__(self, frame: pd.DataFrame, *, period: float, step: float, entity_labels: Sequence[str], level: str):
        self.period = period
        self.step = step
        self.entity_labels = tuple(entity_labels)
        self.level = level
        self._frame = frame
        self._tables: dict[str, tuple[np.ndarray, _Frame] | ValueError] = {}

    def at(self, at: float) -> Aggregated:
        return Aggregated(self, at)

    def frame(self, aggregation: str, at: float) -> _Frame:
        table = self._tables.get(aggregation)
        if table is None:
            try:
                table = self._table(aggregation)
            except ValueError as exc:
                table = exc
            self._tables[aggregation] = table
        if isinstance(table, ValueError):
            raise table
        slots, whole = table
        lo = int(np.searchsorted(slots, at - _TS_EPS, side="left"))
        hi = int(np.searchsorted(slots, at + _TS_EPS, side="right"))
        return whole.slice(lo, hi)

    def _table(self, aggregation: str) -> tuple[np.ndarray, _Frame]:
        """Every slot's aggregated rows, ordered by slot, prepared as one big frame."""
        frame = self._frame
        labels = [c for c in frame.columns if c not in _VALUE_COLUMNS]
        eps = _TS_EPS
        if len(frame) == 0 or "timestamp" not in frame.columns:
            return np.array([], dtype=float), prepare_frame(frame.iloc[0:0], self.entity_labels, self.level)
        ts = frame["timestamp"].to_numpy(dtype=float)
        slot = np.ceil((ts - eps) / self.period) * self.period
        keep = ts >= slot - self.period + self.step - eps
        if aggregation == "last":
            keep &= np.abs(ts - slot) <= eps
            rows = frame.loc[keep, [*labels, "value"]]
            slots = slot[keep]
        else:
            inside = frame[keep].assign(_slot=slot[keep])
            key = ["_slot", "series"] if "series" in inside.columns else ["_slot", *labels]
            grouped = inside.groupby(key, sort=False)  # groups in order of first appearance
            values = _aggregated(grouped["value"], aggregation)
            rows = (grouped[labels].first() if labels else pd.DataFrame(index=values.index)).assign(value=values)
            slots = rows.index.get_level_values("_slot").to_numpy(dtype=float)
            rows = rows.reset_index(drop=True)
        order = np.argsort(slots, kind="stable")  # slot by slot, first appearance within each
        rows = rows.iloc[order].reset_index(drop=True)
        return slots[order], _prepared_slots(rows, self.entity_labels, self.level)


def _prepared_slots(rows: pd.DataFrame, entity_labels: Sequence[str], level: str) -> _Frame:
    """:func:`prepare_frame` for a many-slot frame: each slice builds its own namespace rows."""
    names = _present_labels(rows, entity_labels, level)
    if not len(rows) or not names:
        return prepare_frame(rows, entity_labels, level)
    keys, values = _keys_and_values(rows, names)
    factorized = pd.factorize(rows["namespace"].astype(str)) if "namespace" in rows.columns else None
    return _Frame(keys, values, rows, names, {}, np.arange(len(rows)), namespaces=factorized)


@dataclass(frozen=True)
class Aggregated:
    """One slot of a :class:`SlotAggregates`: what the engine takes in place of a fetched frame."""

    source: SlotAggregates
    at: float

    def frame(self, aggregation: str) -> _Frame:
        return self.source.frame(aggregation, self.at)


def evaluate(
    plan_: Plan,
    results: Mapping[FetchKey, pd.DataFrame | Aggregated | BaseException],
    tracked: Mapping[tuple[str, str, str], EntityState],
) -> Evaluation:
    """Evaluate every due rule against its fetch and advance the state machine.

    ``results`` holds a range frame (label columns, ``timestamp``, ``value``) or the exception
    per fetch key; ``tracked`` the states of the previous cycle keyed by (policy id, rule
    name, entity). States of rules that are not due this cycle are carried over untouched.
    """
    out = Evaluation()
    due_ids = {(cr.policy_id, cr.rule.name) for cr in plan_.due}
    by_rule: dict[tuple[str, str], dict[str, EntityState]] = defaultdict(dict)
    for key, st in tracked.items():
        if (key[0], key[1]) in due_ids:
            by_rule[(key[0], key[1])][key[2]] = st
        else:
            out.states[key] = st

    queries = {q.key: q for q in plan_.queries}
    rules_by_key: dict[QueryKey, list[CompiledRule]] = defaultdict(list)
    for cr in plan_.due:
        rules_by_key[cr.key].append(cr)

    aggregated: dict[FetchKey, dict[str, pd.DataFrame] | Aggregated | str] = {}
    for q in plan_.queries:
        result = results.get(q.key)
        if result is None:
            aggregated[q.key] = "the query was not run"
        elif isinstance(result, BaseException):
            aggregated[q.key] = str(result) or type(result).__name__
        elif isinstance(result, Aggregated):
            aggregated[q.key] = result
        else:
            aggregated[q.key] = aggregate(result, q)

    for qkey, rules in rules_by_key.items():
        fk = fetch_key(qkey)
        q = queries[fk]
        at = q.at
        got = aggregated[fk]
        frame: _Frame | None = None
        error: str | None = None
        if isinstance(got, str):
            error = got
        else:
            try:
                if isinstance(got, Aggregated):
                    frame = got.frame(qkey.aggregation)
                else:
                    frame = prepare_frame(got[qkey.aggregation], q.entity_labels, qkey.level)
            except ValueError as exc:
                error = str(exc)
        if frame is None:
            for cr in rules:
                out.health[cr.rule_id] = RuleHealth("error", error or "")
                for entity, prev in by_rule.get((cr.policy_id, cr.rule.name), {}).items():
                    _apply(out, cr, prev, "error", at, None, entity, prev.labels)
            continue
        _evaluate_key(out, frame, rules, at, by_rule)
    return out


def _evaluate_key(
    out: Evaluation,
    frame: _Frame,
    rules: list[CompiledRule],
    at: float,
    by_rule: Mapping[tuple[str, str], Mapping[str, EntityState]],
) -> None:
    """All rules of one query key: vectorised comparison per namespace group, then the state
    machine only for breaching rows and tracked entities."""
    groups: dict[str | None, list[CompiledRule]] = defaultdict(list)
    for cr in rules:
        groups[cr.namespace].append(cr)
    for namespace, group in groups.items():
        rows = frame.rows_for(namespace)
        values = frame.values[rows]
        finite = np.isfinite(values)
        thresholds = np.array([cr.rule.threshold_base for cr in group], dtype=float)
        # breach[i, j]: rule i of the group breaches on row j. Comparators are applied in
        # sub-batches so that one numpy call covers every rule sharing a comparator.
        breach = np.zeros((len(group), len(rows)), dtype=bool)
        by_cmp: dict[str, list[int]] = defaultdict(list)
        for i, cr in enumerate(group):
            by_cmp[cr.rule.comparator].append(i)
        with np.errstate(invalid="ignore"):
            for cmp, idx in by_cmp.items():
                sel = np.array(idx)
                breach[sel] = COMPARE[cmp](values[None, :], thresholds[sel][:, None]) & finite[None, :]
        for i, cr in enumerate(group):
            scope = target_mask(cr, frame, rows)
            hits = breach[i] & scope
            prev_states = by_rule.get((cr.policy_id, cr.rule.name), {})
            n_scope = int(scope.sum())
            n_hits = int(hits.sum())
            out.health[cr.rule_id] = RuleHealth(
                "ok" if n_scope else "nodata",
                "" if n_scope else "no entity in the rule's scope returned data",
                n_scope,
                n_hits,
            )
            if not n_hits and not prev_states:
                continue
            seen: set[str] = set()
            for j in np.nonzero(hits)[0]:
                row = int(rows[j])
                entity = str(frame.keys[row])
                seen.add(entity)
                labels = prev_states[entity].labels if entity in prev_states else frame.row_labels(row)
                _apply(out, cr, prev_states.get(entity), "breach", at, float(values[j]), entity, labels)
            if not prev_states:
                continue
            positions = frame.positions(namespace)
            in_rows = {int(r): k for k, r in enumerate(rows)} if len(positions) else {}
            for entity, prev in prev_states.items():
                if entity in seen:
                    continue
                row_or_none = positions.get(entity)
                if row_or_none is None:
                    # A PromQL rule's row that is gone is Prometheus's "no longer firing".
                    _apply(out, cr, prev, "ok" if cr.rule.expr is not None else "nodata", at, None, entity, prev.labels)
                    continue
                k = in_rows[row_or_none]
                if not scope[k]:
                    # The entity left the target (e.g. a label changed): no data for this rule.
                    _apply(out, cr, prev, "nodata", at, None, entity, prev.labels)
                elif not finite[k]:
                    _apply(out, cr, prev, "nodata", at, None, entity, prev.labels)
                else:
                    _apply(out, cr, prev, "ok", at, float(values[k]), entity, prev.labels)


def _apply(
    out: Evaluation,
    cr: CompiledRule,
    prev: EntityState | None,
    obs: str,
    at: float,
    value: float | None,
    entity: str,
    labels: Mapping[str, str],
) -> None:
    new, transition = step(
        prev,
        obs,
        at=at,
        value=value,
        consecutive=cr.rule.consecutive,
        period=cr.rule.period,
        policy_id=cr.policy_id,
        rule=cr.rule.name,
        entity=entity,
        labels=labels,
    )
    key = (cr.policy_id, cr.rule.name, entity)
    if new is not None:
        out.states[key] = new
    elif prev is not None:
        out.ended.append(key)
    if transition is not None:
        out.transitions.append(transition)


def target_matches(policy: Policy, labels: Mapping[str, str]) -> bool:
    """Whether an entity (by the labels kept in its state) is a target of ``policy``; the
    per-entity twin of :func:`target_mask`, used when an edit decides what carries over."""
    if policy.level == "workload" and labels.get("namespace", policy.namespace) != policy.namespace:
        return False
    target = policy.target
    if target.nodes:
        node = labels.get("node", "")
        if not any(fnmatch.fnmatchcase(node, pat) for pat in target.nodes):
            return False
    if target.workloads:
        kind = next((labels[c] for c in KIND_LABELS if c in labels), "")
        name = next((labels[c] for c in NAME_LABELS if c in labels), "")
        if not any(
            (ref.kind == "*" or kind.lower() == ref.kind) and fnmatch.fnmatchcase(name, ref.name)
            for ref in target.workloads
        ):
            return False
    return all(label in labels and fnmatch.fnmatchcase(labels[label], pat) for label, pat in target.selector)
