"""Per-user rate limits of the expensive requests (settings group ``rate_limits``).

Which requests are expensive is decided here, by endpoint, after authentication (so the count
is per user) and before the view runs (so a refused request costs nothing):
- log exports (``GET /api/v1/logs/export``): up to ``logs.export_cap`` lines each;
- backtests (API saved/unsaved at both levels, and the console's backtest form): a replay of
  hours of Prometheus history through the rule engine;
- long queries: a log histogram (``GET /api/v1/logs/histogram``) or a metric query
  (``GET /api/v1/monitoring/<level>``) spanning more than ``long_range_hours`` — a range
  ``start..end`` or a ranking ``window`` (e.g. ``24h``). Short ones are not counted: they are
  what the console asks for all day.
Login is limited where it is checked, in the tenancy service (failed logins per user name and
per client address); both answer through :class:`hub.errors.RateLimited`: 429 with
``Retry-After``. Both count in the state store, so every replica sees the same window
(:mod:`hub.store.ratelimit` says why and what it costs).

Spans are read with the core's bounded parsers; a parameter they refuse is not counted here
(the view answers 400 for it without doing the expensive part).
"""

from __future__ import annotations

import math
from typing import Any

from flask import current_app, g, request

from hub.errors import HubError
from hub.settings import RateLimitSettings
from hub.store.db import StateStore
from hub.store.ratelimit import SharedRateLimiter
from hub.timeutil import Clock, parse_duration, parse_time

EXPORTS = "log exports"
BACKTESTS = "backtests"
LONG_QUERIES = "long-range queries"

# endpoint -> what it counts as (always), or how to measure its span (long queries).
ALWAYS: dict[str, str] = {
    "api_logs.export_logs": EXPORTS,
    "api_alerting.backtest_unsaved_node_policy": BACKTESTS,
    "api_alerting.backtest_node_policy": BACKTESTS,
    "api_alerting.backtest_unsaved_workload_policy": BACKTESTS,
    "api_alerting.backtest_workload_policy": BACKTESTS,
    "views.alerting.node_policy_backtest": BACKTESTS,
    "views.alerting.workload_policy_backtest": BACKTESTS,
}
LOG_SPAN = "logs"
METRIC_SPAN = "metrics"
BY_SPAN: dict[str, str] = {
    "api_logs.log_histogram": LOG_SPAN,
    "api_monitoring.tenant_level": METRIC_SPAN,
    "api_monitoring.cluster_level": METRIC_SPAN,
}


class RequestLimits:
    """The limiter of one app, with the settings that say how many of each kind."""

    def __init__(self, settings: RateLimitSettings, clock: Clock, db: StateStore) -> None:
        self.settings = settings
        self.clock = clock
        self.limiter = SharedRateLimiter(db, settings.window, clock=clock)

    def limit_of(self, kind: str) -> int:
        return {
            EXPORTS: self.settings.log_exports,
            BACKTESTS: self.settings.backtests,
            LONG_QUERIES: self.settings.long_queries,
        }[kind]

    def kind_of(self, endpoint: str, args: Any) -> str | None:
        """What the request counts as, or None when it is not limited."""
        if endpoint in ALWAYS:
            return ALWAYS[endpoint]
        measure = BY_SPAN.get(endpoint)
        if measure is None:
            return None
        span = _span(args, self.clock.now(), logs=measure == LOG_SPAN)
        return LONG_QUERIES if span > self.settings.long_range_hours * 3600 else None

    def check(self, endpoint: str, username: str, args: Any) -> None:
        kind = self.kind_of(endpoint, args)
        if kind is not None:
            self.limiter.hit(kind, username, self.limit_of(kind), what=kind)


def _span(args: Any, now: float, *, logs: bool) -> float:
    """Seconds the request covers; 0 when a parameter is malformed (the view refuses it)."""
    try:
        window = args.get("window")
        if window and not logs:
            return parse_duration(window, field="window")
        start, end = args.get("start"), args.get("end")
        if not start:
            # A histogram without start covers everything kept; a metric query without one is instant.
            return math.inf if logs else 0.0
        return (parse_time(end, field="end") if end else now) - parse_time(start, field="start")
    except HubError:
        return 0.0


def install(app: Any, settings: RateLimitSettings, clock: Clock, db: StateStore) -> None:
    app.extensions["kubehub_limits"] = RequestLimits(settings, clock, db)


def check() -> None:
    """before_request step (after :func:`web.access.enforce`): count the caller's expensive request."""
    limits: RequestLimits | None = current_app.extensions.get("kubehub_limits")
    principal = g.get("principal")
    if limits is None or principal is None or request.endpoint is None:
        return
    limits.check(request.endpoint, principal.username, request.args)
