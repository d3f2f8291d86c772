"""The Auth and Tenancy endpoints of API.md, as users of each role call them."""

from __future__ import annotations

import pytest

from tests.unit.conftest_tenancy import (
    PASSWORD,
    ROLE_USERS,
    TenancyWorld,
)

pytestmark = pytest.mark.unit


def test_token_exchange_returns_a_token_and_its_expiry(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.app.test_client()
    r = client.post("/api/v1/auth/token", json={"username": "pviewer", "password": PASSWORD, "expires_in": "1h"})
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"token", "expires_at"} and body["expires_at"].endswith("Z")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.get_json()["user"] == "pviewer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "pviewer"}, "password"),
        ({"username": 3, "password": "x"}, "username"),
    ],
)
def test_token_exchange_names_the_missing_field(tenancy_world: TenancyWorld, body: dict, field: str) -> None:
    r = tenancy_world.app.test_client().post("/api/v1/auth/token", json=body)
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_token_exchange_with_a_bad_lifetime_names_expires_in(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.app.test_client().post(
        "/api/v1/auth/token", json={"username": "pviewer", "password": PASSWORD, "expires_in": "soon"}
    )
    assert r.status_code == 400 and r.get_json()["field"] == "expires_in"


def test_me_lists_the_callers_workspaces_and_effective_project_roles(tenancy_world: TenancyWorld) -> None:
    body = tenancy_world.client("workspace-viewer").get("/api/v1/me").get_json()
    assert body["user"] == "wsviewer" and body["platform_role"] == "regular" and body["auth"] == "token"
    assert body["workspaces"] == [{"name": "ws-a", "role": "viewer"}]
    assert [(p["namespace"], p["role"], p["direct_role"]) for p in body["projects"]] == [
        ("ns-a1", "viewer", None),
        ("ns-a2", "viewer", None),
    ]
    assert "csrf_token" not in body


def test_me_for_a_platform_admin_lists_every_project(tenancy_world: TenancyWorld) -> None:
    body = tenancy_world.client("platform-admin").get("/api/v1/me").get_json()
    assert [p["namespace"] for p in body["projects"]] == ["ns-a1", "ns-a2", "ns-b1", "ns-b2"]


def test_named_tokens_are_shown_once_listed_without_value_and_revocable(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("project-operator")
    created = client.post("/api/v1/auth/tokens", json={"name": "ci deploy", "expires_in": "30d"})
    assert created.status_code == 201
    token = created.get_json()["token"]
    listing = client.get("/api/v1/auth/tokens")
    assert token not in listing.get_data(as_text=True)
    entry = next(t for t in listing.get_json()["items"] if t["name"] == "ci deploy")
    assert entry["state"] == "active" and entry["hint"].startswith("khub_") and entry["kind"] == "named"
    auto = tenancy_world.app.test_client()
    assert auto.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoked = client.delete(f"/api/v1/auth/tokens/{entry['id']}")
    assert revoked.status_code == 200 and revoked.get_json()["state"] == "revoked"
    assert auto.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_named_token_needs_a_name(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("project-operator").post("/api/v1/auth/tokens", json={})
    assert r.status_code == 400 and r.get_json()["field"] == "name"


def test_a_platform_admin_can_list_and_revoke_anyones_tokens(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("platform-admin")
    items = admin.get("/api/v1/auth/tokens?user=bob").get_json()["items"]
    assert [t["user"] for t in items] == ["bob"]
    assert admin.delete(f"/api/v1/auth/tokens/{items[0]['id']}").status_code == 200
    assert tenancy_world.client("tenant-b").get("/api/v1/me").status_code == 401


def test_changing_ones_own_password_over_the_api(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("project-viewer")
    bad = client.put("/api/v1/me/password", json={"current_password": "nope", "new_password": "Another-secret-8"})
    assert bad.status_code == 422 and bad.get_json()["field"] == "current_password"
    weak = client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "short"})
    assert weak.status_code == 422 and weak.get_json()["field"] == "new_password"
    ok = client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "Another-secret-8"})
    assert ok.status_code == 204
    login = tenancy_world.app.test_client().post(
        "/api/v1/auth/token", json={"username": "pviewer", "password": "Another-secret-8"}
    )
    assert login.status_code == 200


# -- users ------------------------------------------------------------------------------------------
def test_platform_admins_manage_users(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("platform-admin")
    r = admin.post("/api/v1/users", json={"name": "carol", "password": "Sunny-meadow-42", "email": "carol@example.com"})
    assert r.status_code == 201 and r.get_json()["platform_role"] == "regular"
    assert "password" not in r.get_data(as_text=True) and "argon2" not in r.get_data(as_text=True)
    assert admin.post("/api/v1/users", json={"name": "carol", "password": "Sunny-meadow-42"}).status_code == 409
    r = admin.patch("/api/v1/users/carol", json={"display_name": "Carol C.", "platform_role": "admin"})
    assert r.get_json()["display_name"] == "Carol C." and r.get_json()["platform_role"] == "admin"
    names = [u["name"] for u in admin.get("/api/v1/users").get_json()["items"]]
    assert "carol" in names and "argon2" not in admin.get("/api/v1/users").get_data(as_text=True)
    assert admin.delete("/api/v1/users/carol").status_code == 204
    assert admin.get("/api/v1/users/carol").status_code == 404


def test_user_detail_shows_direct_memberships(tenancy_world: TenancyWorld) -> None:
    body = tenancy_world.client("platform-admin").get("/api/v1/users/padmin").get_json()
    assert body["projects"] == [{"namespace": "ns-a1", "role": "admin"}] and body["workspaces"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "x1", "password": "short"}, 422, "password"),
        ({"name": "No Good", "password": "Sunny-meadow-42"}, 422, "name"),
        ({"password": "Sunny-meadow-42"}, 400, "name"),
        ({"name": "x1", "password": "Sunny-meadow-42", "platform_role": "root"}, 422, "platform_role"),
        ({"name": "x1", "password": "Sunny-meadow-42", "colour": "red"}, 400, "colour"),
    ],
)
def test_user_creation_errors_name_the_field(tenancy_world: TenancyWorld, body: dict, status: int, field: str) -> None:
    r = tenancy_world.client("platform-admin").post("/api/v1/users", json=body)
    assert r.status_code == status and r.get_json()["field"] == field


