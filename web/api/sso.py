"""Single sign-on with OpenID Connect: the console's redirect to the provider and its callback.

``GET /login/oidc`` starts a sign-in: the adapter (:mod:`hub.tenancy.oidc`) makes a fresh
``state``, ``nonce`` and PKCE verifier, kept in the signed session cookie (the browser carries
them to the callback; nothing is stored server-side for a sign-in that is never finished), and
the browser goes to the provider. ``GET /login/oidc/callback`` checks ``state`` against the
cookie (constant time; missing or different: 400, nothing is sent to the provider), exchanges
the code, validates the ID token, provisions the user with ``source = oidc`` and their groups
mapped to roles (:meth:`hub.tenancy.external.ExternalIdentities.provision`), and starts a
console session exactly like a password login (new session id, CSRF token derived from it).

Both are links, not forms: the console's Content-Security-Policy has ``form-action 'self'``,
which browsers also apply to the redirects that follow a form submission. For the same reason,
logging out (``POST /logout``) ends the hub's session and the login page then offers a link to
the provider's end-session endpoint, instead of redirecting there.

Failures: a provider that does not answer is a 503 naming ``oidc provider`` (local password
logins keep working); a code the provider refuses (used before, expired), an ID token that does
not verify (signature, issuer, audience, expiry, nonce) or a user name held by a local user send
the browser back to ``/login?error=sso``, with the reason in the hub's log and the audit log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, request, session

from hub.errors import BackendUnavailable, InvalidInput, NotFound, Unauthenticated
from hub.tenancy.credentials import same_secret
from hub.tenancy.external import ExternalUser
from hub.tenancy.oidc import OidcClient, SsoRefused
from web.access import public, tenancy
from web.api.auth import _login_session, _safe_next, client_address
from web.util import hub

bp = Blueprint("api_sso", __name__)

PENDING = "oidc_pending"  # session key of a sign-in under way
ID_TOKEN = "oidc_id_token"  # session key of the ID token of a signed-in SSO user (the logout hint)
LOGOUT_URL = "oidc_logout_url"  # after logout: the provider's end-session link for the login page
PENDING_SECONDS = 600.0  # a sign-in not finished within this time must start again


def _client() -> OidcClient:
    client = hub().oidc
    if client is None:
        raise NotFound("single sign-on is not configured")
    return client


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _failed_page(exc: InvalidInput | BackendUnavailable) -> Any:
    """400 or 503 for a browser (the console's error page) or JSON for an API client."""
    if _wants_json():
        return jsonify(exc.to_dict()), exc.status
    from web.views import render_error

    return render_error(exc.status, exc.message)


def _audit_failure(actor: str, reason: str) -> None:
    tenancy().audit(actor, "auth.login", "session", "failed",
                    {"method": "oidc", "reason": reason, "client": client_address()})  # fmt: skip


@bp.get("/api/v1/auth/sso")
@public
def sso_methods() -> Any:
    """Sign-in methods besides local passwords: ``{"oidc": {"name", "login_url"} | null}``."""
    if hub().oidc is None:
        return jsonify({"oidc": None})
    return jsonify({"oidc": {"name": hub().settings.oidc.provider_name, "login_url": "/login/oidc"}})


@bp.get("/login/oidc")
@public
def oidc_start() -> Any:
    """Start single sign-on: 302 to the provider's authorization endpoint (``next``: where to go after)."""
    client = _client()
    try:
        auth = client.begin()
    except BackendUnavailable as exc:
        return _failed_page(exc)
    session[PENDING] = {
        "state": auth.state,
        "nonce": auth.nonce,
        "verifier": auth.code_verifier,
        "next": _safe_next(request.args.get("next")),
        "at": tenancy().clock.now(),
    }
    return redirect(auth.url, code=302)


@bp.get("/login/oidc/callback")
@public
def oidc_callback() -> Any:
    """The provider sends the browser back here with ``code`` and ``state``; 303 to ``next`` once signed in."""
    client = _client()
    pending = session.pop(PENDING, None)
    state = request.args.get("state", "")
    if not isinstance(pending, dict) or not state or not same_secret(state, str(pending.get("state", ""))):
        _audit_failure("(unknown user)", "state does not match a sign-in started by this browser")
        return _failed_page(InvalidInput("state does not match a sign-in started by this browser", field="state"))
    if tenancy().clock.now() - float(pending.get("at", 0)) > PENDING_SECONDS:
        _audit_failure("(unknown user)", "the sign-in took too long")
        return _failed_page(InvalidInput("the sign-in took too long; start again", field="state"))
    if request.args.get("error"):
        _audit_failure("(unknown user)", f"the provider answered {request.args.get('error', '')[:100]}")
        return _back_to_login(pending)
    code = request.args.get("code", "")
    if not code:
        return _failed_page(InvalidInput("code is required", field="code"))
    try:
        identity = client.finish(code=code, code_verifier=str(pending["verifier"]), nonce=str(pending["nonce"]))
    except BackendUnavailable as exc:
        return _failed_page(exc)
    except SsoRefused as exc:
        _audit_failure("(unknown user)", exc.reason)
        return _back_to_login(pending)
    external = ExternalUser(
        username=identity.username, display_name=identity.display_name, email=identity.email, groups=identity.groups
    )
    try:
        user = tenancy().provision("oidc", external)
        if user.disabled:
            raise Unauthenticated("disabled")
    except Unauthenticated:
        _audit_failure(identity.username.lower()[:64], "the user name is not an OIDC user's, or the user is disabled")
        return _back_to_login(pending)
    _login_session(user.name)
    session[ID_TOKEN] = identity.id_token
    tenancy().audit(user.name, "auth.login", "session", "ok",
                    {"method": "oidc", "groups": list(identity.groups), "client": client_address()})  # fmt: skip
    return redirect(str(pending.get("next") or "/"), code=303)


def _back_to_login(pending: dict[str, Any]) -> Any:
    query = {"error": "sso"}
    nxt = str(pending.get("next") or "/")
    if nxt != "/":
        query["next"] = nxt
    return redirect("/login?" + urlencode(query), code=303)


def end_session_link(id_token: str | None) -> str | None:
    """The provider's end-session URL for an SSO session that just ended (web.api.auth's logout)."""
    client = hub().oidc
    if not id_token or client is None:
        return None
    back = hub().settings.public_url.rstrip("/") + "/login?logged_out=1"
    return client.logout_url(id_token=id_token, post_logout_redirect=back)
