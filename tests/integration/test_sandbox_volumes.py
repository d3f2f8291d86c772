"""The sandbox binds PersistentVolumeClaims (issue 19 "PVC data in the sandbox"): the node
simulator's provisioner (sandbox/volsim.py) with a real kube-controller-manager running the
sandbox's own controller list (sandbox/core.py KCM_CONTROLLERS: the persistentvolume-binder on)
on a private etcd + kube-apiserver, so the shared sandbox is not touched. The outside reference
is the controller-manager: it, not our code, must bind the claim to the volume."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from sandbox import seed, volsim
from sandbox.core import KCM_CONTROLLERS
from tests.integration.cluster_support import ENGINES, ControlPlane, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Rest:
    """list/create/delete over the private API server with its admin token (the provisioner's
    interface; the sandbox gives it its own client-certificate client)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.url = cp.url
        self.http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(cp.ca_file))
        self.headers = {"Authorization": f"Bearer {cp.ADMIN_TOKEN}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        r = self.http.request(method, self.url + path, body=data, headers=self.headers)
        return r.status, json.loads(r.data) if r.data else None

    def list(self, path: str) -> list[dict[str, Any]]:
        status, body = self.call("GET", path)
        assert status == 200, body
        return list(body["items"])

    def create(self, path: str, body: dict[str, Any]) -> bool:
        status, out = self.call("POST", path, body)
        assert status in (201, 409), out
        return status == 201

    def delete(self, path: str) -> bool:
        status, out = self.call("DELETE", path)
        assert status in (200, 202, 404), out
        return status != 404


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path, port_base=31700)
    cp.start()
    cp._spawn(
        "kube-controller-manager",
        [
            str(ENGINES / "kube-controller-manager"),
            f"--kubeconfig={cp.kubeconfig}",
            f"--controllers={KCM_CONTROLLERS}",
            "--leader-elect=false",
            "--secure-port=0",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={cp.root / 'sa.key'}",
        ],
    )
    yield cp
    cp.close()


def claim(name: str, storage_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": "20Gi"}},
        },
    }


def test_a_claim_of_the_sandbox_class_is_provisioned_bound_and_reclaimed(plane: ControlPlane) -> None:
    api = Rest(plane)
    wait_until(lambda: api.call("GET", "/api/v1/namespaces/default")[0] == 200, timeout=60, what="the API server")
    api.create("/apis/storage.k8s.io/v1/storageclasses", volsim.storage_class())
    api.create("/api/v1/namespaces", {"metadata": {"name": "shop"}})
    api.create("/api/v1/namespaces/shop/persistentvolumeclaims", claim("data-orders-db-0", volsim.STORAGE_CLASS))
    api.create("/api/v1/namespaces/shop/persistentvolumeclaims", claim("elsewhere", "someone-elses"))

    def bound() -> dict[str, Any] | None:
        volsim.provision(api)
        _, pvc = api.call("GET", "/api/v1/namespaces/shop/persistentvolumeclaims/data-orders-db-0")
        return pvc if pvc["status"].get("phase") == "Bound" else None

    pvc = wait_until(bound, timeout=90, interval=1.0, what="the controller-manager to bind the claim")
    pv_name = pvc["spec"]["volumeName"]
    _, pv = api.call("GET", f"/api/v1/persistentvolumes/{pv_name}")
    assert pv["status"]["phase"] == "Bound" and pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pvc["status"]["capacity"]["storage"] == "20Gi"
    _, other = api.call("GET", "/api/v1/namespaces/shop/persistentvolumeclaims/elsewhere")
    assert other["status"]["phase"] == "Pending"  # not the sandbox's class: no volume made for it
    assert len(api.list("/api/v1/persistentvolumes")) == 1

    api.delete("/api/v1/namespaces/shop/persistentvolumeclaims/data-orders-db-0")

    def reclaimed() -> bool:
        volsim.provision(api)
        return not api.list("/api/v1/persistentvolumes")

    wait_until(reclaimed, timeout=90, interval=1.0, what="the released volume to be deleted")


def test_the_seeded_statefulset_gets_its_claims_bound(plane: ControlPlane) -> None:
    """The seed's own code makes the StatefulSet (volumeClaimTemplates of the StorageClass); the
    controller-manager's StatefulSet controller makes the claims, the provisioner the volumes,
    the binder binds them: what `make sandbox` needs before the StatefulSet's pods can schedule."""
    api = Rest(plane)
    wait_until(lambda: api.call("GET", "/api/v1/namespaces/default")[0] == 200, timeout=60, what="the API server")
    api.create("/apis/storage.k8s.io/v1/storageclasses", volsim.storage_class())
    (ch,) = [w for w in seed.WORKLOADS if w.name == "clickhouse"]
    api.create("/api/v1/namespaces", {"metadata": {"name": ch.namespace}})
    seeder = object.__new__(seed.Seeder)
    seeder.api = api  # type: ignore[assignment]
    seeder._workload(ch, 2)

    def all_bound() -> list[dict[str, Any]] | None:
        volsim.provision(api)
        claims = api.list(f"/api/v1/namespaces/{ch.namespace}/persistentvolumeclaims")
        return claims if len(claims) == 2 and all(c["status"].get("phase") == "Bound" for c in claims) else None

    claims = wait_until(all_bound, timeout=90, interval=1.0, what="the StatefulSet's claims to be bound")
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-clickhouse-0", "data-clickhouse-1"]
    assert {c["status"]["capacity"]["storage"] for c in claims} == {ch.volume_claim}
    _, sts = api.call("GET", f"/apis/apps/v1/namespaces/{ch.namespace}/statefulsets/{ch.name}")
    # the usage model reads the same object: growth started before the StatefulSet existed
    (first, _second) = volsim.claims_of(sts)
    assert first.since < time.time() - 19 * 3600 and first.growth == ch.volume_growth
