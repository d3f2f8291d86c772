"""Escape attempts by a tenant of ws-a against ws-b (bob's), over the tenancy and auth API.

Each attempt must answer 403/404 (or 401 for dead credentials) and leak nothing: the bodies
are checked for the other tenant's names, not only the status codes. Areas with their own
namespaced data (logs, metrics, alerts) add their attempts in their own test files with the
same world (tests/unit/conftest_tenancy.py).
"""

from __future__ import annotations

import pytest

from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import (
    PASSWORD,
    TenancyWorld,
    assert_no_leak,
    build_world,
)

pytestmark = pytest.mark.unit

TENANT_ROLES = ("workspace-admin", "workspace-viewer", "workspace-regular", "project-admin", "project-operator")


# -- other namespaces and workspaces via the path ---------------------------------------------------
@pytest.mark.parametrize("role", TENANT_ROLES)
@pytest.mark.parametrize(
    ("method", "path", "echo"),
    [
        ("GET", "/api/v1/workspaces/ws-b", "ws-b"),
        ("GET", "/api/v1/workspaces/ws-b/projects", "ws-b"),
        ("GET", "/api/v1/workspaces/ws-b/members", "ws-b"),
        ("POST", "/api/v1/workspaces/ws-b/projects", "ws-b"),
        ("PUT", "/api/v1/workspaces/ws-b/members/wsadmin", "ws-b"),
        ("DELETE", "/api/v1/workspaces/ws-b/members/bob", ("ws-b", "bob")),
        ("DELETE", "/api/v1/workspaces/ws-b", "ws-b"),
        ("GET", "/api/v1/namespaces/ns-b1/members", "ns-b1"),
        ("PUT", "/api/v1/namespaces/ns-b1/members/poperator", "ns-b1"),
        ("DELETE", "/api/v1/namespaces/ns-b1/members/bob", ("ns-b1", "bob")),
        ("DELETE", "/api/v1/workspaces/ws-b/projects/ns-b1", ("ws-b", "ns-b1")),
        ("DELETE", "/api/v1/workspaces/ws-a/projects/ns-b1", "ns-b1"),
    ],
)
def test_a_tenant_cannot_reach_another_tenants_objects_through_the_path(
    tenancy_world: TenancyWorld, role: str, method: str, path: str, echo: str | tuple[str, ...]
) -> None:
    client = tenancy_world.client(role)
    r = client.open(path, method=method, json={"role": "admin", "namespace": "ns-x"})
    assert r.status_code == 403, (role, path, r.get_data(as_text=True))
    assert_no_leak(r, requested=echo)
    # ...and nothing changed for bob's tenant.
    t = tenancy_world.tenancy
    assert [p.namespace for p in t.projects("ws-b")] == ["ns-b1", "ns-b2"]
    assert [u for u, _ in t.workspace_members("ws-b")] == ["bob"]
    assert t.project_members("ns-b1") == []


@pytest.mark.parametrize("path", ["/api/v1/namespaces/{ns}/members", "/api/v1/workspaces/{ws}"])
def test_an_unknown_name_answers_byte_for_byte_like_a_foreign_one(tenancy_world: TenancyWorld, path: str) -> None:
    client = tenancy_world.client("workspace-admin")
    foreign = client.get(path.format(ns="ns-b1", ws="ws-b"))
    unknown = client.get(path.format(ns="ns-zz", ws="ws-zz"))
    assert foreign.status_code == unknown.status_code == 403
    normalise = {"ns-b1": "X", "ws-b": "X", "ns-zz": "X", "ws-zz": "X"}
    texts = []
    for r in (foreign, unknown):
        text = r.get_data(as_text=True)
        for k, v in normalise.items():
            text = text.replace(k, v)
        texts.append(text)
    assert texts[0] == texts[1]


