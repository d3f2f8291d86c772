"""Route permissions: every route declares what it needs, and one hook enforces it.

A view without a declaration is refused (403) at request time and fails the route x role test,
so a forgotten check cannot ship. The declaration names a permission from
``hub.tenancy.roles`` and, for namespaced or workspace routes, which URL argument holds the
namespace or workspace it applies to.

Authentication: ``Authorization: Bearer <token>`` (API tokens; no CSRF needed, a cross-site
page cannot set that header) or the console's session cookie, which holds only a server-side
session id. Session-authenticated state-changing requests must carry the session's CSRF token
in the ``X-CSRF-Token`` header or a ``csrf_token`` form field.

Views pass the caller's :func:`scope` to the services, which apply it (a namespace named in
the query or body outside it is the one 403); a view that acts on one namespace of its body
itself uses :func:`require`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, has_request_context, request, session

from hub.errors import Forbidden, NotFound, Unauthenticated
from hub.scope import project_key
from hub.tenancy.credentials import csrf_for_session, same_secret
from hub.tenancy.roles import ALL_PERMISSIONS
from hub.tenancy.scope import Principal, Scope
from hub.tenancy.service import TenancyService
from web import params

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class RouteAccess:
    permission: str | None  # None: any authenticated caller; the view scopes its own data
    namespace_arg: str | None = None
    workspace_arg: str | None = None
    public: bool = False


def permission(
    perm: str | None, *, namespace_arg: str | None = None, workspace_arg: str | None = None
) -> Callable[[F], F]:
    """Declare the permission a view needs (``None``: authenticated, scoped inside the view).

    A project permission without ``namespace_arg`` (or a workspace one without
    ``workspace_arg``) is held only by platform admins, because there is nothing to hold it
    on; a view taking its namespace from the body declares ``None`` and calls :func:`require`.
    An unknown permission string fails at import time, so a typo cannot deny (or allow)
    silently.
    """
    if perm is not None and perm not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {perm!r}; see hub/tenancy/roles.py")

    def mark(view: F) -> F:
        view.__kubehub_access__ = RouteAccess(perm, namespace_arg, workspace_arg)  # type: ignore[attr-defined]
        return view

    return mark


def audited_read(action: str) -> Callable[[F], F]:
    """Mark a read (GET) of tenant data whose refusals are audited as ``action`` ``denied``,
    the way a log search outside the caller's scope is: the view audits its own ok and failed
    reads, and :func:`audit_unsafe_request` records the 401/403 answers the permission check
    gave before the view ran."""

    def mark(view: F) -> F:
        view.__kubehub_audited_read__ = action  # type: ignore[attr-defined]
        return view

    return mark


def public(view: F) -> F:
    """Declare a view open to anonymous callers (health, login, static)."""
    view.__kubehub_access__ = RouteAccess(None, public=True)  # type: ignore[attr-defined]
    return view


def access_of(endpoint: str) -> RouteAccess | None:
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "__kubehub_access__", None)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def tenancy() -> TenancyService:
    """The tenancy service of the current app."""
    service: TenancyService = current_app.extensions["kubehub"].tenancy
    return service


def current_principal() -> Principal:
    """The authenticated principal of this request (set by :func:`enforce`)."""
    principal = g.get("principal")
    if principal is None:
        raise Unauthenticated("log in or send an API token")
    return principal


def optional_principal() -> Principal | None:
    """The principal if the caller is logged in, else None (for pages that render either way)."""
    return g.get("principal")


def require(perm: str, *, namespace: str | None = None, workspace: str | None = None) -> Principal:
    """Check a permission on a namespace or workspace taken from the query or body, in the
    request's cluster exactly as :func:`enforce` checks a route's own ``ns`` (the project of that
    name in ``?cluster=``, never the implicit cluster's namesake)."""
    principal = current_principal()
    cluster = request_cluster()
    if namespace is not None and cluster:
        namespace = project_key(cluster, namespace, tenancy().default_cluster)
    tenancy().authorize(principal, perm, namespace=namespace, workspace=workspace, cluster=cluster or None)
    return principal


def request_cluster() -> str:
    """The cluster this request is about: ``?cluster=`` ('' = the implicit cluster). The one
    place a request names its cluster; a header or a body field never picks one (a body's
    ``cluster`` that differs is refused by the routes that read bodies), so a tenant cannot
    reach another cluster's namespace of the same name by moving the name elsewhere.

    Read through :func:`web.params.request_clusters` (a cluster name, once; 400 naming
    ``cluster`` otherwise). On the log search, whose ``cluster`` may list several, a list is
    '' here: that service takes each listed cluster's view itself."""
    if not has_request_context():
        return ""
    named = params.request_clusters()
    return named[0] if len(named) == 1 else ""


def check_known_clusters(principal: Principal) -> None:
    """A named cluster the hub does not know is 404 naming ``cluster``, for the callers who may
    reach every cluster (platform admins), after the route's permission check: for anyone else
    that check (or the route's service) already refused it exactly as a foreign cluster, so an
    unknown name never tells a tenant which clusters exist."""
    named = params.request_clusters()
    if not named:
        return
    service = tenancy()
    known = set(service.known_clusters())
    unknown = [n for n in named if n not in known]
    if unknown and service.scope(principal).all_namespaces:
        raise NotFound(f"no cluster {unknown[0]!r}", field="cluster")


def scope() -> Scope:
    """The caller's scope for this request (built once, from the tenancy service's cache), as
    the view of the request's cluster (:func:`request_cluster`, ``Scope.for_cluster``); the
    services take it and enforce it, the web layer only passes it through."""
    cached: Scope | None = g.get("scope")
    if cached is None:
        cached = tenancy().scope(current_principal()).for_cluster(request_cluster() or None)
        g.scope = cached
    return cached


def keyed_scope() -> Scope:
    """The caller's scope over every cluster with namespaces named by project key
    (``Scope.keyed``), for the areas whose rows are keyed by project (alerting): a request's
    ``?cluster=`` never turns one cluster's namespace into another's there; the namespaced
    routes get the project key as ``ns`` (:func:`keyed_namespace`)."""
    return tenancy().scope(current_principal()).keyed


def keyed_namespace() -> None:
    """before_request of the areas keyed by project: ``ns`` of ``?cluster=X`` becomes the
    project key ``X/ns`` (the implicit cluster: ``ns`` as it is). Runs after :func:`enforce`,
    which checked the permission on that same project. A cluster the hub does not know is 404
    naming it (only callers who may reach every project get this far with one: for the others
    the permission check already refused it, as it refuses a foreign cluster)."""
    cluster = request_cluster()
    if cluster and request.view_args and "ns" in request.view_args:
        service = tenancy()
        if cluster not in service.known_clusters():
            raise NotFound(f"no cluster {cluster!r}", field="cluster")
        request.view_args["ns"] = project_key(cluster, request.view_args["ns"], service.default_cluster)


def audit(action: str, target: str, result: str = "ok", detail: dict[str, Any] | None = None) -> None:
    """Audit an action of the current caller (log searches, exports, writes with detail)."""
    principal = g.get("principal")
    tenancy().audit(principal.username if principal else "anonymous", action, target, result, detail)


# -- CSRF ------------------------------------------------------------------------------------
def csrf_token() -> str:
    """The CSRF token to embed in forms (``csrf_token`` field) or send as ``X-CSRF-Token``.

    For a logged-in session it is derived from the session id; before login (the login form)
    it is a random value kept in the signed session cookie, which a cross-site page can
    neither read nor, with SameSite=Lax, make the browser send with a POST.
    """
    if g.get("auth") == "session":
        return csrf_for_session(g.sid)
    value = session.get("pre_csrf")
    if not value:
        value = secrets.token_urlsafe(32)
        session["pre_csrf"] = value
    return str(value)


def sent_csrf() -> str | None:
    return request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)


