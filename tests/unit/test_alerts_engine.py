"""The pure rule engine with a fake clock: planning, batching, the state machine, scoping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hub.alerts import engine
from hub.alerts.engine import EntityState, Plan, QueryKey
from hub.alerts.policy import parse_policy
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0  # a slot boundary for 60 s periods (divisible by 60)


class RecordingBuilder:
    """Our QueryBuilder protocol; records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(
        self, level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None
    ) -> tuple[str, Sequence[str]]:
        self.calls.append((level, metric, aggregation, period_seconds, namespace))
        labels = ["node"] if level == "node" else ["namespace", "workload_kind", "workload"]
        return f"{aggregation}_over_time({metric}[{int(period_seconds)}s])", labels


def node_policy(*, threshold: float = 0.9, consecutive: int = 3, comparator: str = ">", nodes: Any = None) -> Any:
    doc = {
        "name": "node-pressure",
        "level": "node",
        "rules": [
            {
                "name": "cpu-high",
                "metric": "node_cpu_utilisation",
                "comparator": comparator,
                "threshold": threshold,
                "unit": "ratio",
                "period": "1m",
                "consecutive": consecutive,
                "severity": "critical",
            }
        ],
    }
    if nodes is not None:
        doc["target"] = {"nodes": nodes}
    return parse_policy(doc)


def workload_policy(namespace: str, *, name: str = "api-cpu", workloads: Any = None, consecutive: int = 1) -> Any:
    doc: dict[str, Any] = {
        "name": name,
        "level": "workload",
        "namespace": namespace,
        "rules": [
            {
                "name": "cpu",
                "metric": "workload_cpu_usage",
                "comparator": ">",
                "threshold": 500,
                "unit": "millicores",
                "period": "1m",
                "consecutive": consecutive,
                "severity": "major",
            }
        ],
    }
    if workloads is not None:
        doc["target"] = {"workloads": workloads}
    return parse_policy(doc)


def nodes_frame(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"node": list(values), "value": list(values.values())})


def workloads_frame(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["namespace", "workload_kind", "workload", "value"])


class Harness:
    """Drives engine cycles with a fake clock the way the cycle runner does, minus the I/O."""

    def __init__(self, policies: list[tuple[str, Any]]) -> None:
        self.clock = FakeClock(T0)
        self.rules = engine.compile_rules(policies)
        self.builder = RecordingBuilder()
        self.last_slots: dict[float, float] = {}
        self.tracked: dict[tuple[str, str, str], EntityState] = {}
        self.transitions: list[engine.Transition] = []
        self.plan: Plan | None = None

    def cycle(self, results: dict[QueryKey, Any] | Any, *, advance: float = 60.0) -> engine.Evaluation:
        plan = engine.plan(self.rules, now=self.clock.now(), last_slots=self.last_slots, build_query=self.builder)
        self.plan = plan
        if not isinstance(results, dict):
            results = {q.key: results for q in plan.queries}
        ev = engine.evaluate(plan, results, self.tracked)
        self.tracked = ev.states
        self.last_slots.update(plan.slots)
        self.transitions.extend(ev.transitions)
        self.clock.advance(advance)
        return ev

    def states(self) -> dict[str, str]:
        return {k[2]: s.state for k, s in self.tracked.items()}


def moves(ev: engine.Evaluation) -> list[tuple[str, str, str]]:
    return [(t.entity, t.from_state, t.to_state) for t in ev.transitions]


def test_a_rule_fires_only_after_its_consecutive_breaching_periods() -> None:
    h = Harness([("p1", node_policy(consecutive=3))])
    hot = nodes_frame({"n1": 0.95, "n2": 0.2})
    assert moves(h.cycle(hot)) == [("n1", "inactive", "pending")]
    assert moves(h.cycle(hot)) == []
    assert h.tracked[("p1", "cpu-high", "n1")].count == 2
    assert moves(h.cycle(hot)) == [("n1", "pending", "firing")]
    assert h.states() == {"n1": "firing"}
    firing = h.tracked[("p1", "cpu-high", "n1")]
    assert firing.started_at == T0 and firing.fired_at == T0 + 120
    assert [v for _, v in firing.samples] == [0.95, 0.95, 0.95]


def test_a_recovery_before_firing_resets_the_count() -> None:
    h = Harness([("p1", node_policy(consecutive=3))])
    hot, cool = nodes_frame({"n1": 0.95}), nodes_frame({"n1": 0.5})
    h.cycle(hot)
    h.cycle(hot)
    assert moves(h.cycle(cool)) == [("n1", "pending", "inactive")]
    assert h.tracked == {}
    h.cycle(hot)
    h.cycle(hot)
    assert h.states() == {"n1": "pending"}
    assert moves(h.cycle(hot)) == [("n1", "pending", "firing")]


