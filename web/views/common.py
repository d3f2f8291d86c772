"""Helpers every console page uses: language, banners, flash results, role checks, services.

Pages call the same hub services as the JSON API (``hub().<area>``, typed) and reuse the API's
helpers where the API has them; nothing here decides who may see what — that stays in
``web.access`` and the tenancy service. What this module adds is presentation: a backend that
does not answer becomes a banner naming it (and the page answers 503), a stale cluster cache
becomes a banner with its ``stale_since``, and an action's outcome becomes a flash message
shown after the redirect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hub.collectors.cluster import ClusterService
from hub.errors import BackendUnavailable, HubError
from hub.scope import refusal
from web import i18n
from web.access import optional_principal, request_cluster, scope, tenancy
from web.util import hub

T = TypeVar("T")


# -- language ---------------------------------------------------------------------------------
def lang() -> str:
    """The language of this request (see web.i18n.choose)."""
    chosen = g.get("lang")
    if chosen is None:
        chosen = i18n.choose(request.args.get("lang"), request.cookies.get(i18n.COOKIE), request.accept_languages)
        g.lang = chosen
    return str(chosen)


def _(key: str, **params: Any) -> str:
    return i18n.translate(key, lang(), **params)


# -- services -----------------------------------------------------------------------------------


def banner(kind: str, text: str, **extra: Any) -> None:
    """Add a banner (``error``, ``warn``, ``info``) to the page being built."""
    g.setdefault("banners", []).append({"kind": kind, "text": text, **extra})


def backend_down(exc: BackendUnavailable) -> None:
    """Show a backend outage as a banner naming the backend; the page then answers 503."""
    prefix = f"{exc.backend} is unavailable: "
    detail = exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message
    banner("error", _("banner.backend_down", backend=exc.backend, detail=detail), backend=exc.backend)
    g.page_status = 503


def attempt(fn: Callable[[], T], default: T) -> T:
    """Run one backend read for a page; an outage becomes a banner and ``default``.

    Only BackendUnavailable is absorbed: a bad parameter (400/422) is also shown as a banner,
    while 401/403/404 propagate so the access rules keep their meaning on pages too.
    """
    try:
        return fn()
    except BackendUnavailable as exc:
        backend_down(exc)
    except HubError as exc:
        if exc.status in (401, 403, 404):
            raise
        banner("error", exc.message, field=exc.field)
        g.page_status = max(int(g.get("page_status", 200)), exc.status)
    return default


def require_cluster() -> ClusterService:
    """The cluster service of the page's cluster (``?cluster=``, the switcher's choice; none:
    the implicit one), or a BackendUnavailable naming the API server (shown as a banner) when
    that cluster cannot be reached at all; every other service is always there.

    An added cluster is the one refusal for a caller who may not pick it (unknown alike); its
    node pages also need the node permission on *that* cluster (the route's decorator checked
    the implicit one); namespaced pages were checked on the project of that cluster already."""
    h = hub()
    name = request_cluster()
    if name and name != h.clusters.implicit.name:
        view = scope()
        if not view.may_read_cluster(name) or name not in h.clusters.names():
            raise refusal("nodes:read")
        if not (request.view_args or {}).get("ns") and request.endpoint != "views.cluster.workloads":
            view.check_cluster("nodes:read", name)
        service = h.added_clusters.get(name)
        if service is None:
            backend = f"kubernetes API server of cluster {name}"
            raise BackendUnavailable(backend, h.cluster_errors.get(name, "not connected"))
        return service
    cluster = h.cluster
    if cluster is None:
        backend = "kubernetes API server"
        raise BackendUnavailable(backend, _("banner.not_configured", backend=backend))
    return cluster


def note_stale(body: Mapping[str, Any] | None) -> None:
    """A cluster answer read from a cache that lost the API server: say since when."""
    if body and body.get("stale_since") and not g.get("stale_noted"):
        g.stale_noted = True
        banner("warn", _("banner.stale", since=body["stale_since"]), stale_since=body["stale_since"])


# -- rendering ------------------------------------------------------------------------------------
def page(template: str, **context: Any) -> tuple[str, int]:
    """Render a console page with its banners; the status is 503 when a backend was down."""
    started = g.get("started")
    html = render_template(template, **context)
    if started is not None:
        g.render_ms = (time.perf_counter() - started) * 1000
    return html, int(g.get("page_status", 200))


def done(message: str, target: str, kind: str = "ok") -> Response:
    """After an action: remember its outcome for the next page and go there (post/redirect/get)."""
    flash(message, kind)
    return redirect(target, code=303)


def failed(exc: HubError, target: str) -> Response:
    """An action the hub refused: show its sentence (and the field at fault) on the next page."""
    text = exc.message + (f" ({exc.field})" if exc.field else "")
    flash(text, "error")
    return redirect(target, code=303)


def back(default: str) -> str:
    """Where an action's form came from (same-site paths only), else ``default``."""
    target = request.form.get("back") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return default


# -- roles ----------------------------------------------------------------------------------------
def can(permission: str, namespace: str | None = None, workspace: str | None = None) -> bool:
    """Whether the current user holds ``permission`` there: pages offer only such actions.

    The server still enforces every action on its own route; this only hides what would be
    refused.
    """
    principal = optional_principal()
    if principal is None:
        return False
    return bool(tenancy().can(principal, permission, namespace=namespace, workspace=workspace))


def is_admin() -> bool:
    principal = optional_principal()
    return bool(principal is not None and principal.is_platform_admin)


def visible_namespaces(permission: str = "namespaces:read", *, projects_only: bool = False) -> list[str]:
    """Namespaces the current user may use ``permission`` in: their projects', or for platform
    admins every project's plus (unless ``projects_only``) every other namespace of the cluster."""
    principal = optional_principal()
    if principal is None:
        return []
    svc = tenancy()
    caller = scope()
    if caller.all_namespaces:
        names = {p.namespace for p in svc.projects()}
        cluster = hub().cluster
        if cluster is not None and not projects_only:
            try:
                names |= {n.name for n in cluster.namespaces()}
            except HubError:
                pass
        return sorted(names)
    return caller.named(permission, None) or []


def url_with(endpoint: str, args: Mapping[str, Any] | None = None, **values: Any) -> str:
    """``url_for`` plus a query string of the non-empty ``args``."""
    base = url_for(endpoint, **values)
    query = {k: v for k, v in (args or {}).items() if v not in (None, "", [])}
    return f"{base}?{urlencode(query, doseq=True)}" if query else base
