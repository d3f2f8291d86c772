"""LIST pages decoded from bytes (kube_decode) give the Pods the dict parser gives, values that
were worked out by hand, shared sub-objects, and the cache's pipelined listing of such pages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hub.collectors.cluster import RESOURCE_KINDS
from hub.collectors.inventory_parse import pod_from_api
from hub.collectors.kube_decode import decode_pod_list, list_head
from hub.collectors.watchcache import ListPage, ResourceKind, WatchCache, WatchEvent, WatchExpired
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit

NOW = "2026-11-22T00:00:00Z"


def running_pod(name: str, rs: str = "web-5d8f", *, restarts: int = 0) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "resourceVersion": "41",
            "creationTimestamp": NOW,
            "labels": {"app": "web", "pod-template-hash": "5d8f"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": f"uid-{rs}", "controller": True}
            ],
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:phase": {}}}}],
        },
        "spec": {
            "nodeName": "node-1",
            "volumes": [{"name": "kube-api-access-x1", "projected": {"sources": []}}],
            "containers": [
                {
                    "name": "main",
                    "image": "shop/web:1.2",
                    "env": [{"name": "A", "value": "b"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                },
                {"name": "proxy", "image": "envoy:1.30", "resources": {"requests": {"cpu": "50m"}}},
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "hostIP": "10.250.0.1",
            "startTime": NOW,
            "conditions": [
                {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": NOW},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": NOW},
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "shop/web:1.2",
                    "imageID": "sha256:1",
                    "containerID": "containerd://1",
                    "ready": True,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": NOW}},
                },
                {"name": "proxy", "image": "envoy:1.30", "ready": True, "restartCount": 0, "state": {"running": {}}},
            ],
        },
    }


def odd_pods() -> list[dict[str, Any]]:
    """Pods unlike the running one: pending without status, crash-looping, terminated, init
    containers and overhead, being deleted, with the log-files annotation, numeric quantities."""
    return [
        {"metadata": {"name": "bare", "namespace": "shop"}},
        {
            "metadata": {"name": "crash", "namespace": "shop", "uid": "u2", "deletionTimestamp": NOW},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": 2, "memory": 1e9}}}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "c",
                        "ready": False,
                        "restartCount": 7,
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    }
                ],
            },
        },
        {
            "metadata": {
                "name": "init",
                "namespace": "batch",
                "annotations": {"kubehub.io/log-files": "/var/log/app/*.log", "other": "x" * 500},
            },
            "spec": {
                "overhead": {"cpu": "10m", "memory": "1Mi"},
                "initContainers": [
                    {"name": "setup", "image": "busybox", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}
                ],
                "containers": [
                    {"name": "a", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                    {
                        "name": "b",
                        "image": "y",
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "1Gi"}},
                    },
                ],
            },
            "status": {
                "phase": "Failed",
                "reason": "Evicted",
                "containerStatuses": [
                    {
                        "name": "a",
                        "ready": False,
                        "state": {"terminated": {"reason": "Error", "startedAt": NOW, "exitCode": 1}},
                    }
                ],
                "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed", "message": "évincé"}],
            },
        },
    ]


def page(items: list[dict[str, Any]], *, rv: str = "99", token: str | None = None) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if token:
        meta["continue"] = token
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}).encode()


def test_decoded_pods_equal_what_the_dict_parser_gives() -> None:
    items = [running_pod("web-1"), running_pod("web-2", restarts=3), *odd_pods()]
    assert decode_pod_list(page(items)) == [pod_from_api(i) for i in items]


def test_values_worked_out_by_hand() -> None:
    running, bare, crash, init = decode_pod_list(page([running_pod("web-1"), *odd_pods()]))
    assert running.requests.cpu_millis == 150 and running.requests.memory_bytes == 128 * 2**20
    assert running.controller is not None and running.controller.name == "web-5d8f"
    assert running.ready and running.node == "node-1" and running.pod_ip == "10.0.0.7"
    assert running.created == 1_795_305_600.0  # 2026-11-22T00:00:00Z
    assert bare.phase == "Pending" and bare.containers == () and bare.created == 0.0
    assert crash.status == "Terminating" and crash.restarts == 7 and crash.deleting
    assert crash.requests.cpu_millis == 2000 and crash.requests.memory_bytes == 1_000_000_000
    # max(sum of containers, the init container) + overhead: cpu max(150, 500) + 10, memory
    # max(192 Mi, 64 Mi) + 1 Mi; ephemeral-storage is not one of the two resources kept.
    assert init.requests.cpu_millis == 510 and init.requests.memory_bytes == 193 * 2**20
    assert init.log_files == "/var/log/app/*.log"
    assert init.status == "Evicted" and init.statuses[0].state == "terminated"
    assert init.conditions[0].message == "évincé"


def test_pods_of_one_replicaset_share_their_parts() -> None:
    a, b = decode_pod_list(page([running_pod("web-1"), running_pod("web-2")]))
    assert a.labels is b.labels and a.owners is b.owners and a.containers is b.containers
    assert a.requests is b.requests and a.conditions is b.conditions
    assert a.uid != b.uid


def test_a_field_of_an_unexpected_type_falls_back_to_the_dict_parser() -> None:
    odd = running_pod("web-1")
    odd["status"]["containerStatuses"][0]["restartCount"] = "4"  # a string where the schema says integer
    [pod] = decode_pod_list(page([odd]))
    assert pod == pod_from_api(odd) and pod.restarts == 4


def test_list_head_reads_version_and_token_without_the_items() -> None:
    assert list_head(page([running_pod("a")], rv="123", token="abc")) == ("123", "abc")
    assert list_head(page([], rv="7")) == ("7", None)
    items_first = b'{"items":[{"metadata":{"name":"x"}}],"metadata":{"resourceVersion":"5","continue":"t"}}'
    assert list_head(items_first) == ("5", "t")


class PagedSource:
    """Pages as bytes with their decoding left to the cache, as KubeApi gives them; the second
    page's token expires once when ``expire_once``."""

    def __init__(self, pages: list[list[dict[str, Any]]], *, expire_once: bool = False) -> None:
        self.pages = pages
        self.expire_once = expire_once
        self.calls: list[str | None] = []
        self.versions: list[str] = []
        self.threads: set[str] = set()

    def list_page(
        self, kind: ResourceKind, *, limit: int, continue_token: str | None, resource_version: str = ""
    ) -> ListPage:
        self.calls.append(continue_token)
        self.versions.append(resource_version)
        self.threads.add(threading.current_thread().name)
        i = int(continue_token or 0)
        if i == 1 and self.expire_once:
            self.expire_once = False
            raise WatchExpired("continue token expired")
        token = str(i + 1) if i + 1 < len(self.pages) else None
        data = page(self.pages[i], rv="50", token=token)
        rv, head_token = list_head(data)
        assert kind.decode_list is not None
        return ListPage([], rv, head_token, decode=lambda: kind.decode_list(data))  # type: ignore[misc]

    def watch(self, kind: ResourceKind, *, resource_version: str, timeout_seconds: int) -> Iterator[WatchEvent]:
        return iter(())

    def interrupt(self) -> None:
        pass


def test_the_cache_lists_decoded_pages_fetching_ahead_and_starts_over_when_a_token_expires() -> None:
    pods = [k for k in RESOURCE_KINDS if k.name == "pods"]
    pages = [[running_pod(f"web-{p}{i}") for i in range(3)] for p in range(3)]
    source = PagedSource(pages, expire_once=True)
    cache = WatchCache(source, pods, clock=FakeClock(1000), page_size=3)  # type: ignore[arg-type]
    cache._list(cache["pods"])
    assert sorted(p.name for p in cache["pods"].values()) == sorted(p["metadata"]["name"] for pg in pages for p in pg)
    assert cache["pods"].resource_version == "50" and cache["pods"].synced.is_set()
    assert source.calls == [None, "1", None, "1", "2"]  # the expired token: the list started over
    # The first LIST takes the server's cached state; once its snapshot expired, the latest.
    assert source.versions == ["0", "", "", "", ""]
    assert all(name.startswith("kubehub-list-pods") for name in source.threads)  # fetched by the helper
