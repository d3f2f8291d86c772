"""Route permissions: every route declares what it needs, and one hook enforces it.

A view without a declaration is refused (403) at request time and fails the route x role test,
so a forgotten check cannot ship. The declaration names a permission from
``hub.tenancy.roles`` and, for namespaced or workspace routes, which URL argument holds the
namespace or workspace it applies to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request, session

from hub.errors import Forbidden, Unauthenticated

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RouteAccess:
    permission: str | None  # None: any authenticated caller; the view scopes its own data
    namespace_arg: str | None = None
    workspace_arg: str | None = None
    public: bool = False


def permission(perm: str | None, *, namespace_arg: str | None = None, workspace_arg: str | None = None) -> Callable[[F], F]:
    """Declare the permission a view needs (``None``: authenticated, scoped inside the view)."""

    def mark(view: F) -> F:
        view.__kubehub_access__ = RouteAccess(perm, namespace_arg, workspace_arg)  # type: ignore[attr-defined]
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


def current_principal() -> Any:
    """The authenticated principal of this request (set by :func:`enforce`)."""
    principal = g.get("principal")
    if principal is None:
        raise Unauthenticated("log in or send an API token")
    return principal


def enforce() -> None:
    """before_request hook: authenticate, then check the route's declared permission."""
    endpoint = request.endpoint
    if endpoint is None:
        return  # 404/405 are answered by Flask's own routing errors
    if endpoint == "static":
        return
    access = access_of(endpoint)
    if access is None:
        raise Forbidden("this route declares no permission and is closed")
    hub = current_app.extensions["kubehub"]
    tenancy = hub.services.get("tenancy")
    g.principal = None
    if tenancy is not None:
        token = bearer_token()
        if token:
            g.principal = tenancy.principal_from_token(token)
            if g.principal is None:
                raise Unauthenticated("the API token is invalid, expired or revoked")
        elif session.get("sid"):
            g.principal = tenancy.principal_from_session(session["sid"])
    if access.public:
        return
    principal = current_principal()
    if access.permission is None:
        return
    namespace = (request.view_args or {}).get(access.namespace_arg) if access.namespace_arg else None
    workspace = (request.view_args or {}).get(access.workspace_arg) if access.workspace_arg else None
    tenancy.authorize(principal, access.permission, namespace=namespace, workspace=workspace)