def test_a_firing_rule_resolves_when_the_value_recovers() -> None:
    h = Harness([("p1", node_policy(consecutive=1))])
    assert moves(h.cycle(nodes_frame({"n1": 0.95}))) == [("n1", "inactive", "firing")]
    ev = h.cycle(nodes_frame({"n1": 0.1}))
    assert moves(ev) == [("n1", "firing", "resolved")]
    assert ev.transitions[0].value == 0.1
    assert h.tracked == {}


def test_missing_data_puts_a_firing_alert_in_nodata_never_resolved() -> None:
    h = Harness([("p1", node_policy(consecutive=1))])
    h.cycle(nodes_frame({"n1": 0.95, "n2": 0.5}))
    ev = h.cycle(nodes_frame({"n2": 0.5}))
    assert moves(ev) == [("n1", "firing", "nodata")]
    for _ in range(5):
        assert all(t.to_state != "resolved" for t in h.cycle(nodes_frame({"n2": 0.5})).transitions)
    assert h.states() == {"n1": "nodata"}
    # NaN (e.g. 0/0) is no data too, not a recovery.
    assert moves(h.cycle(nodes_frame({"n1": float("nan")}))) == []
    # When data returns below the threshold, that is a real recovery.
    assert moves(h.cycle(nodes_frame({"n1": 0.2}))) == [("n1", "nodata", "resolved")]


def test_nodata_returning_hot_goes_back_to_firing_with_a_reason() -> None:
    h = Harness([("p1", node_policy(consecutive=1))])
    h.cycle(nodes_frame({"n1": 0.95}))
    h.cycle(nodes_frame({}))
    ev = h.cycle(nodes_frame({"n1": 0.97}))
    assert moves(ev) == [("n1", "nodata", "firing")]
    assert "data is back" in ev.transitions[0].reason


def test_an_alert_without_data_for_long_is_closed_not_resolved() -> None:
    h = Harness([("p1", node_policy(consecutive=1))])
    h.cycle(nodes_frame({"n1": 0.95}))
    h.cycle(nodes_frame({}))
    ends = []
    for _ in range(61):
        ends += [t.to_state for t in h.cycle(nodes_frame({})).transitions]
    assert ends == ["closed"]
    assert h.tracked == {}


def test_a_query_error_freezes_states_and_never_resolves() -> None:
    h = Harness([("p1", node_policy(consecutive=2))])
    h.cycle(nodes_frame({"n1": 0.95, "n2": 0.95}))
    h.cycle(nodes_frame({"n1": 0.95}))  # n1 fires, n2 had no data while pending -> inactive
    assert h.states() == {"n1": "firing"}
    ev = h.cycle(ConnectionError("prometheus is down"))
    assert moves(ev) == [("n1", "firing", "error")]
    assert ev.health["p1/cpu-high"].status == "error"
    ev = h.cycle(ConnectionError("prometheus is down"))
    assert moves(ev) == []
    assert h.states() == {"n1": "error"}
    # Back with the value still high: firing again, no new pending streak.
    ev = h.cycle(nodes_frame({"n1": 0.96}))
    assert moves(ev) == [("n1", "error", "firing")]
    assert h.tracked[("p1", "cpu-high", "n1")].fired_at == T0 + 60
    ev = h.cycle(nodes_frame({"n1": 0.1}))
    assert moves(ev) == [("n1", "firing", "resolved")]


def test_an_error_while_pending_neither_counts_nor_resets() -> None:
    h = Harness([("p1", node_policy(consecutive=3))])
    hot = nodes_frame({"n1": 0.95})
    h.cycle(hot)
    h.cycle(hot)
    h.cycle(RuntimeError("timeout"))
    assert h.tracked[("p1", "cpu-high", "n1")].count == 2
    assert moves(h.cycle(hot)) == [("n1", "error", "firing")]


def test_one_query_per_distinct_metric_level_aggregation_and_period() -> None:
    policies = []
    for i in range(50):
        doc = node_policy(threshold=0.5 + i / 200).to_document()
        doc["name"] = f"p{i}"
        doc["rules"].append({**doc["rules"][0], "name": "mem", "metric": "node_memory_utilisation"})
        policies.append((f"id{i}", parse_policy(doc)))
    for ns in ("team-a", "team-b", "team-c"):
        policies.append((f"w-{ns}", workload_policy(ns)))
    h = Harness(policies)
    frame = nodes_frame({"n1": 0.6})
    results: dict[QueryKey, Any] = {}
    ev = None
    plan = engine.plan(h.rules, now=T0, last_slots={}, build_query=h.builder)
    assert len(plan.due) == 103
    assert len(plan.queries) == 3
    for q in plan.queries:
        results[q.key] = frame if q.key.level == "node" else workloads_frame([])
    ev = engine.evaluate(plan, results, {})
    # thresholds 0.5..0.745: the first 20 policies' cpu and mem rules breach at 0.6
    assert len(ev.transitions) == 40
    assert all(call[4] is None for call in h.builder.calls)


