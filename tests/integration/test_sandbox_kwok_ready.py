"""A pod the node lifecycle controller marked not ready stays so under KWOK, and the node
simulator's repair (sandbox/kwoknudge.py) makes it ready again the way a kubelet would: against
the sandbox's real kube-apiserver and KWOK, read back with the official client.

The pod is marked ``Ready=False`` by a status patch shaped as the controller's own
``MarkPodsNotReady`` leaves it (Ready False, ContainersReady True); making a node's lease lapse
for real would take the node lifecycle controller's 40 s grace period and more.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from sandbox import kwoknudge
from sandbox.kube import KubeRest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def conditions(core: k8s.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    pod = core.read_namespaced_pod_status(name, namespace)
    return {c.type: c.status for c in pod.status.conditions or []}


def wait_for(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def namespace(kube: k8s.ApiClient) -> Iterator[str]:
    name = f"kh-ready-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(kube)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_a_pod_left_unready_after_a_lease_lapse_is_made_ready_again_and_keeps_its_other_conditions(
    kube: k8s.ApiClient, kubeconfig: Path, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube)
    node = next(n.metadata.name for n in core.list_node().items if n.metadata.name.startswith("kwok-node"))
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "lapsed"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "registry.example/app:1"}],
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    )
    wait_for(lambda: conditions(core, namespace, "lapsed").get("Ready") == "True", "KWOK to run the pod")
    before = conditions(core, namespace, "lapsed")

    core.patch_namespaced_pod_status(
        "lapsed", namespace, {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NodeLost"}]}}
    )
    time.sleep(5)  # KWOK played the pod's ready stage once: it does not set Ready again
    assert conditions(core, namespace, "lapsed") == {**before, "Ready": "False"}

    api = KubeRest(kubeconfig, pool=1)
    assert kwoknudge.repair_unready_pods(api, [node]) == 1
    assert conditions(core, namespace, "lapsed") == before  # Ready again; the others as they were
    assert kwoknudge.repair_unready_pods(api, [node]) == 0  # nothing left to do on that node
