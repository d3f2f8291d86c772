"""Security headers, the console's script policy, cookie flags and the session lifecycle.

The Content-Security-Policy allows scripts from the hub only; the template scan below is what
keeps that true (an inline ``<script>`` or ``onclick=`` would be blocked by the browser, so it
must not exist in the first place). Sessions: a new id at every login (fixation), and a
cookie that no longer works once its session ended (logout), replayed from a fresh client.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest_tenancy import PASSWORD, TenancyWorld, build_world

pytestmark = pytest.mark.unit

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


def _directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.mark.parametrize(
    ("role", "path"),
    [
        (None, "/login"),
        ("project-viewer", "/"),
        ("project-viewer", "/logs"),
        ("project-viewer", "/api/v1/me"),
        (None, "/api/v1/me"),  # a 401
        (None, "/healthz"),
        (None, "/no-such-page"),  # a 404
        (None, "/static/console.js"),
    ],
)
def test_every_answer_carries_the_security_headers(tenancy_world: TenancyWorld, role: str | None, path: str) -> None:
    client = tenancy_world.client(role) if role != "project-viewer" else tenancy_world.session(role)[0]
    r = client.get(path)
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin", "no-referrer")
    csp = _directives(r.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"], "no inline script, no eval, no other origin"
    assert csp["object-src"] == ["'none'"] and csp["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp.get("style-src", [])  # only style attributes are inline
    if path.startswith("/api/"):
        assert r.headers["Cache-Control"] == "no-store"


class _InlineScripts(HTMLParser):
    """Collects executable inline script and inline event handlers of a template."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")
        if tag == "script":
            kind = (names.get("type") or "text/javascript").lower()
            executable = kind in ("text/javascript", "module", "application/javascript")
            self._in_script = executable and not names.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline <script>: {data.strip()[:60]}")


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_hold_no_inline_script_or_event_handlers(template: str) -> None:
    parser = _InlineScripts()
    parser.feed((TEMPLATES / template).read_text(encoding="utf-8"))
    assert parser.found == [], f"{template}: {parser.found} (move it to web/static/console.js)"


def test_the_scan_would_notice_an_inline_handler() -> None:
    parser = _InlineScripts()
    parser.feed('<button onclick="go()">x</button><script>alert(1)</script><script type="application/json">{}</script>')
    assert len(parser.found) == 2


# -- cookies ------------------------------------------------------------------------------------------
def _login(client: Any, base_url: str = "http://localhost") -> Any:
    r = client.post("/api/v1/auth/login", json={"username": "padmin", "password": PASSWORD}, base_url=base_url)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r


def _cookie_header(response: Any) -> str:
    cookies = [v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("kubehub_session=")]
    assert len(cookies) == 1
    return cookies[0]


def test_the_session_cookie_is_httponly_and_samesite_lax_and_not_secure_over_plain_http(
    tenancy_world: TenancyWorld,
) -> None:
    header = _cookie_header(_login(tenancy_world.app.test_client()))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header


def test_the_session_cookie_is_secure_when_the_request_came_over_https(tenancy_world: TenancyWorld) -> None:
    header = _cookie_header(_login(tenancy_world.app.test_client(), base_url="https://hub.example"))
    assert "Secure" in header and "HttpOnly" in header


@pytest.mark.parametrize(
    "http", [{"secure_cookies": True}, {"public_url": "https://hub.example"}], ids=["setting", "public-url"]
)
def test_the_session_cookie_is_secure_when_configured(tmp_path: Path, http: dict[str, Any]) -> None:
    world = build_world(tmp_path, settings={"http": http})
    try:
        header = _cookie_header(_login(world.app.test_client()))
        assert "Secure" in header
    finally:
        world.hub.close()


# -- session lifecycle ---------------------------------------------------------------------------------
def test_login_issues_a_new_cookie_even_over_an_existing_one(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.app.test_client()
    _login(client)
    before = client.get_cookie("kubehub_session").value
    csrf = client.get("/api/v1/me").get_json()["csrf_token"]
    client.post("/api/v1/auth/login", json={"username": "padmin", "password": PASSWORD}, headers={"X-CSRF-Token": csrf})
    after = client.get_cookie("kubehub_session").value
    assert before != after
    replay = tenancy_world.app.test_client()
    replay.set_cookie("kubehub_session", before)
    assert replay.get("/api/v1/me").status_code == 401, "the session the old cookie named must be over"


@pytest.mark.parametrize("how", ["json", "form"])
def test_a_cookie_replayed_after_logout_no_longer_works(tenancy_world: TenancyWorld, how: str) -> None:
    client = tenancy_world.app.test_client()
    _login(client)
    stolen = client.get_cookie("kubehub_session").value
    csrf = client.get("/api/v1/me").get_json()["csrf_token"]
    if how == "json":
        r = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204 and r.data == b"" and "Content-Type" not in r.headers
    else:
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    replay = tenancy_world.app.test_client()
    replay.set_cookie("kubehub_session", stolen)
    assert replay.get("/api/v1/me").status_code == 401
    assert replay.get("/", follow_redirects=False).status_code in (302, 303, 401)


def test_hsts_only_over_https(tenancy_world: TenancyWorld) -> None:
    client = tenancy_world.app.test_client()
    assert "Strict-Transport-Security" not in client.get("/login").headers
    assert (
        client.get("/login", base_url="https://hub.example").headers["Strict-Transport-Security"].startswith("max-age=")
    )
