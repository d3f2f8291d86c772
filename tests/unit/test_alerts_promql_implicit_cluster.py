"""A tenant's PromQL rule of a project in the IMPLICIT cluster on a metrics endpoint shared by
clusters (``clusters.default_metrics_label``): every selector of the compiled query also matches
the implicit cluster's ``cluster`` label, live (CycleRunner), in its evidence query line, in
backtests, and a rule matching ``cluster`` itself is refused when saved. Without the label (a
single-cluster hub, or prometheus.url is the cluster's own Prometheus) the query is the
namespace-scoped text exactly as before. The same-named namespace of another cluster is
checked against Prometheus in tests/integration/test_clusters_scope.py."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import promql_parser as pp
import pytest

from hub.alerts.backtest import run_backtest
from hub.alerts.cycle import CycleRunner
from hub.alerts.engine_model import compile_rules
from hub.alerts.policy import PolicyInvalid, parse_policy
from hub.alerts.promql_scope import scope_expression
from hub.alerts.service import AlertService
from hub.store import Database
from hub.store.alerts import AlertStore
from hub.timeutil import FakeClock
from tests.unit.test_alerts_promql_scope import ACCEPTED, NS, _policy, _selectors

pytestmark = pytest.mark.unit

LABEL = "default"  # the implicit cluster's label value on the shared endpoint
T0 = 1_795_000_020.0


def _matchers(vs: pp.VectorSelector) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for m in vs.matchers.matchers:
        out.setdefault(m.name, []).append(m)
    return out


@pytest.mark.parametrize("expr", ACCEPTED)
def test_an_implicit_cluster_tenant_rule_matches_the_implicit_label_on_every_selector(expr: str) -> None:
    policy = parse_policy(_policy("workload", expr))
    (cr,) = compile_rules([("id", policy)], implicit_label=LABEL)
    assert cr.key.metric.startswith("promql:"), cr.key.metric
    selectors = _selectors(cr.key.metric.removeprefix("promql:"))
    assert selectors
    for vs in selectors:  # subqueries, both sides of binary operations, function arguments
        found = _matchers(vs)
        for label, value in (("namespace", NS), ("cluster", LABEL)):
            (m,) = found[label]
            assert (m.op, m.value) == (pp.MatchOp.Equal, value), (expr, cr.key.metric)
    # No label configured: the namespace-scoped text exactly as before (single-cluster hubs).
    (plain,) = compile_rules([("id", policy)])
    assert plain.key.metric == "promql:" + scope_expression(expr, NS)
    assert all("cluster" not in _matchers(vs) for vs in _selectors(plain.key.metric.removeprefix("promql:")))


def test_catalogue_admin_and_added_cluster_keys_do_not_change_with_the_implicit_label() -> None:
    node = parse_policy(_policy("node", 'up{job="node"} == 0'))
    added = parse_policy({**_policy("workload", "kube_pod_info > 0"), "namespace": f"cluster-2/{NS}"})
    before = [cr.key for cr in compile_rules([("n", node), ("a", added)])]
    assert [cr.key for cr in compile_rules([("n", node), ("a", added)], implicit_label=LABEL)] == before


def test_a_stored_rule_matching_cluster_compiles_to_nothing_with_the_label() -> None:
    # Saved before the label was configured (no cluster check then): now refused at compile time.
    forged = parse_policy(_policy("workload", 'kube_pod_info{cluster="cluster-2"} > 0'))
    (cr,) = compile_rules([("id", forged)], implicit_label=LABEL)
    assert cr.key.metric.startswith("promql:vector(0) unless vector(0) # refused: cluster matcher")


def _store() -> tuple[Database, AlertStore]:
    db = Database(":memory:")
    db.migrate()
    return db, AlertStore(db)


def test_the_live_cycle_sends_and_records_the_labelled_query() -> None:
    db, store = _store()
    try:
        expr = "kube_pod_container_status_restarts_total > 2"
        doc = _policy("workload", expr, period="1m")
        policy = parse_policy(doc)
        store.insert_policy(policy_id="p1", level="workload", namespace=NS, name="p", document=policy.to_document(),
                            enabled=True, actor="t", now=T0)  # fmt: skip
        asked: list[str] = []

        def query(promql: str, start: float, at: float, step: float) -> pd.DataFrame:
            asked.append(promql)
            return pd.DataFrame({"namespace": [NS], "pod": ["web-1"], "value": [4.0]})

        def builder(*args: Any, **kwargs: Any) -> Any:  # PromQL rules of the implicit cluster never call it
            raise AssertionError(f"builder called with {args}")

        clock = FakeClock(T0)
        runner = CycleRunner(store=store, build_query=builder, run_query=query, clock=clock, tick_seconds=60,
                             implicit_label=LABEL)  # fmt: skip
        runner.run_once()
        expected = scope_expression(expr, NS, cluster_label=LABEL)
        assert asked == [expected] and f'cluster="{LABEL}"' in expected
        rows, _ = store.alerts(namespaces=None, include_cluster=True, active=True, limit=10)
        assert [r["entity"] for r in rows] and all(r["query"].endswith(expected) for r in rows), [dict(r) for r in rows]
    finally:
        db.close()


def test_a_backtest_reads_the_labelled_query() -> None:
    expr = "kube_pod_container_status_restarts_total > 2"
    policy = parse_policy(_policy("workload", expr, period="1m"))
    asked: list[str] = []

    def range_query(promql: str, start: float, end: float, step: float) -> pd.DataFrame:
        asked.append(promql)
        times = [t for t in range(int(start), int(end) + 1, int(step))]
        return pd.DataFrame(
            {"namespace": [NS] * len(times), "pod": ["web-1"] * len(times), "timestamp": times, "value": 4.0}
        )

    result = run_backtest(policy, start=T0 - 600, end=T0, now=T0, build_query=lambda *a, **k: ("", ()),
                          range_query=range_query, implicit_label=LABEL)  # fmt: skip
    assert asked and set(asked) == {scope_expression(expr, NS, cluster_label=LABEL)}
    assert result.alerts  # the served answer is the one the replay's cycles read


def test_saving_a_rule_that_matches_cluster_is_refused_only_with_the_label() -> None:
    db, store = _store()
    try:
        doc = _policy("workload", 'kube_pod_info{cluster="cluster-2"} > 0')
        labelled = AlertService(store, clock=FakeClock(T0), implicit_label=LABEL)
        with pytest.raises(PolicyInvalid) as info:
            labelled.parse(json.loads(json.dumps(doc)), level="workload", namespace=NS)
        body = info.value.to_dict()
        assert body["field"] == "rules[0].expr" and "cluster matcher" in body["error"], body
        # Without the label (one cluster, its own Prometheus) the tenant may narrow by cluster.
        assert AlertService(store, clock=FakeClock(T0)).parse(doc, level="workload", namespace=NS).rules[0].expr
        # Other expressions are accepted with the label.
        assert labelled.parse(_policy("workload", "kube_pod_info > 0"), level="workload", namespace=NS)
    finally:
        db.close()


def test_the_import_report_refuses_a_rule_matching_cluster_only_with_the_label() -> None:
    from hub.alerts.rule_import import ImportOptions, import_rule_texts

    text = """
groups:
  - name: apps
    rules:
      - alert: Elsewhere
        expr: kube_pod_info{cluster="cluster-2"} > 0
      - alert: Mine
        expr: kube_pod_info > 0
"""
    labelled = import_rule_texts(
        [("f.yaml", text)], ImportOptions(level="workload", namespace=NS, implicit_label=LABEL)
    )
    outcomes = {it.rule: it for it in labelled.items}
    assert outcomes["Elsewhere"].outcome == "not_importable"
    assert "cluster matcher" in " ".join(outcomes["Elsewhere"].reasons)
    assert outcomes["Mine"].outcome in ("imported", "changed")
    plain = import_rule_texts([("f.yaml", text)], ImportOptions(level="workload", namespace=NS))
    assert {it.rule: it.outcome for it in plain.items}["Elsewhere"] != "not_importable"