def _check_csrf() -> None:
    if not same_secret(sent_csrf(), csrf_for_session(g.sid)):
        raise Forbidden(f"missing or wrong CSRF token; send the {CSRF_HEADER} header or the {CSRF_FIELD} form field")


# -- the hook ----------------------------------------------------------------------------------
def authenticate() -> None:
    """Find the caller: bearer token first, else the session cookie.

    Sets ``g.principal``, ``g.auth`` ("token", "session", "bad-token" or None) and ``g.sid``.
    A bad token is only an error on non-public routes (a stale token must not break /healthz).
    """
    g.principal = None
    g.auth = None
    g.sid = None
    service = tenancy()
    g.audit_mark = service.audit_count()
    token = bearer_token()
    if token:
        g.principal = service.principal_from_token(token)
        if g.principal is None:
            g.auth = "bad-token"
        else:
            g.auth = "token"
        return
    sid = session.get("sid")
    if sid:
        principal = service.principal_from_session(sid)
        if principal is None:
            session.pop("sid", None)  # expired or logged out elsewhere: forget it
        else:
            g.principal, g.auth, g.sid = principal, "session", sid


def enforce() -> None:
    """before_request hook: authenticate, check CSRF, then check the route's declared permission."""
    endpoint = request.endpoint
    if endpoint is None:
        return  # 404/405 are answered by Flask's own routing errors
    if endpoint == "static":
        return
    access = access_of(endpoint)
    if access is None:
        raise Forbidden("this route declares no permission and is closed")
    authenticate()
    if g.auth == "session" and request.method not in SAFE_METHODS:
        _check_csrf()
    if access.public:
        return
    if g.auth == "bad-token":
        raise Unauthenticated("the API token is invalid, expired or revoked")
    principal = current_principal()
    if access.permission is None:
        check_known_clusters(principal)
        return
    args = request.view_args or {}
    namespace = args.get(access.namespace_arg) if access.namespace_arg else None
    workspace = args.get(access.workspace_arg) if access.workspace_arg else None
    if namespace is not None and request_cluster():
        # The project of that name in the named cluster (its own key), never the implicit one's.
        namespace = project_key(request_cluster(), namespace, tenancy().default_cluster)
    tenancy().authorize(
        principal, access.permission, namespace=namespace, workspace=workspace, cluster=request_cluster() or None
    )
    check_known_clusters(principal)


