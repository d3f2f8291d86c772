"""The seeding's wait for the workloads names what is stuck when it gives up
(sandbox/workload_report.py, Seeder._wait_workloads): kind, namespace/name, wanted vs ready, the
not-ready pods' phase and conditions, a StatefulSet's claims. A pure unit test: the API server is
a fake of our own kube client's interface (get/list) holding objects shaped as the real one
returns them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sandbox import kube, seed, workload_report
from sandbox.core import Sandbox
from sandbox.procs import ComponentError

UNBOUND = (
    "0/4 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/4 nodes are "
    "available: 4 Preemption is not helpful for scheduling."
)


class FakeKube:
    """get/list of sandbox.kube.KubeRest over a dict of objects; label selectors ``k=v`` and
    ``k in (a,b)`` as the API server reads them."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.lists: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, **params: Any) -> Any:
        return self.objects[path]

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        self.lists.append((path, params))
        if path == "/api/v1/events":
            assert params == {"fieldSelector": "type=Warning"}
            return [e for e in self.events if e["type"] == "Warning"]
        items = {"/api/v1/pods": self.pods, "/api/v1/persistentvolumeclaims": self.claims}[path]
        sel = params.get("labelSelector", "")
        m = re.fullmatch(r"(\S+) in \((.*)\)", sel)
        if m:
            key, values = m.group(1), set(m.group(2).split(","))
            return [o for o in items if (o["metadata"].get("labels") or {}).get(key) in values]
        assert not sel, sel
        return list(items)


def _obj(kind: str, w: seed.Workload, status: dict[str, Any], replicas: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas}
    if w.volume_claim:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    return {"kind": kind, "metadata": {"namespace": w.namespace, "name": w.name}, "spec": spec, "status": status}


def _pod(ns: str, name: str, workload: str, phase: str, conditions: list[dict[str, str]], node: str = "") -> dict:
    return {
        "metadata": {"namespace": ns, "name": name, "labels": {seed.WORKLOAD_LABEL: workload}},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


def _io(kind: str, ns: str, name: str) -> dict[str, str]:
    return {"kind": kind, "namespace": ns, "name": name}


def _cluster(plan: dict[str, int]) -> FakeKube:
    """Every seeded workload complete except four: clickhouse (its pod unschedulable, its claim
    Pending), edge-proxy (its pod running but not ready), cart (creation refused: no pods, a
    ReplicaFailure condition) and orders-db (creation refused: no pods, no claim, Warning events)."""
    api = FakeKube()
    for w in seed.WORKLOADS:
        if w.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        want = plan.get(w.name, 4 if w.name == "log-collector" else 1)  # log-collector: every node
        if w.kind == "Deployment":
            status: dict[str, Any] = {"availableReplicas": want}
        elif w.kind == "StatefulSet":
            status = {"readyReplicas": want}
        else:
            status = {"desiredNumberScheduled": want, "numberAvailable": want}
        if w.name == "clickhouse":
            status = {"readyReplicas": 0}
        if w.name == "orders-db":
            status = {"readyReplicas": 0}
        if w.name == "edge-proxy":
            status = {"desiredNumberScheduled": 1, "numberAvailable": 0}
        if w.name == "cart":
            status = {"conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                 "message": 'pods "cart-6d45977c88-x" is forbidden: status unknown for quota: project-quota'},
            ]}  # fmt: skip
        path = kube.ns_path(w.namespace, w.kind.lower() + "s", group="apps", name=w.name)
        api.objects[path] = _obj(w.kind, w, status, want)
    api.pods = [
        _pod("analytics-db", "clickhouse-0", "clickhouse", "Pending", [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": UNBOUND},
        ]),
        _pod("retail-web", "edge-proxy-abcde", "edge-proxy", "Running", [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
             "message": "containers with unready status: [envoy]"},
        ], node="kwok-node-0"),
        # A ready pod of the same workload name in another namespace is not clickhouse's.
        _pod("retail-api", "clickhouse-0", "clickhouse", "Running", [{"type": "Ready", "status": "True"}]),
        # A complete workload's pods are not asked for.
        _pod("retail-web", "storefront-1", "storefront", "Pending", []),
    ]  # fmt: skip
    refused = 'create Pod orders-db-0 in StatefulSet orders-db failed error: pods "orders-db-0" is forbidden: {}'
    api.events = [
        {"type": "Warning", "reason": "FailedCreate", "message": refused.format("status unknown for quota"),
         "lastTimestamp": "2026-12-06T06:42:09Z", "involvedObject": _io("StatefulSet", "retail-api", "orders-db")},
        {"type": "Warning", "reason": "FailedCreate", "message": refused.format("exceeded quota: project-quota"),
         "lastTimestamp": "2026-12-06T06:42:10Z", "involvedObject": _io("StatefulSet", "retail-api", "orders-db")},
        {"type": "Normal", "reason": "SuccessfulCreate", "message": "create Pod orders-db-0",
         "lastTimestamp": "2026-12-06T06:42:11Z", "involvedObject": _io("StatefulSet", "retail-api", "orders-db")},
        # Not one of the stuck workloads' (a ReplicaSet of the same name).
        {"type": "Warning", "reason": "FailedCreate", "message": "a ReplicaSet's",
         "lastTimestamp": "2026-12-06T06:43:00Z", "involvedObject": _io("ReplicaSet", "retail-api", "orders-db")},
    ]  # fmt: skip
    api.claims = [
        {"metadata": {"namespace": "analytics-db", "name": "data-clickhouse-0"}, "status": {"phase": "Pending"}}
    ]
    return api


