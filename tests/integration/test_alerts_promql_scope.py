"""Tenant PromQL rules against the sandbox's real Prometheus: no expression a tenant can save
returns a row, a sample or an evidence line of another namespace.

For every expression of the corpus (escape attempts included) the test checks that the tenant
policy saves, then runs the scoped query as the engine does (instant and range, through the
hub's Prometheus client) and through the engine itself (plan -> fetch -> evaluate, transitions
and their samples, the evidence's query text). The reference is Prometheus itself: the same
expression written by hand for the namespace (``ORACLE``) must give the same rows and values,
and the unscoped original must return other namespaces' rows (so the scoping is what kept
them out, not an empty sandbox).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

from hub.alerts import engine
from hub.alerts.cycle_stages import describe_query
from hub.alerts.engine_model import rule_metric
from hub.alerts.policy import PolicyInvalid, parse_policy
from hub.alerts.promql_scope import scope_expression
from hub.collectors.prometheus import PrometheusClient
from tests.unit.test_alerts_promql_scope import ACCEPTED, REFUSED

NS = "retail-api"

OTHERS = ("retail-web", "analytics-etl", "analytics-db", "kubehub-system")

# Escape attempt -> the expression a person would write for the namespace (Prometheus's own
# answer for the scoped query).
ORACLE = {
    'kube_pod_info{namespace="retail-web"}': f'kube_pod_info{{namespace="{NS}"}}',
    'kube_pod_info{namespace=~".+"}': f'kube_pod_info{{namespace="{NS}"}}',
    'kube_pod_info{namespace!="retail-api"}': f'kube_pod_info{{namespace="{NS}"}}',
    '{__name__="kube_pod_info", namespace="kubehub-system"}': f'kube_pod_info{{namespace="{NS}"}}',
    "count by (namespace) (kube_pod_info) > 1": f'count by (namespace) (kube_pod_info{{namespace="{NS}"}}) > 1',
    'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{namespace=~"retail-.*"}[5m]))': (
        f'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{namespace="{NS}"}}[5m]))'
    ),
}

EXTRA = [
    'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{namespace=~"retail-.*"}[5m]))',
    "container_memory_working_set_bytes > 0",
    "kube_pod_container_status_restarts_total >= 0",
    "max_over_time(container_memory_working_set_bytes[10m:1m]) > 0",
]


@pytest.fixture(scope="module")
def prom(sandbox: Any) -> PrometheusClient:
    client = PrometheusClient(sandbox.prometheus_url, timeout=30.0)
    names = set(client.instant("count by (namespace) (kube_pod_info)")["namespace"])
    assert NS in names and names & set(OTHERS), f"the sandbox needs pods in {NS} and another project: {names}"
    return client


def _namespaces(frame: pd.DataFrame) -> set[str]:
    if not len(frame):
        return set()
    assert "namespace" in frame.columns, frame.columns
    return set(frame["namespace"].astype(str))


def _rows(frame: pd.DataFrame) -> dict[tuple[tuple[str, str], ...], float]:
    labels = sorted(c for c in frame.columns if c not in ("timestamp", "value", "__name__"))
    return {tuple((c, str(r[c])) for c in labels): float(r["value"]) for _, r in frame.iterrows()}


@pytest.mark.parametrize("expr", [*ACCEPTED, *EXTRA])
def test_scoped_queries_read_only_the_namespace(prom: PrometheusClient, expr: str) -> None:
    at = float(int(time.time()) - 30)
    policy = parse_policy(
        {"name": "p", "level": "workload", "namespace": NS, "rules": [{"name": "r", "expr": expr, "severity": "minor"}]}
    )
    scoped = scope_expression(expr, NS)
    assert rule_metric(policy, policy.rules[0]) == "promql:" + scoped
    now = prom.instant(scoped, time=at)
    assert _namespaces(now) <= {NS}
    history = prom.range(scoped, start=at - 600, end=at, step=60)
    assert _namespaces(history) <= {NS}
    if expr in ORACLE:
        want = prom.instant(ORACLE[expr], time=at)
        assert len(want), f"the oracle {ORACLE[expr]} returned nothing; the comparison would prove nothing"
        assert _rows(now) == pytest.approx(_rows(want), rel=1e-9)
        if "namespace" in expr:  # the attempt itself, unscoped, reaches other namespaces
            assert _namespaces(prom.instant(expr, time=at)) - {NS}, expr


def test_the_engine_sees_only_the_namespace(prom: PrometheusClient) -> None:
    """A tenant's PromQL rule through plan -> fetch -> evaluate: every alert, its labels, its
    samples and its evidence query belong to the namespace."""
    at = float(int(time.time()) // 60 * 60 - 60)
    rules = [
        {"name": f"r{i}", "expr": e, "severity": "minor", "period": "1m"}
        for i, e in enumerate(
            [
                'container_memory_working_set_bytes{namespace="retail-web"} > 0',
                'kube_pod_info{namespace=~".+"}',
                "kube_pod_container_status_restarts_total >= 0",
            ]
        )
    ]
    policy = parse_policy({"name": "p", "level": "workload", "namespace": NS, "rules": rules})
    compiled = engine.compile_rules([("pid", policy)])
    plan = engine.plan(compiled, now=at + 1, last_slots={}, build_query=_no_catalogue)
    results: dict[Any, Any] = {}
    for q in plan.queries:
        assert q.start == q.at and q.step == 60.0  # one point per period: the value at the slot's end
        results[q.key] = prom.range(q.promql, start=q.start, end=q.at, step=q.step)
    ev = engine.evaluate(plan, results, {})
    assert ev.transitions, "no rule fired; the sandbox has pods in the namespace, so this proves nothing"
    for tr in ev.transitions:
        assert tr.labels.get("namespace") == NS, tr.labels
        assert NS in tr.entity and not any(o in tr.entity for o in OTHERS)
        assert all(v is not None for _, v in tr.state.samples)
    for cr in compiled:
        text = describe_query(rule_metric(policy, cr.rule), cr.rule.aggregation, cr.rule.period)
        assert f'namespace="{NS}"' in text and not any(o in text for o in OTHERS)


@pytest.mark.parametrize(("expr", "construct"), REFUSED)
def test_refused_expressions_cannot_be_saved(expr: str, construct: str) -> None:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(
            {
                "name": "p",
                "level": "workload",
                "namespace": NS,
                "rules": [{"name": "r", "expr": expr, "severity": "minor"}],
            }
        )
    assert info.value.problems[0].path == "rules[0].expr"
    assert construct in info.value.problems[0].message


def _no_catalogue(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a PromQL rule must not ask the catalogue for a query")
