"""Console page for the group -> role mappings of directory and SSO users (platform admins).

The same service calls as ``web/api/identity.py``; the settings' mappings are shown read-only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from hub.errors import HubError
from hub.tenancy.roles import ClusterRole, PlatformRole, ProjectRole, WorkspaceRole
from web.access import current_principal, permission, tenancy
from web.params import path_id
from web.views.common import _, can, done, failed, page

bp = Blueprint("identity", __name__)

ROLES = {
    "platform": [r.value for r in PlatformRole],
    "cluster": [r.value for r in ClusterRole],
    "workspace": [r.value for r in WorkspaceRole],
    "project": [r.value for r in ProjectRole],
}


@bp.get("/users/group-mappings")
@permission("users:read")
def group_mappings() -> Any:
    svc = tenancy()
    return page(
        "group_mappings.html",
        mappings=svc.group_mappings(),
        roles=ROLES,
        workspaces=[w.name for w in svc.workspaces()],
        projects=[p.namespace for p in svc.projects()],
        may_write=can("users:write"),
        ldap_enabled=svc.directory is not None,
    )


@bp.post("/users/group-mappings")
@permission("users:write")
def group_mapping_create() -> Any:
    form = request.form
    level = form.get("level") or ""
    raw = {"group": form.get("group") or "", "level": level, "role": form.get(f"role_{level}") or ""}
    if level != "platform":
        raw["target"] = (form.get("target") or "").strip()
    try:
        mapping = tenancy().create_group_mapping(raw, actor=current_principal().username)
    except HubError as exc:
        return failed(exc, url_for(".group_mappings"))
    return done(_("mappings.created", group=mapping.group), url_for(".group_mappings"))


@bp.post("/users/group-mappings/<int:mapping_id>/delete")
@permission("users:write")
def group_mapping_delete(mapping_id: int) -> Any:
    try:
        tenancy().delete_group_mapping(path_id(mapping_id, "group mapping"), actor=current_principal().username)
    except HubError as exc:
        return failed(exc, url_for(".group_mappings"))
    return done(_("mappings.deleted"), url_for(".group_mappings"))
