"""Group -> role mappings for directory (LDAP) and single sign-on (OIDC) users (docs/tenancy.md
"Sign-in methods").

Platform admins read them (``users:read``) and edit the stored ones (``users:write``); the ones
from the settings (``auth.group_mappings``) are listed with ``origin: settings`` and cannot be
changed here. A change takes effect for each user at their next sign-in or directory re-check.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from web.access import current_principal, permission, tenancy
from web.params import path_id
from web.util import json_body, list_response

bp = Blueprint("api_identity", __name__, url_prefix="/api/v1")


@bp.get("/auth/group-mappings")
@permission("users:read")
def list_group_mappings() -> Any:
    """Every group -> role mapping in force: the settings' (read-only) and the console's."""
    return list_response([m.to_dict() for m in tenancy().group_mappings()])


@bp.post("/auth/group-mappings")
@permission("users:write")
def create_group_mapping() -> Any:
    """Map a group: ``{"group", "level" (platform|workspace|project), "role", "target"}``.

    One group has one role per level and target (409 for a second; change it with PATCH).
    """
    mapping = tenancy().create_group_mapping(json_body(), actor=current_principal().username)
    return jsonify(mapping.to_dict()), 201


@bp.patch("/auth/group-mappings/<int:mapping_id>")
@permission("users:write")
def update_group_mapping(mapping_id: int) -> Any:
    """Change a stored mapping's role: ``{"role"}``."""
    mapping = tenancy().update_group_mapping(
        path_id(mapping_id, "group mapping"), json_body(), actor=current_principal().username
    )
    return jsonify(mapping.to_dict())


@bp.delete("/auth/group-mappings/<int:mapping_id>")
@permission("users:write")
def delete_group_mapping(mapping_id: int) -> Any:
    """Remove a stored mapping (users keep its role until their next sign-in or re-check)."""
    tenancy().delete_group_mapping(path_id(mapping_id, "group mapping"), actor=current_principal().username)
    return "", 204
