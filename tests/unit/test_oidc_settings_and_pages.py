"""Single sign-on without a provider behind it: settings checks, the login page's button (en, zh),
the discovery of sign-in methods, and the answers that need no provider (404 when not
configured, 400 for a callback nobody started, 503 naming the provider when nothing listens).
The flow itself runs against a real provider in tests/integration/test_oidc_login.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.settings import load_settings
from hub.tenancy.oidc import _groups
from tests.unit.conftest_tenancy import build_world

pytestmark = pytest.mark.unit

BASE = {"KUBEHUB_OIDC_CLIENT_ID": "kubehub"}


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"KUBEHUB_OIDC_ISSUER_URL": "http://sso.example.com"}, "KUBEHUB_OIDC_ISSUER_URL"),
        ({"KUBEHUB_OIDC_ISSUER_URL": "ftp://sso.example.com"}, "KUBEHUB_OIDC_ISSUER_URL"),
        (
            {"KUBEHUB_OIDC_ISSUER_URL": "https://sso.example.com", "KUBEHUB_OIDC_CLIENT_ID": ""},
            "KUBEHUB_OIDC_CLIENT_ID",
        ),
        (
            {"KUBEHUB_OIDC_ISSUER_URL": "https://sso.example.com", "KUBEHUB_OIDC_SCOPES": "profile"},
            "KUBEHUB_OIDC_SCOPES",
        ),
        ({"KUBEHUB_OIDC_LEEWAY": "601"}, "KUBEHUB_OIDC_LEEWAY"),
        ({"KUBEHUB_OIDC_TIMEOUT": "0"}, "KUBEHUB_OIDC_TIMEOUT"),
    ],
)
def test_bad_oidc_settings_are_refused_naming_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **env})
    assert caught.value.setting == setting


def test_plain_http_is_allowed_only_on_loopback() -> None:
    s = load_settings({**BASE, "KUBEHUB_OIDC_ISSUER_URL": "http://127.0.0.1:8444"})
    assert s.oidc.issuer_url == "http://127.0.0.1:8444" and s.oidc.scopes.split()[0] == "openid"


def test_a_groups_claim_is_a_list_of_names_or_one_name() -> None:
    assert _groups(["a", "", 3, "b"]) == ("a", "b")
    assert _groups("ops") == ("ops",)
    assert _groups({"ops": True}) == () and _groups(None) == ()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


def test_without_oidc_the_login_page_has_no_button_and_the_routes_are_404(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    client = world.app.test_client()
    assert 'id="sso-login"' not in client.get("/login").get_data(as_text=True)
    assert client.get("/api/v1/auth/sso").get_json() == {"oidc": None}
    assert client.get("/login/oidc", headers={"Accept": "application/json"}).status_code == 404
    assert client.get("/login/oidc/callback?state=x&code=y", headers={"Accept": "application/json"}).status_code == 404


def test_with_oidc_the_button_shows_in_both_languages_and_a_dead_provider_is_a_503(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{_closed_port()}"
    world = build_world(
        tmp_path,
        settings={"oidc": {"issuer_url": issuer, "client_id": "kubehub", "provider_name": "Corp SSO", "timeout": 2.0}},
    )
    client = world.app.test_client()
    page = client.get("/login?next=/alerts").get_data(as_text=True)
    assert 'href="/login/oidc?next=%2Falerts"' in page and "Sign in with Corp SSO" in page
    assert "使用 Corp SSO 登录" in client.get("/login?lang=zh").get_data(as_text=True)
    assert client.get("/api/v1/auth/sso").get_json() == {"oidc": {"name": "Corp SSO", "login_url": "/login/oidc"}}
    r = client.get("/login/oidc", headers={"Accept": "application/json"})
    assert r.status_code == 503 and r.get_json()["backend"] == "oidc provider"
    html = client.get("/login/oidc")
    assert html.status_code == 503 and "oidc provider" in html.get_data(as_text=True)
    # a callback this browser never started: refused before anything is sent anywhere
    r = client.get("/login/oidc/callback?state=x&code=y", headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.get_json()["field"] == "state"
    # the password form still works (break-glass)
    assert (
        client.post("/api/v1/auth/login", json={"username": "admin", "password": "Test-password-9"}).status_code == 200
    )
