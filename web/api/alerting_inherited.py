"""Inherited alert policies under /api/v1 (docs/alerting.md "Inherited policies").

Two homes with their own permissions:
- the workspace's policies, ``/workspaces/<ws>/alerting/policies``: ``workspace-policies:read``
  (workspace viewers and admins) and ``workspace-policies:write`` (workspace admins);
- a project's effective view and its overrides of inherited rules,
  ``/namespaces/<ns>/alerting/effective-policies``: ``policies:read`` / ``policies:write`` on
  ``ns`` (the project's members).
A workspace policy id looked up under another workspace, or under a project of another
workspace, is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from web.access import current_principal, keyed_namespace, permission
from web.api.alerting import alerting
from web.util import json_body, list_response

bp = Blueprint("api_alerting_inherited", __name__, url_prefix="/api/v1")
bp.before_request(keyed_namespace)  # ?cluster=X: ns is the project X/ns


def _actor() -> str:
    return str(current_principal().username)


def _ctype() -> str:
    return "yaml" if "yaml" in (request.content_type or "").lower() else "json"


@bp.get("/workspaces/<ws>/alerting/policies")
@permission("workspace-policies:read", workspace_arg="ws")
def list_workspace_policies(ws: str) -> Any:
    """The workspace's alert policies, which every project of the workspace inherits."""
    return list_response(alerting().list_workspace_policies(ws))


@bp.post("/workspaces/<ws>/alerting/policies")
@permission("workspace-policies:write", workspace_arg="ws")
def create_workspace_policy(ws: str) -> Any:
    """Create a workspace policy: a workload-level document without namespace, plus ``required``
    (rule names projects may not disable, or true for all)."""
    return jsonify(alerting().create_workspace_policy(ws, json_body(), actor=_actor(), content_type=_ctype())), 201


@bp.get("/workspaces/<ws>/alerting/policies/<pid>")
@permission("workspace-policies:read", workspace_arg="ws")
def get_workspace_policy(ws: str, pid: str) -> Any:
    """One workspace policy."""
    return jsonify(alerting().get_workspace_policy(ws, pid))


@bp.put("/workspaces/<ws>/alerting/policies/<pid>")
@permission("workspace-policies:write", workspace_arg="ws")
def update_workspace_policy(ws: str, pid: str) -> Any:
    """Replace a workspace policy; every project sees the change at the engine's next cycle."""
    return jsonify(alerting().update_workspace_policy(ws, pid, json_body(), actor=_actor(), content_type=_ctype()))


@bp.delete("/workspaces/<ws>/alerting/policies/<pid>")
@permission("workspace-policies:write", workspace_arg="ws")
def delete_workspace_policy(ws: str, pid: str) -> Any:
    """Delete a workspace policy, its projects' overrides, and end its alerts in every project."""
    return jsonify(alerting().delete_workspace_policy(ws, pid, actor=_actor()))


@bp.get("/namespaces/<ns>/alerting/effective-policies")
@permission("policies:read", namespace_arg="ns")
def effective_policies(ns: str) -> Any:
    """What applies to the project: its own policies and its workspace's, per rule what it overrode."""
    return list_response(alerting().effective_policies(ns))


@bp.put("/namespaces/<ns>/alerting/effective-policies/<pid>/rules/<rule>")
@permission("policies:write", namespace_arg="ns")
def put_override(ns: str, pid: str, rule: str) -> Any:
    """Override an inherited rule here: ``{"threshold": n}`` or ``{"disabled": true}`` (422 for a required rule)."""
    return jsonify(alerting().put_override(ns, pid, rule, json_body(), actor=_actor()))


@bp.delete("/namespaces/<ns>/alerting/effective-policies/<pid>/rules/<rule>")
@permission("policies:write", namespace_arg="ns")
def delete_override(ns: str, pid: str, rule: str) -> Any:
    """Drop this project's override of an inherited rule: the workspace's rule applies again."""
    return jsonify(alerting().delete_override(ns, pid, rule, actor=_actor()))
