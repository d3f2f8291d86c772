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

The code sits in ``engine_model`` (rules, keys, states, transitions, the query plan),
``engine_step`` (one observation of one entity: the state machine), ``engine_frames``
(frames prepared for evaluation, target matching) and ``engine_eval`` (a whole cycle:
aggregation per slot and evaluation); this module re-exports them.
"""

from __future__ import annotations

from hub.alerts.engine_eval import (
    Aggregated,
    SlotAggregates,
    aggregate,
    evaluate,
    target_matches,
)
from hub.alerts.engine_frames import (
    COMPARE,
    prepare_frame,
    target_mask,
)
from hub.alerts.engine_model import (
    ACTIVE_STATES,
    KIND_LABELS,
    MAX_POINTS,
    MIN_POINTS,
    NAME_LABELS,
    NODATA_CLOSE_MIN,
    SAMPLES_KEPT,
    SCRAPE_FLOOR,
    CompiledRule,
    EntityState,
    Evaluation,
    FetchKey,
    Plan,
    PlannedQuery,
    QueryBuilder,
    QueryKey,
    RuleHealth,
    Transition,
    alert_id_for,
    compile_rules,
    fetch_key,
    plan,
    slot_of,
    step_for,
)
from hub.alerts.engine_step import (
    step,
)

__all__ = [
    "ACTIVE_STATES",
    "COMPARE",
    "KIND_LABELS",
    "MAX_POINTS",
    "MIN_POINTS",
    "NAME_LABELS",
    "NODATA_CLOSE_MIN",
    "SAMPLES_KEPT",
    "SCRAPE_FLOOR",
    "Aggregated",
    "CompiledRule",
    "EntityState",
    "Evaluation",
    "FetchKey",
    "Plan",
    "PlannedQuery",
    "QueryBuilder",
    "QueryKey",
    "RuleHealth",
    "SlotAggregates",
    "Transition",
    "aggregate",
    "alert_id_for",
    "compile_rules",
    "evaluate",
    "fetch_key",
    "plan",
    "prepare_frame",
    "slot_of",
    "step",
    "step_for",
    "target_mask",
    "target_matches",
]