def test_patch_rejects_a_non_boolean_disabled_flag(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("platform-admin").patch("/api/v1/users/pviewer", json={"disabled": "yes"})
    assert r.status_code == 400 and r.get_json()["field"] == "disabled"


def test_the_last_platform_admin_cannot_be_removed_over_the_api(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("platform-admin")
    assert admin.delete("/api/v1/users/admin").status_code == 409
    assert admin.patch("/api/v1/users/admin", json={"platform_role": "regular"}).status_code == 409


# -- workspaces and projects -------------------------------------------------------------------------
def test_workspace_lifecycle(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("platform-admin")
    r = admin.post("/api/v1/workspaces", json={"name": "ws-c", "description": "team c", "admin": "regular"})
    assert r.status_code == 201 and r.get_json()["name"] == "ws-c"
    assert admin.post("/api/v1/workspaces", json={"name": "ws-c"}).status_code == 409
    owner = tenancy_world.client("platform-regular")
    assert [w["name"] for w in owner.get("/api/v1/workspaces").get_json()["items"]] == ["ws-c"]
    p = owner.post("/api/v1/workspaces/ws-c/projects", json={"namespace": "team-c", "display_name": "Team C"})
    assert p.status_code == 201 and p.get_json()["workspace"] == "ws-c"
    assert admin.delete("/api/v1/workspaces/ws-c").status_code == 409
    assert owner.delete("/api/v1/workspaces/ws-c/projects/team-c?confirm=team-c").status_code == 200
    assert admin.delete("/api/v1/workspaces/ws-c").status_code == 204
    assert admin.get("/api/v1/workspaces/ws-c").status_code == 404


def test_a_workspace_admin_cannot_delete_their_own_workspace(tenancy_world: TenancyWorld) -> None:
    assert tenancy_world.client("workspace-admin").delete("/api/v1/workspaces/ws-a").status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "namespace"),
        ({"namespace": "Bad_Name"}, 422, "namespace"),
        ({"namespace": "kube-system"}, 422, "namespace"),
        ({"namespace": "default"}, 422, "namespace"),
        ({"namespace": "ok-name", "display_name": 5}, 400, "display_name"),
    ],
)
def test_project_creation_errors_name_the_field(
    tenancy_world: TenancyWorld, body: dict, status: int, field: str
) -> None:
    r = tenancy_world.client("workspace-admin").post("/api/v1/workspaces/ws-a/projects", json=body)
    assert (r.status_code, r.get_json().get("field")) == (status, field)


def test_a_workspace_regular_member_sees_only_their_own_projects(tenancy_world: TenancyWorld) -> None:
    tenancy_world.tenancy.set_project_member("ns-a2", "wsregular", "viewer")
    r = tenancy_world.client("workspace-regular").get("/api/v1/workspaces/ws-a/projects")
    assert [(p["namespace"], p["role"]) for p in r.get_json()["items"]] == [("ns-a2", "viewer")]
    detail = tenancy_world.client("workspace-regular").get("/api/v1/workspaces/ws-a").get_json()
    assert "members" not in detail and [p["namespace"] for p in detail["projects"]] == ["ns-a2"]


