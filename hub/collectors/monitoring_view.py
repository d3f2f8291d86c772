"""Live rankings answered from one table per (cluster, level, metric) instead of one PromQL
evaluation per caller (pure: no I/O; the monitoring service fetches and keeps the tables).

Why: a hub that sends Prometheus a ``topk`` for every ranking request pays, on top of
Prometheus's own work, an HTTP hop, authentication, scope and JSON for each caller, and each
tenant's ranking is a different query, so nothing is shared between them. A live ranking of a
namespaced level (pods, workloads, containers, namespaces, volumes) orders entities by their
value, and an entity's value does not depend on which other namespaces the query was narrowed
to (every template aggregates by at least ``namespace``). So one unscoped evaluation of the
metric for every entity of the cluster, kept while it is at most ``share_seconds`` old (the same
age a shared answer may have), answers every caller: each one's scope is applied here, in the
service, by keeping only the entities of the caller's namespaces. Tenants never see each
other's entities, and values outside a caller's namespaces never reach an answer.

A ranking by a window statistic (``window=24h&stat=max``) has tables of its own, one per
(metric, window, stat), kept until the window's subquery step ends (:func:`window_table_ttl`):
Prometheus evaluates a subquery's inner expression at multiples of its step, so every evaluation
time within one step sees the same points, and a 24 h ranking, an evaluation of every entity's
series at 288 points, is made once per 5 minutes for every caller instead of once per request.

What a table does not answer (the service evaluates per request instead): a range, an explicit
``time=``, any filter other than namespaces, a narrowed request at a level
whose entities have no namespace (workspaces: a workspace's value is the sum over the
namespaces the caller sees, which an unscoped evaluation would not give) or whose templates join
across series (``JOINED_LEVELS``). A narrowed caller whose table could not be evaluated (any
error: a limit a whole-cluster query meets, a refused query) is answered per request within
their own namespaces instead, and never sees the table's error.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from hub.collectors import rankings
from hub.collectors.catalogue import ENTITY_LABELS, Filters, resolution
from hub.collectors.prometheus import Vector
from hub.errors import Unprocessable

# Filters fields a table cannot apply (anything but namespaces and the cluster's identity).
_OTHER_FILTERS = ("nodes", "workspaces", "kinds", "workloads", "pods", "containers")
# Levels whose templates join series with ``group_left`` (pods to their owners, claims to the
# workloads mounting them): Prometheus refuses such a query whole when any namespace has two
# series in one match group (a pod with two owner references, a claim two workloads mount),
# naming their labels. Unscoped, one tenant's objects would fail every tenant's ranking and show
# them in the error, so a narrowed ranking of these levels is evaluated with the caller's
# namespaces as matchers, per request.
JOINED_LEVELS = frozenset({"workloads"})


def answerable(
    level: str,
    filters: Filters,
    *,
    sort_metric: str | None,
    is_range: bool,
    time: float | None,
) -> bool:
    """Whether a ranking request with these parts is answered from a table (see the module
    docstring for why the others are not)."""
    if sort_metric is None or is_range or time is not None:
        return False
    if any(getattr(filters, name) for name in _OTHER_FILTERS):
        return False
    keys = ENTITY_LABELS.get(level)
    if not keys:
        return False
    if filters.namespaces is None:
        return True
    return "namespace" in keys and level not in JOINED_LEVELS


def window_table_ttl(window: float, now: float) -> float:
    """Seconds a table of a window statistic evaluated at ``now`` stays right: until the end of
    the subquery step ``now`` falls in (the catalogue's :func:`~hub.collectors.catalogue.resolution`,
    the step :meth:`~hub.collectors.catalogue.Catalogue.window_expr` uses), at least one second."""
    step = resolution(window)
    return max(1.0, (math.floor(now / step) + 1) * step - now)


# Seconds a window statistic's table may take to build away from the request that wanted it
# (at most: a step shorter than this bounds it, as the table is only right until its step ends).
# Prometheus's own default query timeout (--query.timeout, 2 minutes): on the large sandbox
# (20,000 pods, load 7) one evaluation of a 24 h workload ranking took 104 s.
WINDOW_BUILD_SECONDS = 120.0


# Metrics one window request may name. Each is its own evaluation over the whole window (a table
# of kept points for a ranking of an object level, a subquery otherwise), and at 20,000 pods the
# first one of a 24 h workload window costs Prometheus minutes: the API's default of every metric
# (28 at the workload level) never answered there (docs/scale.md, "Large, ninth look").
WINDOW_METRICS = 4


def window_metrics(metrics: tuple[str, ...], *, named: bool, sort_metric: str | None) -> tuple[str, ...]:
    """The metrics a window request computes: those it ``named`` (at most :data:`WINDOW_METRICS`,
    else a 422 naming ``metrics``), or when it named none only what it ranks by (unsorted: the
    first of the level's ``metrics``)."""
    if not named:
        return (sort_metric or metrics[0],)
    if len(metrics) > WINDOW_METRICS:
        raise Unprocessable(
            f"a window statistic is evaluated over the whole window for each metric: at most {WINDOW_METRICS} "
            f"metrics per window request, got {len(metrics)}",
            field="metrics",
        )
    return metrics


def window_table_budget(window: float, timeout: float) -> float:
    """Seconds the background build of a window statistic's table may take: its subquery step,
    at most :data:`WINDOW_BUILD_SECONDS`, never less than one request's ``timeout``."""
    return max(timeout, min(float(resolution(window)), WINDOW_BUILD_SECONDS))


def table_filters(filters: Filters) -> Filters:
    """The filters of a table's one evaluation: the cluster's identity, every namespace."""
    return Filters(cluster=filters.cluster, cluster_label=filters.cluster_label)


@dataclass(frozen=True)
class WindowTableUse:
    """A window statistic's table as its key names it, without the answer: what a stopping hub
    writes down so that the next one builds the same tables again (hub/runtime/monitoring.py).
    ``cluster`` "" is the implicit cluster."""

    level: str
    metric: str
    window: float
    stat: str
    cluster: str = ""


def window_table_uses(keys: Sequence[Hashable]) -> list[WindowTableUse]:
    """The window statistics' tables among the monitoring service's table keys (``(level,
    metric, window, stat, filters)``; a table of no window has None there)."""
    uses = [k for k in keys if isinstance(k, tuple) and len(k) == 5 and k[1] is not None and k[2] is not None]
    return [WindowTableUse(level, metric, window, stat, f.cluster) for level, metric, window, stat, f in uses]


@dataclass(frozen=True)
class RankingTable:
    """Every entity of one level with the metric's value at ``at`` (those Prometheus listed
    without a value ranked last, by name), in both orders, and each entity's series as the
    answer shows it."""

    keys: tuple[str, ...]
    at: float
    descending: rankings.Entities
    ascending: rankings.Entities
    series: Mapping[rankings.Key, tuple[Mapping[str, str], float, float]] = field(repr=False)

    def select(self, namespaces: Sequence[str] | None, *, descending: bool) -> rankings.Entities:
        """The entities of ``namespaces`` (None: all) in rank order. Order is by (missing,
        value, name) for every entity, so a subset keeps the order the whole table has."""
        ordered = self.descending if descending else self.ascending
        if namespaces is None:
            return ordered
        at = self.keys.index("namespace")
        wanted = frozenset(namespaces)
        kept = [i for i, key in enumerate(ordered.keys) if key[at] in wanted]
        return rankings.Entities(tuple(ordered.keys[i] for i in kept), ordered.values[kept])

    def vector(self, page: Sequence[rankings.Key]) -> Vector:
        """The series of the page's entities that have one (the others are the answer's
        ``missing``), as the instant answer of a per-request evaluation would hold them."""
        found = [self.series[key] for key in page if key in self.series]
        return Vector(
            tuple(labels for labels, _, _ in found),
            tuple(ts for _, ts, _ in found),
            tuple(value for _, _, value in found),
        )


def build_table(level: str, values: Vector, universe: Vector | None, *, at: float) -> RankingTable:
    """A table from the metric's answer (NaN already dropped by the query) and, when the level
    lists its entities, that list (their value is ignored)."""
    keys = ENTITY_LABELS[level]
    entities = rankings.label_values(values.metrics, values.values, keys)
    listed: tuple[rankings.Key, ...] = ()
    if universe is not None and not universe.empty:
        listed = rankings.label_values(universe.metrics, universe.values, keys).keys
    series: dict[rankings.Key, tuple[Mapping[str, str], float, float]] = {}
    chosen = dict(zip(entities.keys, entities.values.tolist(), strict=True))
    for labels, ts, value in zip(values.metrics, values.timestamps, values.values, strict=True):
        key = tuple(labels.get(k, "") for k in keys)
        if key not in series and _same(chosen.get(key), value):  # the entity's kept series
            series[key] = (labels, ts, value)
    descending = rankings.order(entities, descending=True, universe=listed)
    ascending = rankings.order(entities, descending=False, universe=listed)
    for ordered in (descending, ascending):  # shared by every caller: nobody may change it
        ordered.values.flags.writeable = False
    return RankingTable(keys=keys, at=at, descending=descending, ascending=ascending, series=MappingProxyType(series))


def _same(kept: float | None, value: float) -> bool:
    if kept is None:
        return False
    return kept == value or (math.isnan(kept) and math.isnan(value))
