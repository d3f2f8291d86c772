"""Authentication endpoints: API tokens, console login/logout (form and JSON), ``/api/v1/me``.

The console's session cookie (Flask's signed cookie) carries only a server-side session id;
the session row is what makes it valid, so logging out or disabling the user ends it at once.
Form endpoints (``POST /login``, ``POST /logout``) answer with 303 redirects for the console;
the JSON ones answer with JSON. See docs/tenancy.md for the console's side of the contract.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, g, jsonify, make_response, redirect, request, session

from hub.errors import InvalidInput, RateLimited, Unauthenticated
from hub.tenancy.credentials import csrf_for_session, same_secret
from hub.tenancy.service import LoginThrottled
from hub.timeutil import iso, parse_duration
from web import access
from web.access import CSRF_FIELD, current_principal, permission, public, scope, tenancy
from web.params import path_id
from web.util import json_body, list_response

bp = Blueprint("api_auth", __name__)

# Every state-changing request is audited (see web.access.audit_unsafe_request), and every
# template can embed the CSRF token; registering both from this blueprint keeps them with auth.
bp.after_app_request(access.audit_unsafe_request)


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": access.csrf_token, "current_user": access.optional_principal}


@bp.app_errorhandler(RateLimited)
def _throttled(exc: RateLimited) -> Any:
    """Every rate limit (failed logins, expensive requests; web/ratelimit.py): 429 + Retry-After."""
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        response = jsonify(exc.to_dict())
    else:
        from web.views import render_error

        response = make_response(render_error(429, exc.message))
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def client_address() -> str:
    """The client's address as the server sees it (behind a proxy: the proxy's, unless it is
    configured to pass the real one in ``REMOTE_ADDR``)."""
    return request.remote_addr or ""


def _expires_in(body: dict[str, Any]) -> float | None:
    raw = body.get("expires_in")
    if raw is None or raw == "":
        return None
    return parse_duration(raw, field="expires_in")


def _login_session(username: str) -> str:
    """Start a session: the old cookie's content (pre-login CSRF, any stale id) is dropped, so
    a session id planted before login is never the one that becomes authenticated."""
    if g.get("auth") == "session":
        tenancy().end_session(g.sid)
    session.clear()
    sid = tenancy().start_session(username, client=client_address())
    session["sid"] = sid
    session.permanent = True
    g.principal, g.auth, g.sid = tenancy().principal_for(username), "session", sid
    return str(sid)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# -- API tokens ---------------------------------------------------------------------------------
@bp.post("/api/v1/auth/token")
@public
def issue_token() -> Any:
    """Exchange a user name and password for an API token: ``{"token", "expires_at"}``.

    Send it as ``Authorization: Bearer <token>``. Lifetime: ``expires_in`` (e.g. ``8h``) or the
    console session length; failed attempts count towards the login rate limit.
    """
    body = json_body()
    ttl = _expires_in(body)
    user = tenancy().login(body.get("username"), body.get("password"), client=client_address())
    issued = tenancy().issue_token(user.name, kind="login", ttl=ttl)
    return jsonify({"token": issued.token, "expires_at": iso(issued.expires_at)})


def _token_dict(record: Any, now: float) -> dict[str, Any]:
    if record.revoked_at is not None:
        state = "revoked"
    elif record.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "id": record.id,
        "name": record.name,
        "kind": record.kind,
        "user": record.username,
        "hint": record.hint,
        "state": state,
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "last_used_at": iso(record.last_used_at) if record.last_used_at else None,
        "revoked_at": iso(record.revoked_at) if record.revoked_at else None,
    }


@bp.get("/api/v1/auth/tokens")
@permission(None)
def list_tokens() -> Any:
    """The caller's API tokens (never their values); platform admins may pass ``user=``."""
    principal = current_principal()
    user = request.args.get("user") or principal.username
    if user != principal.username:
        access.require("users:read")  # another user's tokens: decided by tenancy (platform admins)
    now = tenancy().clock.now()
    return list_response([_token_dict(t, now) for t in tenancy().tokens(user)])


@bp.post("/api/v1/auth/tokens")
@permission(None)
def create_token() -> Any:
    """Create a named API token for automation: ``{"name", "expires_in"}``. The token is shown only here."""
    body = json_body()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is required (what the token is for)", field="name")
    if len(name) > 100:
        raise InvalidInput("name must have at most 100 characters", field="name")
    issued = tenancy().issue_token(current_principal().username, kind="named", name=name.strip(), ttl=_expires_in(body))
    out = {"id": issued.id, "name": issued.name, "token": issued.token, "expires_at": iso(issued.expires_at)}
    return jsonify(out), 201


@bp.delete("/api/v1/auth/tokens/<int:token_id>")
@permission(None)
def revoke_token(token_id: int) -> Any:
    """Revoke one of the caller's tokens (platform admins: anyone's)."""
    record = tenancy().revoke_token(path_id(token_id, "token"), by=current_principal())
    return jsonify(_token_dict(record, tenancy().clock.now()))


