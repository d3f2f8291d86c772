"""The monitoring query service behind ``GET /api/v1/monitoring/{level}``.

It turns a validated :class:`MonitoringRequest` into PromQL through the catalogue, sends the
queries (concurrently, within one deadline), ranks with pandas and shapes the answer of
API.md "Monitoring". Validation of the request's names against the catalogue is here too
(pure, with field names in every error); the web layer reads the numbers, times and durations
with its one bounded parser (``web.params``) and passes the caller's :class:`hub.scope.Scope`.

The scope is enforced here (:meth:`MonitoringService.scoped`): it becomes
``MonitoringRequest.filters.namespaces`` (None: every namespace; a tuple: exactly these), which
``catalogue.Query.s`` renders into every namespaced selector; this module never writes a
matcher itself. A live ranking is the exception that proves it: it is answered from the level's
table, one evaluation over every namespace (:mod:`hub.collectors.monitoring_view`), and the
scope is then applied here by keeping only the caller's namespaces' entities.

Several clusters: the scope is the view of one cluster (``Scope.at``), so a request is about
that cluster. ``sources`` (the runtime's, from the cluster registry) gives each cluster's query
backend and, for a shared endpoint, the value of its ``cluster`` label, which becomes
``filters.cluster_label`` (rendered into every selector by ``Query.s``); ``filters.cluster``
keeps answers and cached totals of two clusters apart. ``monitoring_clusters.query_across``
ranks the entities of several clusters in one table with a ``cluster`` label (each cluster asked
as the caller's view of it, so with that cluster's own checks).

Over 400 lines because request validation, the query plan (concurrent queries within one
deadline), rankings and the answer's shape are one pipeline over the same frames.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from hub.collectors import rankings
from hub.collectors.catalogue import (
    ENTITY_LABELS,
    LEVEL_FILTERS,
    STATS,
    TENANT_LEVELS,
    WORKLOAD_KINDS,
    Catalogue,
    EmptyScope,
    Filters,
    resolution,
)
from hub.collectors.monitoring_series import entity_union, missing_of, narrow_to_page, series_of
from hub.collectors.monitoring_shared import TABLES_KEPT, TOTAL_TTL, Deadline, SharedAnswers, TtlCache
from hub.collectors.monitoring_view import (
    RankingTable,
    WindowTableUse,
    answerable,
    build_table,
    table_filters,
    window_metrics,
    window_table_budget,
    window_table_ttl,
    window_table_uses,
)
from hub.collectors.monitoring_window import STEPPED_LEVELS, SteppedWindows
from hub.collectors.prometheus import QueryBackend, QuerySpec, Vector
from hub.collectors.promql import promql_number, validate_names
from hub.errors import BackendUnavailable, HubError, InvalidInput, StillComputing, Unprocessable
from hub.scope import DEFAULT_CLUSTER, Scope, refusal
from hub.timeutil import Clock, format_duration

# Request parameter -> (Filters field, Kubernetes name grammar).
FILTER_PARAMS: dict[str, tuple[str, str]] = {
    "nodes": ("nodes", "subdomain"),
    "workspace": ("workspaces", "label_value"),
    "workspaces": ("workspaces", "label_value"),
    "namespaces": ("namespaces", "label"),
    "kind": ("kinds", "kind"),
    "workloads": ("workloads", "subdomain"),
    "pods": ("pods", "subdomain"),
    "containers": ("containers", "label"),
}
READ_PERMISSION = "monitoring:read"  # tenant levels, per namespace
CLUSTER_PERMISSION = "monitoring:cluster"  # cluster, node and control-plane levels
MAX_LIMIT = 1000  # rows per page: beyond this a ranking is an export, not a page
DEFAULT_LIMIT = 10
DEFAULT_RANGE_POINTS = 240  # points per series when a range query gives no step
# A cluster's name -> (its query backend, the value of its `cluster` label on a shared endpoint
# or ''); raises NotFound naming ``cluster`` for an unknown one (the runtime's, from the registry).
MetricsSources = Callable[[str], tuple[QueryBackend | None, str]]


@dataclass(frozen=True)
class MonitoringRequest:
    level: str
    metrics: tuple[str, ...]
    time: float | None = None
    start: float | None = None
    end: float | None = None
    step: float | None = None
    filters: Filters = field(default_factory=Filters)
    sort_metric: str | None = None
    descending: bool = True
    page: int = 1
    limit: int | None = None
    window: float | None = None
    stat: str = "avg"

    @property
    def is_range(self) -> bool:
        return self.start is not None

    def with_namespaces(self, namespaces: Sequence[str] | None) -> MonitoringRequest:
        """The request restricted to ``namespaces`` (None: every namespace). Only
        :meth:`MonitoringService.scoped` calls this, with the caller's scope's answer."""
        ns = None if namespaces is None else tuple(sorted(set(namespaces)))
        return replace(self, filters=replace(self.filters, namespaces=ns))


def _csv(args: Mapping[str, str], name: str) -> list[str]:
    raw = args.get(name) or ""
    return [part.strip() for part in raw.split(",") if part.strip()]


def parse_request(
    catalogue: Catalogue,
    level: str,
    args: Mapping[str, str],
    *,
    now: float,
    max_points: int,
    time: float | None = None,
    start: float | None = None,
    end: float | None = None,
    step: float | None = None,
    page: int = 1,
    limit: int | None = None,
    window: float | None = None,
) -> MonitoringRequest:
    """Validate a request of API.md "Monitoring" into a :class:`MonitoringRequest`.

    ``args`` holds the name parameters (metrics, the filters, sort_metric, sort_type, stat),
    checked here against the catalogue; numbers, times and durations arrive already read by
    the web layer's bounded parser (``web.params.monitoring_request``: finite, 1970-2100,
    durations of at most ten years), and only their combination is checked here.

    Unknown level or metric: 400 listing the valid names. A filter that does not apply at the
    level: 400 naming it (silently ignoring it would show more than the caller asked for).
    A range with more points than ``max_points`` per series: 422 with the limit.
    """
    level = catalogue.level(level)
    names = _csv(args, "metrics")
    metrics = tuple(dict.fromkeys(catalogue.metric(level, n).name for n in names)) or tuple(
        catalogue.metric_names(level)
    )

    filters: dict[str, Any] = {}  # Filters fields (the name tuples; cluster fields are the service's)
    for param, (target, grammar) in FILTER_PARAMS.items():
        values = _csv(args, param)
        if not values:
            continue
        if target not in LEVEL_FILTERS[level]:
            allowed = sorted(p for p, (t, _) in FILTER_PARAMS.items() if t in LEVEL_FILTERS[level])
            raise InvalidInput(
                f"{param} does not filter the {level} level; filters here: {', '.join(allowed) or 'none'}", field=param
            )
        if grammar == "kind":
            bad = [v for v in values if v not in WORKLOAD_KINDS]
            if bad:
                raise InvalidInput(f"unknown kind {bad[0]!r}; valid: {', '.join(WORKLOAD_KINDS)}", field=param)
            checked = tuple(sorted(set(values)))
        else:
            checked = validate_names(values, grammar=grammar, field=param)
        filters[target] = tuple(sorted(set(filters.get(target, ()) + checked)))

    if time is not None and start is not None:
        raise InvalidInput("give either time (instant) or start/end/step (range), not both", field="time")
    at = time
    if start is not None:
        end = now if end is None else end
        if end <= start:
            raise InvalidInput("end must be after start", field="end")
        span = end - start
        step = step if step is not None else float(max(15, math.ceil(span / DEFAULT_RANGE_POINTS)))
        points = math.floor(span / step) + 1
        if points > max_points:
            least = math.ceil(span / (max_points - 1))
            raise Unprocessable(
                f"a {format_duration(span)} range at step {format_duration(step)} needs {points} points per series; "
                f"the limit is {max_points} (use step >= {least}s or a shorter range)",
                field="step",
            )
    elif end is not None or step is not None:
        raise InvalidInput("a range query needs start (end and step are optional)", field="start")

    sort_metric = args.get("sort_metric") or None
    if sort_metric:
        sort_metric = catalogue.metric(level, sort_metric, field="sort_metric").name
        if not ENTITY_LABELS[level]:
            raise InvalidInput(f"the {level} level has a single entity; there is nothing to rank", field="sort_metric")
    sort_type = (args.get("sort_type") or "desc").lower()
    if sort_type not in ("desc", "asc"):
        raise InvalidInput(f"sort_type must be desc or asc, got {sort_type!r}", field="sort_type")
    if limit is None and sort_metric:
        limit = DEFAULT_LIMIT
    stat = (args.get("stat") or "avg").lower()
    if stat not in STATS:
        raise InvalidInput(f"unknown stat {stat!r}; valid: {', '.join(STATS)}", field="stat")
    if window is not None and start is not None:
        raise InvalidInput("window applies to instant queries; a range query ranks over its own span", field="window")
    if args.get("stat") and window is None and start is None:
        raise InvalidInput("stat needs a window (e.g. window=24h&stat=p95)", field="stat")
    if window is not None:
        metrics = window_metrics(metrics, named=bool(names), sort_metric=sort_metric)

    return MonitoringRequest(
        level=level,
        metrics=metrics,
        time=at,
        start=start,
        end=end,
        step=step,
        filters=Filters(**filters),
        sort_metric=sort_metric,
        descending=sort_type == "desc",
        page=page,
        limit=limit,
        window=window,
        stat=stat,
    )


class MonitoringService:
    """Runs monitoring requests against a query backend (Prometheus, or a test's fake)."""

    def __init__(
        self,
        catalogue: Catalogue,
        backend: QueryBackend | None,
        *,
        clock: Clock,
        timeout: float = 10.0,
        max_points: int = 11000,
        share_seconds: float = 0.0,
        table_seconds: float | None = None,
        sources: MetricsSources | None = None,
        default_cluster: str = DEFAULT_CLUSTER,
        spawn: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.backend = backend
        self.sources = sources  # None: one cluster, ``backend`` (see the module docstring)
        self.default_cluster = default_cluster
        self.clock = clock
        self.timeout = timeout
        self.max_points = max_points
        self._totals = TtlCache(clock, TOTAL_TTL)
        self.shared: SharedAnswers[dict[str, Any]] = SharedAnswers(clock, share_seconds)
        table_ttl = share_seconds if table_seconds is None else table_seconds
        # ``spawn`` runs a job on a background thread: a table in use is then built again
        # before it expires (refresh ahead), so a busy ranking never waits for its table.
        self.views: SharedAnswers[RankingTable] = SharedAnswers(clock, table_ttl, size=TABLES_KEPT, spawn=spawn)
        self._table_failed = TtlCache(clock, table_ttl)
        self.windows = SteppedWindows()  # kept points of window tables (monitoring_window)

    # The web layer's parser reads numbers and times, then hands names over to :meth:`build`.
    filter_params = tuple(FILTER_PARAMS)
    max_limit = MAX_LIMIT

    def build(self, level: str, args: Mapping[str, str], **numbers: Any) -> MonitoringRequest:
        """Validate a request whose numbers, times and durations are already read (see :func:`parse_request`)."""
        return parse_request(self.catalogue, level, args, now=self.clock.now(), max_points=self.max_points, **numbers)

    # -- what the runtime hands to other areas (alerting) ------------------------------
    def metric_table(self) -> dict[str, dict[str, str]]:
        """{level: {metric: unit}} for every level: alert policy validation checks names and
        units against it."""
        return {level: self.catalogue.units(level) for level in ENTITY_LABELS}

    def alert_query(
        self, level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None
    ) -> tuple[str, list[str]]:
        """See :meth:`Catalogue.alert_query`."""
        return self.catalogue.alert_query(level, metric, aggregation, period_seconds, namespace=namespace)

    def instant(self, promql: str, *, time: float | None = None) -> pd.DataFrame:
        """One instant query as a long frame (labels..., series, timestamp, value)."""
        return self.backend_of().instant(promql, time=time)

    def range(self, promql: str, *, start: float, end: float, step: float) -> pd.DataFrame:
        """One range query as a long frame (labels..., series, timestamp, value)."""
        return self.backend_of().range(promql, start=start, end=end, step=step)

    def backend_of(self, cluster: str = "") -> QueryBackend:
        if cluster and self.sources is not None:  # an added cluster's own or shared endpoint
            backend = self.sources(cluster)[0]
            if backend is None:
                raise BackendUnavailable(f"prometheus of cluster {cluster}", "the cluster has no metrics source")
            return backend
        if self.backend is None:
            raise BackendUnavailable("prometheus", "not configured (set KUBEHUB_PROMETHEUS_URL)")
        return self.backend

    def _in_cluster(self, req: MonitoringRequest, scope: Scope) -> MonitoringRequest:
        """The request aimed at the scope's cluster: its label matcher when its series share an
        endpoint, its name in the filters (cache keys). The implicit cluster without a label:
        unchanged, as in a single-cluster install."""
        name = scope.at
        if self.sources is None:
            if name != self.default_cluster:
                raise refusal(READ_PERMISSION)  # no other cluster here: as a foreign one
            return req
        if name != self.default_cluster and not scope.may_read_cluster(name):
            raise refusal(READ_PERMISSION)  # unknown and foreign alike
        _backend, label = self.sources(name)
        cluster = "" if name == self.default_cluster else name
        if not cluster and not label:
            return req
        return replace(req, filters=replace(req.filters, cluster=cluster, cluster_label=label))

    def window_tables(self) -> list[WindowTableUse]:
        """The window statistics' tables kept now (hub/runtime/monitoring.py keeps the list)."""
        return window_table_uses(self.views.kept_keys())

    def start_window_table(self, use: WindowTableUse) -> None:
        """Start building ``use``'s table as its first caller would (InvalidInput: not known)."""
        args = {"metrics": use.metric, "sort_metric": use.metric, "stat": use.stat}
        req = self.build(use.level, args, limit=1, window=use.window)
        label = self.sources(use.cluster or self.default_cluster)[1] if self.sources is not None else ""
        req = replace(req, filters=Filters(cluster=use.cluster, cluster_label=label))
        with contextlib.suppress(StillComputing):
            self._table(req, use.metric, self.clock.now(), Deadline(self.timeout, table_wait=0.0))

    # -- the endpoint ----------------------------------------------------------------------
    def scoped(self, req: MonitoringRequest, scope: Scope) -> MonitoringRequest:
        """The request within the caller's scope. Tenant levels: the namespaces named are
        checked (one outside the scope: the one 403 of :meth:`Scope.check`, whether it exists
        or not; the request is refused whole, never silently narrowed), none named means every
        namespace the caller may read. Cluster levels (also reached through an alias such as
        "node"): platform admins only."""
        if req.level in TENANT_LEVELS:
            return self._in_cluster(req.with_namespaces(scope.named(READ_PERMISSION, req.filters.namespaces)), scope)
        scope.check_cluster(CLUSTER_PERMISSION)
        return self._in_cluster(req, scope)

    def query(self, req: MonitoringRequest, scope: Scope, *, table_wait: float | None = None) -> dict[str, Any]:
        """Answer a request (API.md "Monitoring") as the caller whose scope this is. A live
        request (no ``time=``, not a range) is answered from the answer of the same scoped
        request if one is at most ``share_seconds`` old (:class:`~hub.collectors.monitoring_shared.SharedAnswers`).
        ``table_wait``: at most this long (not the whole timeout) for a ranking table still
        being built, then StillComputing (the console's page shows that, and reloads)."""
        req = self.scoped(req, scope)
        if self._from_table(req):
            return self._answer(req, table_wait)  # the table is what is shared (and says how old it is)
        if req.time is None and not req.is_range:
            return self.shared.get(req, lambda: self._answer(req), wait=self.timeout)
        return self._answer(req)

    def _from_table(self, req: MonitoringRequest) -> bool:
        if self.views.ttl <= 0 or req.filters.namespaces == ():
            return False
        if req.filters.namespaces is not None and self._table_failed.get(self._table_key(req)) is not None:
            return False  # its table failed a moment ago: this narrowed caller is asked per request
        return answerable(req.level, req.filters, sort_metric=req.sort_metric, is_range=req.is_range, time=req.time)

    def _table_key(self, req: MonitoringRequest) -> tuple[str, str | None, float | None, str | None, Filters]:
        window = (req.window, req.stat) if req.window is not None else (None, None)
        return (req.level, req.sort_metric, *window, table_filters(req.filters))

    def _answer(self, req: MonitoringRequest, table_wait: float | None = None) -> dict[str, Any]:
        keys = ENTITY_LABELS[req.level]
        deadline = Deadline(self.timeout, table_wait)
        if req.filters.namespaces == ():
            # The caller may see no namespace of this request: answer empty without a query.
            return self._shape(req, {m: None for m in req.metrics}, page=(), total=0)
        at = req.end if req.is_range else (req.time if req.time is not None else self.clock.now())
        assert at is not None
        try:
            if req.sort_metric:
                return self._ranked(req, keys, at, deadline)
            frames = self._fetch(req, req.metrics, req.filters, at, deadline)
        except EmptyScope:
            return self._shape(req, {m: None for m in req.metrics}, page=(), total=0)
        ordered = entity_union(frames.values(), keys)
        total = len(ordered) if keys else (1 if any(f is not None and not f.empty for f in frames.values()) else 0)
        page = ordered
        if req.limit is not None and keys:
            start = (req.page - 1) * req.limit
            page = ordered[start : start + req.limit]
        return self._shape(req, frames, page=page, total=total)

    def _ranked(self, req: MonitoringRequest, keys: tuple[str, ...], at: float, deadline: Deadline) -> dict[str, Any]:
        assert req.sort_metric is not None and req.limit is not None
        if self._from_table(req):
            try:
                return self._ranked_from_table(req, keys, at, deadline)
            except HubError:
                if req.filters.namespaces is None:
                    raise  # every namespace: the same query as per request, the same error
                self._table_failed.put(self._table_key(req), 1)
        backend = self.backend_of(req.filters.cluster)
        needed = req.page * req.limit
        fetched = needed + rankings.slack(needed)
        expr = self._value_expr(req, req.sort_metric, req.filters)
        # ">= -Inf" drops NaN (which topk would otherwise rank arbitrarily) and keeps ±Inf.
        guarded = f"({expr}) >= -Inf"
        pick = "topk" if req.descending else "bottomk"
        universe_expr = self.catalogue.entities_expr(req.level, req.filters)
        specs = [QuerySpec(f"{pick}({fetched}, {guarded})", time=at)]
        live = req.time is None and not req.is_range
        counted = self._totals.get((req.level, req.filters)) if live else None
        if universe_expr is not None and counted is None:
            specs.append(QuerySpec(f"count({universe_expr})", time=at))
        # Vectors, not frames: the ranking reads a few dozen (labels, value) pairs (see
        # hub.collectors.prometheus.Vector for what a frame would cost here).
        answers = backend.vectors(specs, timeout=deadline.remaining())
        top = answers[0]
        if len(answers) > 1:
            counted = int(answers[1].values[0]) if not answers[1].empty else 0
            if live:
                self._totals.put((req.level, req.filters), counted)
        counted = counted or 0
        values = rankings.label_values(top.metrics, top.values, keys)
        if not rankings.is_exact(values.values, needed=needed, fetched=fetched, descending=req.descending):
            # A tie at the page boundary may continue past what topk returned: fetch every
            # entity at least as good as the boundary value (bounded by the tie, not by the
            # level's size) and let the name tie-break decide. Same evaluation time, same
            # expression: equal values compare equal.
            boundary = rankings.boundary_of(values.values, needed=needed, descending=req.descending)
            comparison = ">=" if req.descending else "<="
            tied = QuerySpec(f"({expr}) {comparison} {promql_number(boundary)}", time=at)
            top = backend.vectors([tied], timeout=deadline.remaining())[0]
            values = rankings.label_values(top.metrics, top.values, keys)
        universe: tuple[rankings.Key, ...] | None = None
        if values.with_values() < needed and universe_expr is not None:
            # The page reaches past the entities with a value: list the others (missing last).
            listed = backend.vectors([QuerySpec(universe_expr, time=at)], timeout=deadline.remaining())[0]
            universe = rankings.label_values(listed.metrics, listed.values, keys).keys
        ranked = rankings.order(values, descending=req.descending, universe=universe or ())
        total = len(ranked) if universe is not None else max(counted, len(ranked))
        page = ranked.page(page=req.page, limit=req.limit).keys
        frames: dict[str, pd.DataFrame | Vector | None] = {}
        rest = list(req.metrics)
        if not req.is_range and req.sort_metric in rest:
            frames[req.sort_metric] = top  # _shape keeps the page's entities of it
            rest.remove(req.sort_metric)
        if rest and page:
            narrowed = narrow_to_page(req.filters, keys, page)
            frames.update(self._fetch(req, rest, narrowed, at, deadline))
        return self._shape(req, {m: frames.get(m) for m in req.metrics}, page=page, total=total)

    def _ranked_from_table(
        self, req: MonitoringRequest, keys: tuple[str, ...], at: float, deadline: Deadline
    ) -> dict[str, Any]:
        """A live ranking from the level's table (:mod:`hub.collectors.monitoring_view`),
        evaluated once for the whole cluster and narrowed here to the caller's namespaces. Each
        other column of a stepped window ranking is a table of its own (narrowed to the page, its
        subquery would still join every pod). Their builds start before the sort metric's table
        is waited for: started only once it was kept, a page whose tables were all missing (after
        a restart) showed "still computing" once per column, each a build after the one before."""
        assert req.sort_metric is not None and req.limit is not None
        metric = req.sort_metric
        rest = [name for name in req.metrics if name != metric]
        stepped = bool(rest) and req.window is not None and req.level in STEPPED_LEVELS
        for name in rest if stepped else ():
            with contextlib.suppress(HubError):  # still computing (a failure is the call below's to raise)
                self._table(req, name, at, Deadline(self.timeout, table_wait=0.0))
        table = self._table(req, metric, at, deadline)
        ranked = table.select(req.filters.namespaces, descending=req.descending)
        page = ranked.page(page=req.page, limit=req.limit).keys
        frames: dict[str, pd.DataFrame | Vector | None] = {metric: table.vector(page)}
        if stepped and page:
            frames.update({name: self._table(req, name, at, deadline).vector(page) for name in rest})
        elif rest and page:  # the page's other metrics, at the table's time
            frames.update(self._fetch(req, rest, narrow_to_page(req.filters, keys, page), table.at, deadline))
        return self._shape(req, {m: frames.get(m) for m in req.metrics}, page=page, total=len(ranked))

    def _table(self, req: MonitoringRequest, metric: str, at: float, deadline: Deadline) -> RankingTable:
        """The table of ``metric`` at the request's level (and window), evaluated or kept."""
        evaluate = self._table_evaluation(req, metric)
        # Any table but a window statistic's is rebuilt ahead, away from this request. A window
        # statistic's is right until its subquery step ends (_window_build). A tenant waits half
        # its budget: _ranked can answer from the tenant's own namespaces, which costs far less.
        window = req.window
        narrowed = window is not None and req.filters.namespaces is not None
        return self.views.get(
            self._table_key(replace(req, sort_metric=metric)),
            lambda: evaluate(at, deadline.remaining()),
            wait=deadline.for_table() / 2 if narrowed else deadline.for_table(),
            renew=None if window is not None else lambda: evaluate(self.clock.now(), self.timeout),
            **({} if window is None else self._window_build(req, at, evaluate)),
        )

    def _window_build(
        self, req: MonitoringRequest, at: float, evaluate: Callable[[float, float], RankingTable]
    ) -> dict[str, Any]:
        """How a window statistic's table is built and kept (SharedAnswers' arguments): right
        until its subquery step ends (window_table_ttl); the step's first caller starts it in the
        background with up to a step's time, kept a step past its end if it ended after its
        step; and handed out a step longer while the next step's is built, so that only the
        first caller after a restart waits for one (each answer says when it was evaluated)."""
        assert req.window is not None
        step = float(resolution(req.window))
        budget = window_table_budget(req.window, self.timeout)
        return {
            "ttl": window_table_ttl(req.window, at),
            "background": lambda: evaluate(at, budget),
            "kept_after": step,
            "stale_for": step,
        }

    def _table_evaluation(self, req: MonitoringRequest, metric: str) -> Callable[[float, float], RankingTable]:
        """One evaluation of the table of ``metric`` (at a time, within a timeout)."""
        whole = table_filters(req.filters)

        def evaluate(at: float, timeout: float) -> RankingTable:
            listed = self.catalogue.entities_expr(req.level, whole)
            budget, backend, values = Deadline(timeout), self.backend_of(req.filters.cluster), None
            if req.window is not None and req.level in STEPPED_LEVELS:  # from kept points (monitoring_window)
                key = (req.filters.cluster, whole.cluster_label, req.level, metric, req.window)
                values = self.windows.statistic(
                    key, self.catalogue, backend, whole, stat=req.stat, at=at,
                    remaining=budget.remaining, now=self.clock.now,
                )  # fmt: skip
            specs = [QuerySpec(f"({self._value_expr(req, metric, whole)}) >= -Inf", time=at)] if values is None else []
            specs += [QuerySpec(listed, time=at)] if listed is not None else []
            answers = backend.vectors(specs, timeout=timeout if values is None else budget.remaining())
            values = answers.pop(0) if values is None else values
            return build_table(req.level, values, answers[0] if listed else None, at=at)

        return evaluate

    # -- queries ---------------------------------------------------------------------------
    def _value_expr(self, req: MonitoringRequest, metric: str, filters: Filters) -> str:
        """What a ranking orders by: the instant value, the window stat, or for a range
        request the stat over the whole range."""
        if req.window is not None or req.is_range:
            assert req.end is not None or req.window is not None
            window = req.window if req.window is not None else (req.end or 0) - (req.start or 0)
            return self.catalogue.window_expr(req.level, metric, stat=req.stat, window_seconds=window, filters=filters)
        return self.catalogue.expr(req.level, metric, filters)

    def _fetch(
        self, req: MonitoringRequest, metrics: Sequence[str], filters: Filters, at: float, deadline: Deadline
    ) -> dict[str, pd.DataFrame | None]:
        specs = []
        for name in metrics:
            if req.is_range:
                assert req.start is not None and req.end is not None and req.step is not None
                specs.append(
                    QuerySpec(
                        self.catalogue.expr(req.level, name, filters, rate_seconds=2 * req.step),
                        start=req.start,
                        end=req.end,
                        step=req.step,
                    )
                )
            else:
                specs.append(QuerySpec(self._value_expr(req, name, filters), time=at))
        if not specs:
            return {}
        frames = self.backend_of(req.filters.cluster).many(specs, timeout=deadline.remaining())
        return dict(zip(metrics, frames, strict=True))

    # -- answer ----------------------------------------------------------------------------
    def _shape(
        self,
        req: MonitoringRequest,
        frames: Mapping[str, pd.DataFrame | Vector | None],
        *,
        page: Sequence[rankings.Key],
        total: int,
    ) -> dict[str, Any]:
        keys = ENTITY_LABELS[req.level]
        results = []
        partial = False
        for name in req.metrics:
            metric = self.catalogue.metric(req.level, name)
            frame = frames.get(name)
            series, have = series_of(frame, keys, page)
            missing = missing_of(have, keys, page)
            if not keys and not series and total:
                missing = [{}]
            partial = partial or bool(missing)
            results.append(
                {
                    "metric": name,
                    "level": req.level,
                    "unit": metric.unit,
                    "series": series,
                    "missing": missing,
                }
            )
        body: dict[str, Any] = {"results": results, "page": req.page, "total": total, "partial": partial}
        if req.limit is not None:
            body["limit"] = req.limit
        if req.window is not None:
            body["window"] = format_duration(req.window)
            body["stat"] = req.stat
        elif req.is_range and req.sort_metric:
            body["stat"] = req.stat
        return body
