"""The sandbox's volumes (issue 19 "PVC data in the sandbox"): the provisioner's volume for a
claim, the seeded StatefulSets' claims and usage, and the backfilled history of the kubelet's
volume statistics. The predictive check is a brute-force least-squares fit over the history's own
points (what ``predict_linear`` computes), not the hub's PromQL."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sandbox import backfill, seed, volsim

pytestmark = pytest.mark.unit


def pending_claim(storage_class: str = volsim.STORAGE_CLASS, **status: str) -> dict:
    return {
        "metadata": {"name": "data-clickhouse-0", "namespace": "analytics-db", "uid": "u-1"},
        "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "50Gi"}}},
        "status": dict(status) or {"phase": "Pending"},
    }  # fmt: skip


def test_the_provisioner_makes_a_volume_bound_to_a_pending_claim_of_its_class_only() -> None:
    pv = volsim.pv_for(pending_claim())
    assert pv is not None
    assert pv["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "analytics-db",
        "name": "data-clickhouse-0",
        "uid": "u-1",
    }
    assert pv["spec"]["capacity"] == {"storage": "50Gi"} and pv["spec"]["storageClassName"] == volsim.STORAGE_CLASS
    assert volsim.pv_for(pending_claim("standard")) is None
    assert volsim.pv_for(pending_claim(phase="Bound")) is None


def statefulset(w: seed.Workload, replicas: int) -> dict:
    tpl = seed.Seeder._pod_template(object.__new__(seed.Seeder), w)
    return {
        "metadata": {"name": w.name, "namespace": w.namespace,
                     "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "spec": {"replicas": replicas, "template": tpl, "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": w.volume_claim}}}}]},
    }  # fmt: skip


def test_the_seeded_database_fills_in_the_backfilled_history_so_the_6h_template_fires_there() -> None:
    (ch,) = [w for w in seed.WORKLOADS if w.name == "clickhouse"]
    claims = volsim.claims_of(statefulset(ch, 3))
    assert [c.name for c in claims] == ["data-clickhouse-0", "data-clickhouse-1", "data-clickhouse-2"]
    now = time.time()
    plan = backfill.Plan(end=int(now // 60) * 60, step=60)
    live = {
        (m, (("namespace", "analytics-db"), ("persistentvolumeclaim", c.name))): 0.0
        for c in claims
        for m in volsim.HELP
    }
    series = list(backfill.volume_series(plan, live, claims, "127.0.0.1:1"))
    assert len(series) == 3 * len(volsim.HELP)
    assert all(s.labels["job"] == "node-exporter" and s.labels["instance"] == "127.0.0.1:1" for s in series)
    available = next(
        s
        for s in series
        if s.name == "kubelet_volume_stats_available_bytes" and s.labels["persistentvolumeclaim"] == "data-clickhouse-0"
    )
    # predict_linear(available[1h], 6h) < 0, computed by brute force at every point of the history
    fires = []
    for i in range(60, len(plan.grid)):
        t, y = plan.grid[i - 60 : i + 1], available.values[i - 60 : i + 1]
        slope, intercept = np.polyfit(t - plan.grid[i], y, 1)
        fires.append(intercept + slope * 6 * 3600 < 0)
    first = plan.grid[60 + fires.index(True)] if True in fires else None
    assert first is not None, "the template never fires in the history"
    assert now - 5 * 3600 < first < now - 2 * 3600  # full ~3 h after seeding: fires ~3 h before it
    assert available.values[0] > 0.5 * 50 * 1024**3  # a day ago it was mostly empty (growth started 20 h ago)
    (orders,) = [w for w in seed.WORKLOADS if w.name == "orders-db"]
    assert all(0.1 < c.utilisation(now) < 0.7 for c in volsim.claims_of(statefulset(orders, 2)))
