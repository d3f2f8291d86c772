"""Console pages for workspaces, projects, members, users, API tokens and the audit log.

Every write calls the tenancy service, which validates, audits and refuses on its own; the
routes declare the same permissions as ``web/api/tenancy.py``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request, url_for

from hub.collectors.logs.collection import DEFAULT, parse_settings
from hub.collectors.logs.collection_store import LogCollectionStore, audit_detail
from hub.errors import HubError, InvalidInput, NotFound, Unprocessable
from hub.scope import project_key, split_key
from hub.store.audit import AuditFilter
from hub.tenancy.roles import ProjectRole, WorkspaceRole
from hub.timeutil import parse_duration
from web.access import current_principal, permission, request_cluster, scope, tenancy
from web.params import MAX_OFFSET, integer, path_id, time
from web.views import common
from web.views.common import _, back, can, done, failed, page

bp = Blueprint("tenancy", __name__)


@bp.app_template_filter("jsontext")
def jsontext(value: Any) -> str:
    """Audit details as readable JSON: Chinese keywords stay Chinese (the page escapes HTML)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


WORKSPACE_ROLES = [r.value for r in WorkspaceRole]
PROJECT_ROLES = [r.value for r in ProjectRole]


# -- workspaces ----------------------------------------------------------------------------------
@bp.get("/workspaces")
@permission(None)
def workspaces() -> Any:
    """Workspaces the user has a role in (admins: all), each with the projects the user reaches."""
    principal = current_principal()
    svc = tenancy()
    rows = []
    for ws in svc.workspaces_of(principal):
        projects = [
            {"namespace": record.namespace, "role": role or ""}
            for record, role in svc.visible_project_records(scope(), ws.name)
        ]
        rows.append(
            {
                "name": ws.name,
                "description": ws.description,
                "role": principal.workspaces.get(ws.name, ""),
                "projects": projects,
            }
        )
    # A member of projects only (no workspace role) still sees where their projects live.
    return page("workspaces.html", workspaces=rows, projects=_projects_without_workspace_role(principal, rows))


