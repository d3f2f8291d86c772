"""Issue 4's acceptance, through the hub's API against the sandbox's real control plane and KWOK.

Every test works in its own namespace (created through the hub, which is the project-creation
test) and on its own node, so the shared sandbox's seeded workloads are never touched. The
namespace and node are deleted at the end.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from hub.errors import Conflict
from hub.model import WORKSPACE_LABEL
from tests.integration.cluster_support import HubUnderTest, project_namespace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OLD_IMAGE = "nginx:1.25"
NEW_IMAGE = "nginx:1.27"


@pytest.fixture(scope="module")
def ns(h: HubUnderTest, kube: k8s.ApiClient) -> Iterator[str]:
    with project_namespace(h, kube, "kh-cluster") as name:
        yield name


def deployment(name: str, replicas: int, image: str = OLD_IMAGE) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def pods_of(h: HubUnderTest, ns: str, workload: str) -> list[dict[str, Any]]:
    body = h.get(f"/api/v1/namespaces/{ns}/pods?workload=deployment/{workload}")
    return list(body["items"])


def running_images(h: HubUnderTest, ns: str, workload: str) -> tuple[int, set[str], set[str]]:
    """(Running pods, their images, their names) of a deployment, live pods only."""
    pods = [p for p in pods_of(h, ns, workload) if p["status"] == "Running"]
    images = {c["image"] for p in pods for c in h.get(f"/api/v1/namespaces/{ns}/pods/{p['name']}")["containers"]}
    return len(pods), images, {p["name"] for p in pods}


def settled(h: HubUnderTest, ns: str, name: str, replicas: int, image: str) -> bool:
    """The rollout is over: exactly ``replicas`` pods, all Running with ``image``, none terminating."""
    pods = pods_of(h, ns, name)
    if len(pods) != replicas or any(p["status"] != "Running" for p in pods):
        return False
    count, images, _ = running_images(h, ns, name)
    return count == replicas and images == {image}


def test_project_creation_labels_the_namespace_with_its_workspace(
    h: HubUnderTest, kube: k8s.ApiClient, ns: str
) -> None:
    live = k8s.CoreV1Api(kube).read_namespace(ns)  # the fixture created it through the hub
    assert live.metadata.labels[WORKSPACE_LABEL] == "kh-cluster-ws"
    created = live.metadata.creation_timestamp.timestamp()
    listed = wait_until(
        lambda: [n for n in h.get("/api/v1/namespaces")["items"] if n["name"] == ns], what="the namespace"
    )
    assert listed[0]["workspace"] == "kh-cluster-ws"
    # Asking again is harmless and answers the same creation time; another workspace may not
    # take the namespace over.
    assert h.cluster.ensure_namespace(ns, {WORKSPACE_LABEL: "kh-cluster-ws"}) == created
    with pytest.raises(Conflict):
        h.cluster.ensure_namespace(ns, {WORKSPACE_LABEL: "someone-else"})


def test_scaling_a_deployment_from_2_to_5_gives_5_running_pods(h: HubUnderTest, kube: k8s.ApiClient, ns: str) -> None:
    k8s.AppsV1Api(kube).create_namespaced_deployment(ns, deployment("web", 2))
    wait_until(lambda: settled(h, ns, "web", 2, OLD_IMAGE), timeout=120, what="2 running pods")

    r = h.client.post(f"/api/v1/namespaces/{ns}/workloads/deployment/web/scale", json={"replicas": 5})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["health"]["desired"] == 5  # the answer is the object as it now is

    wait_until(lambda: settled(h, ns, "web", 5, OLD_IMAGE), timeout=120, what="5 running pods")
    live = k8s.CoreV1Api(kube).list_namespaced_pod(ns, label_selector="app=web")
    assert sum(1 for p in live.items if p.status.phase == "Running" and not p.metadata.deletion_timestamp) == 5
    body = h.get(f"/api/v1/namespaces/{ns}/workloads/deployment/web")
    assert body["health"]["status"] == "running" and body["health"]["pods"]["running"] == 5


def test_restart_replaces_every_pod(h: HubUnderTest, ns: str) -> None:
    _, _, before = running_images(h, ns, "web")
    assert len(before) == 5
    r = h.client.post(f"/api/v1/namespaces/{ns}/workloads/deployment/web/restart")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["restarted_at"]

    def replaced() -> bool:
        _, _, now = running_images(h, ns, "web")
        return settled(h, ns, "web", 5, OLD_IMAGE) and not (now & before)

    wait_until(replaced, timeout=180, what="five new pods and none of the old")


def test_changing_the_image_rolls_it_out(h: HubUnderTest, ns: str) -> None:
    r = h.client.post(
        f"/api/v1/namespaces/{ns}/workloads/deployment/web/image", json={"container": "web", "image": NEW_IMAGE}
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["images"] == [NEW_IMAGE]
    wait_until(lambda: settled(h, ns, "web", 5, NEW_IMAGE), timeout=180, what=f"every pod on {NEW_IMAGE}")
    revisions = h.get(f"/api/v1/namespaces/{ns}/workloads/deployment/web")["revisions"]
    assert revisions[0]["current"] and revisions[0]["images"] == [NEW_IMAGE]
    assert len(revisions) >= 2


def test_rollback_restores_the_previous_image(h: HubUnderTest, ns: str) -> None:
    r = h.client.post(f"/api/v1/namespaces/{ns}/workloads/deployment/web/rollback", json={})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["images"] == [OLD_IMAGE]
    wait_until(lambda: settled(h, ns, "web", 5, OLD_IMAGE), timeout=180, what=f"every pod back on {OLD_IMAGE}")
    r = h.client.post(f"/api/v1/namespaces/{ns}/workloads/deployment/web/rollback", json={"revision": 999})
    assert r.status_code == 422 and r.get_json()["field"] == "revision"


def test_delete_removes_the_workload_and_its_pods(h: HubUnderTest, kube: k8s.ApiClient, ns: str) -> None:
    r = h.client.delete(f"/api/v1/namespaces/{ns}/workloads/deployment/web")
    assert r.status_code == 200, r.get_json()

    def gone() -> bool:
        missing = h.client.get(f"/api/v1/namespaces/{ns}/workloads/deployment/web").status_code == 404
        left = h.get(f"/api/v1/namespaces/{ns}/pods?label_selector=app%3Dweb")["total"]
        return missing and left == 0

    wait_until(gone, timeout=180, what="the deployment and its pods to go")
    assert k8s.CoreV1Api(kube).list_namespaced_pod(ns, label_selector="app=web").items == []
    assert k8s.AppsV1Api(kube).list_namespaced_replica_set(ns, label_selector="app=web").items == []


@pytest.fixture
def node(kube: k8s.ApiClient) -> Iterator[str]:
    name = f"kh-cluster-node-{secrets.token_hex(3)}"
    core = k8s.CoreV1Api(kube)
    core.create_node(
        {
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name},
            },
            # Keeps the scheduler from placing anyone else's pods on this test node.
            "spec": {"taints": [{"key": "kubehub.io/cluster-tests", "effect": "NoSchedule"}]},
        }
    )
    yield name
    core.delete_node(name)


def test_cordon_marks_the_node_unschedulable_and_uncordon_clears_it(
    h: HubUnderTest, kube: k8s.ApiClient, node: str
) -> None:
    core = k8s.CoreV1Api(kube)
    wait_until(lambda: h.client.get(f"/api/v1/nodes/{node}").status_code == 200, what="the node in the cache")
    r = h.client.post(f"/api/v1/nodes/{node}/cordon")
    assert r.status_code == 200 and r.get_json()["unschedulable"] is True
    assert core.read_node(node).spec.unschedulable is True
    assert h.get(f"/api/v1/nodes/{node}")["unschedulable"] is True
    r = h.client.post(f"/api/v1/nodes/{node}/uncordon")
    assert r.status_code == 200 and r.get_json()["unschedulable"] is False
    assert not core.read_node(node).spec.unschedulable
    wait_until(lambda: h.get(f"/api/v1/nodes/{node}")["unschedulable"] is False, what="uncordon in the cache")
    taints = h.get(f"/api/v1/nodes/{node}")["taints"]
    assert {"key": "kubehub.io/cluster-tests", "value": "", "effect": "NoSchedule"} in taints


def test_a_pod_log_tail_returns_its_last_lines(
    h: HubUnderTest, kube: k8s.ApiClient, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log_file = tmp_path_factory.mktemp("pod-log") / "app.log"
    log_file.write_text(
        "".join(f"2026-11-22T00:00:{i:02d}.000000000Z stdout F request {i} served\n" for i in range(40))
    )
    log_file.chmod(0o644)
    log_file.parent.chmod(0o755)
    core = k8s.CoreV1Api(kube)
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "talker", "labels": {"app": "talker"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
        },
    )
    # KWOK serves a pod's log from the file its Logs object names.
    k8s.CustomObjectsApi(kube).create_namespaced_custom_object(
        "kwok.x-k8s.io",
        "v1alpha1",
        ns,
        "logs",
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": "talker"},
            "spec": {"logs": [{"containers": ["app"], "logsFile": str(log_file), "follow": False}]},
        },
    )
    wait_until(
        lambda: any(p["status"] == "Running" for p in h.get(f"/api/v1/namespaces/{ns}/pods?name=talker")["items"]),
        timeout=120,
        what="the talker pod to run",
    )

    def tail() -> Any:
        r = h.client.get(f"/api/v1/namespaces/{ns}/pods/talker/log?tail=5")
        return r.get_json() if r.status_code == 200 and r.get_json()["lines"] else None

    body = wait_until(tail, timeout=60, what="log lines")
    assert body["container"] == "app"
    assert body["lines"] == [f"request {i} served" for i in range(35, 40)]


def test_secret_values_never_reach_the_hub(h: HubUnderTest, kube: k8s.ApiClient, ns: str) -> None:
    value = f"do-not-leak-{secrets.token_hex(8)}"
    k8s.CoreV1Api(kube).create_namespaced_secret(
        ns,
        {
            "metadata": {
                "name": "db",
                "labels": {"tier": "db"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": f'{{"stringData":"{value}"}}'},
            },
            "stringData": {"password": value},
        },
    )
    body = wait_until(
        lambda: (b := h.get(f"/api/v1/namespaces/{ns}/secrets"))["total"] and b, what="the secret's metadata"
    )
    assert body["items"][0]["name"] == "db" and body["items"][0]["labels"] == {"tier": "db"}
    assert value not in str(body)
    cached = h.cluster.cache["secrets"].values()
    assert value not in repr(cached)
