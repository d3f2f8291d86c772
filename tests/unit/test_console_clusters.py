"""The console's clusters page (web/views/clusters.py) in the tenancy world: a platform admin
adds, changes and removes a cluster through the form (the same registry, validation and sealing
as /api/v1/clusters); credentials are never rendered back; other roles see only the names of the
clusters they may read and cannot change anything (403)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.clusters.secretbox import new_key
from tests.unit.conftest_tenancy import TenancyWorld, build_world

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}
SECRET = "console-sekret-token-0042"
KUBECONFIG = (
    "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
    f"users: [{{name: u, user: {{token: '{SECRET}'}}}}]\n"
    "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("clusters")), settings={"clusters": {"secret_key": new_key()}})
    yield w
    w.hub.close()


def form(csrf: str, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": csrf, "mode": "kubeconfig", "metrics_mode": "none", "logs_mode": "shared", **fields}


def test_an_admin_adds_changes_and_removes_a_cluster_and_never_sees_its_credentials(world: TenancyWorld) -> None:
    client, csrf = world.session("platform-admin")
    r = client.get("/clusters", headers=HTML)
    assert r.status_code == 200 and 'data-cluster="default"' in r.get_data(as_text=True)
    assert "/clusters" in r.get_data(as_text=True)  # the nav entry
    r = client.post("/clusters", data=form(csrf, name="Bad Name"), headers=HTML)
    assert r.status_code == 303
    body = client.get("/clusters", headers=HTML).get_data(as_text=True)
    assert "(name)" in body  # the refusal names the field
    shared = {"metrics_mode": "shared", "metrics_url": "http://thanos:10902", "metrics_label_value": "edge-1"}
    r = client.post("/clusters", data=form(csrf, name="edge-1", kubeconfig=KUBECONFIG, **shared))
    assert r.status_code == 303
    body = client.get("/clusters", headers=HTML).get_data(as_text=True)
    assert 'data-cluster="edge-1"' in body and SECRET not in body and 'cluster="edge-1"' in body
    edit = client.get("/clusters/edge-1", headers=HTML).get_data(as_text=True)
    assert SECRET not in edit and "leave empty to keep" in edit
    r = client.post("/clusters/edge-1", data=form(csrf, display_name="Edge one"))  # credentials left empty: kept
    assert r.status_code == 303
    assert world.hub.clusters.get("edge-1").display_name == "Edge one"
    assert world.hub.clusters.credentials("edge-1") == ("kubeconfig", KUBECONFIG)
    r = client.post("/clusters/edge-1/delete", data={"csrf_token": csrf})
    assert r.status_code == 303 and world.hub.clusters.names() == ["default"]


def test_other_roles_see_names_only_and_change_nothing(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    r = admin.post("/api/v1/clusters", json={"name": "edge-2", "connection": {"kubeconfig": KUBECONFIG}})
    assert r.status_code == 201, r.get_data(as_text=True)
    try:
        for role in ("project-admin", "cluster-admin", "workspace-admin"):
            client, csrf = world.session(role)
            r = client.get("/clusters", headers=HTML)
            body = r.get_data(as_text=True)
            assert r.status_code == 200 and 'data-cluster="default"' in body
            assert "edge-2" not in body and "cluster-form" not in body  # no grant on edge-2, no form
            assert client.get("/clusters/edge-2", headers=HTML).status_code == 404
            assert client.post("/clusters/edge-2/delete", data={"csrf_token": csrf}).status_code == 403
            assert client.post("/clusters", data=form(csrf, name="mine", kubeconfig_path="/k")).status_code == 403
        assert world.hub.clusters.names() == ["default", "edge-2"]
    finally:
        admin.delete("/api/v1/clusters/edge-2")


def test_the_cluster_parameter_opens_nothing_the_caller_does_not_hold_on_that_cluster(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    r = admin.post("/api/v1/clusters", json={"name": "edge-3", "connection": {"kubeconfig_path": "/nonexistent/k"}})
    assert r.status_code == 201 and r.get_json()["state"] == "error"  # listed with its reason, hub unharmed
    try:
        probes = [
            ("get", "/api/v1/nodes?cluster={c}"),
            ("post", "/api/v1/nodes/kwok-node-0/cordon?cluster={c}"),
            ("get", "/api/v1/namespaces/ns-a1/workloads?cluster={c}"),
            ("post", "/api/v1/namespaces/ns-a1/workloads/deployment/web/restart?cluster={c}"),
            ("get", "/api/v1/cluster/freshness?cluster={c}"),
        ]
        for role in ("cluster-admin", "project-admin", "workspace-admin"):
            client = world.client(role)
            for method, url in probes:
                answers = {c: getattr(client, method)(url.format(c=c)).status_code for c in ("edge-3", "ghost")}
                # The same refusal for an added cluster and for one that does not exist.
                assert answers == {"edge-3": 403, "ghost": 403}, (role, url, answers)
        a = admin.get("/api/v1/nodes?cluster=edge-3")
        assert a.status_code == 503 and "edge-3" in a.get_json()["error"]  # names the cluster that is down
        assert admin.get("/api/v1/nodes?cluster=ghost").status_code == 404
    finally:
        admin.delete("/api/v1/clusters/edge-3")


def test_a_cluster_named_in_the_body_never_redirects_an_action(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    r = admin.post("/api/v1/namespaces/ns-a1/workloads/deployment/web/scale", json={"replicas": 2, "cluster": "edge"})
    assert r.status_code == 422 and r.get_json()["field"] == "cluster"
    operator = world.client("project-operator")
    r = operator.post("/api/v1/namespaces/ns-a1/workloads/deployment/web/scale", json={"replicas": 2, "cluster": "x"})
    assert r.status_code == 422 and r.get_json()["field"] == "cluster"


def test_a_cluster_role_counts_on_its_own_cluster_only(world: TenancyWorld) -> None:
    """cadmin is cluster admin on the implicit cluster; made viewer on edge-4 they read edge-4's
    nodes but may not cordon there, although the route's permission holds on the implicit one."""
    admin = world.client("platform-admin")
    r = admin.post("/api/v1/clusters", json={"name": "edge-4", "connection": {"kubeconfig_path": "/nonexistent/k"}})
    assert r.status_code == 201
    t = world.tenancy
    user = world.user("cluster-admin")
    t.set_cluster_member("edge-4", user, "viewer", actor="test")
    try:
        client = world.client("cluster-admin")
        assert client.get("/api/v1/nodes?cluster=edge-4").status_code == 503  # allowed; the cluster is down
        r = client.post("/api/v1/nodes/kwok-node-0/cordon?cluster=edge-4")
        assert r.status_code == 403 and "nodes:write" in r.get_json()["error"]
        assert [c["name"] for c in client.get("/api/v1/clusters").get_json()["items"]] == ["default", "edge-4"]
    finally:
        t.set_cluster_member("edge-4", user, None, actor="test")
        admin.delete("/api/v1/clusters/edge-4")
