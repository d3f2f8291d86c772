"""Server-rendered console pages (HTML), over the same hub services as the JSON API.

``bp`` is the console's root blueprint: the shell (login page, overview, error pages, language
and timing hooks). Each area's pages live in their own module with their own blueprint,
nested under ``bp`` so that ``web/__init__.py`` registers the console with one entry:

- ``web.views.cluster``: nodes, workloads, pods;
- ``web.views.tenancy``: workspaces, projects, users, tokens, audit log;
- ``web.views.monitoring``: charts and rankings;
- ``web.views.logs``: log search;
- ``web.views.alerting``: alerts, policies, history, silences, backtests.

Every route declares its access with ``web.access`` like the API's; an anonymous browser
asking for a page is sent to the login page (see :func:`render_error`).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, g, redirect, render_template, request, session, url_for

from web import i18n
from web.access import optional_principal, permission, public, scope
from web.util import hub
from web.views import common
from web.views.common import attempt, can, is_admin, lang

bp = Blueprint("views", __name__)


# -- hooks shared by every page -------------------------------------------------------------------
@bp.app_context_processor
def _console_helpers() -> dict[str, Any]:
    return {
        "_": common._,
        "lang": lang,
        "languages": i18n.LANGUAGES,
        "can": can,
        "is_admin": is_admin,
        "url_with": common.url_with,
        "lang_url": _lang_url,
        "nav": _nav,
    }


@bp.app_template_filter("num")
def _num(value: Any, digits: int = 2) -> str:
    """A number for a table cell: thousands grouped, at most ``digits`` decimals, '–' for none."""
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:  # NaN
        return "–"
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:,.{digits}f}"


@bp.app_template_filter("human")
def _human(value: Any, unit: str = "") -> str:
    """A value in its unit as a person reads it: 0.42 ratio -> 42.0 %, 1.5e9 bytes -> 1.4 GiB."""
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:
        return "–"
    if unit == "ratio":
        return f"{number * 100:.1f} %"
    if unit in ("bytes", "bytes/s"):
        suffix = "/s" if unit == "bytes/s" else ""
        size = abs(number)
        for name in ("B", "KiB", "MiB", "GiB", "TiB"):
            if size < 1024 or name == "TiB":
                scaled = number / (1024 ** ("B", "KiB", "MiB", "GiB", "TiB").index(name))
                return f"{scaled:.1f} {name}{suffix}"
            size /= 1024
    if unit == "cores":
        return f"{number:.3f} cores" if number < 10 else f"{number:.1f} cores"
    if unit == "seconds":
        return f"{number * 1000:.1f} ms" if number < 1 else f"{number:.2f} s"
    if unit in ("count",):
        return _num(number, 1)
    return f"{_num(number, 3)} {unit}".strip()


@bp.after_app_request
def _remember_language_and_time(response: Any) -> Any:
    """Keep a ``?lang=`` choice in a cookie; report the server time of every answer.

    ``Server-Timing: app;dur=<ms>`` is what the browser's developer tools (and the e2e tests)
    read to see how long the hub itself spent on a page, network and rendering excluded.
    """
    chosen = i18n.normalise(request.args.get("lang"))
    if chosen and request.cookies.get(i18n.COOKIE) != chosen:
        response.set_cookie(i18n.COOKIE, chosen, max_age=365 * 86400, samesite="Lax", httponly=False)
    started = g.get("started")
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _lang_url(code: str) -> str:
    args = request.args.to_dict(flat=False)
    args["lang"] = [code]
    return f"{request.path}?{urlencode(args, doseq=True)}"


def _nav() -> list[dict[str, Any]]:
    """The navigation, showing only sections the user can open."""
    principal = optional_principal()
    if principal is None:
        return []
    admin = principal.is_platform_admin
    items: list[dict[str, Any]] = [{"key": "nav.overview", "endpoint": "views.overview"}]
    if admin or scope().cluster:  # cluster roles see the nodes too
        items.append({"key": "nav.nodes", "endpoint": "views.cluster.nodes"})
    items += [
        {"key": "nav.workspaces", "endpoint": "views.tenancy.workspaces"},
        {"key": "nav.workloads", "endpoint": "views.cluster.workloads"},
        {"key": "nav.monitoring", "endpoint": "views.monitoring.charts"},
        {"key": "nav.rankings", "endpoint": "views.monitoring.rankings"},
        {"key": "nav.logs", "endpoint": "views.logs.search"},
        {"key": "nav.alerts", "endpoint": "views.alerting.alerts"},
        {"key": "nav.policies", "endpoint": "views.alerting.policies"},
    ]
    if admin:
        items += [
            {"key": "nav.users", "endpoint": "views.tenancy.users"},
            {"key": "nav.audit", "endpoint": "views.tenancy.audit"},
            {"key": "nav.clusters", "endpoint": "views.clusters.clusters"},
        ]
    if len(hub().clusters.names()) > 1:  # the multi-cluster overview, for everyone who has a cluster
        items.append({"key": "nav.clusters_overview", "endpoint": "views.switcher.overview"})
    if admin or scope().may_cluster("monitoring:cluster"):
        items.append({"key": "nav.components", "endpoint": "views.components.component_health"})
    current = request.endpoint or ""
    section = _section(current)
    for item in items:
        item["active"] = current == item["endpoint"] or section == item["key"]
    return items


_SECTION_OF = {
    "views.cluster.node": "nav.nodes",
    "views.cluster.nodes": "nav.nodes",
    "views.tenancy.workspace": "nav.workspaces",
    "views.tenancy.workspaces": "nav.workspaces",
    "views.tenancy.project": "nav.workspaces",
    "views.tenancy.users": "nav.users",
    "views.roles.roles": "nav.users",
    "views.tenancy.audit": "nav.audit",
    "views.monitoring.charts": "nav.monitoring",
    "views.monitoring.rankings": "nav.rankings",
    "views.logs.search": "nav.logs",
    "views.alerting.policies": "nav.policies",
    "views.alerting.policy": "nav.policies",
    "views.alerting.policy_new": "nav.policies",
}


def _section(endpoint: str) -> str:
    if endpoint in _SECTION_OF:
        return _SECTION_OF[endpoint]
    if endpoint.startswith("views.cluster."):
        return "nav.workloads"
    if endpoint.startswith("views.alerting."):
        return "nav.alerts"
    return ""


# -- error pages ----------------------------------------------------------------------------------
def render_error(status: int, message: str) -> Any:
    """The console's error page (web/errors.py calls this for HTML requests).

    A browser that is not logged in (401 on a page it navigated to) goes to the login page
    and comes back afterwards; API clients and non-browser callers keep the plain 401.
    """
    if status == 401 and request.accept_mimetypes.accept_html and request.method == "GET":
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("views.login", next=target), code=302)
    titles = {401: "error.401", 403: "error.403", 404: "error.404", 503: "error.503"}
    return render_template(
        "error.html", status=status, message=message, title_key=titles.get(status, "error.other")
    ), status


# -- the shell's pages --------------------------------------------------------------------------------
LOGIN_ERRORS = {
    "invalid": "login.error.invalid",
    "throttled": "login.error.throttled",
    "missing": "login.error.missing",
    "expired": "login.error.expired",
    "sso": "login.error.sso",
}


@bp.get("/login")
@public
def login() -> Any:
    """The login form; it posts to ``POST /login`` (web/api/auth.py) with the CSRF token."""
    next_url = request.args.get("next") or "/"
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = "/"
    if optional_principal() is not None and not request.args.get("error"):
        return redirect(next_url, code=303)
    error = LOGIN_ERRORS.get(request.args.get("error", ""))
    # Single sign-on (web/api/sso.py): the button when configured, and after an SSO user's
    # logout a link to end the provider's session too.
    sso_name = hub().settings.oidc.provider_name if hub().oidc is not None else None
    sso_logout = session.pop("oidc_logout_url", None) if request.args.get("logged_out") else None
    return render_template(
        "login.html",
        next_url=next_url,
        error=error,
        logged_out=bool(request.args.get("logged_out")),
        sso_name=sso_name,
        sso_logout=sso_logout if isinstance(sso_logout, str) else None,
        ldap_enabled=hub().tenancy.directory is not None,  # the same form signs directory users in
    )


@bp.get("/")
@permission(None)
def overview() -> Any:
    """Cluster health, control plane, top-5 rankings and firing alerts, as far as the user sees.

    Inventory and alerts come from the hub's own state (fast); metric tiles and rankings are
    filled by the browser from the monitoring API, so a slow Prometheus never holds the page.
    """
    principal = optional_principal()
    admin = bool(principal and principal.is_platform_admin)
    nodes_summary = None
    if admin:
        nodes_summary = attempt(_nodes_summary, None)
    projects = visible_projects()
    alerts: list[dict[str, Any]] = []
    alerts_total = 0
    alerting = hub().alerting
    if alerting is not None:
        nothing: tuple[list[dict[str, Any]], int] = ([], 0)
        alerts, alerts_total = attempt(
            lambda: alerting.alerts(scope(), states=["firing", "pending", "nodata", "error"], limit=20),
            nothing,
        )
    no_replicas: list[dict[str, Any]] = []
    replicas = attempt(_replicas, no_replicas) if admin else no_replicas
    return common.page(
        "overview.html",
        admin=admin,
        replicas=replicas,
        nodes_summary=nodes_summary,
        projects=projects,
        alerts=alerts,
        alerts_total=alerts_total,
        namespaces=[p["namespace"] for p in projects],
    )


def _replicas() -> list[dict[str, Any]]:
    """The hub's replicas for admins: id, whether it holds the lease of the background work
    and since when, last heartbeat (hub/runtime/leadership.py writes them)."""
    from hub.timeutil import iso

    leadership = hub().leadership
    status = leadership.status()
    return [
        {
            "id": r.id,
            "leader": r.id == status.leader,
            "since": iso(status.since) if r.id == status.leader and status.since else None,
            "heartbeat": iso(r.heartbeat_at),
            "this": r.id == leadership.replica_id,
        }
        for r in leadership.replicas()
    ]


def _nodes_summary() -> dict[str, Any]:
    summary = common.require_cluster().node_summary()
    common.note_stale(summary)
    return summary


def visible_projects() -> list[dict[str, Any]]:
    """Projects the user reaches, with workspace and effective role (admins: all of them), as
    the caller's scope lists them."""
    principal = optional_principal()
    if principal is None:
        return []
    admin = principal.is_platform_admin
    return [
        {"namespace": namespace, "workspace": workspace, "role": role or ("platform-admin" if admin else None)}
        for workspace, namespace, role in scope().projects()
    ]


def _register_areas() -> None:
    """Nest each area's pages under the console blueprint (imported here to avoid a cycle)."""
    from web.views import (
        alerting,
        cluster,
        clusters,
        components,
        identity,
        logs,
        metric_words,
        monitoring,
        resources,
        roles,
        switcher,
        tenancy,
    )

    for module in (
        cluster,
        resources,
        clusters,
        switcher,
        tenancy,
        identity,
        roles,
        monitoring,
        components,
        metric_words,
        logs,
        alerting,
    ):
        bp.register_blueprint(module.bp)
    bp.before_request(switcher.follow_choice)  # after the app's authentication (web/__init__.py)


_register_areas()

__all__ = ["bp", "render_error", "visible_projects"]
