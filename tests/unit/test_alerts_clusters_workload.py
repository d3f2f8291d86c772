"""Workload policies of projects in added clusters: grouped by their project's cluster into one
batched fetch per (metric, cluster), each evaluated only against rows of its own project key,
so a same-named namespace of another cluster never contributes (docs/multi-cluster.md)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from hub.alerts.engine import compile_rules, evaluate, plan
from hub.alerts.engine_model import rule_cluster
from hub.alerts.policy import PolicyInvalid, parse_policy

pytestmark = pytest.mark.unit

NOW = 1_795_000_020.0


def workload_policy(namespace: str, threshold: float = 0.0, metric: str = "workload_pod_count") -> Any:
    doc = {
        "name": "pods",
        "level": "workload",
        "rules": [{"name": "r", "metric": metric, "comparator": ">", "threshold": threshold,
                   "period": "20s", "consecutive": 1, "severity": "minor"}],
    }  # fmt: skip
    return parse_policy(doc, namespace=namespace)


def test_a_workload_policy_of_an_added_clusters_project_is_stored_under_its_key() -> None:
    policy = workload_policy("cluster-2/shop")
    assert policy.namespace == "cluster-2/shop" and rule_cluster(policy) == "cluster-2"
    assert parse_policy(policy.to_document()).namespace == "cluster-2/shop"  # the stored form parses again
    assert rule_cluster(workload_policy("shop")) == ""
    for bad in ("/shop", "cluster-2/", "a/b/c", "Cluster-2/shop", "cluster_2/shop"):
        with pytest.raises(PolicyInvalid) as refused:
            parse_policy({**policy.to_document(), "namespace": bad})
        assert any(p.path == "namespace" for p in refused.value.problems), bad


def test_workload_rules_are_grouped_by_their_projects_cluster_into_one_fetch_each() -> None:
    policies = [
        ("implicit", workload_policy("shop")),
        ("c2-shop", workload_policy("cluster-2/shop")),
        ("c2-web", workload_policy("cluster-2/web")),
        ("c3-shop", workload_policy("cluster-3/shop")),
        ("c2-cpu", workload_policy("cluster-2/shop", metric="workload_cpu_usage")),
    ]
    rules = compile_rules(policies)
    assert {cr.policy_id: cr.key.metric for cr in rules} == {
        "implicit": "workload_pod_count",
        "c2-shop": "workload_pod_count@cluster-2",
        "c2-web": "workload_pod_count@cluster-2",
        "c3-shop": "workload_pod_count@cluster-3",
        "c2-cpu": "workload_cpu_usage@cluster-2",
    }
    built: list[str] = []

    def build(level: str, metric: str, aggregation: str, period: float, namespace: str | None = None) -> Any:
        built.append(metric)
        return f"q({metric})", ["namespace", "kind", "workload"]

    p = plan(rules, now=NOW, last_slots={}, build_query=build)
    # One batched fetch per (metric, cluster): both cluster-2 projects share theirs.
    assert (
        sorted(q.key.metric for q in p.queries)
        == sorted(set(built))
        == [
            "workload_cpu_usage@cluster-2",
            "workload_pod_count",
            "workload_pod_count@cluster-2",
            "workload_pod_count@cluster-3",
        ]
    )


def frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "namespace": [ns for ns, _, _ in rows],
            "kind": ["deployment"] * len(rows),
            "workload": [w for _, w, _ in rows],
            "value": [v for _, _, v in rows],
        }
    )


def test_each_project_fires_only_on_its_own_clusters_rows() -> None:
    policies = [
        ("implicit", workload_policy("shop")),
        ("c2-shop", workload_policy("cluster-2/shop")),
        ("c2-web", workload_policy("cluster-2/web", threshold=5)),
    ]
    rules = compile_rules(policies)

    def build(level: str, metric: str, aggregation: str, period: float, namespace: str | None = None) -> Any:
        return f"q({metric})", ["namespace", "kind", "workload"]

    p = plan(rules, now=NOW, last_slots={}, build_query=build)
    keys = {q.key.metric: q.key for q in p.queries}
    results = {
        # The implicit cluster's fetch (its label matched by the runtime): its own shop only.
        keys["workload_pod_count"]: frame([("shop", "front", 2.0)]),
        # cluster-2's fetch: namespaces rewritten to project keys by the runtime's query. A row
        # left with a bare namespace (a query that forgot the rewrite) must match no project.
        keys["workload_pod_count@cluster-2"]: frame(
            [("cluster-2/shop", "cart", 3.0), ("cluster-2/web", "nginx", 1.0), ("shop", "front", 9.0)]
        ),
    }
    ev = evaluate(p, results, {})
    fired = {(t.policy_id, t.entity) for t in ev.transitions if t.to_state == "firing"}
    assert fired == {("implicit", "shop/deployment/front"), ("c2-shop", "cluster-2/shop/deployment/cart")}
    # cluster-2/web saw its row (1 is not > 5): scope 1, no hits.
    health = ev.health["c2-web/r"]
    assert (health.status, health.entities, health.breaching) == ("ok", 1, 0)
    assert (ev.health["c2-shop/r"].entities, ev.health["implicit/r"].entities) == (1, 1)
