"""Cluster-level roles and custom roles, end to end through the API over the tenancy world.

- A cluster viewer reads node policies and node-level alerts (fired by real engine cycles) and
  changes nothing; a cluster admin manages node policies and comments on node alerts; neither
  sees a project's alerts, and neither may silence the whole cluster (that silences tenants too).
- Group mappings grant cluster roles like the other levels (most permissive wins).
- Custom roles: validation names the field, a role's permissions are what its holder gets (and a
  change reaches them at the next request), deleting it ends every binding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.tenancy.external import ExternalUser
from hub.tenancy.mappings import parse_mapping, resolve
from hub.tenancy.roles import ClusterRole
from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import TenancyWorld, assert_no_leak, build_world
from tests.unit.test_alerts_api import T0, Engine, create, node_policy, workload_policy

pytestmark = pytest.mark.unit


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = build_world(tmp_path, clock=FakeClock(T0))
    yield w
    w.hub.close()


def test_cluster_viewer_reads_node_policies_and_alerts_and_changes_nothing(world: TenancyWorld) -> None:
    policy = create(world, "cluster-admin", "/api/v1/alerting/policies", node_policy())
    create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy())
    engine = Engine(world)
    engine.values = {"ns-a1/deployment/api": 0.9, "node-1": 0.99}
    engine.tick()
    viewer, cadmin = world.client("cluster-viewer"), world.client("cluster-admin")

    assert viewer.get("/api/v1/alerting/policies").get_json()["total"] == 1
    assert viewer.post("/api/v1/alerting/policies", json=node_policy("x")).status_code == 403
    assert viewer.delete(f"/api/v1/alerting/policies/{policy['id']}").status_code == 403
    # Node alerts only: the project's alert stays the project's.
    for client in (viewer, cadmin):
        alerts = client.get("/api/v1/alerting/alerts").get_json()["items"]
        assert [(a["namespace"], a["rule"]) for a in alerts] == [(None, "cpu-high")]
        assert_no_leak(client.get("/api/v1/alerting/alerts"), names=("ns-a1",))
    node_alert = alerts[0]["id"]
    everything = world.client("platform-admin").get("/api/v1/alerting/alerts").get_json()["items"]
    project_alert = next(a["id"] for a in everything if a["namespace"] == "ns-a1")
    assert viewer.get(f"/api/v1/alerting/alerts/{node_alert}").status_code == 200
    assert viewer.get(f"/api/v1/alerting/alerts/{project_alert}").status_code == 404
    # A project member does not see the node alert (404, as an unknown id).
    assert world.client("project-admin").get(f"/api/v1/alerting/alerts/{node_alert}").status_code == 404

    said = {"text": "looking"}
    assert viewer.post(f"/api/v1/alerting/alerts/{node_alert}/comments", json=said).status_code == 403
    assert cadmin.post(f"/api/v1/alerting/alerts/{node_alert}/comments", json=said).status_code in (200, 201)
    assert cadmin.post(f"/api/v1/alerting/alerts/{project_alert}/comments", json=said).status_code == 404
    # A cluster-wide silence would silence every tenant: platform admins only.
    silence = {"matchers": {"rule": "cpu-high"}, "duration": "1h"}
    assert cadmin.post("/api/v1/alerting/silences", json=silence).status_code == 403

    # Policy management is the cluster admin's.
    r = cadmin.put(f"/api/v1/alerting/policies/{policy['id']}", json=node_policy(threshold=95))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert cadmin.delete(f"/api/v1/alerting/policies/{policy['id']}").status_code in (200, 204)


def test_cluster_roles_reach_no_project_data(world: TenancyWorld) -> None:
    for role in ("cluster-viewer", "cluster-admin"):
        c = world.client(role)
        for url in ("/api/v1/logs?namespaces=ns-a1", "/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces=ns-a1"):
            r = c.get(url)
            assert r.status_code == 403 and r.get_json()["error"].endswith("in namespace ns-a1"), (role, url)
        assert c.get("/api/v1/namespaces/ns-a1/members").status_code == 403
        assert c.get("/api/v1/users").status_code == 403
        assert c.get("/api/v1/audit").status_code == 403
    scope = world.tenancy.scope(world.tenancy.principal_for("cviewer"))
    assert scope.visible == () and scope.named("logs:read", None) == []
    assert scope.cluster and scope.may_cluster("monitoring:cluster") and not scope.may_cluster("nodes:write")
    assert not scope.may_cluster("nodes:read", "another-cluster")  # bindings carry the cluster's name


def test_cluster_role_bindings_through_the_api(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    r = admin.put("/api/v1/clusters/default/members/regular", json={"role": "viewer"})
    assert r.status_code == 200 and r.get_json() == {"cluster": "default", "user": "regular", "role": "viewer"}
    assert world.client("platform-regular").get("/api/v1/alerting/policies").status_code == 200
    r = admin.put("/api/v1/clusters/default/members/regular", json={"role": "owner"})
    assert r.status_code == 422 and r.get_json()["field"] == "role"
    r = admin.put("/api/v1/clusters/east/members/regular", json={"role": "viewer"})
    assert r.status_code == 404 and "no cluster east" in r.get_json()["error"]
    members = admin.get("/api/v1/clusters/default/members").get_json()["items"]
    assert {"user": "regular", "role": "viewer"} in members
    assert admin.delete("/api/v1/clusters/default/members/regular").status_code == 204
    assert world.client("platform-regular").get("/api/v1/alerting/policies").status_code == 403
    assert (
        world.client("cluster-admin")
        .put("/api/v1/clusters/default/members/regular", json={"role": "admin"})
        .status_code
        == 403
    )  # binding roles is the platform's business


def test_group_mappings_grant_cluster_roles_most_permissive_wins(world: TenancyWorld) -> None:
    viewer = parse_mapping({"group": "noc", "level": "cluster", "role": "viewer"})
    assert viewer.target == ""  # no target: the implicit cluster, named at sign-in
    admin = parse_mapping({"group": "sre", "level": "cluster", "target": "default", "role": "admin"})
    lead = parse_mapping({"group": "sre-leads", "level": "cluster", "target": "default", "role": "viewer"})
    assert resolve(["sre", "sre-leads"], [admin, lead]).clusters == {"default": ClusterRole.ADMIN}
    assert resolve(["NOC"], [viewer, admin]).clusters == {"": ClusterRole.VIEWER}
    with pytest.raises(Exception) as bad:
        parse_mapping({"group": "noc", "level": "cluster", "role": "operator"})
    assert getattr(bad.value, "field", None) == "role"

    t = world.tenancy
    t.create_group_mapping({"group": "noc", "level": "cluster", "role": "viewer"}, actor="admin")
    t.provision("oidc", ExternalUser(username="nina", groups=("noc",)))
    scope = t.scope(t.principal_for("nina"))
    assert scope.may_cluster("nodes:read") and not scope.may_cluster("node-policies:write")
    t.provision("oidc", ExternalUser(username="nina", groups=()))  # left the group
    assert not t.scope(t.principal_for("nina")).may_cluster("nodes:read")


def test_custom_role_validation_names_the_field(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    cases = [
        ({"name": "Bad Name", "level": "project", "permissions": ["logs:read"]}, "name"),
        ({"name": "project-admin", "level": "project", "permissions": ["logs:read"]}, "name"),
        ({"name": "r1", "level": "platform", "permissions": ["users:read"]}, "level"),
        ({"name": "r1", "level": "project", "permissions": []}, "permissions"),
        ({"name": "r1", "level": "project", "permissions": ["logs:read", "nodes:read"]}, "permissions[1]"),
        ({"name": "r1", "level": "project", "permissions": ["logs:read", "logs:fly"]}, "permissions[1]"),
        ({"name": "r1", "level": "cluster", "permissions": ["users:write"]}, "permissions[0]"),
        ({"name": "r1", "level": "project", "permissions": ["logs:read"], "colour": "red"}, "colour"),
        ({"name": "r1", "level": "project", "permissions": ["logs:read"], "description": "x" * 501}, "description"),
    ]
    for body, field in cases:
        r = admin.post("/api/v1/roles", json=body)
        assert r.status_code == 422 and r.get_json()["field"] == field, (body, r.get_json())
    ok = {"name": "log-reader", "level": "project", "permissions": ["logs:read"]}
    assert admin.post("/api/v1/roles", json=ok).status_code == 201
    again = admin.post("/api/v1/roles", json=ok)
    assert again.status_code == 409 and again.get_json()["field"] == "name"
    r = admin.patch("/api/v1/roles/log-reader", json={"permissions": ["workspaces:create"]})
    assert r.status_code == 422 and r.get_json()["field"] == "permissions[0]"
    r = admin.put("/api/v1/roles/log-reader/bindings/regular", json={"target": "ns-ghost"})
    assert r.status_code == 404
    assert world.client("workspace-admin").post("/api/v1/roles", json={**ok, "name": "x"}).status_code == 403
    catalogue = admin.get("/api/v1/roles").get_json()["catalogue"]
    assert "users:write" not in set().union(*map(set, catalogue["composable"].values()))


def test_a_custom_role_grants_exactly_its_permissions_where_bound(world: TenancyWorld) -> None:
    admin = world.client("platform-admin")
    role = {"name": "log-reader", "level": "project", "permissions": ["logs:read"], "description": "support desk"}
    assert admin.post("/api/v1/roles", json=role).status_code == 201
    r = admin.put("/api/v1/roles/log-reader/bindings/regular", json={"target": "ns-a2"})
    assert r.status_code == 200
    c = world.client("platform-regular")
    assert c.get("/api/v1/logs/histogram?namespaces=ns-a2").status_code not in (401, 403)
    for ns in ("ns-a1", "ns-b1", "ns-ghost"):
        r = c.get(f"/api/v1/logs/histogram?namespaces={ns}")
        assert r.status_code == 403 and r.get_json()["error"] == f"you lack the permission logs:read in namespace {ns}"
    assert c.get("/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces=ns-a2").status_code == 403
    assert c.get("/api/v1/namespaces/ns-a2/members").status_code == 403
    # A change reaches the holder at the next request; deleting the role ends the binding.
    r = admin.patch("/api/v1/roles/log-reader", json={"permissions": ["logs:read", "members:read"]})
    assert r.status_code == 200 and r.get_json()["permissions"] == ["logs:read", "members:read"]
    assert c.get("/api/v1/namespaces/ns-a2/members").status_code == 200
    assert admin.get("/api/v1/roles/log-reader").get_json()["bindings"] == [{"username": "regular", "target": "ns-a2"}]
    assert admin.delete("/api/v1/roles/log-reader").status_code == 204
    assert c.get("/api/v1/logs/histogram?namespaces=ns-a2").status_code == 403
    assert world.hub.tenancy.roles.bindings_of_user("regular") == []


def test_a_workspace_custom_role_reaches_every_project_of_the_workspace_only(world: TenancyWorld) -> None:
    t = world.tenancy
    t.create_custom_role(
        {"name": "ws-observer", "level": "workspace", "permissions": ["workspaces:read", "alerts:read"]}, actor="admin"
    )
    t.bind_custom_role("ws-observer", "regular", "ws-a", actor="admin")
    scope = t.scope(t.principal_for("regular"))
    assert sorted(scope.namespaces) == ["ns-a1", "ns-a2"]
    assert scope.may("alerts:read", "ns-a2") and not scope.may("alerts:write", "ns-a2")
    assert not scope.may("alerts:read", "ns-b1") and not scope.may("alerts:read", None)
    c = world.client("platform-regular")
    assert c.get("/api/v1/workspaces/ws-a").status_code == 200
    assert c.get("/api/v1/workspaces/ws-b").status_code == 403


def test_the_console_roles_page_composes_binds_and_removes(world: TenancyWorld) -> None:
    client, csrf = world.session("platform-admin")
    page = client.get("/users/roles")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # The editor offers each level exactly its composable permissions, with their meaning.
    assert 'name="perm_cluster" value="nodes:read"' in html and 'name="perm_project" value="nodes:read"' not in html
    assert 'value="users:write"' not in html
    form = {"csrf_token": csrf, "name": "pager", "level": "cluster", "description": "on call"}
    r = client.post("/users/roles", data={**form, "perm_cluster": ["nodes:read", "node-alerts:read"]})
    assert r.status_code == 303
    assert world.tenancy.custom_role("pager").permissions == {"nodes:read", "node-alerts:read"}
    bad = client.post("/users/roles", data={**form, "name": "pager2"}, follow_redirects=True)
    assert "(permissions)" in bad.get_data(as_text=True)  # the refusal names the field
    r = client.post(
        "/users/roles/pager/bindings", data={"csrf_token": csrf, "username": "regular", "target": "default"}
    )
    assert r.status_code == 303
    assert world.client("platform-regular").get("/api/v1/nodes").status_code != 403
    r = client.post(
        "/users/clusters/default/members", data={"csrf_token": csrf, "username": "wsregular", "role": "admin"}
    )
    assert r.status_code == 303 and dict(world.tenancy.cluster_members("default"))["wsregular"] == "admin"
    html = client.get("/users/roles").get_data(as_text=True)
    assert "regular @ default" in html and "cluster-admin" in html
    r = client.post("/users/roles/pager/bindings/regular/delete", data={"csrf_token": csrf, "target": "default"})
    assert r.status_code == 303 and world.tenancy.custom_role_bindings("pager") == []
    assert client.post("/users/roles/pager/delete", data={"csrf_token": csrf}).status_code == 303
    assert world.tenancy.custom_roles() == []
    tenant, tcsrf = world.session("workspace-admin")
    assert tenant.get("/users/roles").status_code == 403
    assert tenant.post("/users/roles", data={**form, "csrf_token": tcsrf}).status_code == 403


def test_me_shows_cluster_roles_and_custom_bindings(world: TenancyWorld) -> None:
    me = world.client("cluster-viewer").get("/api/v1/me").get_json()
    assert me["clusters"] == [{"name": "default", "role": "viewer"}]
    assert me["cluster_permissions"] == {
        "default": ["monitoring:cluster", "node-alerts:read", "node-policies:read", "nodes:read"]
    }
    assert me["projects"] == [] and me["custom_roles"] == []


def test_group_mappings_grant_custom_roles(world: TenancyWorld) -> None:
    t, admin = world.tenancy, world.client("platform-admin")
    t.create_custom_role({"name": "log-reader", "level": "project", "permissions": ["logs:read"]}, actor="admin")
    body = {"group": "support", "level": "project", "target": "ns-a2", "role": "custom:log-reader"}
    for wrong, field in (({"role": "custom:ghost"}, "role"), ({"role": "custom:Bad!"}, "role")):
        r = admin.post("/api/v1/auth/group-mappings", json={**body, **wrong})
        assert r.status_code == 422 and r.get_json()["field"] == field, r.get_json()
    r = admin.post("/api/v1/auth/group-mappings", json={**body, "level": "workspace", "target": "ws-a"})
    assert r.status_code == 422 and "of level workspace" in r.get_json()["error"]  # a project role
    assert admin.post("/api/v1/auth/group-mappings", json=body).status_code == 201

    t.provision("oidc", ExternalUser(username="sam", groups=("Support",)))
    scope = t.scope(t.principal_for("sam"))
    assert list(scope.namespaces) == ["ns-a2"] and scope.may("logs:read", "ns-a2")
    assert not scope.may("logs:read", "ns-a1") and not scope.may("alerts:read", "ns-a2")
    # The directory owns an external user's bindings: out of the group, the binding goes.
    t.provision("oidc", ExternalUser(username="sam", groups=()))
    assert t.roles.bindings_of_user("sam") == []
    # A mapping whose custom role was deleted grants nothing (and breaks no sign-in).
    t.provision("oidc", ExternalUser(username="sam", groups=("support",)))
    t.delete_custom_role("log-reader", actor="admin")
    t.provision("oidc", ExternalUser(username="sam", groups=("support",)))
    assert t.scope(t.principal_for("sam")).visible == ()


def test_the_implicit_cluster_is_the_one_clusters_default_name_names(tmp_path: Path) -> None:
    w = build_world(tmp_path, settings={"clusters": {"default_name": "prod"}})
    try:
        t, admin = w.tenancy, w.client("platform-admin")
        assert t.default_cluster == "prod" and t.known_clusters() == ["prod"]
        assert w.client("cluster-viewer").get("/api/v1/alerting/policies").status_code == 200
        assert admin.get("/api/v1/clusters/default/members").status_code == 404
        assert {"user": "cviewer", "role": "viewer"} in admin.get("/api/v1/clusters/prod/members").get_json()["items"]
        # A mapping without a target binds on the implicit cluster, whatever its name; the
        # stronger role wins where another mapping names it.
        t.create_group_mapping({"group": "noc", "level": "cluster", "role": "admin"}, actor="admin")
        t.create_group_mapping({"group": "noc2", "level": "cluster", "target": "prod", "role": "viewer"}, actor="admin")
        t.provision("oidc", ExternalUser(username="nina", groups=("noc", "noc2")))
        assert t.roles.cluster_roles_of("nina") == {"prod": "admin"}
        assert t.scope(t.principal_for("nina")).may_cluster("node-policies:write")
    finally:
        w.hub.close()


def test_the_group_mappings_page_maps_a_group_to_a_cluster_role(world: TenancyWorld) -> None:
    client, csrf = world.session("platform-admin")
    html = client.get("/users/group-mappings").get_data(as_text=True)
    assert 'name="role_cluster"' in html
    form = {"csrf_token": csrf, "group": "noc", "level": "cluster", "role_cluster": "viewer", "target": ""}
    assert client.post("/users/group-mappings", data=form).status_code == 303
    [mapping] = [m for m in world.tenancy.group_mappings() if m.group == "noc"]
    assert (mapping.level, mapping.role, mapping.target) == ("cluster", "viewer", "")
