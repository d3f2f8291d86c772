"""Tenancy endpoints: users, workspaces, projects, memberships and the audit log (API.md "Tenancy").

Authorization is declared per route (web.access) and decided by the tenancy service. Lists are
narrowed to what the caller may see; a name the caller may not see answers the same 403 whether
it exists or not (that happens in web.access before these views run).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from hub.errors import BackendUnavailable, InvalidInput, NotFound, Unprocessable
from hub.scope import split_key
from hub.store.audit import AuditFilter
from hub.timeutil import iso
from web import params
from web.access import current_principal, keyed_namespace, permission, request_cluster, scope, tenancy
from web.util import hub, int_param, json_body, list_response

bp = Blueprint("api_tenancy", __name__, url_prefix="/api/v1")
# ?cluster=X: a route's ns is the project X/ns, the one web.access checked the permission on
# (without it, a project's routes acted on the implicit cluster's namesake of another tenant).
bp.before_request(keyed_namespace)

_USER_FIELDS = {"display_name", "email", "platform_role", "disabled", "password"}


def _user_dict(user: Any) -> dict[str, Any]:
    return {
        "name": user.name,
        "display_name": user.display_name,
        "email": user.email,
        "platform_role": user.platform_role,
        "disabled": user.disabled,
        "source": user.source,  # local, ldap or oidc (docs/tenancy.md "Sign-in methods")
        "created_at": iso(user.created_at),
        "last_login_at": iso(user.last_login_at) if user.last_login_at else None,
    }


def _project_dict(record: Any, role: str | None = None) -> dict[str, Any]:
    cluster, namespace = split_key(record.namespace)  # an added cluster's project: <cluster>/<ns>
    out = {
        "namespace": namespace,
        "cluster": cluster or tenancy().default_cluster,
        "workspace": record.workspace,
        "display_name": getattr(record, "display_name", ""),
        "created": iso(record.created),
        "created_by": getattr(record, "created_by", ""),
    }
    if role is not None:
        out["role"] = role
    return out


def _workspace_dict(ws: Any) -> dict[str, Any]:
    return {
        "name": ws.name,
        "description": ws.description,
        "created_at": iso(ws.created_at),
        "created_by": ws.created_by,
    }


def _only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidInput(f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}", field=key)


def _role_of(body: dict[str, Any]) -> Any:
    """The role of a membership PUT: a non-empty string (removing is DELETE; a null role must
    not reach the service, where None means "remove")."""
    role = body.get("role")
    if not isinstance(role, str) or not role:
        raise InvalidInput("role is required: a role name such as admin, operator or viewer", field="role")
    return role


def _visible_projects(workspace: str) -> list[dict[str, Any]]:
    return [_project_dict(record, role) for record, role in tenancy().visible_project_records(scope(), workspace)]


# -- users ---------------------------------------------------------------------------------------
@bp.get("/users")
@permission("users:read")
def list_users() -> Any:
    """Every user (platform admins)."""
    return list_response([_user_dict(u) for u in tenancy().users()])


@bp.post("/users")
@permission("users:write")
def create_user() -> Any:
    """Create a user: ``{"name","password","platform_role","display_name","email"}``."""
    body = json_body()
    _only_fields(body, _USER_FIELDS | {"name"})
    user = tenancy().create_user(
        body.get("name"),
        body.get("password"),
        platform_role=body.get("platform_role", "regular"),
        display_name=body.get("display_name", ""),
        email=body.get("email", ""),
        actor=current_principal().username,
    )
    return jsonify(_user_dict(user)), 201


@bp.get("/users/<name>")
@permission("users:read")
def get_user(name: str) -> Any:
    """One user with their direct workspace and project memberships."""
    user = tenancy().user(name)
    if user is None:
        raise NotFound(f"no user {name}")
    workspaces, projects = tenancy().memberships_of(name)
    body = _user_dict(user)
    body["workspaces"] = [{"name": w, "role": r.value} for w, r in sorted(workspaces.items())]
    body["projects"] = [{"namespace": n, "role": r.value} for n, r in sorted(projects.items())]
    return jsonify(body)


@bp.patch("/users/<name>")
@permission("users:write")
def update_user(name: str) -> Any:
    """Change a user's display name, email, platform role, password or ``disabled`` flag."""
    body = json_body()
    _only_fields(body, _USER_FIELDS)
    user = tenancy().update_user(name, actor=current_principal().username, **body)
    return jsonify(_user_dict(user))


@bp.delete("/users/<name>")
@permission("users:write")
def delete_user(name: str) -> Any:
    """Delete a user with their memberships, sessions and tokens (never the last platform admin)."""
    tenancy().delete_user(name, actor=current_principal().username)
    return "", 204


# -- workspaces ------------------------------------------------------------------------------------
@bp.get("/workspaces")
@permission(None)
def list_workspaces() -> Any:
    """Workspaces the caller holds a role in (platform admins: all), with the caller's role."""
    principal = current_principal()
    items = []
    for ws in tenancy().workspaces_of(principal):
        item = _workspace_dict(ws)
        role = principal.workspaces.get(ws.name)
        item["role"] = role.value if role else None
        items.append(item)
    return list_response(items)


