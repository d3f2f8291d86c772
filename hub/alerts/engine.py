"""PURE: the batched rule engine.

Why batched: Prometheus evaluating 10,000 rules spends most of a 2-core machine per cycle
(issue 8, "Performance"), because every rule is its own query over the same series. Here a
cycle fetches **one PromQL range query per distinct (level, metric, period)** for every
entity at once: the metric's points inside the period (``step`` apart), from which numpy
computes every aggregation the rules ask for (avg, max, min, last), and compares each rule's
threshold against them. 10,000 rules on a handful of metrics cost a handful of queries, and
fewer than one per (metric, level, aggregation, period): avg and max of the same metric and
period share one fetch.

Flow of one cycle (see :mod:`hub.alerts.cycle` for the I/O around it):

1. :func:`compile_rules` flattens enabled policies into rules with their query key.
2. :func:`plan` picks the rules whose period slot closed since the last cycle and the
   fetches they need. A slot is the period ``(slot - period, slot]``, aligned to the epoch;
   its points are at the multiples of ``step`` inside it, so a replay of the same data
   (backtest, one range query for a whole day) sees exactly the same points.
3. :func:`evaluate` aggregates each fetch per entity, takes the tracked states, and returns
   the new states and the transitions. Workload rules only ever see rows whose ``namespace``
   label equals their policy's namespace: the query is cluster-wide for batching, the tenancy
   boundary is enforced here, per row.

State machine per (rule, entity), one observation per period:
``breach`` / ``ok`` / ``nodata`` (the entity is missing or NaN) / ``error`` (the query failed).

- inactive --breach--> pending (count 1), or firing at once when ``consecutive`` is 1
- pending --breach--> pending (count+1) --... count == consecutive--> firing
- pending --ok or nodata--> inactive (the streak is broken; nobody was told, nobody needs to be)
- firing --breach--> firing; --ok--> resolved; --nodata--> nodata
- nodata --breach--> firing; --ok--> resolved (the data shows recovery); stays nodata, and is
  closed with a notice after ``nodata_close_after`` (the entity is probably gone)
- any tracked state --error--> error (the prior state is kept); the next real observation is
  applied to the prior state. An error never counts, never resets and never resolves.

Inactive entities are not stored: only tracked states travel between cycles, which keeps the
per-cycle work proportional to what is breaching, not to rules x entities.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from hub.alerts.policy import Policy, Rule

ACTIVE_STATES = ("pending", "firing", "nodata", "error")
SAMPLES_KEPT = 12  # periods of values kept per tracked entity: the evidence in the email
NODATA_CLOSE_MIN = 3600.0  # a firing alert with no data is closed after max(this, 10 periods)

# Label names the catalogue may use for a workload's kind and name (first present wins).
KIND_LABELS = ("workload_kind", "kind", "owner_kind")
NAME_LABELS = ("workload", "name", "owner_name")


class QueryBuilder(Protocol):
    """Builds the PromQL for one batched alert query (the catalogue's ``alert_query``)."""

    def __call__(
        self, level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None
    ) -> tuple[str, Sequence[str]]: ...


@dataclass(frozen=True, order=True)
class QueryKey:
    level: str
    metric: str
    aggregation: str
    period: float


@dataclass(frozen=True)
class CompiledRule:
    policy_id: str
    policy: Policy
    rule: Rule
    key: QueryKey

    @property
    def rule_id(self) -> str:
        return f"{self.policy_id}/{self.rule.name}"

    @property
    def namespace(self) -> str | None:
        return self.policy.namespace if self.policy.level == "workload" else None


@dataclass(frozen=True, order=True)
class FetchKey:
    """What one query fetches: a metric's points over one period, for every entity of a level."""

    level: str
    metric: str
    period: float


MIN_POINTS = 4  # points per period when the period has a divisor that allows it
MAX_POINTS = 60  # and never more: a fetch stays cheap whatever the period
SCRAPE_FLOOR = 15  # seconds: periods of a minute or more are not sampled finer than a scrape


def step_for(period: float) -> float:
    """The spacing of a period's points: a DIVISOR of the period, so that the points of a slot
    ``(at - period, at]`` are the multiples of ``step`` inside it and the last one is ``at``.

    Why a divisor: slots end at multiples of the period, and Prometheus aligns a subquery's
    points to multiples of its step; only a divisor puts a point on every slot's end (a ``last``
    rule reads that point) and makes the points the same whether fetched slot by slot (live)
    or for a whole day at once (backtest), and the same as Prometheus's own
    ``<agg>_over_time((expr)[<period>-1ms:<step>])``. Among the divisors: the largest that still
    gives ``MIN_POINTS`` points and, for periods of a minute or more, is at least
    ``SCRAPE_FLOOR`` (closer points only repeat scrapes); if none is that coarse, the largest
    giving ``MIN_POINTS`` to ``MAX_POINTS`` points; if none does (61 s, a prime: only 1 or 61
    points), the most points up to ``MAX_POINTS`` (61 s: one point, the value at the slot end).
    Periods are whole seconds (the policy validator's rule); any other period is one point.
    """
    return float(_step_for_whole(round(period))) if period == round(period) and period >= 1 else float(period)


@functools.lru_cache(maxsize=256)
def _step_for_whole(period: int) -> int:
    divisors = sorted({d for i in range(1, math.isqrt(period) + 1) if period % i == 0 for d in (i, period // i)})
    fit = [d for d in divisors if MIN_POINTS <= period // d <= MAX_POINTS]
    floor = SCRAPE_FLOOR if period >= 60 else 1
    coarse = [d for d in fit if d >= floor]
    if coarse:
        return coarse[-1]
    if fit:
        return fit[-1]
    return min(d for d in divisors if period // d <= MAX_POINTS)


@dataclass(frozen=True)
class PlannedQuery:
    key: FetchKey
    at: float  # the end of the period slot (its last point)
    start: float  # the first point: at - period + step
    step: float
    promql: str  # the metric itself (the catalogue's expression for "last")
    entity_labels: tuple[str, ...]
    aggregations: tuple[str, ...]

    @property
    def period(self) -> float:
        return self.key.period


def fetch_key(key: QueryKey) -> FetchKey:
    return FetchKey(key.level, key.metric, key.period)


@dataclass(frozen=True)
class Plan:
    now: float
    due: tuple[CompiledRule, ...]
    queries: tuple[PlannedQuery, ...]
    slots: Mapping[float, float]  # period -> slot evaluated this cycle
    missed: Mapping[float, int]  # period -> whole slots skipped since the last cycle


@dataclass(frozen=True)
class EntityState:
    """A tracked (rule, entity): what the alert state store keeps between cycles."""

    policy_id: str
    rule: str
    entity: str
    labels: Mapping[str, str]
    state: str  # pending | firing | nodata | error
    alert_id: str
    count: int  # breaching periods so far in this episode
    started_at: float  # slot of the first breach of the episode
    since: float  # when the current state began
    last_eval: float
    prior: str | None = None  # state before nodata/error
    fired_at: float | None = None
    last_breach: float | None = None
    last_value: float | None = None
    samples: tuple[tuple[float, float | None], ...] = ()
    sends: int = 0
    first_sent: float | None = None
    last_sent: float | None = None

    @property
    def rule_id(self) -> str:
        return f"{self.policy_id}/{self.rule}"

    @property
    def effective(self) -> str:
        """The state that decides notices: firing stays firing while an error hides it."""
        return self.prior if self.state == "error" and self.prior else self.state


@dataclass(frozen=True)
class Transition:
    policy_id: str
    rule: str
    entity: str
    labels: Mapping[str, str]
    alert_id: str
    from_state: str  # inactive | pending | firing | nodata | error
    to_state: str  # pending | firing | resolved | nodata | error | inactive | closed
    at: float
    value: float | None
    state: EntityState  # the state after (for ended episodes: the last one, with to_state set)
    reason: str = ""


@dataclass(frozen=True)
class RuleHealth:
    status: str  # ok | nodata | error
    detail: str = ""
    entities: int = 0  # entities in the rule's scope this cycle
    breaching: int = 0


@dataclass
class Evaluation:
    states: dict[tuple[str, str, str], EntityState] = field(default_factory=dict)  # (policy, rule, entity)
    ended: list[tuple[str, str, str]] = field(default_factory=list)  # keys no longer tracked
    transitions: list[Transition] = field(default_factory=list)
    health: dict[str, RuleHealth] = field(default_factory=dict)  # rule_id -> health


def alert_id_for(policy_id: str, rule: str, entity: str, started_at: float) -> str:
    """Deterministic, so a re-run cycle (after a crash) or a backtest names alerts the same."""
    raw = f"{policy_id}\x00{rule}\x00{entity}\x00{started_at:.3f}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def compile_rules(policies: Iterable[tuple[str, Policy]]) -> list[CompiledRule]:
    out: list[CompiledRule] = []
    for policy_id, policy in policies:
        if not policy.enabled:
            continue
        for rule in policy.rules:
            key = QueryKey(policy.level, rule.metric, rule.aggregation, rule.period)
            out.append(CompiledRule(policy_id=policy_id, policy=policy, rule=rule, key=key))
    return out


def slot_of(t: float, period: float) -> float:
    """The end of the last whole period slot at or before ``t`` (slots align to the epoch)."""
    return math.floor(t / period) * period


def plan(
    rules: Sequence[CompiledRule],
    *,
    now: float,
    last_slots: Mapping[float, float],
    build_query: QueryBuilder,
) -> Plan:
    """The rules due at ``now`` and the one fetch per distinct (level, metric, period) they need."""
    due: list[CompiledRule] = []
    slots: dict[float, float] = {}
    missed: dict[float, int] = {}
    aggs: dict[FetchKey, set[str]] = defaultdict(set)
    for cr in rules:
        period = cr.key.period
        slot = slots.get(period)
        if slot is None:
            slot = slot_of(now, period)
            last = last_slots.get(period)
            if last is not None and slot <= last:
                slot = -1.0
            elif last is not None and slot - last > period:
                missed[period] = round((slot - last) / period) - 1
            slots[period] = slot
        if slot < 0:
            continue
        due.append(cr)
        aggs[fetch_key(cr.key)].add(cr.key.aggregation)
    queries: dict[FetchKey, PlannedQuery] = {}
    for fk, wanted in aggs.items():
        promql, labels = build_query(fk.level, fk.metric, "last", fk.period)
        step = step_for(fk.period)
        at = slots[fk.period]
        queries[fk] = PlannedQuery(
            key=fk,
            at=at,
            start=at - fk.period + step,
            step=step,
            promql=promql,
            entity_labels=tuple(labels),
            aggregations=tuple(sorted(wanted)),
        )
    return Plan(
        now=now,
        due=tuple(due),
        queries=tuple(sorted(queries.values(), key=lambda q: q.key)),
        slots={p: s for p, s in slots.items() if s >= 0},
        missed=missed,
    )


# -- one observation --------------------------------------------------------------------------


def _with_sample(samples: tuple[tuple[float, float | None], ...], at: float, value: float | None) -> tuple:
    return (*samples, (at, value))[-SAMPLES_KEPT:]


def step(
    prev: EntityState | None,
    obs: str,
    *,
    at: float,
    value: float | None,
    consecutive: int,
    period: float,
    policy_id: str,
    rule: str,
    entity: str,
    labels: Mapping[str, str],
) -> tuple[EntityState | None, Transition | None]:
    """Apply one observation to one (rule, entity); returns (state or None if inactive, transition)."""
    if prev is None:
        if obs != "breach":
            return None, None
        alert_id = alert_id_for(policy_id, rule, entity, at)
        firing = consecutive <= 1
        new = EntityState(
            policy_id=policy_id,
            rule=rule,
            entity=entity,
            labels=dict(labels),
            state="firing" if firing else "pending",
            alert_id=alert_id,
            count=1,
            started_at=at,
            since=at,
            last_eval=at,
            fired_at=at if firing else None,
            last_breach=at,
            last_value=value,
            samples=((at, value),),
        )
        return new, _transition(new, "inactive", new.state, at, value)

    if obs == "error":
        if prev.state == "error":
            return replace(prev, last_eval=at), None
        new = replace(prev, state="error", prior=prev.state, since=at, last_eval=at)
        return new, _transition(new, prev.state, "error", at, None, "the metric query failed")

    base = prev
    recovered_from_error = prev.state == "error"
    if recovered_from_error:
        base = replace(prev, state=prev.prior or "pending", prior=None)

    samples = _with_sample(base.samples, at, value)
    cur = base.state

    def moved(new: EntityState | None, to: str, reason: str = "") -> tuple[EntityState | None, Transition | None]:
        final = new if new is not None else replace(base, last_eval=at, samples=samples, last_value=value)
        return new, _transition(final, prev.state, to, at, value, reason)

    if obs == "breach":
        count = base.count + 1
        if cur == "pending":
            if count >= consecutive:
                new = replace(
                    base,
                    state="firing",
                    count=count,
                    since=at,
                    fired_at=at,
                    last_breach=at,
                    last_value=value,
                    last_eval=at,
                    samples=samples,
                )
                return moved(new, "firing")
            new = replace(base, count=count, last_breach=at, last_value=value, last_eval=at, samples=samples)
            return (new, None) if not recovered_from_error else moved(new, "pending")
        if cur in ("firing", "nodata"):
            new = replace(
                base,
                state="firing",
                count=count,
                prior=None,
                since=at if cur == "nodata" else base.since,
                last_breach=at,
                last_value=value,
                last_eval=at,
                samples=samples,
            )
            if cur == "nodata":
                return moved(new, "firing", "data is back and still breaching")
            return (new, None) if not recovered_from_error else moved(new, "firing")
    if obs == "ok":
        if cur == "pending":
            return moved(None, "inactive", "the value recovered before the rule fired")
        if cur in ("firing", "nodata"):
            return moved(None, "resolved")
    if obs == "nodata":
        if cur == "pending":
            return moved(None, "inactive", "no data broke the streak")
        if cur == "firing":
            new = replace(
                base, state="nodata", prior="firing", since=at, last_eval=at, last_value=None, samples=samples
            )
            return moved(new, "nodata", "the entity returned no data")
        if cur == "nodata":
            if at - base.since >= max(NODATA_CLOSE_MIN, 10 * period):
                return moved(None, "closed", "no data for too long; the entity is probably gone")
            new = replace(base, last_eval=at, samples=samples)
            return (new, None) if not recovered_from_error else moved(new, "nodata")
    raise ValueError(f"unknown observation {obs!r} in state {cur!r}")


def _transition(state: EntityState, frm: str, to: str, at: float, value: float | None, reason: str = "") -> Transition:
    return Transition(
        policy_id=state.policy_id,
        rule=state.rule,
        entity=state.entity,
        labels=state.labels,
        alert_id=state.alert_id,
        from_state=frm,
        to_state=to,
        at=at,
        value=value,
        state=state,
        reason=reason,
    )


# -- frames ------------------------------------------------------------------------------------

COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
    "==": np.isclose,  # float equality with a tolerance: 0.1 + 0.2 == 0.3 should hold
    "!=": lambda a, b: ~np.isclose(a, b),
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
    return _Frame(keys, values, frame.reset_index(drop=True), names, by_ns, np.arange(n))


def _present_labels(frame: pd.DataFrame, entity_labels: Sequence[str], level: str) -> tuple[str, ...]:
    if level == "workload" and "namespace" not in frame.columns and len(frame):
        raise ValueError("the workload query result has no namespace label; refusing to evaluate it")
    return tuple(n for n in entity_labels if n in frame.columns)


def _keys_and_values(frame: pd.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The entity key ("label/label/...") and the numeric value of every row."""
    parts = [frame[c].astype(str) for c in names]
    key_series = parts[0]
    for p in parts[1:]:
        key_series = key_series + "/" + p
    keys = key_series.to_numpy(dtype=object)
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
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


# -- a whole cycle -------------------------------------------------------------------------------


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
    inside = frame[(ts > q.at - q.period + eps) & (ts <= q.at + eps)]
    out: dict[str, pd.DataFrame] = {}
    if inside.empty:
        empty = pd.DataFrame({**{c: pd.Series([], dtype=object) for c in labels}, "value": pd.Series([], dtype=float)})
        return {agg: empty for agg in q.aggregations}
    key = "series" if "series" in inside.columns else labels
    grouped = inside.groupby(key, sort=False)
    first = grouped[labels].first() if labels else None
    for agg in q.aggregations:
        if agg == "last":
            at_end = inside[np.abs(inside["timestamp"].to_numpy(dtype=float) - q.at) <= eps]
            out[agg] = at_end[[*labels, "value"]].reset_index(drop=True)
            continue
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
                    _apply(out, cr, prev, "nodata", at, None, entity, prev.labels)
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
