"""The alert engine's types and plan: compiled rules, query and fetch keys, entity states,
transitions and rule health, and the plan of one cycle (which rules are due, which queries
they share, at what step). Pure.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hub.alerts.policy import Policy, Rule
from hub.scope import split_key

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


def evolve(st: EntityState, **changes: object) -> EntityState:
    """``dataclasses.replace(st, **changes)`` without its per-call field introspection.

    Why: the state machine makes a new state per tracked alert per cycle (tens of thousands
    at scale), and ``replace`` (which lists the fields and calls ``__init__``) was one of the
    largest per-alert costs of a cycle. ``EntityState`` has no ``__post_init__`` and no
    derived fields, so copying the instance dict and overriding the changed fields builds the
    same frozen value. Field names are not checked per call (that check cost a third of the
    gain): the callers are the state machine's few fixed calls, which the unit tests run, and
    a test holds ``evolve`` to ``replace`` for every field."""
    new = object.__new__(EntityState)
    d = new.__dict__
    d.update(st.__dict__)
    d.update(changes)
    return new


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


def compile_rules(policies: Iterable[tuple[str, Policy]], *, implicit_label: str = "") -> list[CompiledRule]:
    """The enabled policies' rules with their query keys. ``implicit_label``: the value of the
    ``cluster`` label of the implicit cluster's series on an endpoint shared by clusters
    (``clusters.default_metrics_label``; '' when prometheus.url is its own Prometheus), so a
    tenant's PromQL rule of an implicit-cluster project reads only that cluster's series."""
    out: list[CompiledRule] = []
    for policy_id, policy in policies:
        if not policy.enabled:
            continue
        for rule in policy.rules:
            metric = rule_metric(policy, rule, implicit_label=implicit_label)
            key = QueryKey(policy.level, metric, rule.aggregation, rule.period)
            out.append(CompiledRule(policy_id=policy_id, policy=policy, rule=rule, key=key))
    return out


PROMQL_PREFIX = "promql:"  # the "metric" of a PromQL rule's query key: the query itself
CLUSTER_MARK = "@"  # "<metric>@<cluster>": a catalogue metric of an added cluster's nodes or workloads
# "promql@<cluster>/<ns>:<expr>": a tenant's PromQL rule of a project in an added cluster; the
# runtime's query builder scopes it to the namespace and to the cluster's series (its label on a
# shared endpoint, or its own Prometheus), as it builds the cluster's catalogue queries.
PROMQL_CLUSTER_PREFIX = "promql@"


def is_promql(metric: str) -> bool:
    """Whether a query key's metric is a PromQL rule's (its own query, one point per period)."""
    return metric.startswith((PROMQL_PREFIX, PROMQL_CLUSTER_PREFIX))


def rule_cluster(policy: Policy) -> str:
    """The added cluster whose series a policy reads ('' : the implicit cluster's): a node
    policy's ``cluster``, a workload policy's project's (its key ``<cluster>/<ns>``)."""
    if policy.level == "workload":
        return split_key(policy.namespace or "")[0]
    return policy.cluster


def rule_metric(policy: Policy, rule: Rule, *, implicit_label: str = "") -> str:
    """What a rule fetches: its catalogue metric, or for a PromQL rule ``promql:<query>`` with
    a workload rule's query scoped to its namespace (``promql_scope``; validation refused what
    cannot be scoped, so a refusal here means a stored document that no longer validates and
    the rule's query is one that returns nothing).

    ``implicit_label`` (see :func:`compile_rules`): a tenant's rule of an implicit-cluster
    project also matches ``cluster="<label>"`` on every selector, and one matching ``cluster``
    itself is refused, as an added cluster's project's are. Why here and not in the runtime's
    query builder: the implicit project's query is the engine's own text (no builder call), and
    without the label it would read the same-named namespace of every cluster on the endpoint.
    Empty (a single-cluster hub, or prometheus.url is this cluster's own): the query is the
    namespace-scoped text alone, unchanged."""
    if rule.expr is None:
        # A policy of an added cluster (a node policy naming it, a workload policy of a project
        # keyed <cluster>/<ns>): its own query key, "<metric>@<cluster>", which the runtime's
        # query builder turns into that cluster's query, so the workload rules of one cluster's
        # projects share one batched fetch (docs/multi-cluster.md).
        cluster = rule_cluster(policy)
        return f"{rule.metric}{CLUSTER_MARK}{cluster}" if cluster else rule.metric
    if policy.level != "workload":
        return PROMQL_PREFIX + rule.expr
    from hub.alerts.promql_scope import PromQLRefused, scope_expression

    cluster, namespace = split_key(policy.namespace or "")
    try:
        if cluster:  # checked here (a cluster matcher included), built by the runtime
            scope_expression(rule.expr, namespace, cluster_label=cluster)
            return f"{PROMQL_CLUSTER_PREFIX}{policy.namespace}:{rule.expr}"
        return PROMQL_PREFIX + scope_expression(rule.expr, policy.namespace or "", cluster_label=implicit_label)
    except PromQLRefused as exc:
        return PROMQL_PREFIX + f"vector(0) unless vector(0) # refused: {str(exc)[:100].replace(chr(10), ' ')}"


def fetch_step(metric: str, period: float) -> float:
    """A PromQL rule needs one point per period (its value at the slot's end); a catalogue
    metric the points of :func:`step_for`."""
    return float(period) if is_promql(metric) else step_for(period)


def build_for(
    build_query: QueryBuilder, level: str, metric: str, period: float, namespace: str | None = None
) -> tuple[str, Sequence[str]]:
    """The PromQL and entity labels of a fetch: a PromQL rule's own query (entity: every label
    of a row, ``("*",)``), else the catalogue's."""
    if metric.startswith(PROMQL_PREFIX):
        return metric[len(PROMQL_PREFIX) :], ("*",)
    return (
        build_query(level, metric, "last", period, namespace)
        if namespace
        else build_query(level, metric, "last", period)
    )


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
        promql, labels = build_for(build_query, fk.level, fk.metric, fk.period)
        step = fetch_step(fk.metric, fk.period)
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
