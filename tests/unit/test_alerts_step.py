"""The step rule (issue 12): a period's points are a divisor of it apart, so they land on every
slot's end and on the same grid live, in backtests and in Prometheus's own subquery.

The oracle here is a brute force over every candidate step (1..period) written from the rule
in docs/alerting.md, not the engine's divisor search."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hub.alerts import engine
from hub.alerts.backtest import MAX_QUERY_POINTS, _fetch_in_chunks
from hub.alerts.policy import MAX_PERIOD, MIN_PERIOD, parse_policy

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0  # a multiple of every period used below


def documented_step(period: int) -> int:
    """docs/alerting.md, literally: a divisor; the largest giving at least 4 points (and at
    least 15 s for periods of a minute or more); else the largest giving 4..60 points; else
    the most points up to 60."""
    divisors = [d for d in range(1, period + 1) if period % d == 0]
    fit = [d for d in divisors if 4 <= period // d <= 60]
    coarse = [d for d in fit if d >= (15 if period >= 60 else 1)]
    if coarse:
        return max(coarse)
    if fit:
        return max(fit)
    return min(d for d in divisors if period // d <= 60)


@pytest.mark.parametrize(
    ("period", "step"),
    [
        (10, 2),
        (15, 3),
        (20, 5),
        (30, 6),  # was 8: points at at-22, at-14, at-6, never at the slot's end
        (45, 9),  # was 11
        (60, 15),
        (90, 18),  # was 22
        (150, 30),  # was 38
        (300, 75),
        (3600, 900),
        (86400, 21600),
        (70, 14),  # no divisor of 70 between 15 s and 17.5 s: 5 points 14 s apart
        (59, 1),  # a prime under a minute: 59 points, 1 s apart
        (61, 61),  # a prime over 60: one point, the value at the slot's end
        (122, 61),  # 2 x 61: two points
    ],
)
def test_known_periods(period: int, step: int) -> None:
    assert engine.step_for(period) == step


def test_every_period_up_to_20_minutes_follows_the_documented_rule() -> None:
    for period in range(int(MIN_PERIOD), 1201):
        assert engine.step_for(period) == documented_step(period), period


def test_every_accepted_period_gets_a_divisor_with_at_most_60_points() -> None:
    rng = random.Random(12)
    periods = list(range(int(MIN_PERIOD), 3601)) + rng.sample(range(3601, int(MAX_PERIOD) + 1), 3000)
    periods.append(int(MAX_PERIOD))
    for period in periods:
        step = engine.step_for(period)
        assert step == int(step) and period % step == 0, period
        assert 1 <= period / step <= engine.MAX_POINTS, period
        if any(4 <= period // d <= 60 for d in range(1, period + 1) if period % d == 0):
            assert period / step >= engine.MIN_POINTS, period


class Builder:
    def __call__(
        self, level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None
    ) -> tuple[str, Sequence[str]]:
        return metric, ["node"]


def rule_policy(period: str, aggregation: str, threshold: float) -> Any:
    return parse_policy(
        {
            "name": "p",
            "level": "node",
            "rules": [
                {
                    "name": "r",
                    "metric": "node_load1",
                    "aggregation": aggregation,
                    "comparator": ">",
                    "threshold": threshold,
                    "period": period,
                    "consecutive": 1,
                    "severity": "minor",
                }
            ],
        }
    )


def prometheus_range(start: float, end: float, step: float, value: Any) -> pd.DataFrame:
    """What Prometheus's query_range answers: points at start, start + step, ... <= end."""
    ts = start + step * np.arange(math.floor((end - start) / step + 1e-9) + 1)
    return pd.DataFrame({"node": "n1", "timestamp": ts, "value": [value(t) for t in ts]})


@pytest.mark.parametrize("seconds", [10, 15, 30, 45, 60, 90, 150, 300, 3600])
def test_the_planned_fetch_holds_exactly_the_multiples_of_step_in_the_slot(seconds: int) -> None:
    compiled = engine.compile_rules([("p", rule_policy(f"{seconds}s", "avg", 1))])
    plan = engine.plan(compiled, now=T0 + 0.5, last_slots={}, build_query=Builder())
    (q,) = plan.queries
    points = prometheus_range(q.start, q.at, q.step, lambda t: 0.0)["timestamp"].tolist()
    slot = [T0 - seconds + k for k in range(1, seconds + 1) if k % q.step == 0]
    assert points == slot and points[-1] == T0


@pytest.mark.parametrize("seconds", [15, 30, 45, 90, 150])
def test_a_last_rule_reads_the_point_at_the_slot_end_for_periods_that_are_not_multiples_of_15s(seconds: int) -> None:
    """Issue 12: with step 8 a 30 s ``last`` rule never had a point at the slot's end, so it
    never fired. The value is only high at the slot's end."""
    compiled = engine.compile_rules([("p", rule_policy(f"{seconds}s", "last", 5))])
    plan = engine.plan(compiled, now=T0, last_slots={}, build_query=Builder())
    (q,) = plan.queries
    frame = prometheus_range(q.start, q.at, q.step, lambda t: 9.0 if t == T0 else 1.0)
    ev = engine.evaluate(plan, {q.key: frame}, {})
    assert [(t.to_state, t.value) for t in ev.transitions] == [("firing", 9.0)]


def test_avg_of_points_with_a_nan_is_nan_like_avg_over_time_while_max_skips_it() -> None:
    compiled = engine.compile_rules(
        [
            ("a", rule_policy("1m", "avg", 0.5)),
            ("m", rule_policy("1m", "max", 0.5)),
            ("n", rule_policy("1m", "min", 0.5)),
        ]
    )
    plan = engine.plan(compiled, now=T0, last_slots={}, build_query=Builder())
    (q,) = plan.queries
    frame = prometheus_range(q.start, q.at, q.step, lambda t: math.nan if t == T0 - 30 else 1.0)
    ev = engine.evaluate(plan, {q.key: frame}, {})
    assert sorted(t.policy_id for t in ev.transitions) == ["m", "n"]
    assert ev.health["a/r"].breaching == 0


@pytest.mark.parametrize(("slots", "period"), [(20_160, 10.0), (20_160, 59.0), (1440, 60.0), (8640, 10.0)])
def test_backtest_pieces_stay_within_prometheus_points_limit(slots: int, period: float) -> None:
    step = engine.step_for(period)
    asked: list[tuple[float, float]] = []

    def range_query(promql: str, start: float, end: float, step_: float) -> pd.DataFrame:
        asked.append((start, end))
        return pd.DataFrame({"series": 0, "timestamp": [start, end], "value": [0.0, 0.0]})

    first = math.ceil(T0 / period) * period
    _fetch_in_chunks(range_query, "m", first=first, last=first + (slots - 1) * period, period=period, step=step)
    assert all(round((end - start) / step) + 1 <= MAX_QUERY_POINTS for start, end in asked)
    spans = sorted(asked)
    assert spans[0][0] == first - period + step and spans[-1][1] == first + (slots - 1) * period
    assert all(b[0] == a[1] + step for a, b in itertools.pairwise(spans))


def test_the_catalogue_subquery_uses_the_engine_step() -> None:
    """The catalogue may not import the engine (layers), so it has its own copy of the rule."""
    from hub.collectors.catalogue import resolution_for_period

    for period in [*range(int(MIN_PERIOD), 3601), 7200, 86399, int(MAX_PERIOD)]:
        assert resolution_for_period(period) == engine.step_for(period), period
