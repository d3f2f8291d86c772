"""The node simulator's touch of pods KWOK missed (sandbox/kwoknudge.py): which pods, how often;
and which pods it makes ready again after a node lease lapse, and when (sandbox/nodesim.py).

Pure: a fake of the two calls of our own kube client the function makes. That KWOK then plays a
touched pod was checked by hand on the shared sandbox (two CronJob pods bound while KWOK was
taking the node leases over sat Pending for 5 minutes; each ran a second after its touch).
"""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from sandbox import kwoknudge

pytestmark = pytest.mark.unit

NOW = float(calendar.timegm(time.strptime("2026-12-06T07:45:00Z", "%Y-%m-%dT%H:%M:%SZ")))


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - seconds_ago))


def pod(
    name: str, *, phase: str = "Pending", node: str | None = "kwok-node-0", bound_ago: float | None = 300
) -> dict[str, Any]:
    conditions = []
    if bound_ago is not None:
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(bound_ago)})
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": stamp(900)},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


class FakeApi:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.patched: list[tuple[str, dict[str, Any]]] = []
        self.asked: list[dict[str, Any]] = []

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        assert path == "/api/v1/pods"
        self.asked.append(params)
        wanted = params.get("fieldSelector", "").removeprefix("status.phase=")
        return [p for p in self.pods if not wanted or p["status"]["phase"] == wanted]

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        self.patched.append((path, body))
        return {}

    def patch_status(self, path: str, body: dict[str, Any]) -> Any:
        self.patched.append((path, body))
        return {}


def test_only_pods_bound_and_pending_for_a_while_are_touched_with_an_annotation() -> None:
    api = FakeApi(
        [
            pod("missed"),  # bound 5 minutes ago, still Pending
            pod("fresh", bound_ago=5),  # KWOK has not had its second yet
            pod("unbound", node=None, bound_ago=None),  # waiting for the scheduler: not KWOK's
            pod("running", phase="Running"),
            pod("no-condition", bound_ago=None),  # bound, no PodScheduled condition: its creation counts
        ]
    )
    nudged: dict[str, float] = {}
    assert kwoknudge.nudge_missed_pods(api, nudged, now=NOW) == 2
    assert api.asked == [{"fieldSelector": "status.phase=Pending"}]
    assert [path for path, _ in api.patched] == [
        "/api/v1/namespaces/ns/pods/no-condition",
        "/api/v1/namespaces/ns/pods/missed",
    ]
    assert api.patched[0][1] == {"metadata": {"annotations": {kwoknudge.NUDGE_ANNOTATION: str(int(NOW))}}}
    assert set(nudged) == {"uid-missed", "uid-no-condition"}


def test_a_pod_that_stays_pending_is_touched_again_only_after_a_minute_and_forgotten_when_it_runs() -> None:
    stuck = pod("stuck")
    api = FakeApi([stuck])
    nudged: dict[str, float] = {}
    assert kwoknudge.nudge_missed_pods(api, nudged, now=NOW) == 1
    assert kwoknudge.nudge_missed_pods(api, nudged, now=NOW + 5) == 0
    assert kwoknudge.nudge_missed_pods(api, nudged, now=NOW + kwoknudge.RENUDGE_S + 1) == 1
    stuck["status"]["phase"] = "Running"
    assert kwoknudge.nudge_missed_pods(api, nudged, now=NOW + 200) == 0
    assert nudged == {}


def test_a_round_touches_at_most_the_cap_oldest_binding_first() -> None:
    pods = [pod(f"p{i:03d}", bound_ago=60 + i) for i in range(kwoknudge.MAX_PER_ROUND + 20)]
    api = FakeApi(pods)
    assert kwoknudge.nudge_missed_pods(api, {}, now=NOW) == kwoknudge.MAX_PER_ROUND
    first = api.patched[0][0].rsplit("/", 1)[1]
    assert first == f"p{kwoknudge.MAX_PER_ROUND + 19:03d}"  # bound longest ago


