"""The history bench/chart.py writes, so that its 24 h chart charts what it claims: every pod of a
Deployment reachable through the owner chain the catalogue joins on, the cAdvisor label sets the
sandbox's Prometheus holds, counters that only grow, and the whole day filled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench import chart
from sandbox.backfill import HISTORY, Plan

pytestmark = pytest.mark.unit


def test_every_pod_joins_its_deployment_and_the_day_is_whole() -> None:
    plan = Plan(end=1_800_000_000 // 3600 * 3600, step=300)
    series = list(chart.history(125, plan))
    by_name: dict[str, list[Any]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)

    # 125 pods: a namespace of 100 (10 Deployments of 10) and one of 25 (3 Deployments: 10, 10, 5)
    replicas = {
        (s.labels["namespace"], s.labels["deployment"]): s.values[0] for s in by_name["kube_deployment_spec_replicas"]
    }
    assert len(replicas) == 13 and sum(replicas.values()) == 125
    assert replicas[("tenant-0001", "svc-02")] == 5

    rs_of = {
        (s.labels["namespace"], s.labels["replicaset"]): s.labels["owner_name"]
        for s in by_name["kube_replicaset_owner"]
        if s.labels["owner_kind"] == "Deployment"
    }
    deployment_of_pod = {
        (s.labels["namespace"], s.labels["pod"]): rs_of[(s.labels["namespace"], s.labels["owner_name"])]
        for s in by_name["kube_pod_owner"]
        if s.labels["owner_kind"] == "ReplicaSet"
    }
    assert len(deployment_of_pod) == 125
    per_deployment: dict[tuple[str, str], int] = {}
    for (namespace, _pod), deployment in deployment_of_pod.items():
        per_deployment[(namespace, deployment)] = per_deployment.get((namespace, deployment), 0) + 1
    assert per_deployment == replicas

    for name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes"):
        cadvisor = by_name[name]
        assert {(s.labels["namespace"], s.labels["pod"]) for s in cadvisor} == set(deployment_of_pod)
        for s in cadvisor:
            # the label set KWOK's cAdvisor endpoint gives the sandbox's scrape (job kubelet)
            assert set(s.labels) == {"job", "instance", "node", "namespace", "pod", "container"}
            assert s.labels["job"] == "kubelet" and s.labels["instance"] == s.labels["node"]
            assert s.labels["container"] not in ("", "POD")  # the catalogue's filter keeps it
            assert s.step == 300 and len(s.values) == HISTORY // 300 + 1
    for s in by_name["container_cpu_usage_seconds_total"]:
        rates = np.diff(s.values) / 300
        assert np.all(rates > 0) and np.all(rates < 1)  # a counter that only grows, under a core
    for s in by_name["kube_pod_owner"]:
        assert s.step >= 240 and np.all(s.values == 1)