def test_a_project_member_without_a_workspace_role_cannot_see_the_workspace(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("project-admin").get("/api/v1/workspaces/ws-a")
    assert r.status_code == 403


def test_a_workspace_admin_cannot_delete_a_foreign_project_by_naming_it_under_their_workspace(
    tenancy_world: TenancyWorld,
) -> None:
    r = tenancy_world.client("workspace-admin").delete("/api/v1/workspaces/ws-a/projects/ns-b1")
    assert r.status_code == 403
    assert tenancy_world.tenancy.project("ns-b1") is not None


def test_a_project_admin_cannot_manage_members_of_a_sibling_project(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("project-admin").put("/api/v1/namespaces/ns-a2/members/regular", json={"role": "admin"})
    assert r.status_code == 403
    assert tenancy_world.tenancy.project_members("ns-a2") == []


# -- via query and body parameters -----------------------------------------------------------------
def test_lists_ignore_query_parameters_that_name_other_tenants(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("workspace-admin")
    for path in ("/api/v1/workspaces?workspace=ws-b&all=1", "/api/v1/me?user=bob&namespace=ns-b1"):
        r = client.get(path)
        assert r.status_code == 200
        assert_no_leak(r)
    r = client.get("/api/v1/workspaces/ws-a/projects?workspace=ws-b")
    assert [p["namespace"] for p in r.get_json()["items"]] == ["ns-a1", "ns-a2"]


def test_a_tenant_cannot_list_another_users_tokens_by_query(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("workspace-admin").get("/api/v1/auth/tokens?user=bob")
    assert r.status_code == 403
    assert_no_leak(r, requested="bob")


def test_a_tenant_cannot_read_the_audit_log_even_filtered_to_their_namespace(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("workspace-admin").get("/api/v1/audit?namespace=ns-a1")
    assert r.status_code == 403
    assert_no_leak(r)


def test_body_fields_cannot_redirect_a_write_to_another_tenant(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("workspace-admin")
    r = client.put(
        "/api/v1/namespaces/ns-a1/members/regular",
        json={"role": "viewer", "namespace": "ns-b1", "workspace": "ws-b"},
    )
    assert r.status_code == 400 and r.get_json()["field"] in ("namespace", "workspace")
    r = client.post("/api/v1/workspaces/ws-a/projects", json={"namespace": "ns-b1"})
    assert r.status_code == 409
    assert_no_leak(r, requested="ns-b1")
    assert tenancy_world.tenancy.project("ns-b1").workspace == "ws-b"
    assert tenancy_world.tenancy.project_members("ns-b1") == []


def test_a_tenant_cannot_make_themselves_platform_admin(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("workspace-admin")
    assert client.patch("/api/v1/users/wsadmin", json={"platform_role": "admin"}).status_code == 403
    assert client.post("/api/v1/users", json={"name": "x2", "password": PASSWORD}).status_code == 403
    assert tenancy_world.tenancy.user("wsadmin").platform_role == "regular"


# -- IDs of other tenants' objects -------------------------------------------------------------------
def test_a_tenant_cannot_revoke_another_tenants_token_by_id(tenancy_world: TenancyWorld) -> None:
    bobs = tenancy_world.tenancy.issue_token("bob", name="deploy")
    client = tenancy_world.client("workspace-admin")
    foreign = client.delete(f"/api/v1/auth/tokens/{bobs.id}")
    missing = client.delete("/api/v1/auth/tokens/987654")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_json()["error"].replace(str(bobs.id), "N") == missing.get_json()["error"].replace("987654", "N")
    assert_no_leak(foreign)
    assert tenancy_world.tenancy.principal_from_token(bobs.token) is not None


def test_token_listings_never_show_token_values_or_other_users(tenancy_world: TenancyWorld) -> None:
    tenancy_world.tenancy.issue_token("bob", name="deploy")
    r = tenancy_world.client("workspace-admin").get("/api/v1/auth/tokens")
    items = r.get_json()["items"]
    assert {i["user"] for i in items} == {"wsadmin"}
    assert tenancy_world.tokens["workspace-admin"] not in r.get_data(as_text=True)
    assert_no_leak(r)


# -- dead credentials --------------------------------------------------------------------------------
def test_a_revoked_token_is_refused_and_says_nothing_about_its_owner(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("project-operator")
    me = client.get("/api/v1/auth/tokens").get_json()["items"][0]
    assert client.delete(f"/api/v1/auth/tokens/{me['id']}").status_code == 200
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert "poperator" not in r.get_data(as_text=True)


def test_an_expired_token_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(1_795_000_000)
    world = build_world(tmp_path, clock=clock)
    try:
        token = world.tenancy.issue_token("poperator", name="short", ttl=60).token
        client = world.app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/me", headers=headers).status_code == 200
        clock.advance(60)
        assert client.get("/api/v1/me", headers=headers).status_code == 401
    finally:
        world.hub.close()


def test_a_forged_or_garbage_token_is_401_not_500(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.app.test_client()
    real = tenancy_world.tokens["project-viewer"]
    for bad in (real[:-1] + ("A" if real[-1] != "A" else "B"), "khub_", "Bearer", "x" * 10_000, "' OR '1'='1"):
        r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad[:20]


def test_a_session_cookie_replayed_after_logout_is_refused(tenancy_world: TenancyWorld) -> None:
    client, csrf = tenancy_world.session("project-admin")
    cookie = client.get_cookie("kubehub_session")
    assert cookie is not None
    assert client.get("/api/v1/me").status_code == 200
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    replay = tenancy_world.app.test_client()
    replay.set_cookie("kubehub_session", cookie.value)
    r = replay.get("/api/v1/me")
    assert r.status_code == 401
    assert "padmin" not in r.get_data(as_text=True)


def test_a_session_of_a_disabled_user_stops_at_the_next_request(tenancy_world: TenancyWorld) -> None:
    client, _ = tenancy_world.session("project-operator")
    assert client.get("/api/v1/me").status_code == 200
    admin = tenancy_world.client("platform-admin")
    assert admin.patch("/api/v1/users/poperator", json={"disabled": True}).status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_a_removed_membership_takes_effect_at_the_next_request(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("project-operator")
    assert client.get("/api/v1/namespaces/ns-a1/members").status_code == 200
    tenancy_world.tenancy.set_project_member("ns-a1", "poperator", None)
    assert client.get("/api/v1/namespaces/ns-a1/members").status_code == 403
