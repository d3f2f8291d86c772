"""Console page for cluster roles and custom roles (platform admins; docs/tenancy.md "Role
levels", "Custom roles").

The same service calls as ``web/api/roles.py``: reading needs ``users:read``, every change
``users:write``. The role editor offers, per level, exactly the permissions a custom role of that
level may hold, each with its documented meaning.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from hub.errors import HubError
from hub.tenancy.custom_roles import CUSTOM_LEVELS
from hub.tenancy.roles import COMPOSABLE, PERMISSION_DOCS, ClusterRole, permission_level
from web.access import current_principal, permission, tenancy
from web.views.common import _, can, done, failed, page

bp = Blueprint("roles", __name__)


def _back() -> str:
    return url_for(".roles")


@bp.get("/users/roles")
@permission("users:read")
def roles() -> Any:
    svc = tenancy()
    cluster = svc.default_cluster
    custom = svc.custom_roles()
    catalogue = {
        level: [(p, permission_level(p), PERMISSION_DOCS[p]) for p in sorted(COMPOSABLE[level])]
        for level in CUSTOM_LEVELS
    }
    return page(
        "roles.html",
        cluster=cluster,
        cluster_members=svc.cluster_members(cluster),
        cluster_roles=[r.value for r in ClusterRole],
        custom=[(r, svc.custom_role_bindings(r.name)) for r in custom],
        catalogue=catalogue,
        levels=CUSTOM_LEVELS,
        users=[u.name for u in svc.users()],
        may_write=can("users:write"),
    )


@bp.post("/users/clusters/<cluster>/members")
@permission("users:write")
def cluster_member_set(cluster: str) -> Any:
    form = request.form
    try:
        user = (form.get("username") or "").strip()
        tenancy().set_cluster_member(cluster, user, form.get("role") or "", actor=current_principal().username)
    except HubError as exc:
        return failed(exc, _back())
    return done(_("roles.cluster_set", user=user), _back())


@bp.post("/users/clusters/<cluster>/members/<user>/delete")
@permission("users:write")
def cluster_member_delete(cluster: str, user: str) -> Any:
    try:
        tenancy().set_cluster_member(cluster, user, None, actor=current_principal().username)
    except HubError as exc:
        return failed(exc, _back())
    return done(_("roles.cluster_removed", user=user), _back())


@bp.post("/users/roles")
@permission("users:write")
def role_create() -> Any:
    form = request.form
    level = form.get("level") or ""
    raw = {
        "name": (form.get("name") or "").strip(),
        "level": level,
        "permissions": form.getlist(f"perm_{level}"),
        "description": form.get("description") or "",
    }
    try:
        role = tenancy().create_custom_role(raw, actor=current_principal().username)
    except HubError as exc:
        return failed(exc, _back())
    return done(_("roles.created", name=role.name), _back())


@bp.post("/users/roles/<name>/delete")
@permission("users:write")
def role_delete(name: str) -> Any:
    try:
        tenancy().delete_custom_role(name, actor=current_principal().username)
    except HubError as exc:
        return failed(exc, _back())
    return done(_("roles.deleted", name=name), _back())


@bp.post("/users/roles/<name>/bindings")
@permission("users:write")
def role_bind(name: str) -> Any:
    form = request.form
    user = (form.get("username") or "").strip()
    try:
        tenancy().bind_custom_role(name, user, (form.get("target") or "").strip(), actor=current_principal().username)
    except HubError as exc:
        return failed(exc, _back())
    return done(_("roles.bound", name=name, user=user), _back())


@bp.post("/users/roles/<name>/bindings/<user>/delete")
@permission("users:write")
def role_unbind(name: str, user: str) -> Any:
    try:
        tenancy().unbind_custom_role(name, user, request.form.get("target") or "", actor=current_principal().username)
    except HubError as exc:
        return failed(exc, _back())
    return done(_("roles.unbound", name=name, user=user), _back())