def test_a_rule_is_due_once_per_period_slot_and_missed_slots_are_counted() -> None:
    h = Harness([("p1", node_policy())])
    h.cycle(nodes_frame({"n1": 0.1}), advance=15)
    h.cycle(nodes_frame({"n1": 0.1}), advance=15)
    assert h.plan is not None and h.plan.due == ()
    h.clock.advance(300)
    h.cycle(nodes_frame({"n1": 0.1}))
    assert h.plan.missed == {60.0: 4}  # slots T0+60 .. T0+240 were skipped


def test_workload_rules_only_see_their_own_namespace() -> None:
    h = Harness([("pa", workload_policy("team-a", consecutive=1)), ("pb", workload_policy("team-b", consecutive=1))])
    rows = [
        ("team-a", "deployment", "api", 0.9),
        ("team-b", "deployment", "api", 0.1),
        ("team-c", "deployment", "api", 5.0),
    ]
    ev = h.cycle(workloads_frame(rows))
    assert [(t.policy_id, t.entity) for t in ev.transitions] == [("pa", "team-a/deployment/api")]
    assert ev.health["pb/cpu"].entities == 1


def test_a_workload_result_without_a_namespace_label_is_an_error_not_a_leak() -> None:
    h = Harness([("pa", workload_policy("team-a", consecutive=1))])
    frame = pd.DataFrame({"workload": ["api"], "value": [9.0]})
    ev = h.cycle(frame)
    assert ev.transitions == []
    assert ev.health["pa/cpu"].status == "error"


def test_selected_targets_limit_the_entities() -> None:
    h = Harness([("pa", workload_policy("team-a", consecutive=1, workloads=[{"kind": "deployment", "name": "web-*"}]))])
    rows = [
        ("team-a", "Deployment", "web-1", 0.9),
        ("team-a", "deployment", "api", 0.9),
        ("team-a", "statefulset", "web-db", 0.9),
    ]
    ev = h.cycle(workloads_frame(rows))
    assert [t.entity for t in ev.transitions] == ["team-a/Deployment/web-1"]
    h2 = Harness([("p1", node_policy(consecutive=1, nodes=["worker-*"]))])
    ev = h2.cycle(nodes_frame({"worker-1": 0.99, "master-1": 0.99}))
    assert [t.entity for t in ev.transitions] == ["worker-1"]


@pytest.mark.parametrize(
    ("comparator", "value", "breaches"),
    [
        (">", 0.5, False),
        (">=", 0.5, True),
        ("<", 0.4, True),
        ("<=", 0.6, False),
        ("==", 0.1 + 0.4, True),
        ("!=", 0.5, False),
    ],
)
def test_each_comparator(comparator: str, value: float, breaches: bool) -> None:
    h = Harness([("p1", node_policy(threshold=0.5, comparator=comparator, consecutive=1))])
    ev = h.cycle(nodes_frame({"n1": value}))
    assert bool(ev.transitions) is breaches


def test_percent_thresholds_compare_against_ratio_values() -> None:
    doc = node_policy().to_document()
    doc["rules"][0].update(threshold=90, unit="percent", consecutive=1)
    h = Harness([("p1", parse_policy(doc))])
    assert len(h.cycle(nodes_frame({"n1": 0.91, "n2": 0.89})).transitions) == 1


def test_alert_ids_are_deterministic_for_replays() -> None:
    a = Harness([("p1", node_policy(consecutive=1))])
    b = Harness([("p1", node_policy(consecutive=1))])
    ta = a.cycle(nodes_frame({"n1": 0.99})).transitions[0]
    tb = b.cycle(nodes_frame({"n1": 0.99})).transitions[0]
    assert ta.alert_id == tb.alert_id


def test_flapping_values_produce_a_state_change_every_period() -> None:
    h = Harness([("p1", node_policy(consecutive=1))])
    kinds = []
    for i in range(6):
        kinds += [t.to_state for t in h.cycle(nodes_frame({"n1": 0.99 if i % 2 == 0 else 0.1})).transitions]
    assert kinds == ["firing", "resolved"] * 3