def running(
    name: str, *, node: str = "kwok-node-0", ready: str = "False", containers: str = "True", **extra: Any
) -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": ready},
        {"type": "ContainersReady", "status": containers},
        *({"type": t, "status": v} for t, v in extra.pop("conditions", {}).items()),
    ]
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", **extra.pop("meta", {})}
    return {
        "metadata": meta,
        "spec": {"nodeName": node, **extra},
        "status": {"phase": "Running", "conditions": conditions},
    }


class NodeListApi(FakeApi):
    """Answers the per-node LIST (``spec.nodeName=<node>,status.phase=Running``) as the API server does."""

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        assert path == "/api/v1/pods"
        self.asked.append(params)
        selectors = dict(part.split("=", 1) for part in params["fieldSelector"].split(","))
        return [
            p
            for p in self.pods
            if p["status"]["phase"] == selectors["status.phase"]
            and selectors.get("spec.nodeName", p["spec"]["nodeName"]) == p["spec"]["nodeName"]
        ]


def test_only_running_pods_marked_unready_with_ready_containers_are_made_ready() -> None:
    api = NodeListApi(
        [
            running("lapsed"),  # what MarkPodsNotReady leaves
            running("ready", ready="True"),
            running("crashing", containers="False"),  # its containers are not ready: not ours to fix
            running(
                "gated", readinessGates=[{"conditionType": "example.com/lb"}], conditions={"example.com/lb": "False"}
            ),
            running(
                "gate-holds",
                readinessGates=[{"conditionType": "example.com/lb"}],
                conditions={"example.com/lb": "True"},
            ),
            running("going", meta={"deletionTimestamp": "2026-12-06T07:44:00Z"}),
            running("elsewhere", node="kwok-node-1"),
        ]
    )
    assert kwoknudge.repair_unready_pods(api, ["kwok-node-0"], now=NOW) == 2
    assert api.asked == [{"fieldSelector": "spec.nodeName=kwok-node-0,status.phase=Running"}]
    assert [path for path, _ in api.patched] == [
        "/api/v1/namespaces/ns/pods/lapsed/status",
        "/api/v1/namespaces/ns/pods/gate-holds/status",
    ]
    assert api.patched[0][1] == {
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-06T07:45:00Z"}]}
    }


def test_no_node_back_asks_nothing_and_the_first_sweep_lists_every_running_pod_once() -> None:
    api = NodeListApi([running("a"), running("b", node="kwok-node-1")])
    assert kwoknudge.repair_unready_pods(api, [], now=NOW) == 0
    assert api.asked == [] and api.patched == []
    assert kwoknudge.repair_unready_pods(api, everywhere=True, now=NOW) == 2
    assert api.asked == [{"fieldSelector": "status.phase=Running"}]


def node(name: str, ready: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {}, "annotations": {}},
        "status": {"conditions": [{"type": "Ready", "status": ready}], "capacity": {"cpu": "4", "memory": "16Gi"}},
    }


def test_the_node_simulator_names_a_node_once_when_it_becomes_ready_again(tmp_path: Any) -> None:
    from sandbox.nodesim import NodeSim

    sim = NodeSim(tmp_path / "state.json")
    sim.set_node(node("n0", "True"))  # first seen Ready: nothing to repair
    sim.set_node(node("n1", "Unknown"))  # the lease lapsed
    assert sim.take_recovered() == set()
    sim.set_node(node("n1", "True"))
    sim.set_node(node("n1", "True"))  # later heartbeats change nothing
    sim.set_node(node("n0", "True"))
    assert sim.take_recovered() == {"n1"}
    assert sim.take_recovered() == set()
    sim.set_node(node("n1", "False"))
    sim.set_node(node("n1", "True"))
    sim.drop_node("n1")
    assert sim.take_recovered() == set()  # a node deleted meanwhile is not listed
