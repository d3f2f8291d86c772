"""The metric catalogue: for each level, the metrics with unit, description and PromQL.

The PromQL is written against the raw series of ``docs/metrics-conventions.md`` only: no
recording rule is needed for any metric, so every metric works the same over the promtool
backfill as over live data (recording rules are evaluated only from the moment Prometheus runs
them). ``deploy/prometheus/kubehub-rules.yaml`` records a few of the same expressions under
``kubehub:`` names for dashboards outside the hub; the catalogue does not depend on them.

Every metric is a function of a :class:`Query` renderer. The renderer is the ONE place where the
caller's namespace scope enters PromQL: :meth:`Query.s` writes every raw selector and adds the
exact namespace matcher set to each namespaced series. Filters the caller chose (nodes, pods,
workloads, workspace) are added there too or as a final ``and on (...)`` restriction, so no
metric template ever sees a user-supplied string.

Workspace membership of a namespace is read in PromQL from
``kube_namespace_labels{label_kubesphere_io_workspace}`` (joined with ``group_left``), so it
is correct at every point of history too, including for namespaces that moved between
workspaces; the tenancy service's project list is not consulted here (see docs/monitoring.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from hub.collectors.metrics.query import (
    ENTITY_LABELS,
    LEVEL_ALIASES,
    LEVEL_FILTERS,
    LEVELS,
    RATE_SECONDS,
    RATE_WINDOW,
    SERIES_LABELS,
    TENANT_LEVELS,
    WORKLOAD_KINDS,
    EmptyScope,
    Filters,
    Metric,
    Query,
    Template,
    eq,
    nrx,
    rx,
)
from hub.collectors.metrics.table import (
    _ENTITIES,
    _build,
)
from hub.collectors.promql import duration, validate_name
from hub.errors import InvalidInput

# Re-exported: the levels, filters and renderer live in hub/collectors/metrics/query.py.
__all__ = [
    "AGGREGATIONS",
    "ENTITY_LABELS",
    "LEVELS",
    "LEVEL_ALIASES",
    "LEVEL_FILTERS",
    "RATE_SECONDS",
    "RATE_WINDOW",
    "SERIES_LABELS",
    "STATS",
    "TENANT_LEVELS",
    "WORKLOAD_KINDS",
    "Catalogue",
    "EmptyScope",
    "Filters",
    "Metric",
    "Query",
    "Template",
    "catalogue_markdown",
    "default_catalogue",
    "eq",
    "nrx",
    "recording_rules",
    "render_rules_file",
    "resolution",
    "resolution_for_period",
    "rx",
]

AGGREGATIONS = ("avg", "max", "min", "last")


STATS = {"avg": "avg", "max": "max", "min": "min", "p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def resolution(window_seconds: float) -> int:
    """Subquery step for a window: about 288 points per window (5 min over a day), never
    finer than 15 s (no scrape interval is finer) so subqueries stay cheap."""
    return max(15, round(window_seconds / 288))


class Catalogue:
    """Level -> metric -> PromQL, and the query shapes built on it (rankings, alerts)."""

    def __init__(self, metrics: Iterable[Metric] | None = None) -> None:
        self._metrics: dict[str, dict[str, Metric]] = {level: {} for level in LEVELS}
        for m in metrics if metrics is not None else _build():
            if m.name in self._metrics[m.level]:
                raise ValueError(f"duplicate metric {m.name} at {m.level}")
            self._metrics[m.level][m.name] = m

    # -- lookup -------------------------------------------------------------------------
    @staticmethod
    def level(name: str, *, field: str = "level") -> str:
        """The canonical level for ``name`` (accepting singular forms), or 400 listing them."""
        canonical = LEVEL_ALIASES.get(name, name)
        if canonical not in LEVELS:
            raise InvalidInput(f"unknown level {name!r}; valid levels: {', '.join(LEVELS)}", field=field)
        return canonical

    def metric_names(self, level: str) -> list[str]:
        return list(self._metrics[self.level(level)])

    def units(self, level: str) -> dict[str, str]:
        """{metric: unit} of a level (what alert policy validation wants)."""
        return {m.name: m.unit for m in self._metrics[self.level(level)].values()}

    def metric(self, level: str, name: str, *, field: str = "metrics") -> Metric:
        level = self.level(level)
        found = self._metrics[level].get(name)
        if found is None:
            raise InvalidInput(
                f"unknown {level} metric {name!r}; valid names: {', '.join(self._metrics[level])}", field=field
            )
        return found

    def metrics(self, level: str) -> list[Metric]:
        return list(self._metrics[self.level(level)].values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": [
                {
                    "level": level,
                    "labels": list(ENTITY_LABELS[level]),
                    "filters": sorted(LEVEL_FILTERS[level]),
                    "metrics": [m.to_dict() for m in self._metrics[level].values()],
                }
                for level in LEVELS
            ]
        }

    # -- query shapes ---------------------------------------------------------------------
    def expr(self, level: str, name: str, filters: Filters | None = None, *, rate_seconds: float | None = None) -> str:
        """The PromQL of one metric with scope and filters applied (raises EmptyScope).

        ``rate_seconds`` widens the rate() window (range queries pass twice their step, so a
        long chart stays continuous over coarse history and reads fewer samples per point).
        """
        rate = RATE_WINDOW if rate_seconds is None or rate_seconds <= RATE_SECONDS else duration(rate_seconds)
        return self.metric(level, name).render(Query(filters or Filters(), rate=rate))

    def entities_expr(self, level: str, filters: Filters | None = None) -> str | None:
        """Every entity of a level (value 1), or None for levels without entities."""
        level = self.level(level)
        template = _ENTITIES.get(level)
        if template is None:
            return None
        q = Query(filters or Filters())
        return q.restrict(level, template(q))

    def window_expr(
        self, level: str, name: str, *, stat: str, window_seconds: float, filters: Filters | None = None
    ) -> str:
        """The metric's ``stat`` (avg, max, min, pNN) over the window ending at the query time."""
        if stat not in STATS:
            raise InvalidInput(f"unknown stat {stat!r}; valid: {', '.join(STATS)}", field="stat")
        step = resolution(window_seconds)
        inner = self.expr(level, name, filters, rate_seconds=2 * step)
        rng = f"[{duration(window_seconds)}:{duration(step)}]"
        how = STATS[stat]
        if isinstance(how, float):
            return f"quantile_over_time({how}, ({inner}){rng})"
        return f"{how}_over_time(({inner}){rng})"

    def alert_query(
        self,
        level: str,
        metric: str,
        aggregation: str,
        period_seconds: float,
        namespace: str | None = None,
        cluster_label: str = "",
    ) -> tuple[str, list[str]]:
        """ONE PromQL query giving, for every entity of ``level``, ``metric`` aggregated over
        the check period that ends at the evaluation time; and the entity label names.

        ``aggregation`` is avg | max | min | last; ``last`` is the metric's value at the
        evaluation time. ``namespace`` (validated as a DNS-1123 label) restricts a workload-level
        query to one project with an exact matcher; None queries every namespace (the engine
        batches rules of all tenants into one query and assigns entities afterwards).
        Evaluated at a slot's end (a multiple of the period) it is the value the alert engine
        compares: the same points, ``<agg>_over_time((m)[<period>-1ms:<step>])`` (the engine
        fetches ``m`` itself at those points and aggregates them for every rule at once). The
        raw series are used, so it works over the backfill. ``cluster_label``: the value of the
        ``cluster`` label of the evaluated cluster's series on a shared endpoint (every selector
        matches it; '' : none), so one cluster's alerts never take in another's same-named nodes.
        """
        level = self.level(level)
        if aggregation not in AGGREGATIONS:
            raise InvalidInput(
                f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}", field="aggregation"
            )
        if period_seconds <= 0:
            raise InvalidInput("period must be positive", field="period")
        filters = Filters(cluster_label=cluster_label)
        if namespace is not None:
            ns = validate_name(namespace, grammar="label", field="namespace")
            filters = Filters(namespaces=(ns,), cluster_label=cluster_label)
        m = self.metric(level, metric, field="metric")
        inner = m.render(Query(filters))
        if aggregation == "last":
            return inner, list(m.labels)
        # Ranges include both ends in Prometheus 2.x: 1 ms less keeps the previous slot's last
        # point out, so the points are exactly the slot's (period - step, ..., end].
        whole = round(period_seconds)
        rng = f"[{whole * 1000 - 1}ms:{duration(resolution_for_period(whole))}]"
        return f"{aggregation}_over_time(({inner}){rng})", list(m.labels)