def test_workspace_detail_includes_members_for_those_who_may_read_them(tenancy_world: TenancyWorld) -> None:
    detail = tenancy_world.client("workspace-viewer").get("/api/v1/workspaces/ws-a").get_json()
    assert {m["user"] for m in detail["members"]} == {"wsadmin", "wsregular", "wsviewer"}


# -- members ----------------------------------------------------------------------------------------
def test_workspace_admins_manage_workspace_members(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("workspace-admin")
    r = client.put("/api/v1/workspaces/ws-a/members/regular", json={"role": "viewer"})
    assert r.status_code == 200 and r.get_json() == {"user": "regular", "role": "viewer"}
    assert tenancy_world.client("platform-regular").get("/api/v1/namespaces/ns-a2/members").status_code == 200
    assert client.delete("/api/v1/workspaces/ws-a/members/regular").status_code == 204
    assert tenancy_world.client("platform-regular").get("/api/v1/namespaces/ns-a2/members").status_code == 403
    assert client.delete("/api/v1/workspaces/ws-a/members/regular").status_code == 404


def test_project_admins_manage_project_members(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("project-admin")
    assert client.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "operator"}).status_code == 200
    members = client.get("/api/v1/namespaces/ns-a1/members").get_json()["items"]
    assert {"user": "regular", "role": "operator"} in members
    bad = client.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "owner"})
    assert bad.status_code == 422 and bad.get_json()["field"] == "role"
    missing = client.put("/api/v1/namespaces/ns-a1/members/regular", json={})
    assert missing.status_code == 400 and missing.get_json()["field"] == "role"
    assert client.put("/api/v1/namespaces/ns-a1/members/nobody", json={"role": "viewer"}).status_code == 404
    assert client.delete("/api/v1/namespaces/ns-a1/members/regular").status_code == 204


def test_project_operators_may_read_but_not_change_members(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.client("project-operator")
    assert client.get("/api/v1/namespaces/ns-a1/members").status_code == 200
    assert client.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "viewer"}).status_code == 403


# -- audit ----------------------------------------------------------------------------------------------
def test_every_write_is_in_the_audit_log_with_who_what_and_result(tenancy_world: TenancyWorld) -> None:
    tenant = tenancy_world.client("project-admin")
    tenant.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "viewer"})
    tenant.put("/api/v1/namespaces/ns-b1/members/regular", json={"role": "viewer"})  # denied
    tenant.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "owner"})  # failed
    admin = tenancy_world.client("platform-admin")
    items = admin.get("/api/v1/audit?actor=padmin").get_json()["items"]
    summary = [(i["action"], i["result"]) for i in reversed(items)][-3:]
    assert summary == [("project.member.set", "ok"), ("http.put", "denied"), ("http.put", "failed")]
    assert items[1]["namespaces"] == ["ns-b1"] and items[1]["detail"]["status"] == 403
    by_ns = admin.get("/api/v1/audit?namespace=ns-a1&actor=padmin").get_json()
    assert by_ns["total"] == 2


def test_audit_filters_and_paging(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("platform-admin")
    everything = admin.get("/api/v1/audit?size=1000").get_json()
    assert everything["total"] == len(everything["items"]) > 10
    page = admin.get("/api/v1/audit?from=2&size=3").get_json()
    assert [i["id"] for i in page["items"]] == [i["id"] for i in everything["items"][2:5]]
    assert admin.get("/api/v1/audit?action=user.create").get_json()["total"] == len(ROLE_USERS)  # the world's users
    assert admin.get("/api/v1/audit?size=0").status_code == 400
    bad = admin.get("/api/v1/audit?start=yesterday")
    assert bad.status_code == 400 and bad.get_json()["field"] == "start"


def test_token_login_and_failures_are_audited_without_secrets(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.app.test_client()
    client.post("/api/v1/auth/token", json={"username": "pviewer", "password": "Wrong-password-5"})
    client.post("/api/v1/auth/token", json={"username": "pviewer", "password": PASSWORD})
    r = tenancy_world.client("platform-admin").get("/api/v1/audit?actor=pviewer")
    text = r.get_data(as_text=True)
    assert "Wrong-password-5" not in text and PASSWORD not in text
    assert [(i["action"], i["result"]) for i in r.get_json()["items"]][:2] == [
        ("token.create", "ok"),
        ("auth.login", "failed"),
    ]