@bp.post("/workspaces")
@permission("workspaces:create")
def create_workspace() -> Any:
    """Create a workspace: ``{"name","description","admin"}`` (``admin``: a user made its workspace admin)."""
    body = json_body()
    _only_fields(body, {"name", "description", "admin"})
    ws = tenancy().create_workspace(
        body.get("name"),
        description=body.get("description", ""),
        admin=body.get("admin"),
        actor=current_principal().username,
    )
    return jsonify(_workspace_dict(ws)), 201


@bp.get("/workspaces/<ws>")
@permission("workspaces:read", workspace_arg="ws")
def get_workspace(ws: str) -> Any:
    """One workspace with the projects the caller may see in it (and its members, if allowed)."""
    record = tenancy().workspace(ws)
    if record is None:
        raise NotFound(f"no workspace {ws}")
    body = _workspace_dict(record)
    body["projects"] = _visible_projects(ws)
    if tenancy().can(current_principal(), "workspace-members:read", workspace=ws):
        body["members"] = [{"user": u, "role": r.value} for u, r in tenancy().workspace_members(ws)]
    return jsonify(body)


@bp.delete("/workspaces/<ws>")
@permission("workspaces:delete", workspace_arg="ws")
def delete_workspace(ws: str) -> Any:
    """Delete an empty workspace (409 while it has projects)."""
    tenancy().delete_workspace(ws, actor=current_principal().username)
    return "", 204


@bp.get("/workspaces/<ws>/clusters")
@permission("workspaces:read", workspace_arg="ws")
def list_workspace_clusters(ws: str) -> Any:
    """The clusters the workspace's projects may live in: the implicit one and its grants."""
    if tenancy().workspace(ws) is None:
        raise NotFound(f"no workspace {ws}")
    return list_response([{"name": c} for c in tenancy().workspace_clusters(ws)])


@bp.put("/workspaces/<ws>/clusters/<cluster>")
@permission("workspaces:create")  # platform admins: they create workspaces
def grant_workspace_cluster(ws: str, cluster: str) -> Any:
    """Grant the workspace a cluster (platform admins; idempotent)."""
    tenancy().grant_cluster(ws, cluster, actor=current_principal().username)
    return list_response([{"name": c} for c in tenancy().workspace_clusters(ws)])


@bp.delete("/workspaces/<ws>/clusters/<cluster>")
@permission("workspaces:create")  # platform admins: they create workspaces
def revoke_workspace_cluster(ws: str, cluster: str) -> Any:
    """Take a cluster back (409 while a project of the workspace lives there)."""
    tenancy().revoke_cluster(ws, cluster, actor=current_principal().username)
    return "", 204


@bp.get("/workspaces/<ws>/projects")
@permission("workspaces:read", workspace_arg="ws")
def list_projects(ws: str) -> Any:
    """Projects of a workspace that the caller may see, with the caller's effective role."""
    if tenancy().workspace(ws) is None:
        raise NotFound(f"no workspace {ws}")
    return list_response(_visible_projects(ws))


@bp.post("/workspaces/<ws>/projects")
@permission("projects:create", workspace_arg="ws")
def create_project(ws: str) -> Any:
    """Create a project: ``{"namespace","display_name","cluster"}``; creates and labels the namespace
    (with a cluster). ``cluster``: one the workspace is granted (absent: the implicit one)."""
    body = json_body()
    _only_fields(body, {"namespace", "display_name", "cluster"})
    cluster = body.get("cluster")
    asked = request_cluster()  # the permission was checked with ?cluster=; it must be the same cluster
    if asked and cluster not in (None, asked):
        raise Unprocessable("the body's cluster differs from ?cluster=; name one cluster", field="cluster")
    principal = current_principal()
    project = tenancy().create_project(
        ws,
        body.get("namespace"),
        display_name=body.get("display_name", ""),
        actor=principal.username,
        allow_default=scope().cluster,  # the namespace "default": platform admins, as the scope says
        cluster=cluster if cluster is not None else (asked or None),
    )
    record = tenancy().project_record(project.namespace)
    return jsonify(_project_dict(record)), 201


def _project_in(ws: str, ns: str) -> None:
    project = tenancy().project(ns)
    if project is None or project.workspace != ws:
        raise NotFound(f"no project {ns} in workspace {ws}")


@bp.get("/workspaces/<ws>/projects/<ns>/deletion")
@permission("projects:delete", namespace_arg="ns", workspace_arg="ws")
def project_deletion_preview(ws: str, ns: str) -> Any:
    """What deleting the project takes with it: workloads, services, ConfigMap and Secret names,
    PVCs of its namespace (never values), and the ``confirm`` value the DELETE needs."""
    _project_in(ws, ns)
    in_cluster, name = split_key(ns)  # an added cluster's project (?cluster=): its own API server
    h = hub()
    cluster = h.added_clusters.get(in_cluster) if in_cluster else h.cluster
    if in_cluster and cluster is None:
        raise BackendUnavailable(
            f"kubernetes API server of cluster {in_cluster}", h.cluster_errors.get(in_cluster, "not connected")
        )
    if cluster is None:
        contents: dict[str, Any] = {"namespace": name, "exists": False, "cluster": False}
    else:
        contents = {**cluster.namespace_contents(name), "cluster": True}
    return jsonify({**contents, "confirm": ns})


