"""Cluster role bindings and custom roles (docs/tenancy.md "Role levels", "Custom roles").

Platform admins only: reading needs ``users:read``, every change ``users:write`` (who holds
what is the platform's business, as users are). The role catalogue lists the documented
permissions by level, what a custom role of each level may hold, and the built-in roles as the
permission sets they are.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from hub.errors import InvalidInput
from web.access import current_principal, permission, tenancy
from web.util import json_body, list_response

bp = Blueprint("api_roles", __name__, url_prefix="/api/v1")


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidInput(f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}", field=key)


def _actor() -> str:
    return current_principal().username


# -- cluster roles ------------------------------------------------------------------------------
@bp.get("/clusters/<cluster>/members")
@permission("users:read")
def list_cluster_members(cluster: str) -> Any:
    """Users holding a built-in role on the cluster (today the one cluster ``default``)."""
    members = tenancy().cluster_members(cluster)
    return list_response([{"user": u, "role": r} for u, r in members])


@bp.put("/clusters/<cluster>/members/<user>")
@permission("users:write")
def put_cluster_member(cluster: str, user: str) -> Any:
    """Give a user a cluster role: ``{"role": "viewer"|"admin"}``."""
    body = json_body()
    _only(body, {"role"})
    role = body.get("role")
    if not isinstance(role, str) or not role:
        raise InvalidInput("role is required: viewer or admin", field="role")
    tenancy().set_cluster_member(cluster, user, role, actor=_actor())
    return jsonify({"cluster": cluster, "user": user, "role": dict(tenancy().cluster_members(cluster))[user]})


@bp.delete("/clusters/<cluster>/members/<user>")
@permission("users:write")
def delete_cluster_member(cluster: str, user: str) -> Any:
    """Remove a user's role on the cluster."""
    tenancy().set_cluster_member(cluster, user, None, actor=_actor())
    return "", 204


# -- custom roles -------------------------------------------------------------------------------
@bp.get("/roles")
@permission("users:read")
def list_roles() -> Any:
    """The custom roles, with the catalogue (``catalogue``) they are composed from."""
    items = [r.to_dict() for r in tenancy().custom_roles()]
    return list_response(items, catalogue=tenancy().role_catalogue())


@bp.post("/roles")
@permission("users:write")
def create_role() -> Any:
    """Compose a role: ``{"name", "level" (cluster|workspace|project), "permissions": [...],
    "description"?}``; 422 names the field (``permissions[i]`` for a permission of another
    level or an unknown one), 409 for a name in use."""
    role = tenancy().create_custom_role(json_body(), actor=_actor())
    return jsonify(role.to_dict()), 201


@bp.get("/roles/<name>")
@permission("users:read")
def get_role(name: str) -> Any:
    role = tenancy().custom_role(name)
    return jsonify({**role.to_dict(), "bindings": tenancy().custom_role_bindings(name)})


@bp.patch("/roles/<name>")
@permission("users:write")
def update_role(name: str) -> Any:
    """Change ``permissions`` and/or ``description``; name and level stay."""
    return jsonify(tenancy().update_custom_role(name, json_body(), actor=_actor()).to_dict())


@bp.delete("/roles/<name>")
@permission("users:write")
def delete_role(name: str) -> Any:
    """Remove the role and every binding to it."""
    tenancy().delete_custom_role(name, actor=_actor())
    return "", 204


@bp.put("/roles/<name>/bindings/<user>")
@permission("users:write")
def put_role_binding(name: str, user: str) -> Any:
    """Let a user hold the role on a target of its level: ``{"target": cluster|workspace|namespace}``."""
    body = json_body()
    _only(body, {"target"})
    tenancy().bind_custom_role(name, user, body.get("target"), actor=_actor())
    return jsonify({"role": name, "user": user, "target": body.get("target")})


@bp.delete("/roles/<name>/bindings/<user>")
@permission("users:write")
def delete_role_binding(name: str, user: str) -> Any:
    """Remove a binding: ``?target=`` names where the user held the role."""
    target = request.args.get("target", "")
    if not target:
        raise InvalidInput("target is required (the cluster, workspace or namespace of the binding)", field="target")
    tenancy().unbind_custom_role(name, user, target, actor=_actor())
    return "", 204
