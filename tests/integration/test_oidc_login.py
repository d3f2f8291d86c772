"""Single sign-on against a real OpenID Connect provider: ``oidc-provider`` (npm) run by Node.

Each module run starts a private copy of the provider (its own port, its own CA and TLS
certificate, its own keys) so that it can be stopped and its keys rotated without touching the
sandbox's shared component, and a hub of this checkout served by waitress on a free port (the
provider's registered redirect URL points at it). An HTTP client (requests) plays the browser:
it follows the redirects between the hub and the provider and submits the provider's login
form, so every step crosses a real socket. The references are outside kubehub: the provider
issues the codes and signs the tokens, and what a user may do is asked from the hub's API.
Over 400 lines because each attack case needs its own walk through the provider's pages.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlparse, urlunparse

import pytest
import requests

from hub.errors import BackendUnavailable
from hub.tenancy.oidc import OidcClient, OidcConfig, SsoRefused
from hub.timeutil import FakeClock
from sandbox import oidc
from sandbox.core import Sandbox
from tests.integration.oidc_support import CLIENT_ID, CLIENT_SECRET, Stack, run_stack
from tests.unit.conftest_tenancy import PASSWORD, build_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(tmp_path_factory.mktemp("oidc")) as running:
        yield running


@pytest.fixture(autouse=True)
def _hub_clock_now(stack: Stack) -> None:
    stack.clock.set(time.time())  # the provider stamps tokens with the real time


# -- the browser's side -------------------------------------------------------------------------------
def _to_callback(stack: Stack, b: requests.Session, username: str, password: str, next_path: str = "/") -> str:
    """Start at the hub, sign in at the provider's form; returns the callback URL the provider
    sends the browser to (not followed, so tests can replay or alter it)."""
    r = b.get(stack.hub_url + "/login/oidc", params={"next": next_path}, allow_redirects=False)
    assert r.status_code == 302, r.text
    url = r.headers["Location"]
    assert url.startswith(stack.provider.files.issuer + "/auth?")
    query = parse_qs(urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0] and query["client_id"] == [CLIENT_ID]
    for _ in range(10):
        r = b.get(url, allow_redirects=False)
        if r.status_code == 200 and 'name="password"' in r.text:
            action = re.search(r'action="([^"]+)"', r.text)
            assert action is not None
            r = b.post(urljoin(url, action.group(1)), data={"login": username, "password": password},
                       allow_redirects=False)  # fmt: skip
            assert r.status_code in (302, 303), f"provider refused the login form: {r.status_code}"
        assert r.status_code in (302, 303), (r.status_code, r.text[:300])
        url = urljoin(url, r.headers["Location"])
        if url.startswith(stack.hub_url):
            return url
    raise AssertionError("the provider never sent the browser back to the hub")


def _sso_login(stack: Stack, username: str, password: str, next_path: str = "/") -> requests.Session:
    b = stack.browser()
    callback = _to_callback(stack, b, username, password, next_path)
    r = b.get(callback, allow_redirects=False)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    assert r.headers["Location"] == next_path
    return b


def _me(b: requests.Session, stack: Stack) -> requests.Response:
    return b.get(stack.hub_url + "/api/v1/me", headers={"Accept": "application/json"})


def _with_query(url: str, **changes: str) -> str:
    parts = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunparse(parts._replace(query=urlencode(query)))


def _last_login_audit(stack: Stack) -> dict:
    from hub.store.audit import AuditFilter

    entries, _total = stack.world.tenancy.audit_store.search(AuditFilter(action="auth.login"), offset=0, limit=1)
    entry = entries[0]
    return {"actor": entry.actor, "result": entry.result, "detail": entry.detail}


# -- the whole flow ---------------------------------------------------------------------------------------
def test_sso_login_provisions_an_oidc_user_with_the_roles_their_groups_map_to(stack: Stack) -> None:
    b = _sso_login(stack, "sam", "sam-pass-2", next_path="/workspaces")
    me = _me(b, stack)
    assert me.status_code == 200
    body = me.json()
    assert body["user"] == "sam" and body["auth"] == "session" and body["platform_role"] == "regular"
    assert body["workspaces"] == [{"name": "ws-a", "role": "regular"}]
    # "On-Call" from the provider matched the mapping of "on-call": names compare case-insensitively
    assert {p["namespace"]: p["role"] for p in body["projects"]} == {"ns-a1": "operator"}
    user = stack.world.tenancy.user("sam")
    assert user is not None and user.source == "oidc" and user.email == "sam@example.test"
    # what the roles allow, asked from the hub: the project's workloads yes, another tenant's no
    assert b.get(stack.hub_url + "/api/v1/namespaces/ns-a1/members").status_code == 200
    assert b.get(stack.hub_url + "/api/v1/namespaces/ns-b1/members").status_code == 403
    assert b.get(stack.hub_url + "/api/v1/users").status_code == 403
    audit = _last_login_audit(stack)
    assert audit["actor"] == "sam" and audit["result"] == "ok" and audit["detail"]["method"] == "oidc"
    # an OIDC user has no local password: the password form refuses whatever is typed
    r = requests.post(stack.hub_url + "/api/v1/auth/token", json={"username": "sam", "password": "sam-pass-2"})
    assert r.status_code == 401


def test_group_mappings_platform_admin_most_permissive_wins_and_no_group_no_role(stack: Stack) -> None:
    olivia = _sso_login(stack, "olivia", "olivia-pass-1")
    assert _me(olivia, stack).json()["platform_role"] == "admin"
    assert olivia.get(stack.hub_url + "/api/v1/users").status_code == 200
    casey = _sso_login(stack, "casey", "casey-pass-3")  # retail-team (regular) and retail-leads (admin)
    assert _me(casey, stack).json()["workspaces"] == [{"name": "ws-a", "role": "admin"}]
    noel = _sso_login(stack, "noel", "noel-pass-4")
    body = _me(noel, stack).json()
    assert (body["platform_role"], body["workspaces"], body["projects"]) == ("regular", [], [])


def test_a_local_users_name_is_never_taken_over_by_the_provider(stack: Stack) -> None:
    b = stack.browser()
    callback = _to_callback(stack, b, "bob", "bob-pass-5")
    r = b.get(callback, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login?error=sso"
    assert _me(b, stack).status_code == 401
    bob = stack.world.tenancy.user("bob")
    assert bob is not None and bob.source == "local" and bob.platform_role == "regular"
    r = requests.post(stack.hub_url + "/api/v1/auth/token", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 200  # the local account is untouched


def test_a_wrong_provider_password_never_reaches_the_hub(stack: Stack) -> None:
    b = stack.browser()
    r = b.get(stack.hub_url + "/login/oidc", allow_redirects=True)
    action = re.search(r'action="([^"]+)"', r.text)
    assert action is not None
    r = b.post(urljoin(r.url, action.group(1)), data={"login": "sam", "password": "wrong"}, allow_redirects=False)
    assert r.status_code == 401 and "Wrong user name or password" in r.text


# -- attacks -----------------------------------------------------------------------------------------------
def test_a_wrong_or_missing_state_is_refused_before_the_code_is_used(stack: Stack) -> None:
    b = stack.browser()
    callback = _to_callback(stack, b, "sam", "sam-pass-2")
    r = b.get(_with_query(callback, state="forged-state"), headers={"Accept": "application/json"},
              allow_redirects=False)  # fmt: skip
    assert r.status_code == 400 and r.json()["field"] == "state"
    assert _me(b, stack).status_code == 401
    # the pending sign-in is spent: even the right state now fails (one attempt per start)
    r = b.get(callback, headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 400 and r.json()["field"] == "state"
    # a callback in a browser that never started a sign-in (login CSRF) is refused the same way
    other = stack.browser()
    r = other.get(callback, headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status_code == 400 and r.json()["field"] == "state"
    assert _me(other, stack).status_code == 401


def test_a_replayed_code_is_refused_by_the_provider(stack: Stack) -> None:
    b = stack.browser()
    first = _to_callback(stack, b, "sam", "sam-pass-2")
    assert b.get(first, allow_redirects=False).headers["Location"] == "/"
    used_code = parse_qs(urlparse(first).query)["code"][0]
    # an attacker's browser starts its own sign-in and presents the code already used
    attacker = stack.browser()
    second = _to_callback(stack, attacker, "noel", "noel-pass-4")
    r = attacker.get(_with_query(second, code=used_code), allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login?error=sso"
    assert _me(attacker, stack).status_code == 401
    audit = _last_login_audit(stack)
    assert audit["result"] == "failed" and "invalid_grant" in audit["detail"]["reason"]


def _refused(reason: str, call: Any) -> None:
    """``call`` raises SsoRefused whose logged reason contains ``reason``."""
    with pytest.raises(SsoRefused) as caught:
        call()
    assert reason in caught.value.reason, caught.value.reason


# -- the adapter against the provider's real tokens ------------------------------------------------------
def _adapter(stack: Stack, clock: FakeClock | None = None) -> OidcClient:
    config = OidcConfig(
        issuer=stack.provider.files.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_url=stack.hub_url + "/login/oidc/callback",
        ca_file=stack.ca,
        timeout=5.0,
    )
    return OidcClient(config, clock=clock or FakeClock(time.time()))


def _code_for(stack: Stack, client: OidcClient, username: str, password: str) -> tuple[str, str, str]:
    """(code, verifier, nonce) of a login the adapter started, signed in through the form."""
    auth = client.begin()
    b = stack.browser()
    url = auth.url
    for _ in range(10):
        r = b.get(url, allow_redirects=False)
        if r.status_code == 200:
            action = re.search(r'action="([^"]+)"', r.text)
            assert action is not None
            r = b.post(urljoin(url, action.group(1)), data={"login": username, "password": password},
                       allow_redirects=False)  # fmt: skip
        url = urljoin(url, r.headers["Location"])
        if url.startswith(stack.hub_url):
            query = parse_qs(urlparse(url).query)
            assert query["state"] == [auth.state]
            return query["code"][0], auth.code_verifier, auth.nonce
    raise AssertionError("no callback")


def test_a_wrong_nonce_is_refused(stack: Stack) -> None:
    client = _adapter(stack)
    code, verifier, _nonce = _code_for(stack, client, "sam", "sam-pass-2")
    _refused("nonce", lambda: client.finish(code=code, code_verifier=verifier, nonce="the-nonce-of-another-login"))


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(stack: Stack) -> None:
    client = _adapter(stack)
    code, _verifier, nonce = _code_for(stack, client, "sam", "sam-pass-2")
    _refused("invalid_grant", lambda: client.finish(code=code, code_verifier="x" * 64, nonce=nonce))


def test_an_expired_id_token_is_refused_and_a_tampered_one_never_verifies(stack: Stack) -> None:
    clock = FakeClock(time.time())
    client = _adapter(stack, clock)
    code, verifier, nonce = _code_for(stack, client, "olivia", "olivia-pass-1")
    identity = client.finish(code=code, code_verifier=verifier, nonce=nonce)
    assert identity.groups == ("kubehub-admins",)
    raw = identity.id_token
    header, payload, signature = raw.split(".")
    # the same token checked later than its expiry plus the leeway (the provider's TTL is 600 s)
    clock.set(identity.expires_at + 61)
    _refused("expired", lambda: client.validate_id_token(raw, nonce=nonce))
    clock.set(identity.expires_at - 300)
    assert client.validate_id_token(raw, nonce=nonce)[0]["preferred_username"] == "olivia"
    # a flipped bit in the signature
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    _refused("signature", lambda: client.validate_id_token(f"{header}.{payload}.{flipped}", nonce=nonce))
    # a payload changed to claim another user, the provider's signature kept
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["preferred_username"] = "bob"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused("signature", lambda: client.validate_id_token(f"{header}.{forged}.{signature}", nonce=nonce))
    # "alg": "none" is never accepted
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    _refused("", lambda: client.validate_id_token(f"{none_header}.{payload}.", nonce=nonce))
    # a token for another client (audience) signed by the provider itself is refused too
    other = OidcClient(
        OidcConfig(**{**client.config.__dict__, "client_id": "someone-else"}), clock=FakeClock(time.time())
    )
    _refused("claim", lambda: other.validate_id_token(raw, nonce=nonce))
    # a hub configured for another issuer: the provider's discovery document (which names the real
    # issuer) is refused, and so is its token (iss)
    elsewhere = OidcClient(
        OidcConfig(**{**client.config.__dict__, "issuer": client.config.issuer.replace("127.0.0.1", "localhost")}),
        clock=FakeClock(time.time()),
    )
    with pytest.raises(BackendUnavailable, match="names issuer"):
        elsewhere.metadata()  # same server, reached as localhost
    elsewhere._metadata, elsewhere._metadata_at = client.metadata(), time.time()  # as if discovery had agreed
    _refused("iss", lambda: elsewhere.validate_id_token(raw, nonce=nonce))


def test_a_token_signed_by_an_unknown_key_refetches_the_keys_once_then_fails(stack: Stack) -> None:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import RSAKey

    client = _adapter(stack)
    code, verifier, nonce = _code_for(stack, client, "sam", "sam-pass-2")
    client.finish(code=code, code_verifier=verifier, nonce=nonce)
    fetches = client.jwks_fetches
    key = RSAKey.generate_key(2048, parameters={"kid": "not-the-providers"})
    now = int(time.time())
    claims = {"iss": client.config.issuer, "sub": "x", "aud": CLIENT_ID, "iat": now, "exp": now + 60, "nonce": nonce,
              "preferred_username": "olivia"}  # fmt: skip
    forged = jose_jwt.encode({"alg": "RS256", "kid": "not-the-providers"}, claims, key)
    _refused("signature", lambda: client.validate_id_token(forged, nonce=nonce))
    assert client.jwks_fetches == fetches + 1


# -- logout, rotation, provider down (these restart or stop the private provider) --------------------
def test_logout_ends_the_hub_session_and_links_to_the_providers_end_session(stack: Stack) -> None:
    b = _sso_login(stack, "sam", "sam-pass-2")
    me = _me(b, stack).json()
    r = b.post(stack.hub_url + "/logout", data={"csrf_token": me["csrf_token"]}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/login?logged_out=1"
    assert _me(b, stack).status_code == 401
    page = b.get(stack.hub_url + "/login?logged_out=1")
    link = re.search(r'id="sso-logout" href="([^"]+)"', page.text)
    assert link is not None, page.text
    end_session = link.group(1).replace("&amp;", "&")
    assert end_session.startswith(stack.provider.files.issuer + "/session/end?")
    # the provider asks for confirmation, then sends the browser back to the hub
    r = b.get(end_session)
    form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
    assert form is not None, r.text[:500]
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text))
    fields["logout"] = "yes"
    r = b.post(urljoin(r.url, form.group(1)), data=fields, allow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["Location"].startswith(stack.hub_url + "/login?logged_out=1")
    # the provider's own session is gone: a new sign-in shows its login form again
    r = b.get(stack.hub_url + "/login/oidc")
    assert 'name="password"' in r.text


def test_claims_only_in_userinfo_are_fetched_from_it(stack: Stack) -> None:
    """A provider that keeps profile and groups claims out of the ID token (OIDC Core 5.4)."""
    import base64

    files = stack.provider.files
    clients, users = [files.client(CLIENT_ID)], list(files.users().values())
    files.write(clients, users, claims_in_id_token=False)
    stack.provider.restart()
    try:
        client = _adapter(stack)
        code, verifier, nonce = _code_for(stack, client, "sam", "sam-pass-2")
        identity = client.finish(code=code, code_verifier=verifier, nonce=nonce)
        payload = identity.id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert "groups" not in claims and "preferred_username" not in claims  # only in userinfo
        assert identity.username == "sam" and identity.groups == ("retail-team", "On-Call")
        casey = _sso_login(stack, "casey", "casey-pass-3")
        assert _me(casey, stack).json()["workspaces"] == [{"name": "ws-a", "role": "admin"}]
    finally:
        files.write(clients, users)
        stack.provider.restart()


def _kid_of(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def test_key_rotation_is_followed_with_one_jwks_refetch(stack: Stack) -> None:
    _sso_login(stack, "sam", "sam-pass-2")  # the hub has the current keys cached
    hub_client = stack.world.hub.oidc
    assert hub_client is not None
    before = hub_client.jwks_fetches
    early = _adapter(stack)
    code, verifier, early_nonce = _code_for(stack, early, "sam", "sam-pass-2")
    old_token = early.finish(code=code, code_verifier=verifier, nonce=early_nonce).id_token
    old_kid = _kid_of(old_token)
    # the sandbox makes the key (Python), the provider only serves it after its restart
    new_kid = stack.provider.files.rotate()
    assert new_kid != old_kid
    stack.provider.restart()
    b = _sso_login(stack, "olivia", "olivia-pass-1")
    assert _me(b, stack).json()["platform_role"] == "admin"
    assert hub_client.jwks_fetches == before + 1
    keys = requests.get(stack.provider.files.issuer + "/jwks", verify=stack.ca).json()["keys"]
    assert [k["kid"] for k in keys] == [new_kid, old_kid]  # the old key stays published
    written = {k["kid"]: k["n"] for k in stack.provider.files.signing_keys()}
    assert {k["kid"]: k["n"] for k in keys} == written and not any("d" in k for k in keys)
    late = _adapter(stack)
    code, verifier, nonce = _code_for(stack, late, "sam", "sam-pass-2")
    assert _kid_of(late.finish(code=code, code_verifier=verifier, nonce=nonce).id_token) == new_kid
    # an ID token signed before the rotation still verifies against the keys served after it
    claims, _ = _adapter(stack).validate_id_token(old_token, nonce=early_nonce)
    assert claims["preferred_username"] == "sam"
    _sso_login(stack, "noel", "noel-pass-4")
    assert hub_client.jwks_fetches == before + 1  # the new key is cached now


def test_provider_down_is_a_503_naming_it_and_local_login_still_works(stack: Stack) -> None:
    halfway = stack.browser()
    callback = _to_callback(stack, halfway, "sam", "sam-pass-2")  # signed in at the provider, not yet back
    stack.provider.stop()
    try:
        # the code cannot be exchanged: 503 naming the provider, and no session
        r = halfway.get(callback, headers={"Accept": "application/json"}, allow_redirects=False)
        assert r.status_code == 503 and r.json()["backend"] == "oidc provider"
        assert _me(halfway, stack).status_code == 401
        r = requests.get(stack.hub_url + "/login/oidc", headers={"Accept": "application/json"},
                         allow_redirects=False)  # fmt: skip
        assert r.status_code == 503
        assert r.json()["backend"] == "oidc provider" and "oidc provider" in r.json()["error"]
        page = requests.get(stack.hub_url + "/login/oidc", allow_redirects=False)
        assert page.status_code == 503 and "oidc provider" in page.text
        ready = requests.get(stack.hub_url + "/readyz").json()
        assert ready["status"] != "ok" if "status" in ready else True
        # break-glass: a local platform admin logs in with a password
        r = requests.post(stack.hub_url + "/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200
        # the login page still offers both
        page = requests.get(stack.hub_url + "/login")
        assert 'name="password"' in page.text and "Sign in with Test SSO" in page.text
    finally:
        stack.provider.start()


# -- the sandbox's own component ---------------------------------------------------------------------------
def test_the_sandbox_provider_signs_in_its_seeded_users_with_their_directory_groups(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The shared component (not a private copy): its seeded user ``sam`` (groups retail-devs and
    api-oncall, the sandbox directory's) signs in to a hub that uses the tests' client."""
    files = oidc.sandbox_files(sandbox)
    ca = sandbox.pki_dir / "ca.crt"
    assert sandbox.healthy("oidc"), "the sandbox's oidc component does not answer"
    client = files.client(oidc.TEST_CLIENT)
    world = build_world(
        tmp_path,
        settings={
            "oidc": {
                "issuer_url": files.issuer,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "redirect_url": oidc.TEST_REDIRECT,
                "ca_file": str(ca),
            },
            "auth": {
                "group_mappings": json.dumps(
                    [
                        {"group": "retail-devs", "level": "workspace", "target": "ws-a", "role": "regular"},
                        {"group": "api-oncall", "level": "project", "target": "ns-a1", "role": "operator"},
                    ]
                )
            },
        },
    )
    try:
        hub_browser = world.app.test_client()  # the hub side of the browser (its cookie jar)
        r = hub_browser.get("/login/oidc")
        assert r.status_code == 302
        provider_browser = requests.Session()
        provider_browser.trust_env = False
        provider_browser.verify = str(ca)
        url = r.headers["Location"]
        sam = files.users()["sam"]
        for _ in range(10):
            r2 = provider_browser.get(url, allow_redirects=False)
            if r2.status_code == 200:
                action = re.search(r'action="([^"]+)"', r2.text)
                assert action is not None
                r2 = provider_browser.post(
                    urljoin(url, action.group(1)),
                    data={"login": "sam", "password": sam.password},
                    allow_redirects=False,
                )
            url = urljoin(url, r2.headers["Location"])
            if url.startswith(oidc.TEST_REDIRECT):
                break
        parts = urlparse(url)
        r = hub_browser.get(f"{parts.path}?{parts.query}")
        assert r.status_code == 303, r.get_data(as_text=True)[:300]
        me = hub_browser.get("/api/v1/me").get_json()
        assert me["user"] == "sam" and me["workspaces"] == [{"name": "ws-a", "role": "regular"}]
        assert {p["namespace"]: p["role"] for p in me["projects"]} == {"ns-a1": "operator"}
        assert sandbox.version_of("oidc") == f"oidc-provider {oidc.VERSION}"
    finally:
        world.hub.close()