def test_avg_max_min_and_last_of_one_metric_share_one_fetch_and_are_computed_from_its_points() -> None:
    rules = []
    for agg, thr in (("avg", 0.5), ("max", 0.85), ("min", 0.15), ("last", 0.35)):
        doc = node_policy(threshold=thr, consecutive=1).to_document()
        doc["name"] = f"p-{agg}"
        doc["rules"][0]["aggregation"] = agg
        rules.append((f"p-{agg}", parse_policy(doc)))
    compiled = engine.compile_rules(rules)
    plan = engine.plan(compiled, now=T0 + 5, last_slots={}, build_query=RecordingBuilder())
    assert len(plan.queries) == 1
    q = plan.queries[0]
    assert (q.start, q.at, q.step, q.aggregations) == (T0 - 45, T0, 15.0, ("avg", "last", "max", "min"))
    # n1's points in (T0-60, T0]: 0.2, 0.9, 0.6, 0.4 -> avg 0.525, max 0.9, min 0.2, last 0.4.
    # The point at T0-60 belongs to the previous period and must not count.
    times = [T0 - 60, T0 - 45, T0 - 30, T0 - 15, T0]
    frame = pd.DataFrame(
        {
            "node": ["n1"] * 5 + ["n2"] * 4,
            "timestamp": times + times[:4],
            "value": [0.99, 0.2, 0.9, 0.6, 0.4] + [0.1] * 4,
        }
    )
    ev = engine.evaluate(plan, {q.key: frame}, {})
    fired = sorted((t.policy_id, t.entity, round(t.value or 0, 3)) for t in ev.transitions)
    # n1: avg 0.525 > 0.5, max 0.9 > 0.85, min 0.2 > 0.15, last 0.4 > 0.35 all breach;
    # n2 has no point at T0, so "last" has no data for it (and 0.1 breaches nothing else).
    assert fired == [("p-avg", "n1", 0.525), ("p-last", "n1", 0.4), ("p-max", "n1", 0.9), ("p-min", "n1", 0.2)]
    assert ev.health["p-last/cpu-high"].entities == 1


def _random_range_answer(rng: Any, *, slots: int, period: float, step: float, with_series: bool) -> pd.DataFrame:
    """Points of a few series over ``slots`` periods, with gaps, NaN values and two series that
    share one entity key (a relabelled pod, say), in Prometheus's series-by-series order."""
    entities = [("ns-a", "deployment", "web"), ("ns-a", "statefulset", "db"), ("ns-b", "deployment", "web")]
    entities.append(entities[0])  # a second series of the same entity
    first = T0 - slots * period + step
    times = first + step * np.arange(int(slots * period / step))
    parts = []
    for i, (ns, kind, name) in enumerate(entities):
        present = rng.random(len(times)) > 0.15
        values = rng.normal(1.0, 0.5, len(times))
        values[rng.random(len(times)) < 0.05] = np.nan
        part = {"namespace": ns, "kind": kind, "workload": name, "timestamp": times[present], "value": values[present]}
        if with_series:
            part["series"] = i
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("with_series", [True, False])
@pytest.mark.parametrize(("period", "step"), [(60.0, 15.0), (300.0, 75.0), (90.0, 22.0)])
def test_slot_aggregates_match_aggregating_each_slot_as_fetched(with_series: bool, period: float, step: float) -> None:
    """A backtest's vectorised per-slot aggregation must equal the live engine's per-fetch path."""
    rng = np.random.default_rng(7)
    labels = ("namespace", "kind", "workload")
    frame = _random_range_answer(rng, slots=12, period=period, step=step, with_series=with_series)
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)  # series interleaved: the harder order
    whole = engine.SlotAggregates(frame, period=period, step=step, entity_labels=labels, level="workload")
    key = engine.FetchKey("workload", "workload_cpu_usage", period)
    compared = 0
    for k in range(12):
        at = T0 - k * period
        q = engine.PlannedQuery(key, at, at - period + step, step, "m", labels, ("avg", "last", "max", "min"))
        ts = frame["timestamp"].to_numpy()
        fetched = frame[(ts >= q.start - 1e-3) & (ts <= at + 1e-3)]
        per_fetch = engine.aggregate(fetched, q)
        for agg in q.aggregations:
            want = engine.prepare_frame(per_fetch[agg], labels, "workload")
            got = whole.at(at).frame(agg)
            assert list(got.keys) == list(want.keys), (agg, at)
            np.testing.assert_array_equal(got.values, want.values)
            assert got.label_names == want.label_names
            for name in labels:
                assert list(got.column(name)) == list(want.column(name))
            assert [got.row_labels(i) for i in got.all_rows] == [want.row_labels(i) for i in want.all_rows]
            assert {ns: list(r) for ns, r in got.by_namespace.items()} == {
                ns: list(r) for ns, r in want.by_namespace.items()
            }
            assert list(got.all_rows) == list(want.all_rows)
            compared += len(want.keys)
    assert compared > 12 * 4 * 2  # the comparison saw real rows, not empty slots


def test_slot_aggregates_refuse_a_workload_answer_without_namespace_like_a_fetch() -> None:
    frame = pd.DataFrame({"workload": ["web"], "timestamp": [T0], "value": [1.0]})
    whole = engine.SlotAggregates(frame, period=60, step=15, entity_labels=("namespace", "workload"), level="workload")
    with pytest.raises(ValueError, match="namespace"):
        whole.at(T0).frame("max")
