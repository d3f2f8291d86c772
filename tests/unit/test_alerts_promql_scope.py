"""Tenant PromQL scoping (hub/alerts/promql_scope.py) and PromQL rules in policies
(hub/alerts/policy_expr.py): every selector of a saved expression reads only the project's
namespace, and each refused construct is named. The queries themselves run against the
sandbox's Prometheus in tests/integration/test_alerts_promql_scope.py."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import promql_parser as pp
import pytest

from hub.alerts.engine_model import compile_rules, plan
from hub.alerts.policy import PolicyInvalid, parse_policy
from hub.alerts.policy_expr import consecutive_for, render_template
from hub.alerts.promql_scope import PromQLRefused, scope_expression

NS = "retail-api"

# Expressions a tenant may save, including attempts to read another namespace that scoping
# turns into reads of their own.
ACCEPTED = [
    'kube_pod_info{namespace="retail-web"}',
    'kube_pod_info{namespace=~".+"}',
    'kube_pod_info{namespace!="retail-api"}',
    'rate(container_cpu_usage_seconds_total{namespace=~"retail-.*"}[5m] offset 1m) > 0',
    "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5m]))"
    " / on (namespace, pod) group_left (node) kube_pod_info",
    "max_over_time((kube_pod_container_status_restarts_total"
    " - kube_pod_container_status_restarts_total offset 5m)[30m:1m]) > 0",
    "topk(3, kube_pod_container_status_restarts_total)",
    'label_replace(kube_pod_info, "host", "$1", "node", "(.*)")',
    "kube_pod_info and on (namespace, pod) kube_pod_status_ready",
    "kube_pod_info unless kube_pod_status_ready",
    "kube_pod_info > bool scalar(count(kube_node_info))",
    "-kube_pod_info + 2 * kube_pod_info",
    '{__name__="kube_pod_info", namespace="kubehub-system"}',
    "count by (namespace) (kube_pod_info) > 1",
    "sum without (pod) (kube_pod_info)",
    "histogram_quantile(0.9, sum by (namespace, le) (rate(apiserver_request_duration_seconds_bucket[5m])))",
    "kube_pod_info or kube_pod_status_ready",
]

# (expression, the construct its refusal must name)
REFUSED = [
    ("absent(kube_pod_info)", "absent()"),
    ("absent_over_time(kube_pod_info[5m])", "absent_over_time()"),
    ("kube_pod_info or vector(1)", "or with a side without series"),
    ("vector(1) or kube_pod_info", "or with a side without series"),
    ("kube_pod_info or on() vector(1)", "or with a side without series"),
    ("kube_pod_info and vector(1)", "and with a side without series"),
    ("kube_pod_info > on(pod) vector(1)", "> with a side without series"),
    ("vector(1)", "expression"),
    ("time()", "expression"),
    ("sum(kube_pod_info)", "sum()"),
    ("sum by (pod) (kube_pod_info)", "sum()"),
    ("sum without (namespace) (kube_pod_info)", "sum()"),
    ('count_values("namespace", kube_pod_info)', "count_values()"),
    ('label_replace(kube_pod_info, "namespace", "retail-web", "", "")', "label_replace()"),
    ('label_join(kube_pod_info, "namespace", ",", "pod")', "label_join()"),
    ('label_replace(kube_pod_info, ("namespace"), "x", "", "")', "label_replace()"),
    ('count_values(("namespace"), kube_pod_info)', "count_values()"),
    ("kube_pod_info @ 1700000000", "@ modifier"),
    ("rate(kube_pod_info[5m] @ start())", "@ modifier"),
    ("max_over_time(kube_pod_info[10m:1m] @ end())", "@ modifier"),
    ('{__name__=~"kube_.*"}', "{__name__=~...}"),
    ('{__name__=~".+", namespace="retail-web"}', "{__name__=~...}"),
    ('{pod="x"}', "selector without a metric name"),
    ("kube_pod_info / on() kube_pod_status_ready", "on()"),
    ("kube_pod_info / on(pod) kube_pod_status_ready", "on(pod)"),
    ("kube_pod_info / ignoring(namespace) kube_pod_status_ready", "ignoring(namespace)"),
    ("kube_pod_info * on(namespace, pod) group_left(namespace2, namespace) kube_pod_status_ready", "syntax"),
    ("kube_pod_info offset -5m", "offset"),
    ("kube_pod_info offset 30d", "offset"),
    ("max_over_time(kube_pod_info[30d])", "range"),
    ("max_over_time(kube_pod_info[30d:1h])", "subquery"),
    ("max_over_time(kube_pod_info[1d:1s])", "subquery"),
    ('kube_pod_info{pod="a" or pod="b"}', "or in a selector"),
    ("info(kube_pod_info)", "info()"),
    ("kube_pod_info[5m]", "expression"),
    ('"text"', "expression"),
    ("rate(kube_pod_info[5m]", "syntax"),
    ("day_of_week()", "expression"),
    ("scalar(kube_pod_info)", "expression"),
]


def _selectors(text: str) -> list[pp.VectorSelector]:
    found: list[pp.VectorSelector] = []

    def walk(e: object) -> None:
        if isinstance(e, pp.VectorSelector):
            found.append(e)
        elif isinstance(e, pp.MatrixSelector):
            found.append(e.vector_selector)
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(e, attr, None)
            if child is not None and not isinstance(e, pp.VectorSelector):
                walk(child)
        for a in getattr(e, "args", None) or []:
            walk(a)

    walk(pp.parse(text))
    return found


@pytest.mark.parametrize("expr", ACCEPTED)
def test_every_selector_is_forced_to_the_namespace(expr: str) -> None:
    scoped = scope_expression(expr, NS)
    selectors = _selectors(scoped)  # parsed again by the real parser: the printer's output is PromQL
    assert selectors
    for vs in selectors:
        ns = [m for m in vs.matchers.matchers if m.name == "namespace"]
        assert len(ns) == 1 and ns[0].op == pp.MatchOp.Equal and ns[0].value == NS, (expr, scoped)
        assert vs.at is None and not vs.matchers.or_matchers
    assert "retail-web" not in scoped and "kubehub-system" not in scoped


@pytest.mark.parametrize(("expr", "construct"), REFUSED)
def test_refusals_name_the_construct(expr: str, construct: str) -> None:
    with pytest.raises(PromQLRefused) as info:
        scope_expression(expr, NS)
    assert info.value.construct == construct, str(info.value)
    assert str(info.value).startswith(construct)


def test_label_values_are_quoted_safely() -> None:
    scoped = scope_expression('kube_pod_info{pod="a\\"}) or vector(1) #", node!~"x.y"}', NS)
    vs = _selectors(scoped)
    assert len(vs) == 1
    assert {m.name: m.value for m in vs[0].matchers.matchers}["pod"] == 'a"}) or vector(1) #'


def test_the_namespace_itself_is_quoted() -> None:
    scoped = scope_expression("kube_pod_info", 'a"b')
    assert _selectors(scoped)[0].matchers.matchers[0].value == 'a"b'


def test_deep_nesting_and_long_text_are_refused() -> None:
    with pytest.raises(PromQLRefused, match="nested"):
        scope_expression("(" * 80 + "kube_pod_info" + ")" * 80, NS)
    with pytest.raises(PromQLRefused, match="characters"):
        scope_expression("kube_pod_info" + " + kube_pod_info" * 400, NS)


def _policy(level: str, expr: str, **extra: object) -> dict:
    doc: dict = {
        "name": "p",
        "level": level,
        "rules": [{"name": "r", "expr": expr, "severity": "major", **extra}],
        "notification": {"receivers": []},
    }
    if level == "workload":
        doc["namespace"] = NS
    return doc


def test_tenant_policy_refusal_names_field_and_construct() -> None:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(_policy("workload", "sum(kube_pod_info) > 1"))
    body = info.value.to_dict()
    assert body["field"] == "rules[0].expr"
    assert "sum()" in body["error"]


def test_admin_may_use_any_expression_at_node_level() -> None:
    p = parse_policy(_policy("node", 'absent(up{job="node"} @ 100) or sum(vector(1))'))
    (cr,) = compile_rules([("id", p)])
    assert cr.key.metric == 'promql:absent(up{job="node"} @ 100) or sum(vector(1))'


def test_tenant_rule_compiles_to_the_scoped_query() -> None:
    p = parse_policy(_policy("workload", 'kube_pod_info{namespace="retail-web"} > 0', **{"for": "2m", "period": "1m"}))
    (cr,) = compile_rules([("id", p)])
    assert cr.key.metric == 'promql:kube_pod_info{namespace="retail-api"} > 0.0'
    assert cr.rule.consecutive == 3  # ceil(120 / 60) + 1: Prometheus's for at a 1m interval
    assert p.to_document()["rules"][0]["for"] == "2m"
    assert parse_policy(p.to_document()) == p


@pytest.mark.parametrize(
    ("for_s", "period", "n"), [(0, 60, 1), (60, 60, 2), (90, 60, 3), (120, 60, 3), (300, 30, 11), (10, 60, 2)]
)
def test_for_maps_like_prometheus(for_s: float, period: float, n: int) -> None:
    # Prometheus fires at the first evaluation t with t - activeAt >= for, evaluations `period` apart.
    first = next(k for k in range(1, 1000) if (k - 1) * period >= for_s)
    assert consecutive_for(for_s, period) == first == n


def test_templates_render_only_labels_and_value() -> None:
    text = (
        '{{ $labels.pod }} at {{ $value | humanizePercentage }} ({{ $value }}, {{ printf "%.2f" $value }})'
        " {{ $labels.missing }}"
    )
    assert render_template(text, {"pod": "web-1"}, 0.256) == "web-1 at 25.6% (0.256, 0.26) "
    assert render_template("{{ $value | humanize }}", {}, 2_500_000) == "2.5M"
    with pytest.raises(PolicyInvalid) as info:
        parse_policy(_policy("workload", "kube_pod_info", summary='{{ template "x" . }}'))
    assert info.value.problems[0].path == "rules[0].summary"


def test_no_regular_expression_decides_scope() -> None:
    with open("hub/alerts/promql_scope.py", encoding="utf-8") as fh:
        source = fh.read()
    assert not re.search(r"^import re\b|^from re import", source, re.M)


# -- a project of an added cluster (docs/multi-cluster.md) ---------------------------------------

CLUSTER = "cluster-2"


@pytest.mark.parametrize("expr", ACCEPTED)
def test_on_a_shared_endpoint_every_selector_also_matches_the_cluster(expr: str) -> None:
    scoped = scope_expression(expr, NS, cluster_label=CLUSTER)
    selectors = _selectors(scoped)  # subqueries, both sides of binary operations, function arguments
    assert selectors
    for vs in selectors:
        by_name: dict[str, list] = {}
        for m in vs.matchers.matchers:
            by_name.setdefault(m.name, []).append(m)
        for label, value in (("namespace", NS), ("cluster", CLUSTER)):
            (m,) = by_name[label]
            assert (m.op, m.value) == (pp.MatchOp.Equal, value), (expr, scoped)
    # Without a cluster label (the implicit cluster, or a cluster's own Prometheus): no matcher.
    assert all(all(m.name != "cluster" for m in vs.matchers.matchers) for vs in _selectors(scope_expression(expr, NS)))


@pytest.mark.parametrize(
    "expr",
    [
        'kube_pod_info{cluster="default"}',
        'kube_pod_info{cluster!="cluster-2"}',
        'kube_pod_info{cluster=~".*"}',
        'kube_pod_info{cluster!~"cluster-2"}',
        'max_over_time((kube_pod_info{cluster="default"} > 0)[30m:1m])',
        'kube_pod_info > on (namespace, pod) group_left kube_pod_info{cluster="default"}',
        'sum by (namespace) (rate(container_cpu_usage_seconds_total{cluster=""}[5m]))',
    ],
)
def test_a_rule_of_an_added_cluster_may_not_match_the_cluster(expr: str) -> None:
    with pytest.raises(PromQLRefused) as info:
        scope_expression(expr, NS, cluster_label=CLUSTER)
    assert info.value.construct == "cluster matcher", str(info.value)
    # Saved under the project's key it is refused with the field and the construct named...
    with pytest.raises(PolicyInvalid) as refused:
        parse_policy({**_policy("workload", expr), "namespace": f"{CLUSTER}/{NS}"})
    body = refused.value.to_dict()
    assert body["field"] == "rules[0].expr" and "cluster matcher" in body["error"]
    # ...and one that no longer validates (stored before) compiles to a query returning nothing.
    stored = parse_policy({**_policy("workload", "kube_pod_info > 0"), "namespace": f"{CLUSTER}/{NS}"})
    rule = stored.rules[0]
    forged = replace(stored, rules=(replace(rule, expr=expr),))
    (cr,) = compile_rules([("id", forged)])
    assert cr.key.metric.startswith("promql:vector(0) unless vector(0) # refused: cluster matcher")


def test_a_rule_of_an_added_clusters_project_is_built_by_the_runtime() -> None:
    p = parse_policy(
        {**_policy("workload", 'kube_pod_info{namespace="x"} > 0', period="1m"), "namespace": f"{CLUSTER}/{NS}"}
    )
    (cr,) = compile_rules([("id", p)])
    # The project key and the tenant's text: the runtime's query builder scopes it to the
    # namespace and to the cluster's series (its label, or its own Prometheus).
    assert cr.key.metric == f'promql@{CLUSTER}/{NS}:kube_pod_info{{namespace="x"}} > 0'
    asked: list[str] = []

    def build(level: str, metric: str, aggregation: str, period: float, namespace: str | None = None) -> Any:
        asked.append(metric)
        return "built", ("*",)

    planned = plan([cr], now=1_795_000_020.0, last_slots={}, build_query=build)
    (q,) = planned.queries
    assert asked == [cr.key.metric] and q.promql == "built" and q.step == 60.0 and q.entity_labels == ("*",)
    # The implicit cluster's project keeps the engine's own scoped text (no builder call).
    (plain,) = compile_rules([("id", parse_policy(_policy("workload", "kube_pod_info > 0")))])
    assert plain.key.metric == 'promql:kube_pod_info{namespace="retail-api"} > 0.0'
