"""Deleting a project deletes its namespace (issue 19), against the sandbox's real API server.

The test creates its own workspace, project and namespace through the hub, puts a Deployment,
Service, ConfigMap, Secret and PVC in it with the Kubernetes client, and compares the hub's
deletion preview with the API server's own lists (the outside reference). Then: no
confirmation -> 422 and nothing deleted; confirmed -> the namespace is Terminating or gone in
the API server and the project is unregistered. A hub whose API server is down answers 503
naming it and keeps the project registered.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from tests.integration.cluster_support import HubUnderTest, hub_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def core(kube: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube)


def _fill(kubeconfig: Path, core: k8s.CoreV1Api, ns: str) -> None:
    apps = k8s.AppsV1Api(core.api_client)
    labels = {"app": "shop"}
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "shop"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "x:1"}]}},
            },
        },
    )
    core.create_namespaced_service(
        ns, {"metadata": {"name": "shop"}, "spec": {"ports": [{"port": 80}], "selector": labels}}
    )
    core.create_namespaced_config_map(ns, {"metadata": {"name": "shop-config"}, "data": {"a": "1"}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "shop-secret"}, "stringData": {"password": "hunter2"}})
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "shop-data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )


def test_the_preview_lists_what_goes_and_a_confirmed_delete_deletes_the_namespace(
    h: HubUnderTest, kubeconfig: Path, core: k8s.CoreV1Api
) -> None:
    ws, ns = f"kh-del-{secrets.token_hex(3)}", f"kh-del-{secrets.token_hex(3)}"
    assert h.client.post("/api/v1/workspaces", json={"name": ws}).status_code == 201
    assert h.client.post(f"/api/v1/workspaces/{ws}/projects", json={"namespace": ns}).status_code == 201
    try:
        _fill(kubeconfig, core, ns)
        # The outside reference: the API server's own lists of the namespace.
        expected = {
            "services": sorted(s.metadata.name for s in core.list_namespaced_service(ns).items),
            "configmaps": sorted(c.metadata.name for c in core.list_namespaced_config_map(ns).items),
            "secrets": sorted(s.metadata.name for s in core.list_namespaced_secret(ns).items),
            "persistentvolumeclaims": sorted(
                p.metadata.name for p in core.list_namespaced_persistent_volume_claim(ns).items
            ),
        }
        assert "shop-data" in expected["persistentvolumeclaims"] and "shop-secret" in expected["secrets"]
        path = f"/api/v1/workspaces/{ws}/projects/{ns}"

        def preview_matches() -> dict | None:
            body = h.get(path + "/deletion")
            seen = {k: body[k] for k in expected}
            ok = seen == expected and {"kind": "deployment", "name": "shop"} in body["workloads"]
            return body if ok else None

        body = wait_until(preview_matches, timeout=60, what="the preview listing the API server's objects")
        assert body["confirm"] == ns and "hunter2" not in str(body)

        wrong = h.client.delete(path + "?confirm=" + ns + "x")
        assert wrong.status_code == 422 and wrong.get_json()["field"] == "confirm"
        assert core.read_namespace(ns).status.phase == "Active"
        assert h.client.get(path + "/deletion").status_code == 200  # still a project

        done = h.client.delete(path + "?confirm=" + ns)
        assert done.status_code == 200, done.get_json()
        assert done.get_json()["namespace_deleted"] is True
        try:
            phase = core.read_namespace(ns).status.phase
        except k8s.ApiException as exc:
            phase = "gone" if exc.status == 404 else f"error {exc.status}"
        assert phase in ("Terminating", "gone")
        assert h.hub.tenancy.project(ns) is None
        assert h.client.get(path + "/deletion").status_code == 404
        audit = h.get("/api/v1/audit?action=project.delete")["items"]
        assert any(e["target"] == f"namespace/{ns}" and e["result"] == "ok" for e in audit)
    finally:
        try:
            core.delete_namespace(ns)
        except k8s.ApiException:
            pass
        if h.hub.tenancy.project(ns) is not None:
            h.hub.tenancy.delete_project(ns, confirm=ns)
        h.hub.tenancy.delete_workspace(ws)


def _dead_kubeconfig(kubeconfig: Path, target: Path) -> Path:
    """The sandbox's kubeconfig with its server moved to a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    for entry in doc["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    target.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return target


def test_with_the_api_server_down_the_delete_is_503_and_the_project_stays(kubeconfig: Path, tmp_path: Path) -> None:
    dead = hub_for(_dead_kubeconfig(kubeconfig, tmp_path / "dead.kubeconfig"), tmp_path / "data", request_timeout=2.0)
    try:
        tenancy = dead.hub.tenancy
        tenancy.create_workspace("ws-down")
        # Registered while no cluster call is possible: the store directly, as a project the
        # hub recorded before its API server went away.
        tenancy.store.insert_project(
            namespace="ns-down", workspace="ws-down", display_name="", created=1.0, created_by="t", now=1.0
        )
        r = dead.client.delete("/api/v1/workspaces/ws-down/projects/ns-down?confirm=ns-down")
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["backend"] == "kubernetes API server"
        assert tenancy.project("ns-down") is not None
    finally:
        dead.close()
