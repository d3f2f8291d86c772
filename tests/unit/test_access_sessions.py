"""Console sessions, CSRF, form login/logout and login throttling over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, render_template_string

from tests.unit.conftest_tenancy import (
    PASSWORD,
    TenancyWorld,
)
from web.access import permission, public

pytestmark = pytest.mark.unit


def _session_sid(app: Flask, client: Any) -> str | None:
    cookie = client.get_cookie("kubehub_session")
    if cookie is None:
        return None
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    return data.get("sid")


def _login_form_csrf(client: Any) -> str:
    """What the console's login page does: render ``csrf_token()`` into the form."""
    return client.get("/api/v1/_test_login_page").get_data(as_text=True).strip()


@pytest.fixture
def world(tenancy_world: TenancyWorld) -> TenancyWorld:
    app = tenancy_world.app

    @app.get("/api/v1/_test_login_page")
    @public
    def _login_page() -> Any:
        return render_template_string("{{ csrf_token() }}")

    @app.post("/api/v1/_test_write")
    @permission(None)
    def _write() -> Any:
        return {"written": True}

    return tenancy_world


# -- JSON session login ----------------------------------------------------------------------------
def test_json_login_sets_a_cookie_holding_only_a_session_id(world: TenancyWorld) -> None:
    client = world.app.test_client()
    r = client.post("/api/v1/auth/login", json={"username": "padmin", "password": PASSWORD})
    assert r.status_code == 200 and r.get_json()["user"] == "padmin"
    cookie = client.get_cookie("kubehub_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    data = world.app.session_interface.get_signing_serializer(world.app).loads(cookie.value)  # type: ignore[attr-defined]
    assert set(data) <= {"sid", "_permanent"}
    assert client.get("/api/v1/me").get_json()["auth"] == "session"


def test_json_login_refuses_form_encoded_credentials(world: TenancyWorld) -> None:
    r = world.app.test_client().post("/api/v1/auth/login", data={"username": "padmin", "password": PASSWORD})
    assert r.status_code == 400


def test_login_rotates_the_session_id(world: TenancyWorld) -> None:
    client = world.app.test_client()
    client.post("/api/v1/auth/login", json={"username": "padmin", "password": PASSWORD})
    first = _session_sid(world.app, client)
    csrf = client.get("/api/v1/me").get_json()["csrf_token"]
    client.post(
        "/api/v1/auth/login", json={"username": "pviewer", "password": PASSWORD}, headers={"X-CSRF-Token": csrf}
    )
    second = _session_sid(world.app, client)
    assert first and second and first != second
    assert world.tenancy.principal_from_session(first) is None, "the replaced session must end"
    assert client.get("/api/v1/me").get_json()["user"] == "pviewer"


def test_a_session_id_planted_before_login_is_not_the_one_authenticated(world: TenancyWorld) -> None:
    client = world.app.test_client()
    with client.session_transaction() as sess:
        sess["sid"] = "attacker-chosen-session-id"
    client.post("/api/v1/auth/login", json={"username": "padmin", "password": PASSWORD})
    assert _session_sid(world.app, client) != "attacker-chosen-session-id"
    assert world.tenancy.principal_from_session("attacker-chosen-session-id") is None


# -- CSRF --------------------------------------------------------------------------------------------
def test_session_writes_without_the_csrf_token_are_refused(world: TenancyWorld) -> None:
    client, csrf = world.session("project-admin")
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        r = client.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "viewer"}, headers=headers)
        assert r.status_code == 403 and "CSRF" in r.get_json()["error"]
    assert "regular" not in dict(world.tenancy.project_members("ns-a1"))
    ok = client.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "viewer"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


def test_the_csrf_token_may_come_as_a_form_field(world: TenancyWorld) -> None:
    client, csrf = world.session("project-admin")
    assert client.post("/api/v1/_test_write", data={"csrf_token": csrf}).status_code == 200
    assert client.post("/api/v1/_test_write", data={"csrf_token": "nope"}).status_code == 403


def test_one_sessions_csrf_token_does_not_work_for_another_session(world: TenancyWorld) -> None:
    _first, csrf_first = world.session("project-admin")
    second, _ = world.session("project-admin")
    assert second.post("/api/v1/_test_write", headers={"X-CSRF-Token": csrf_first}).status_code == 403