def audit_unsafe_request(response: Any) -> Any:
    """after_request hook: every state-changing request leaves an audit entry.

    A view (or service) that audited itself with detail is left alone; anything else (another
    area's write, a denied or failed attempt) gets a generic entry with method, path and status.
    Anonymous requests are not recorded, so unauthenticated floods cannot fill the log.
    """
    if request.endpoint in (None, "static"):
        return response
    principal = g.get("principal")
    service = tenancy()
    if principal is None:
        return response
    if request.method in SAFE_METHODS:
        view = current_app.view_functions.get(request.endpoint)
        action = getattr(view, "__kubehub_audited_read__", None)
        if action is not None and response.status_code in (401, 403):
            args = request.view_args or {}
            access = access_of(request.endpoint)
            ns = args.get(access.namespace_arg) if access is not None and access.namespace_arg else None
            refused: dict[str, Any] = {"endpoint": request.endpoint, "status": response.status_code, **args}
            if ns:
                refused["namespace"] = ns
            service.audit(principal.username, action, request.path, "denied", refused)
        return response
    if service.audit_count() != g.get("audit_mark", -1):
        return response
    status = response.status_code
    result = "ok" if status < 400 else ("denied" if status in (401, 403) else "failed")
    detail: dict[str, Any] = {"endpoint": request.endpoint, "status": status}
    access = access_of(request.endpoint)
    if access is not None and access.namespace_arg:
        detail["namespace"] = (request.view_args or {}).get(access.namespace_arg)
    service.audit(principal.username, f"http.{request.method.lower()}", request.path, result, detail)
    return response