def test_the_timeout_names_the_stuck_workloads_their_pods_and_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = seed.plan_replicas(24, 4)
    api = _cluster(plan)
    seeder = seed.Seeder(Sandbox(tmp_path / "sb", quiet=True), api)  # type: ignore[arg-type]
    seeder.n_nodes = 4
    clock = [0.0]

    def monotonic() -> float:
        clock[0] += 50.0  # the 122 s of the wait pass in three rounds
        return clock[0]

    monkeypatch.setattr(seed.time, "monotonic", monotonic)
    monkeypatch.setattr(seed.time, "sleep", lambda s: None)
    with pytest.raises(ComponentError) as err:
        seeder._wait_workloads(plan)
    lines = err.value.reason.splitlines()
    assert lines[0] == "workloads not ready after 122s (15/20 pods ready)"
    assert lines[1:] == [
        "  Deployment retail-web/cart: 0/2 ready",
        "    Available=False MinimumReplicasUnavailable: Deployment does not have minimum availability.",
        '    ReplicaFailure=True FailedCreate: pods "cart-6d45977c88-x" is forbidden: status unknown for quota: '
        "project-quota",
        "    no pods",
        "  DaemonSet retail-web/edge-proxy: 0/1 ready (desiredNumberScheduled 1)",
        "    pod edge-proxy-abcde Running on kwok-node-0; Ready=False ContainersNotReady: containers with unready "
        "status: [envoy]",
        "  StatefulSet retail-api/orders-db: 0/1 ready",
        "    no pods",
        '    event FailedCreate: create Pod orders-db-0 in StatefulSet orders-db failed error: pods "orders-db-0" is '
        "forbidden: exceeded quota: project-quota",  # the latest Warning of the StatefulSet's own
        "    claims: data-orders-db-0 missing",
        "  StatefulSet analytics-db/clickhouse: 0/1 ready",
        "    pod clickhouse-0 Pending; PodScheduled=False Unschedulable: 0/4 nodes are available: pod has unbound "
        "immediate PersistentVolumeClaims. preemption: 0/4 nodes are available: 4 Preemptio...; "
        "no Ready condition",  # a long message is cut
        "    claims: data-clickhouse-0 Pending",
    ]
    # One pod list for the four (by their label), one Warning event list, one claim list.
    assert sorted(p for p, _ in api.lists) == ["/api/v1/events", "/api/v1/persistentvolumeclaims", "/api/v1/pods"]
    assert str(err.value).endswith(f"(log: {seeder._component_log('kube-controller-manager')})")


def test_progress_counts_what_the_controllers_report() -> None:
    sts = {"metadata": {"namespace": "n", "name": "db"}, "spec": {"replicas": 2, "volumeClaimTemplates": [
        {"metadata": {"name": "data"}}, {"metadata": {"name": "wal"}}]}, "status": {"readyReplicas": 1}}  # fmt: skip
    s = workload_report.state_of("StatefulSet", sts, 2)
    assert (s.ready, s.wanted, s.complete) == (1, 2, False)
    assert s.claim_names == ["data-db-0", "data-db-1", "wal-db-0", "wal-db-1"]
    ds = {"metadata": {"namespace": "n", "name": "d"}, "status": {"desiredNumberScheduled": 0, "numberAvailable": 0}}
    assert not workload_report.state_of("DaemonSet", ds, 4).complete  # nothing scheduled yet is not done
    ds["status"] = {"desiredNumberScheduled": 3, "numberAvailable": 3}
    assert workload_report.state_of("DaemonSet", ds, 4).complete
    dep = {"metadata": {"namespace": "n", "name": "web"}, "status": {"availableReplicas": 3}}
    assert workload_report.state_of("Deployment", dep, 3).complete


def test_nothing_is_described_when_all_are_complete_and_a_failing_description_says_so(tmp_path: Path) -> None:
    api = FakeKube()
    done = workload_report.WorkloadState("Deployment", "n", "web", 1, 1, True)
    assert workload_report.describe(api, [done]) == [] and api.lists == []

    class Broken(FakeKube):
        def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
            raise kube.KubeError(503, "GET", path, "etcd is down")

    broken = Broken()
    seeder = seed.Seeder(Sandbox(tmp_path / "sb", quiet=True), broken)  # type: ignore[arg-type]
    seeder.workloads = []
    assert seeder._stuck({}) == ""  # nothing incomplete: nothing to say
    seeder.workloads = [w for w in seed.WORKLOADS if w.name == "cart"]
    path = kube.ns_path("retail-web", "deployments", group="apps", name="cart")
    broken.objects[path] = {"metadata": {"namespace": "retail-web", "name": "cart"}, "status": {}}
    said = seeder._stuck({"cart": 2})
    assert said.startswith("\n  (could not describe the incomplete workloads: KubeError(") and "\n" not in said[1:]
