"""Console pages of inherited alert policies (docs/alerting.md "Inherited policies"):

- ``/projects/<ns>/alerting/effective``: what applies to a project, from where (workspace or
  project) and what it overrode; members with ``policies:write`` change an inherited rule's
  threshold, disable it (refused for a required rule, the page says which) or reset it;
- ``/workspaces/<ws>/alerting/policies``: the workspace's policies, which workspace admins
  create (a JSON or YAML document, ``required`` beside it) and delete.

The pages call the same alerting service methods as the JSON API; each route declares the
permission of its home, as the API's do.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from hub.alerts.policy import decode_policy_text
from hub.errors import HubError, InvalidInput
from web.access import current_principal, permission
from web.views.alerting_common import _svc, bp
from web.views.common import _, can, done, failed, page


@bp.get("/projects/<ns>/alerting/effective")
@permission("policies:read", namespace_arg="ns")
def effective_policies(ns: str) -> Any:
    return page(
        "effective_policies.html",
        ns=ns,
        items=_svc().effective_policies(ns),
        may_write=can("policies:write", namespace=ns),
    )


@bp.post("/projects/<ns>/alerting/effective/<pid>/rules/<rule>")
@permission("policies:write", namespace_arg="ns")
def effective_rule_override(ns: str, pid: str, rule: str) -> Any:
    target = url_for("views.alerting.effective_policies", ns=ns)
    actor = str(current_principal().username)
    action = request.form.get("action", "threshold")
    try:
        if action == "reset":
            _svc().delete_override(ns, pid, rule, actor=actor)
        elif action == "disable":
            _svc().put_override(ns, pid, rule, {"disabled": True}, actor=actor)
        else:
            raw = request.form.get("threshold", "").strip()
            try:
                threshold = float(raw)
            except ValueError:
                raise InvalidInput("threshold must be a number", field="threshold") from None
            _svc().put_override(ns, pid, rule, {"threshold": threshold}, actor=actor)
    except HubError as exc:
        return failed(exc, target)
    return done(_("inherited.saved", rule=rule), target)


@bp.get("/workspaces/<ws>/alerting/policies")
@permission("workspace-policies:read", workspace_arg="ws")
def workspace_policies(ws: str) -> Any:
    return page(
        "workspace_policies.html",
        ws=ws,
        items=_svc().list_workspace_policies(ws),
        may_write=can("workspace-policies:write", workspace=ws),
        text=request.args.get("text", ""),
    )


@bp.post("/workspaces/<ws>/alerting/policies")
@permission("workspace-policies:write", workspace_arg="ws")
def workspace_policy_create(ws: str) -> Any:
    target = url_for("views.alerting.workspace_policies", ws=ws)
    try:
        document = decode_policy_text(request.form.get("document", ""), content_type="yaml").data
        created = _svc().create_workspace_policy(ws, document, actor=str(current_principal().username))
    except HubError as exc:
        return failed(exc, target)
    return done(_("inherited.created", name=created["name"]), target)


@bp.post("/workspaces/<ws>/alerting/policies/<pid>/delete")
@permission("workspace-policies:write", workspace_arg="ws")
def workspace_policy_delete(ws: str, pid: str) -> Any:
    target = url_for("views.alerting.workspace_policies", ws=ws)
    try:
        _svc().delete_workspace_policy(ws, pid, actor=str(current_principal().username))
    except HubError as exc:
        return failed(exc, target)
    return done(_("inherited.deleted"), target)
