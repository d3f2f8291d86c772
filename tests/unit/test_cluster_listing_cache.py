"""The service keeps each namespace's listing sorted and each pod's answer encoded between
requests; after every change the pages must still equal a listing computed from scratch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.collectors.cluster import RESOURCE_KINDS, ClusterService
from hub.collectors.inventory import ListQuery
from hub.collectors.watchcache import WatchCache
from hub.timeutil import FakeClock
from tests.unit.cluster_fakes import (
    FakeKube,
    deployment_json,
    namespace_json,
    node_json,
    pod_json,
    replicaset_json,
)

pytestmark = pytest.mark.unit


def setup() -> tuple[FakeKube, WatchCache, ClusterService]:
    kube, clock = FakeKube(), FakeClock(1000)
    kube.put("namespaces", namespace_json("shop"))
    for i in range(4):
        kube.put("nodes", node_json(f"node-{i}"))
    dep = kube.put("deployments", deployment_json("shop", "web"))
    rs = kube.put(
        "replicasets",
        replicaset_json("shop", "web-5d9", deployment=("web", dep["metadata"]["uid"]), revision="1", replicas=9),
    )
    for i in (7, 3, 8, 1, 5):
        kube.put(
            "pods",
            pod_json(
                "shop", f"web-{i}", node=f"node-{i % 4}", owned_by=("ReplicaSet", "web-5d9", rs["metadata"]["uid"])
            ),
        )
    kube.put("pods", pod_json("shop", "lone", node="node-0", labels={"tier": "db"}))
    cache = WatchCache(kube, RESOURCE_KINDS, clock=clock)
    service = ClusterService(kube, clock=clock, cache=cache, autostart=False, initial_wait=0.05)
    for name in cache.stores:
        cache.step(name)
    return kube, cache, service


def every_page(service: ClusterService, **query: Any) -> list[dict[str, Any]]:
    """All pages of the pod listing, decoded from the JSON the API would send."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = service.list_pods("shop", ListQuery(limit=2, offset=offset, **query))
        out.extend(json.loads(page.to_json())["items"])
        if not page.continue_token:
            return out
        offset += 2


def from_scratch(cache: WatchCache) -> list[str]:
    """The oracle: every pod of the namespace in the store, sorted by name here."""
    return sorted(p.name for p in cache["pods"].values("shop"))


def test_pages_follow_adds_deletes_and_changes() -> None:
    kube, cache, service = setup()
    assert [p["name"] for p in every_page(service)] == from_scratch(cache)
    assert [p["name"] for p in every_page(service)] == ["lone", "web-1", "web-3", "web-5", "web-7", "web-8"]
    kube.put("pods", pod_json("shop", "web-2", phase="Pending"))
    kube.remove("pods", "shop", "web-7")
    changed = pod_json("shop", "web-3", restarts=4)
    changed["metadata"]["uid"] = cache["pods"].get("shop", "web-3").uid
    kube.put("pods", changed)
    cache.step("pods")
    listed = every_page(service)
    assert [p["name"] for p in listed] == from_scratch(cache)
    assert "web-7" not in [p["name"] for p in listed]
    by_name = {p["name"]: p for p in listed}
    assert by_name["web-3"]["restarts"] == 4 and by_name["web-2"]["phase"] == "Pending"


def test_filters_still_apply_to_the_kept_listing() -> None:
    _, _, service = setup()
    every_page(service)  # fills the kept listing
    assert [p["name"] for p in every_page(service, label_selector="tier=db")] == ["lone"]
    assert [p["name"] for p in every_page(service, name="WEB-")] == ["web-1", "web-3", "web-5", "web-7", "web-8"]
    page = service.list_pods("shop", ListQuery(limit=10), node="node-1")
    assert [p["name"] for p in page.items] == ["web-1", "web-5"]


def test_a_pods_answer_follows_its_owners_change() -> None:
    kube, cache, service = setup()
    assert every_page(service)[1]["workload"] == {"kind": "deployment", "name": "web"}
    # The ReplicaSet loses its Deployment: its pods now answer with the ReplicaSet itself, though
    # the pods did not change.
    rs = cache["replicasets"].get("shop", "web-5d9")
    orphan = replicaset_json("shop", "web-5d9", deployment=("web", "x"), revision="1", replicas=9)
    orphan["metadata"]["uid"] = rs.uid
    del orphan["metadata"]["ownerReferences"]
    kube.put("replicasets", orphan)
    cache.step("replicasets")
    assert every_page(service)[1]["workload"] == {"kind": "replicaset", "name": "web-5d9"}


def test_node_listing_follows_a_new_node() -> None:
    kube, cache, service = setup()
    assert [n["name"] for n in service.list_nodes(ListQuery(limit=10)).items] == [f"node-{i}" for i in range(4)]
    kube.put("nodes", node_json("node-00"))
    cache.step("nodes")
    names = [n["name"] for n in service.list_nodes(ListQuery(limit=10)).items]
    assert names == sorted(n.name for n in cache["nodes"].values()) and "node-00" in names


def test_the_overview_node_summary_counts_what_the_node_listing_shows() -> None:
    """The overview's tile reads counts from the cached nodes (not the list's per-node views);
    the listing itself is the reference, after nodes change readiness and are cordoned."""
    kube, cache, service = setup()
    not_ready = [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "down"}]
    kube.put("nodes", node_json("node-1", conditions=not_ready))
    kube.put("nodes", node_json("node-2", unschedulable=True))
    kube.put("nodes", node_json("node-9", conditions=not_ready, unschedulable=True))
    cache.step("nodes")
    listed = service.list_nodes(ListQuery(limit=5000)).to_dict()["items"]
    assert service.node_summary() == {
        "total": len(listed),
        "ready": sum(1 for n in listed if n["ready"]),
        "cordoned": sum(1 for n in listed if n["unschedulable"]),
        "not_ready": [n["name"] for n in listed if not n["ready"]],
        "stale_since": None,
    }
    assert service.node_summary()["not_ready"] == ["node-1", "node-9"]