def test_token_authenticated_writes_need_no_csrf_token(world: TenancyWorld) -> None:
    assert world.client("project-admin").post("/api/v1/_test_write").status_code == 200


def test_reads_need_no_csrf_token(world: TenancyWorld) -> None:
    client, _ = world.session("project-admin")
    assert client.get("/api/v1/me").status_code == 200


# -- form login / logout (the console's) ---------------------------------------------------------------
def test_form_login_with_the_pages_csrf_token_redirects_to_next(world: TenancyWorld) -> None:
    client = world.app.test_client()
    csrf = _login_form_csrf(client)
    r = client.post(
        "/login", data={"username": "pviewer", "password": PASSWORD, "csrf_token": csrf, "next": "/projects/ns-a1"}
    )
    assert r.status_code == 303 and r.headers["Location"] == "/projects/ns-a1"
    assert client.get("/api/v1/me").get_json()["user"] == "pviewer"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]
)
def test_form_login_never_redirects_off_site(world: TenancyWorld, target: str) -> None:
    client = world.app.test_client()
    csrf = _login_form_csrf(client)
    r = client.post("/login", data={"username": "pviewer", "password": PASSWORD, "csrf_token": csrf, "next": target})
    assert r.status_code == 303 and r.headers["Location"] == "/"


def test_form_login_without_the_pages_csrf_token_is_refused(world: TenancyWorld) -> None:
    client = world.app.test_client()
    r = client.post("/login", data={"username": "pviewer", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["Location"].startswith("/login?error=expired")
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    ("username", "password"), [("pviewer", "wrong-password-1"), ("nobody-here", "wrong-password-1")]
)
def test_failed_form_login_says_invalid_without_revealing_whether_the_user_exists(
    world: TenancyWorld, username: str, password: str
) -> None:
    client = world.app.test_client()
    csrf = _login_form_csrf(client)
    r = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf, "next": "/x"})
    assert r.status_code == 303 and r.headers["Location"] == "/login?error=invalid&next=%2Fx"


def test_form_logout_needs_the_csrf_token_and_then_ends_the_session(world: TenancyWorld) -> None:
    client, csrf = world.session("project-viewer")
    sid = _session_sid(world.app, client)
    assert client.post("/logout").status_code == 403
    assert client.get("/api/v1/me").status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["Location"].startswith("/login")
    assert client.get("/api/v1/me").status_code == 401
    assert sid and world.tenancy.principal_from_session(sid) is None


# -- throttling over HTTP ----------------------------------------------------------------------------------
def _fail(client: Any, username: str, addr: str) -> Any:
    return client.post(
        "/api/v1/auth/token",
        json={"username": username, "password": "wrong-password-1"},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_token_login_is_throttled_with_429_and_retry_after(world: TenancyWorld) -> None:
    client = world.app.test_client()
    for i in range(5):
        assert _fail(client, "pviewer", f"10.0.0.{i}").status_code == 401
    r = client.post(
        "/api/v1/auth/token",
        json={"username": "pviewer", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.1.1.1"},
    )
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "token" not in r.get_json()


def test_throttled_answers_are_identical_for_existing_and_unknown_users(world: TenancyWorld) -> None:
    client = world.app.test_client()
    bodies = []
    for username, addr in (("pviewer", "10.0.1.1"), ("nobody-here", "10.0.2.1")):
        first = _fail(client, username, addr)
        for _ in range(4):
            _fail(client, username, addr)
        locked = _fail(client, username, addr)
        bodies.append((first.status_code, first.get_data(), locked.status_code, locked.get_data()))
    assert bodies[0] == bodies[1]
    assert bodies[0][0] == 401 and bodies[0][2] == 429


def test_form_login_when_throttled_redirects_with_a_neutral_error(world: TenancyWorld) -> None:
    client = world.app.test_client()
    for _ in range(5):
        _fail(client, "pviewer", "10.0.9.9")
    csrf = _login_form_csrf(client)
    r = client.post(
        "/login",
        data={"username": "pviewer", "password": PASSWORD, "csrf_token": csrf},
        environ_base={"REMOTE_ADDR": "10.0.9.9"},
    )
    assert r.headers["Location"].startswith("/login?error=throttled")


def test_api_logout_with_a_token_revokes_that_token(world: TenancyWorld) -> None:
    client = world.client("project-viewer")
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/me").status_code == 401