def resolution_for_period(period_seconds: float) -> int:
    """Subquery step inside one check period: the alert engine's step (``hub.alerts.engine.step_for``,
    which this layer may not import; a unit test holds the two equal). A divisor of the period,
    so that a point falls on every slot's end: the largest giving 4 points and, for periods of
    a minute or more, at least 15 s; else the largest giving 4 to 60 points; else the most up
    to 60 (docs/alerting.md, "Periods and steps")."""
    period = max(1, round(period_seconds))
    divisors = [d for d in range(1, math.isqrt(period) + 1) if period % d == 0]
    divisors = sorted({*divisors, *(period // d for d in divisors)})
    fit = [d for d in divisors if 4 <= period // d <= 60]
    coarse = [d for d in fit if d >= (15 if period >= 60 else 1)]
    if coarse or fit:
        return (coarse or fit)[-1]
    return min(d for d in divisors if period // d <= 60)


_DEFAULT: Catalogue | None = None


def default_catalogue() -> Catalogue:
    """The built-in catalogue (built once; metrics are immutable)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Catalogue()
    return _DEFAULT


# Cheap, low-cardinality metrics worth having as series for dashboards and Prometheus-side
# alerting outside the hub. The hub itself never reads them (see the module docstring).
RECORDED = (
    ("cluster", "cluster_cpu_utilisation"),
    ("cluster", "cluster_memory_utilisation"),
    ("cluster", "cluster_pod_running_count"),
    ("cluster", "cluster_node_offline_count"),
    ("nodes", "node_cpu_utilisation"),
    ("nodes", "node_memory_utilisation"),
    ("nodes", "node_disk_size_utilisation"),
    ("namespaces", "namespace_cpu_usage"),
    ("namespaces", "namespace_memory_usage"),
)


RULES_HEADER = """\
# Recording rules generated from hub/collectors/catalogue.py (python -m hub.collectors.catalogue).
# Do not edit by hand: a unit test compares this file with the catalogue.
#
# The hub does NOT depend on these: its queries read the raw series of
# docs/metrics-conventions.md, because recording rules only exist from the moment Prometheus
# evaluates them and the hub's charts, window rankings and alert backtests must work over
# older history too (e.g. a promtool backfill). These are the same expressions recorded as
# kubehub:<metric> for dashboards and alerting outside the hub.
"""


def recording_rules(catalogue: Catalogue | None = None) -> dict[str, Any]:
    cat = catalogue or default_catalogue()
    rules: list[dict[str, Any]] = [
        {"record": "kubehub:namespace_workspace:info", "expr": Query().ns_workspace()},
    ]
    for level, name in RECORDED:
        rules.append({"record": f"kubehub:{name}", "expr": cat.expr(level, name)})
    # One minute is plenty for dashboards and keeps the cost small next to the scrapes.
    return {"groups": [{"name": "kubehub", "interval": "1m", "rules": rules}]}


def render_rules_file() -> str:
    import yaml

    return RULES_HEADER + yaml.safe_dump(recording_rules(), sort_keys=False, width=100_000)


if __name__ == "__main__":
    print(render_rules_file(), end="")


def catalogue_markdown(catalogue: Catalogue | None = None) -> str:
    """The metric tables of docs/monitoring.md (a unit test keeps the two in step)."""
    cat = catalogue or default_catalogue()
    lines: list[str] = []
    for level in LEVELS:
        labels = ", ".join(f"`{k}`" for k in ENTITY_LABELS[level]) or "none (one value)"
        lines += [f"### {level}", "", f"Entity labels: {labels}.", "", "| metric | unit | meaning |", "|---|---|---|"]
        for m in cat.metrics(level):
            extra = f" (by {', '.join(m.labels)})" if level == "components" and m.labels else ""
            lines.append(f"| `{m.name}` | {m.unit} | {m.description}{extra} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