# -- console sessions (JSON) ----------------------------------------------------------------------
@bp.post("/api/v1/auth/login")
@public
def login_json() -> Any:
    """Log in the console with a session cookie: ``{"username","password"}`` -> user and CSRF token.

    JSON only (a cross-site HTML form cannot send ``application/json``), so this needs no
    pre-login CSRF token; the form login is ``POST /login``.
    """
    if not request.is_json:
        raise InvalidInput("send the credentials as JSON (Content-Type: application/json)")
    body = json_body()
    user = tenancy().login(body.get("username"), body.get("password"), client=client_address())
    sid = _login_session(user.name)
    return jsonify({"user": user.name, "csrf_token": csrf_for_session(sid)})


@bp.post("/api/v1/auth/logout")
@public
def logout_json() -> Any:
    """End the console session (or revoke the bearer token that calls this)."""
    if g.get("auth") == "session":
        tenancy().end_session(g.sid)
    elif g.get("auth") == "token":
        tenancy().revoke_token_value(access.bearer_token() or "")
    session.clear()
    return "", 204


# -- console sessions (HTML forms) ---------------------------------------------------------------
def _back_to_login(error: str) -> Any:
    query = {"error": error}
    nxt = request.form.get("next")
    if nxt and _safe_next(nxt) != "/":
        query["next"] = _safe_next(nxt)
    return redirect("/login?" + urlencode(query), code=303)


@bp.post("/login")
@public
def login_form() -> Any:
    """Form login: fields ``username``, ``password``, ``csrf_token``, optional ``next``.

    303 to ``next`` (a same-site path) or ``/`` on success; else 303 to
    ``/login?error=invalid|throttled|missing|expired``. The error names never say whether the
    user exists.
    """
    if g.get("auth") != "session" and not same_secret(request.form.get(CSRF_FIELD), session.get("pre_csrf")):
        return _back_to_login("expired")
    try:
        user = tenancy().login(request.form.get("username"), request.form.get("password"), client=client_address())
    except LoginThrottled:
        return _back_to_login("throttled")
    except InvalidInput:
        return _back_to_login("missing")
    except Unauthenticated:
        return _back_to_login("invalid")
    _login_session(user.name)
    return redirect(_safe_next(request.form.get("next")), code=303)


@bp.post("/logout")
@public
def logout_form() -> Any:
    """Form logout (with the session's ``csrf_token``): ends the session, 303 to ``/login``.

    After a single sign-on, the login page then links to the provider's end-session endpoint
    (web/api/sso.py says why a link and not a redirect).
    """
    id_token = session.get("oidc_id_token") if g.get("auth") == "session" else None
    if g.get("auth") == "session":
        tenancy().end_session(g.sid)
    session.clear()
    if id_token:
        from web.api.sso import LOGOUT_URL, end_session_link

        link = end_session_link(id_token)
        if link:
            session[LOGOUT_URL] = link
    return redirect("/login?logged_out=1", code=303)


# -- who am I ---------------------------------------------------------------------------------------
@bp.get("/api/v1/me")
@permission(None)
def me() -> Any:
    """The caller: user, platform role, workspaces and projects (with effective roles)."""
    principal = current_principal()
    user = tenancy().user(principal.username)
    visible = scope()
    projects = [
        {
            "namespace": namespace,
            "workspace": workspace,
            "role": role,
            "direct_role": principal.projects[namespace].value if namespace in principal.projects else None,
            "created": iso(visible.floor(namespace)),
        }
        for workspace, namespace, role in visible.projects()
    ]
    body: dict[str, Any] = {
        "user": principal.username,
        "display_name": user.display_name if user else "",
        "email": user.email if user else "",
        "platform_role": principal.platform_role.value,
        "auth": g.get("auth"),
        "workspaces": [{"name": ws, "role": role.value} for ws, role in sorted(principal.workspaces.items())],
        "projects": projects,
        "clusters": [{"name": c, "role": role.value} for c, role in sorted(principal.clusters.items())],
        "custom_roles": [{"role": c.role, "level": c.level, "target": c.target} for c in principal.custom],
        "cluster_permissions": {c: sorted(p) for c, p in sorted(visible.cluster_grants.items())},
    }
    if g.get("auth") == "session":
        body["csrf_token"] = csrf_for_session(g.sid)
    return jsonify(body)


@bp.put("/api/v1/me/password")
@permission(None)
def change_password() -> Any:
    """Change one's own password: ``{"current_password","new_password"}``; other sessions end."""
    body = json_body()
    principal = current_principal()
    tenancy().change_password(
        principal.username,
        body.get("current_password"),
        body.get("new_password"),
        keep_session=g.sid if g.get("auth") == "session" else None,
    )
    return "", 204
