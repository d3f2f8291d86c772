"""Every notice names its cluster once the hub watches several (email subject and body, webhook
and Alertmanager labels), and a single-cluster hub's messages stay as they were. Alert queries
of a cluster on a shared endpoint carry its ``cluster`` label matcher."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hub.alerts.notify import hooks
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.render import Renderer
from hub.collectors.catalogue import default_catalogue

pytestmark = pytest.mark.unit

T0 = 1_795_000_000.0


def notice(**over: Any) -> Notice:
    base = Notice(
        key="a:firing:1", kind="firing", at=T0 + 300, alert_id="a", policy_id="p1", policy_name="node-mem",
        level="node", namespace=None, tenant="cluster", rule="mem", severity="critical", entity="node-1",
        labels={"node": "node-1"}, metric="node_memory_utilisation", aggregation="avg", comparator=">",
        threshold=0.9, unit="ratio", value=0.95, query="q", period=60, consecutive=3, started_at=T0 + 180,
    )  # fmt: skip
    return replace(base, **over)


def test_a_single_cluster_hub_renders_as_before() -> None:
    plain = Renderer(public_url="http://hub").render([notice()])
    several_off = Renderer(public_url="http://hub", cluster="default", several_clusters=lambda: False).render(
        [notice()]
    )
    assert plain.subject == several_off.subject and plain.text == several_off.text
    assert "default" not in plain.subject and "Cluster:" not in plain.text


def test_with_several_clusters_the_subject_and_body_name_the_cluster() -> None:
    r = Renderer(public_url="http://hub", cluster="default", several_clusters=lambda: True)
    implicit = r.render([notice()])
    assert "[default]" in implicit.subject and "Cluster:       default" in implicit.text
    assert "<code>default</code>" in implicit.html
    # A project of an added cluster (key cluster-2/ns) and the meta-alert of a lost cluster.
    workload = notice(level="workload", namespace="cluster-2/shop", labels={"namespace": "shop", "workload": "w"})
    meta = notice(labels={"cluster": "cluster-3"})
    assert "[cluster-2]" in r.render([workload]).subject and "Cluster:       cluster-2" in r.render([workload]).text
    assert "[cluster-3]" in r.render([meta]).subject
    both = r.render([notice(), workload])
    assert "[default, cluster-2]" in both.subject
    zh = r.render([workload], language="zh")
    assert "[cluster-2]" in zh.subject and "集群：      cluster-2" in zh.text


def test_webhook_labels_name_the_cluster_of_a_project_and_of_the_meta_alert() -> None:
    labels = hooks.from_notice(notice(level="workload", namespace="cluster-2/shop"), public_url="").labels
    assert labels["cluster"] == "cluster-2" and labels["namespace"] == "shop"
    assert hooks.from_notice(notice(labels={"cluster": "cluster-3"}), public_url="").labels["cluster"] == "cluster-3"
    implicit = hooks.from_notice(notice(level="workload", namespace="shop"), public_url="").labels
    assert "cluster" not in implicit and implicit["namespace"] == "shop"


def test_with_several_clusters_the_implicit_clusters_alerts_carry_its_name() -> None:
    """As the email names it (Renderer._cluster_of): the row's cluster, the project's, else the
    implicit cluster's name; '' (a single-cluster hub) adds nothing."""

    def labels(n: Notice) -> dict[str, str]:
        return dict(hooks.from_notice(n, public_url="", implicit_cluster="default").labels)

    implicit = labels(notice(level="workload", namespace="shop"))
    assert implicit["cluster"] == "default" and implicit["namespace"] == "shop"
    assert labels(notice())["cluster"] == "default"  # a node policy of the implicit cluster
    assert labels(notice(level="workload", namespace="cluster-2/shop"))["cluster"] == "cluster-2"
    assert labels(notice(labels={"cluster": "cluster-3"}))["cluster"] == "cluster-3"
    r = Renderer(public_url="http://hub", cluster="default", several_clusters=lambda: True)
    for n in (notice(), notice(level="workload", namespace="shop"), notice(namespace="cluster-2/shop")):
        assert f"[{labels(n)['cluster']}]" in r.render([n]).subject  # the email's cluster is the label's
    row = {
        "policy_name": "node-mem", "rule": "mem", "severity": "critical", "level": "workload", "namespace": "shop",
        "entity": "shop/w", "labels": '{"namespace": "shop"}', "last_value": 0.95, "unit": "ratio",
        "threshold": 0.9, "metric": "m", "comparator": ">", "query": "q", "fired_at": T0, "started_at": T0, "id": "a",
    }  # fmt: skip
    assert hooks.from_row(row, public_url="", implicit_cluster="default").labels["cluster"] == "default"
    assert "cluster" not in hooks.from_row(row, public_url="").labels
    assert "cluster" not in hooks.from_notice(notice(), public_url="", implicit_cluster="").labels


def test_alert_queries_of_a_cluster_on_a_shared_endpoint_match_its_label() -> None:
    c = default_catalogue()
    query, _ = c.alert_query("node", "node_memory_utilisation", "avg", 60, cluster_label="default")
    selectors = query.count("{")
    assert selectors and query.count('cluster="default"') == selectors
    plain, _ = c.alert_query("node", "node_memory_utilisation", "avg", 60)
    assert "cluster=" not in plain
    ns, _ = c.alert_query("workload", "workload_cpu_usage", "avg", 60, namespace="shop", cluster_label="c2")
    assert 'namespace="shop"' in ns and 'cluster="c2"' in ns


def test_a_node_policy_may_name_its_cluster_and_gets_a_query_key_of_its_own() -> None:
    from hub.alerts.engine_model import compile_rules
    from hub.alerts.policy import PolicyInvalid, parse_policy

    doc: dict[str, Any] = {
        "name": "mem",
        "level": "node",
        "cluster": "cluster-2",
        "rules": [{"name": "m", "metric": "node_memory_utilisation", "comparator": ">", "threshold": 90,
                   "unit": "percent", "period": "1m", "severity": "critical"}],
    }  # fmt: skip
    policy = parse_policy(doc)
    assert policy.cluster == "cluster-2" and policy.to_document()["cluster"] == "cluster-2"
    plain = parse_policy({k: v for k, v in doc.items() if k != "cluster"})
    assert "cluster" not in plain.to_document()
    keys = {r.key.metric for r in compile_rules([("a", policy), ("b", plain)])}
    assert keys == {"node_memory_utilisation@cluster-2", "node_memory_utilisation"}
    for bad, field in (
        ({**doc, "level": "workload", "namespace": "shop"}, "cluster"),
        ({**doc, "cluster": "Not_A_Name"}, "cluster"),
    ):
        with pytest.raises(PolicyInvalid) as refused:
            parse_policy(bad)
        assert any(p.path == field for p in refused.value.problems), refused.value.problems