@bp.delete("/workspaces/<ws>/projects/<ns>")
@permission("projects:delete", namespace_arg="ns", workspace_arg="ws")
def delete_project(ws: str, ns: str) -> Any:
    """Delete a project and its namespace: ``?confirm=<project name>`` (typed confirmation, 422
    naming ``confirm`` otherwise; an added cluster's project, ``?cluster=X``, is named
    ``X/<namespace>``). The namespace goes in the project's own cluster; when that API server
    refuses or is down (503 naming it), the project stays."""
    _project_in(ws, ns)
    body = request.get_json(silent=True) if request.content_length else None
    confirm = request.args.get("confirm")
    if confirm is None and isinstance(body, dict):
        confirm = body.get("confirm")
    deleted = tenancy().delete_project(ns, actor=current_principal().username, confirm=confirm)
    in_cluster, name = split_key(ns)
    cluster = in_cluster or tenancy().default_cluster
    return jsonify({"namespace": name, "cluster": cluster, "deleted": True, "namespace_deleted": deleted})


# -- members -----------------------------------------------------------------------------------------
@bp.get("/workspaces/<ws>/members")
@permission("workspace-members:read", workspace_arg="ws")
def list_workspace_members(ws: str) -> Any:
    """Members of a workspace with their roles."""
    if tenancy().workspace(ws) is None:
        raise NotFound(f"no workspace {ws}")
    return list_response([{"user": u, "role": r.value} for u, r in tenancy().workspace_members(ws)])


@bp.put("/workspaces/<ws>/members/<user>")
@permission("workspace-members:write", workspace_arg="ws")
def put_workspace_member(ws: str, user: str) -> Any:
    """Give a user a role in the workspace: ``{"role": "admin"|"regular"|"viewer"}``."""
    body = json_body()
    _only_fields(body, {"role"})
    tenancy().set_workspace_member(ws, user, _role_of(body), actor=current_principal().username)
    role = dict(tenancy().workspace_members(ws))[user]
    return jsonify({"user": user, "role": role.value})


@bp.delete("/workspaces/<ws>/members/<user>")
@permission("workspace-members:write", workspace_arg="ws")
def delete_workspace_member(ws: str, user: str) -> Any:
    """Remove a user from the workspace."""
    tenancy().set_workspace_member(ws, user, None, actor=current_principal().username)
    return "", 204


@bp.get("/namespaces/<ns>/members")
@permission("members:read", namespace_arg="ns")
def list_project_members(ns: str) -> Any:
    """Direct members of a project with their roles."""
    if tenancy().project(ns) is None:
        raise NotFound(f"no project {ns}")
    return list_response([{"user": u, "role": r.value} for u, r in tenancy().project_members(ns)])


@bp.put("/namespaces/<ns>/members/<user>")
@permission("members:write", namespace_arg="ns")
def put_project_member(ns: str, user: str) -> Any:
    """Give a user a role in the project: ``{"role": "admin"|"operator"|"viewer"}``."""
    body = json_body()
    _only_fields(body, {"role"})
    tenancy().set_project_member(ns, user, _role_of(body), actor=current_principal().username)
    role = dict(tenancy().project_members(ns))[user]
    return jsonify({"user": user, "role": role.value})


@bp.delete("/namespaces/<ns>/members/<user>")
@permission("members:write", namespace_arg="ns")
def delete_project_member(ns: str, user: str) -> Any:
    """Remove a user from the project."""
    tenancy().set_project_member(ns, user, None, actor=current_principal().username)
    return "", 204


# -- audit -------------------------------------------------------------------------------------------
@bp.get("/audit")
@permission("audit:read")
def audit_log() -> Any:
    """The audit log, newest first; filters ``actor, action`` (prefix), ``target, result, namespace,
    start, end``; paging ``from, size``."""
    args = request.args
    flt = AuditFilter(
        actor=args.get("actor") or None,
        action=args.get("action") or None,
        target=args.get("target") or None,
        result=args.get("result") or None,
        namespace=args.get("namespace") or None,
        start=params.time(args, "start"),
        end=params.time(args, "end"),
    )
    offset = int_param("from", 0, minimum=0)
    size = int_param("size", 100, minimum=1, maximum=1000)
    entries, total = tenancy().audit_log(scope(), flt, offset=offset, limit=size)
    items = [
        {
            "id": e.id,
            "time": iso(e.at),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "result": e.result,
            "namespaces": list(e.namespaces),
            "detail": e.detail,
        }
        for e in entries
    ]
    return list_response(items, total)