def _projects_without_workspace_role(principal: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    listed = {p["namespace"] for row in rows for p in row["projects"]}
    from web.views import visible_projects

    return [p for p in visible_projects() if p["namespace"] not in listed]


@bp.post("/workspaces")
@permission("workspaces:create")
def workspace_create() -> Any:
    form = request.form
    name = (form.get("name") or "").strip()
    try:
        tenancy().create_workspace(
            name,
            description=form.get("description", ""),
            admin=form.get("admin") or None,
            actor=current_principal().username,
        )
    except HubError as exc:
        return failed(exc, url_for(".workspaces"))
    return done(_("workspaces.created", name=name), url_for(".workspace", ws=name))


@bp.get("/workspaces/<ws>")
@permission("workspaces:read", workspace_arg="ws")
def workspace(ws: str) -> Any:
    """A workspace: its projects (those the user reaches), members, and the admin's forms."""
    svc = tenancy()
    record = svc.workspace(ws)
    projects = []
    # Every cluster's projects, by project key (an added cluster's is cluster/ns), each linked
    # with its cluster: the request cluster's view alone never held an added cluster's keys.
    for p, role in svc.visible_project_records(svc.scope(current_principal()).keyed, ws):
        in_cluster, name = split_key(p.namespace)
        projects.append({"namespace": name, "cluster": in_cluster or None, "created": p.created, "role": role or ""})
    may_create = can("projects:create", workspace=ws)
    members = None
    if can("workspace-members:read", workspace=ws):
        members = [{"user": u, "role": r.value} for u, r in svc.workspace_members(ws)]
    return page(
        "workspace.html",
        ws=ws,
        record=record,
        projects=projects,
        members=members,
        roles=WORKSPACE_ROLES,
        may_members=can("workspace-members:write", workspace=ws),
        may_create=may_create,
        # A cluster select only when the workspace is granted clusters beside the implicit one:
        # those only (the implicit one first); the create route validates the choice again.
        clusters=svc.workspace_clusters(ws) if may_create and record is not None else [],
        implicit=svc.default_cluster,
    )


@bp.post("/workspaces/<ws>/projects")
@permission("projects:create", workspace_arg="ws")
def project_create(ws: str) -> Any:
    """Create a project in the form's cluster (none: the implicit one). The choice goes through
    the tenancy service's own check (a cluster the workspace is not granted is 422 naming
    ``cluster``), as the API's does; a ``?cluster=`` differing from it is refused likewise."""
    namespace = (request.form.get("namespace") or "").strip()
    chosen = (request.form.get("cluster") or "").strip()
    asked = request_cluster()
    try:
        if asked and chosen and chosen != asked:
            raise Unprocessable(_("projects.cluster_differs"), field="cluster")
        in_cluster = chosen or asked
        if in_cluster == tenancy().default_cluster:
            in_cluster = ""
        tenancy().create_project(ws, namespace, actor=current_principal().username, cluster=in_cluster or None)
    except HubError as exc:
        return failed(exc, url_for(".workspace", ws=ws))
    return done(_("projects.created", name=namespace), url_for(".project", ns=namespace, cluster=in_cluster or None))


@bp.post("/workspaces/<ws>/members")
@permission("workspace-members:write", workspace_arg="ws")
def workspace_member(ws: str) -> Any:
    """Add or change a member (role), or remove one (role empty)."""
    user = (request.form.get("user") or "").strip()
    role = request.form.get("role") or None
    try:
        if not user:
            raise InvalidInput(_("members.user_required"), field="user")
        tenancy().set_workspace_member(ws, user, role, actor=current_principal().username)
    except HubError as exc:
        return failed(exc, url_for(".workspace", ws=ws))
    key = "members.set" if role else "members.removed"
    return done(_(key, user=user, role=role or ""), url_for(".workspace", ws=ws))


# -- projects ------------------------------------------------------------------------------------
def _key(ns: str) -> str:
    """The project ``ns`` of the request's ``?cluster=``: its key, the one web.access checked the
    route's permission on (acting on the implicit cluster's namesake instead would let a tenant
    of X/ns change another tenant's ns)."""
    return project_key(request_cluster(), ns, tenancy().default_cluster)


@bp.get("/projects/<ns>")
@permission("namespaces:read", namespace_arg="ns")
def project(ns: str) -> Any:
    """A project: links to its workloads, logs, charts and policies, and its members."""
    svc = tenancy()
    key = _key(ns)
    record = svc.project(key)
    members = [{"user": u, "role": r.value} for u, r in svc.project_members(key)] if can("members:read", key) else None
    return page(
        "project.html",
        ns=ns,
        cluster=request_cluster() or None,
        record=record,
        members=members,
        roles=PROJECT_ROLES,
        may_members=can("members:write", namespace=key),
        may_delete=record is not None and can("projects:delete", namespace=key, workspace=record.workspace),
        collection=(LogCollectionStore(common.hub().db).get(key) or DEFAULT) if can("logs:read", key) else None,
        max_retention=common.hub().settings.logs.retention_days,
        may_collection=can("log-collection:write", namespace=key),
    )


@bp.post("/projects/<ns>/log-collection")
@permission("log-collection:write", namespace_arg="ns")
def project_log_collection(ns: str) -> Any:
    """Save the project's log collection settings (the API's rule and audit)."""
    form = request.form
    retention = (form.get("retention_days") or "").strip()
    body: dict[str, Any] = {
        "enabled": form.get("enabled") == "on",
        "include": form.get("include", ""),
        "exclude": form.get("exclude", ""),
    }
    try:
        if retention:
            if not retention.isdigit():
                raise InvalidInput(_("logcollection.retention_number"), field="retention_days")
            body["retention_days"] = int(retention)
        settings = parse_settings(body, max_retention_days=common.hub().settings.logs.retention_days)
        actor = current_principal().username
        key = _key(ns)  # the project the permission was checked on, never the implicit namesake
        LogCollectionStore(common.hub().db).put(key, settings, actor=actor, now=common.hub().clock.now())
        tenancy().audit(actor, "logs.collection", f"namespace/{key}", "ok", audit_detail(key, settings))
    except HubError as exc:
        return failed(exc, url_for(".project", ns=ns, cluster=request_cluster() or None))
    return done(_("logcollection.saved"), url_for(".project", ns=ns, cluster=request_cluster() or None))


@bp.get("/workspaces/<ws>/projects/<ns>/delete")
@permission("projects:delete", namespace_arg="ns", workspace_arg="ws")
def project_delete_preview(ws: str, ns: str) -> Any:
    """What deleting the project takes with it, and the typed-confirmation form."""
    record = tenancy().project(_key(ns))
    if record is None or record.workspace != ws:
        return failed(NotFound(f"no project {ns} in workspace {ws}"), url_for(".workspace", ws=ws))
    h = common.hub()
    in_cluster = request_cluster()
    added = in_cluster and in_cluster != h.clusters.implicit.name
    cluster = h.added_clusters.get(in_cluster) if added else h.cluster
    contents: dict[str, Any] | None = None
    error = ""
    if cluster is not None:
        try:
            contents = cluster.namespace_contents(ns)
        except HubError as exc:
            error = exc.message
    if added and cluster is None:
        error = f"kubernetes API server of cluster {in_cluster} is unavailable"
    return page(
        "project_delete.html",
        ws=ws,
        ns=ns,
        cluster=in_cluster or None,
        confirm=_key(ns),
        contents=contents,
        error=error,
    )


@bp.post("/workspaces/<ws>/projects/<ns>/delete")
@permission("projects:delete", namespace_arg="ns", workspace_arg="ws")
def project_delete(ws: str, ns: str) -> Any:
    """Delete the project and its namespace when the name is typed back."""
    key = _key(ns)
    record = tenancy().project(key)
    try:
        if record is None or record.workspace != ws:
            raise NotFound(f"no project {ns} in workspace {ws}")
        tenancy().delete_project(key, actor=current_principal().username, confirm=request.form.get("confirm"))
    except HubError as exc:
        return failed(exc, url_for(".project_delete_preview", ws=ws, ns=ns, cluster=request_cluster() or None))
    return done(_("projects.deleted", name=ns), url_for(".workspace", ws=ws))


@bp.post("/projects/<ns>/members")
@permission("members:write", namespace_arg="ns")
def project_member(ns: str) -> Any:
    user = (request.form.get("user") or "").strip()
    role = request.form.get("role") or None
    try:
        if not user:
            raise InvalidInput(_("members.user_required"), field="user")
        tenancy().set_project_member(_key(ns), user, role, actor=current_principal().username)
    except HubError as exc:
        return failed(exc, url_for(".project", ns=ns, cluster=request_cluster() or None))
    key = "members.set" if role else "members.removed"
    return done(_(key, user=user, role=role or ""), url_for(".project", ns=ns, cluster=request_cluster() or None))


# -- users (platform admins) -------------------------------------------------------------------------
# Users per page of /users: a platform of 1,000 users rendered whole took 0.7 s of server time
# on the scale sandbox (docs/scale.md); a page of 100 keeps it within the console's budget.
USERS_PAGE = 100


@bp.get("/users")
@permission("users:read")
def users() -> Any:
    svc = tenancy()
    offset = integer(request.args, "from", 0, lo=0, hi=MAX_OFFSET, lenient=True)
    everyone = svc.users()  # by name
    rows = []
    for user in everyone[offset : offset + USERS_PAGE]:
        ws_roles, ns_roles = svc.memberships_of(user.name)
        rows.append(
            {
                "user": user,
                "workspaces": {k: v.value for k, v in ws_roles.items()},
                "projects": {k: v.value for k, v in ns_roles.items()},
            }
        )
    return page(
        "users.html", users=rows, may_write=can("users:write"), offset=offset, size=USERS_PAGE, total=len(everyone)
    )


@bp.post("/users")
@permission("users:write")
def user_create() -> Any:
    form = request.form
    name = (form.get("name") or "").strip()
    try:
        tenancy().create_user(
            name,
            form.get("password") or "",
            platform_role=form.get("platform_role") or "regular",
            display_name=form.get("display_name", ""),
            email=form.get("email", ""),
            actor=current_principal().username,
        )
    except HubError as exc:
        return failed(exc, url_for(".users"))
    return done(_("users.created", name=name), url_for(".users"))


@bp.post("/users/<name>/<any(disable, enable):action>")
@permission("users:write")
def user_toggle(name: str, action: str) -> Any:
    try:
        tenancy().update_user(name, disabled=action == "disable", actor=current_principal().username)
    except HubError as exc:
        return failed(exc, url_for(".users"))
    return done(_("users.disabled" if action == "disable" else "users.enabled", name=name), url_for(".users"))


# -- own API tokens -------------------------------------------------------------------------------
@bp.get("/tokens")
@permission(None)
def tokens() -> Any:
    """The user's API tokens (never their values) and a form to make one."""
    return _tokens_page(None)


def _tokens_page(issued: Any) -> Any:
    svc = tenancy()
    items = [t for t in svc.tokens(current_principal().username) if t.kind == "named"]
    return page("tokens.html", tokens=items, issued=issued)


@bp.post("/tokens")
@permission(None)
def token_create() -> Any:
    """Make a token and show its value on this one page (it is never shown again)."""
    name = (request.form.get("name") or "").strip()
    days = (request.form.get("expires_in") or "").strip()
    try:
        if not name:
            raise InvalidInput(_("tokens.name_required"), field="name")
        ttl = parse_duration(days, field="expires_in") if days else None
        issued = tenancy().issue_token(current_principal().username, kind="named", name=name, ttl=ttl)
    except HubError as exc:
        return failed(exc, url_for(".tokens"))
    return _tokens_page(issued)


@bp.post("/tokens/<int:token_id>/revoke")
@permission(None)
def token_revoke(token_id: int) -> Any:
    try:
        tenancy().revoke_token(path_id(token_id, "token"), by=current_principal())
    except HubError as exc:
        return failed(exc, url_for(".tokens"))
    return done(_("tokens.revoked"), back(url_for(".tokens")))


# -- audit (platform admins) -------------------------------------------------------------------------
@bp.get("/audit")
@permission("audit:read")
def audit() -> Any:
    args = request.args
    size = 100
    offset = integer(args, "from", 0, lo=0, hi=MAX_OFFSET, lenient=True)

    def read() -> tuple[list[Any], int]:
        flt = AuditFilter(
            actor=args.get("actor") or None,
            action=args.get("action") or None,
            result=args.get("result") or None,
            namespace=args.get("namespace") or None,
            start=time(args, "start"),
            end=time(args, "end"),
        )
        result: tuple[list[Any], int] = tenancy().audit_log(scope(), flt, offset=offset, limit=size)
        return result

    empty: tuple[list[Any], int] = ([], 0)
    entries, total = common.attempt(read, empty)
    return page("audit.html", entries=entries, total=total, offset=offset, size=size, args=args)
