"""PersistentVolumeClaim metrics: the catalogue's PVC PromQL (tenant scope in every namespaced
selector, the predictive form), the built-in PVC templates against the real catalogue, and the
node simulator's kubelet volume statistics (exposition text parsed by prometheus_client)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.alerts.policy_files import builtin_templates, check_policy_files
from hub.collectors.catalogue import TENANT_LEVELS, Catalogue, EmptyScope, Filters, default_catalogue
from sandbox import volsim

RULES = Path(__file__).resolve().parents[2] / "rules"
PVC_SERIES = re.compile(r"(kubelet_volume_stats_\w+|kube_pod_spec_volumes_persistentvolumeclaims_info)\{([^}]*)\}")


def _pvc_metrics(cat: Catalogue) -> list[tuple[str, str]]:
    out = [("volumes", m.name) for m in cat.metrics("volumes")]
    out += [(lvl, m.name) for lvl in ("workloads", "namespaces") for m in cat.metrics(lvl) if "_pvc_" in m.name]
    return out


def test_every_pvc_metric_exists_at_volume_workload_and_project_level() -> None:
    cat = default_catalogue()
    names = {name for _, name in _pvc_metrics(cat)}
    for suffix in ("used_bytes", "capacity_bytes", "utilisation", "inodes_used", "inodes_utilisation"):
        assert {f"volume_{suffix}", f"workload_pvc_{suffix}", f"namespace_pvc_{suffix}"} <= names
    assert "volumes" in TENANT_LEVELS
    assert cat.level("pvc") == cat.level("volume") == "volumes"


def test_the_tenant_scope_reaches_every_pvc_selector() -> None:
    cat = default_catalogue()
    for level, name in _pvc_metrics(cat):
        expr = cat.expr(level, name, Filters(namespaces=("retail-api", "retail-web")))
        selectors = PVC_SERIES.findall(expr)
        assert selectors, (level, name)
        for series, matchers in selectors:
            assert 'namespace=~"retail-api|retail-web"' in matchers or 'namespace=~"^(?:retail-api|retail-web)$"' in (
                matchers
            ), (level, name, series, matchers)
        with pytest.raises(EmptyScope):
            cat.expr(level, name, Filters(namespaces=()))


def test_utilisation_per_workload_is_the_fullest_claims_and_joins_through_the_mounting_pods() -> None:
    cat = default_catalogue()
    expr = cat.expr("workloads", "workload_pvc_utilisation", Filters(namespaces=("retail-api",)))
    assert expr.startswith("max by (namespace, kind, workload) (")
    assert "kube_pod_spec_volumes_persistentvolumeclaims_info" in expr and "kube_pod_owner" in expr
    assert cat.expr("namespaces", "namespace_pvc_used_bytes").startswith("sum by (namespace) (")


def test_the_predictive_metric_is_prometheus_linear_fit_six_hours_ahead() -> None:
    cat = default_catalogue()
    expr = cat.expr("volumes", "volume_available_in_6h_bytes", Filters(namespaces=("retail-api",)))
    assert 'predict_linear(kubelet_volume_stats_available_bytes{namespace="retail-api"}[1h], 21600)' in expr
    query, labels = cat.alert_query("workloads", "workload_pvc_available_in_6h_bytes", "max", 300, "retail-api")
    assert labels == ["namespace", "kind", "workload"]
    assert query.startswith("max_over_time((min by (namespace, kind, workload) (") and "21600" in query


def test_a_workspace_filter_restricts_the_volume_level() -> None:
    expr = default_catalogue().expr("volumes", "volume_utilisation", Filters(workspaces=("retail",)))
    assert (
        "and on (namespace) max by (namespace, workspace)" in expr and 'label_kubesphere_io_workspace="retail"' in expr
    )


def test_the_pvc_templates_are_valid_against_the_catalogue() -> None:
    cat = default_catalogue()
    units = {level: cat.units(level) for level in ("workloads",)}
    files = sorted(RULES.glob("workload-pvc-*.yaml"))
    assert [f.name for f in files] == ["workload-pvc-full-in-6h.yaml", "workload-pvc-usage.yaml"]
    problems, checked = check_policy_files(files, metrics=units)
    assert problems == [] and checked == 2
    templates = builtin_templates(RULES)
    predictive = templates["workload-pvc-full-in-6h"]
    (rule,) = predictive.rules
    assert (rule.metric, rule.comparator, rule.threshold) == ("workload_pvc_available_in_6h_bytes", "<", 0)
    assert {r.metric for r in templates["workload-pvc-usage"].rules} <= set(units["workloads"])


STS = {
    "metadata": {"name": "orders-db", "namespace": "retail-api", "creationTimestamp": "2026-12-05T00:00:00Z"},
    "spec": {
        "replicas": 2,
        "template": {
            "metadata": {"annotations": {"kubehub.io/volume-used": "0.5", "kubehub.io/volume-growth": "0.05"}}
        },
        "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "20Gi"}}}},
            {"metadata": {"name": "wal"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}},
        ],
    },
}
T0 = 1_796_428_800.0  # 2026-12-05T00:00:00Z


def test_the_simulator_declares_one_claim_per_template_and_ordinal() -> None:
    claims = volsim.claims_of(STS)
    assert sorted(c.name for c in claims) == [
        "data-orders-db-0",
        "data-orders-db-1",
        "wal-orders-db-0",
        "wal-orders-db-1",
    ]
    assert {c.capacity for c in claims} == {20 * 1024**3, 1024**3}
    assert all(c.since == T0 for c in claims)
    assert volsim.claims_of({"metadata": {"name": "x", "namespace": "y"}, "spec": {"replicas": 3}}) == []


def _parse(text: str) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        for s in family.samples:
            out.setdefault((s.labels["namespace"], s.labels["persistentvolumeclaim"]), {})[s.name] = s.value
    return out


def test_the_exposition_is_consistent_and_grows_along_a_straight_line_until_full() -> None:
    claims = volsim.claims_of(STS)
    at_2h = _parse(volsim.exposition(claims, T0 + 2 * 3600))
    stats = at_2h[("retail-api", "data-orders-db-0")]
    cap = 20 * 1024**3
    assert stats["kubelet_volume_stats_capacity_bytes"] == cap
    assert stats["kubelet_volume_stats_used_bytes"] == pytest.approx(cap * (0.5 + 2 * 0.05), abs=1)
    assert stats["kubelet_volume_stats_used_bytes"] + stats["kubelet_volume_stats_available_bytes"] == cap
    assert (
        stats["kubelet_volume_stats_inodes_used"] + stats["kubelet_volume_stats_inodes_free"]
        == (stats["kubelet_volume_stats_inodes"])
    )
    # 0.5 + 0.05/h reaches full after ~10 h; it then stays full.
    for hours in (12, 48):
        full = _parse(volsim.exposition(claims, T0 + hours * 3600))[("retail-api", "wal-orders-db-1")]
        assert full["kubelet_volume_stats_used_bytes"] == pytest.approx(1024**3 * volsim.FULL, abs=1)
    assert volsim.exposition([], T0) == ""


def test_without_annotations_a_claim_sits_at_its_own_base() -> None:
    sts = {**STS, "spec": {**STS["spec"], "template": {}}}
    for t in (T0, T0 + 6 * 3600, T0 + 12 * 3600):
        for c in volsim.claims_of(sts):
            assert 0.19 <= c.utilisation(t) <= 0.6
