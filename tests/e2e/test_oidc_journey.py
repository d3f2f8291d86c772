"""Single sign-on in Chromium: the login page's "Sign in with …" button, the provider's own login
form, back in the console as the mapped user, then logout with the link that also ends the
provider's session.

The provider is a private copy of the sandbox's (tests/integration/oidc_support.py), served
over HTTPS by a CA of its own: the browser context ignores certificate errors for it (the hub's
side of TLS, with ``oidc.ca_file``, is what tests/integration/test_oidc_login.py checks).
Screenshots: ``artifacts/e2e/oidc-sso/``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS
from tests.integration.oidc_support import Stack, run_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("oidc-e2e")) as running:
        yield running


def test_sign_in_with_the_provider_and_sign_out_of_both(sso: Stack, browser: Any) -> None:
    shots = ARTIFACTS / "oidc-sso"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(ignore_https_errors=True, locale="en-US", viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    csp: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(sso.hub_url + "/login?next=/workspaces")
        button = page.locator("#sso-login")
        assert button.inner_text().strip() == "Sign in with Test SSO"
        page.screenshot(path=str(shots / "01-login.png"), full_page=True)
        button.click()
        page.wait_for_url(re.compile(re.escape(sso.provider.files.issuer) + r"/interaction/"))
        page.fill("#login", "sam")
        page.fill("#password", "sam-pass-2")
        page.screenshot(path=str(shots / "02-provider-form.png"), full_page=True)
        page.click("#submit")
        page.wait_for_url(sso.hub_url + "/workspaces")
        page.screenshot(path=str(shots / "03-signed-in.png"), full_page=True)
        me = page.request.get(sso.hub_url + "/api/v1/me").json()
        assert me["user"] == "sam" and me["workspaces"] == [{"name": "ws-a", "role": "regular"}]
        assert "ws-a" in page.content() and "ws-b" not in page.content()
        # log out of the console, then of the provider through the login page's link
        page.click("form[action='/logout'] button[type=submit]")
        page.wait_for_url(re.compile(r"/login\?logged_out=1"))
        page.screenshot(path=str(shots / "04-logged-out.png"), full_page=True)
        assert page.request.get(sso.hub_url + "/api/v1/me").status == 401
        page.click("#sso-logout")
        page.wait_for_url(re.compile(re.escape(sso.provider.files.issuer) + r"/session/end"))
        page.screenshot(path=str(shots / "05-provider-logout.png"), full_page=True)
        page.click("button[name=logout][value=yes]")
        page.wait_for_url(re.compile(re.escape(sso.hub_url) + r"/login\?logged_out=1"))
        # signed out at the provider too: the button leads to its form again, not straight back
        page.click("#sso-login")
        page.wait_for_url(re.compile(re.escape(sso.provider.files.issuer) + r"/interaction/"))
        assert page.locator("#password").is_visible()
        page.screenshot(path=str(shots / "06-provider-asks-again.png"), full_page=True)
    finally:
        context.close()
    assert csp == [], csp
