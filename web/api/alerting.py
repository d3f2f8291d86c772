"""Alerting endpoints under /api/v1 (API.md "Alerting"; behaviour in docs/alerting.md).

Policies have two homes with two permissions:
- node level, ``/alerting/policies``: ``node-policies:read|write`` (platform admins);
- workload level, ``/namespaces/<ns>/alerting/policies``: ``policies:read|write`` on ``ns``.
A policy id looked up under the wrong home (another project, or the other level) is a 404.

Alerts, history, comments, silences and the outbox are open to every signed-in caller and
scoped here by the tenancy service: tenants see their projects' objects, platform admins
everything, including node-level alerts. Ids outside the scope are 404s, never 403s.

Policy documents may be sent as JSON or, with ``Content-Type: application/yaml``, as YAML.

A little over 400 lines because every alerting endpoint is a thin route, and each policy
route exists at both homes (node and workload level) with its own permission.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from hub.alerts.service import AlertService
from web.access import current_principal, keyed_namespace, permission
from web.access import keyed_scope as scope  # alert rows are keyed by project (docs/tenancy.md)
from web.util import csv_param, hub, int_param, json_body, list_response

bp = Blueprint("api_alerting", __name__, url_prefix="/api/v1")
bp.before_request(keyed_namespace)  # ?cluster=X: ns is the project X/ns


def alerting() -> AlertService:
    return hub().alerting


def _document() -> tuple[Any, str]:
    """The policy document of the request: parsed JSON, or YAML text for the service to parse."""
    ctype = (request.content_type or "").lower()
    if "yaml" in ctype:
        return request.get_data(as_text=True), "yaml"
    return json_body(), "json"


def _actor() -> str:
    return str(current_principal().username)


# -- node-level policies (cluster admins) ------------------------------------------------------


@bp.get("/alerting/policies")
@permission("node-policies:read")
def list_node_policies() -> Any:
    """Node-level alert policies."""
    return list_response(alerting().list_policies(level="node"))


@bp.post("/alerting/policies")
@permission("node-policies:write")
def create_node_policy() -> Any:
    """Create a node-level policy from a JSON or YAML document; 422 names every field at fault."""
    doc, ctype = _document()
    return jsonify(alerting().create_policy(doc, level="node", actor=_actor(), content_type=ctype)), 201


@bp.post("/alerting/policies/validate")
@permission("node-policies:read")
def validate_node_policy() -> Any:
    """Validate a node-level policy document without saving it."""
    doc, ctype = _document()
    return jsonify(alerting().validate(doc, level="node", content_type=ctype))


@bp.post("/alerting/policies/backtest")
@permission("node-policies:read")
def backtest_unsaved_node_policy() -> Any:
    """Backtest an unsaved node-level policy: {"policy": {...}, "start", "end"}."""
    body = json_body()
    return jsonify(
        alerting().backtest(
            None, level="node", start=body.get("start"), end=body.get("end"), document=body.get("policy") or {}
        )
    )


@bp.post("/alerting/policies/templates/<name>")
@permission("node-policies:write")
def create_node_policy_from_template(name: str) -> Any:
    """Create a node-level policy from a built-in template in rules/; the body may override fields."""
    overrides = json_body(required=False)
    return jsonify(alerting().create_from_template(name, level="node", actor=_actor(), overrides=overrides)), 201


@bp.get("/alerting/policies/<pid>")
@permission("node-policies:read")
def get_node_policy(pid: str) -> Any:
    """One node-level policy with its status (active alerts by state, unhealthy rules)."""
    return jsonify(alerting().get_policy(pid, level="node"))


@bp.put("/alerting/policies/<pid>")
@permission("node-policies:write")
def update_node_policy(pid: str) -> Any:
    """Replace a node-level policy; in-flight alerts are carried over or closed with a notice."""
    doc, ctype = _document()
    return jsonify(alerting().update_policy(pid, doc, level="node", actor=_actor(), content_type=ctype))


@bp.delete("/alerting/policies/<pid>")
@permission("node-policies:write")
def delete_node_policy(pid: str) -> Any:
    """Delete a node-level policy; its in-flight alerts are closed with a notice."""
    return jsonify(alerting().delete_policy(pid, level="node", actor=_actor()))


@bp.post("/alerting/policies/<pid>/backtest")
@permission("node-policies:read")
def backtest_node_policy(pid: str) -> Any:
    """Replay a node-level policy over history: {"start", "end"} -> alerts and every email it would have sent."""
    body = json_body()
    return jsonify(alerting().backtest(pid, level="node", start=body.get("start"), end=body.get("end")))


# -- workload-level policies (project members) -------------------------------------------------


@bp.get("/namespaces/<ns>/alerting/policies")
@permission("policies:read", namespace_arg="ns")
def list_workload_policies(ns: str) -> Any:
    """Workload-level alert policies of a project."""
    return list_response(alerting().list_policies(level="workload", namespace=ns))


@bp.post("/namespaces/<ns>/alerting/policies")
@permission("policies:write", namespace_arg="ns")
def create_workload_policy(ns: str) -> Any:
    """Create a workload-level policy in this project (its namespace is forced to the URL's)."""
    doc, ctype = _document()
    return jsonify(
        alerting().create_policy(doc, level="workload", namespace=ns, actor=_actor(), content_type=ctype)
    ), 201


@bp.post("/namespaces/<ns>/alerting/policies/validate")
@permission("policies:read", namespace_arg="ns")
def validate_workload_policy(ns: str) -> Any:
    """Validate a workload-level policy document for this project without saving it."""
    doc, ctype = _document()
    return jsonify(alerting().validate(doc, level="workload", namespace=ns, content_type=ctype))


@bp.post("/namespaces/<ns>/alerting/policies/backtest")
@permission("policies:read", namespace_arg="ns")
def backtest_unsaved_workload_policy(ns: str) -> Any:
    """Backtest an unsaved workload-level policy: {"policy": {...}, "start", "end"}."""
    body = json_body()
    return jsonify(
        alerting().backtest(
            None,
            level="workload",
            namespace=ns,
            start=body.get("start"),
            end=body.get("end"),
            document=body.get("policy") or {},
        )
    )


@bp.post("/namespaces/<ns>/alerting/policies/templates/<name>")
@permission("policies:write", namespace_arg="ns")
def create_workload_policy_from_template(ns: str, name: str) -> Any:
    """Create a workload-level policy in this project from a built-in template."""
    overrides = json_body(required=False)
    return jsonify(
        alerting().create_from_template(name, level="workload", namespace=ns, actor=_actor(), overrides=overrides)
    ), 201


@bp.get("/namespaces/<ns>/alerting/policies/<pid>")
@permission("policies:read", namespace_arg="ns")
def get_workload_policy(ns: str, pid: str) -> Any:
    """One workload-level policy of this project, with its status."""
    return jsonify(alerting().get_policy(pid, level="workload", namespace=ns))


@bp.put("/namespaces/<ns>/alerting/policies/<pid>")
@permission("policies:write", namespace_arg="ns")
def update_workload_policy(ns: str, pid: str) -> Any:
    """Replace a workload-level policy; in-flight alerts are carried over or closed with a notice."""
    doc, ctype = _document()
    return jsonify(
        alerting().update_policy(pid, doc, level="workload", namespace=ns, actor=_actor(), content_type=ctype)
    )


@bp.delete("/namespaces/<ns>/alerting/policies/<pid>")
@permission("policies:write", namespace_arg="ns")
def delete_workload_policy(ns: str, pid: str) -> Any:
    """Delete a workload-level policy; its in-flight alerts are closed with a notice."""
    return jsonify(alerting().delete_policy(pid, level="workload", namespace=ns, actor=_actor()))


@bp.post("/namespaces/<ns>/alerting/policies/<pid>/backtest")
@permission("policies:read", namespace_arg="ns")
def backtest_workload_policy(ns: str, pid: str) -> Any:
    """Replay a workload-level policy over history: {"start", "end"}."""
    body = json_body()
    return jsonify(
        alerting().backtest(pid, level="workload", namespace=ns, start=body.get("start"), end=body.get("end"))
    )


# -- templates, alerts, history, comments, silences, outbox -------------------------------------


@bp.get("/alerting/templates")
@permission(None)
def list_templates() -> Any:
    """The built-in policy templates (rules/*.yaml); ?level=node|workload."""
    level = request.args.get("level") or None
    return list_response(alerting().templates(level=level))


@bp.get("/alerting/alerts")
@permission(None)
def list_alerts() -> Any:
    """Alerts in the caller's scope; ?state=pending,firing,nodata,error (default) or resolved,closed;
    ?policy=<id>&limit=&offset=."""
    items, total = alerting().alerts(
        scope(),
        states=csv_param("state"),
        policy_id=request.args.get("policy") or None,
        limit=int_param("limit", 100, minimum=1, maximum=1000),
        offset=int_param("offset", 0),
    )
    return list_response(items, total)


@bp.get("/alerting/alerts/<aid>")
@permission(None)
def get_alert(aid: str) -> Any:
    """One alert with its events, notices and comments (404 outside the caller's scope)."""
    return jsonify(alerting().alert(aid, scope()))


@bp.get("/alerting/alerts/<aid>/comments")
@permission(None)
def list_comments(aid: str) -> Any:
    """Operator comments on an alert."""
    return list_response(alerting().alert(aid, scope())["comments"])


@bp.post("/alerting/alerts/<aid>/comments")
@permission(None)
def add_comment(aid: str) -> Any:
    """Comment on an alert: {"text"}; needs alerts:write in its project (admins for node alerts)."""
    body = json_body()
    comment = alerting().add_comment(aid, body.get("text"), scope=scope(), author=_actor())
    return jsonify(comment), 201


@bp.get("/alerting/history")
@permission(None)
def alert_history() -> Any:
    """State changes of alerts in the caller's scope, newest first; ?alert=&since=&until=&limit=&offset=."""
    items, total = alerting().history(
        scope(),
        since=request.args.get("since"),
        until=request.args.get("until"),
        alert_id=request.args.get("alert") or None,
        limit=int_param("limit", 100, minimum=1, maximum=1000),
        offset=int_param("offset", 0),
    )
    return list_response(items, total)


@bp.get("/alerting/silences")
@permission(None)
def list_silences() -> Any:
    """Silences in the caller's scope; ?active=true for the current ones only."""
    active = (request.args.get("active") or "").lower() in ("1", "true", "yes")
    return list_response(alerting().silences(scope(), active_only=active))


@bp.post("/alerting/silences")
@permission(None)
def create_silence() -> Any:
    """Create a silence: {"namespace"?, "matchers": {...}, "starts_at"?, "ends_at" | "duration", "comment"}."""
    silence = alerting().create_silence(json_body(), scope=scope(), actor=_actor())
    return jsonify(silence), 201


@bp.delete("/alerting/silences/<sid>")
@permission(None)
def delete_silence(sid: str) -> Any:
    """End a silence now."""
    return jsonify(alerting().delete_silence(sid, scope=scope(), actor=_actor()))


@bp.get("/alerting/outbox")
@permission(None)
def list_outbox() -> Any:
    """Messages of the caller's scope in the outbox (waiting, sent, failed), newest first."""
    return list_response(
        alerting().outbox(
            scope(),
            limit=int_param("limit", 100, minimum=1, maximum=1000),
            offset=int_param("offset", 0),
        )
    )


# -- Prometheus rule import and export (docs/alerting.md "Import and export") --------------------


def _import(level: str, namespace: str | None) -> Any:
    """Rule files of the request: YAML text (``Content-Type: application/yaml``; one file, any
    number of documents) or JSON ``{"files": [{"name", "text"}], "severity_map"?,
    "default_severity"?, "default_interval"?, "apply"?}``; ``?apply=true`` for YAML."""
    from hub.alerts.rule_import import DEFAULT_SEVERITY_MAP, ImportOptions, import_rule_texts
    from hub.errors import HubError, InvalidInput
    from hub.timeutil import parse_duration

    ctype = (request.content_type or "").lower()
    body: dict[str, Any] = {}
    if "yaml" in ctype:
        files = [("upload.yaml", request.get_data(as_text=True))]
        apply = request.args.get("apply", "false").lower() == "true"
    else:
        body = json_body()
        raw = body.get("files")
        if not isinstance(raw, list) or not raw or len(raw) > 50:
            raise InvalidInput("files must be a list of 1 to 50 {name, text} objects", field="files")
        files = []
        for i, f in enumerate(raw):
            if not isinstance(f, dict) or not isinstance(f.get("text"), str):
                raise InvalidInput("each file needs a text (the rule file's content)", field=f"files[{i}].text")
            files.append((str(f.get("name") or f"file-{i + 1}")[:200], f["text"]))
        apply = body.get("apply") is True
    mapping = dict(DEFAULT_SEVERITY_MAP)
    extra = body.get("severity_map") or {}
    if not isinstance(extra, dict) or any(v not in ("critical", "major", "minor") for v in extra.values()):
        raise InvalidInput("severity_map maps label values to critical, major or minor", field="severity_map")
    mapping.update({str(k).lower(): v for k, v in extra.items()})
    default_severity = body.get("default_severity", "major")
    if default_severity not in ("critical", "major", "minor"):
        raise InvalidInput("must be critical, major or minor", field="default_severity")
    options = ImportOptions(
        level=level,
        namespace=namespace,
        severity_map=mapping,
        default_severity=default_severity,
        default_interval=parse_duration(str(body.get("default_interval", "1m")), field="default_interval"),
        implicit_label=alerting().implicit_label,
    )
    result = import_rule_texts(files, options)
    out = result.to_dict()
    out["created"] = []
    if apply:
        for doc in result.policies:
            try:
                made = alerting().create_policy(doc, level=level, namespace=namespace, actor=_actor())
                out["created"].append({"name": doc["name"], "id": made["id"]})
            except HubError as exc:  # a name already taken: reported per policy, the rest go on
                out["errors"].append(f"policy {doc['name']}: not created: {exc.message}")
    return jsonify(out)


def _export(level: str, namespace: str | None) -> Any:
    from hub.alerts.policy import parse_policy
    from hub.alerts.policy_check import _POLICY_FIELDS
    from hub.alerts.rule_import import export_policies

    policies = []
    for p in alerting().list_policies(level=level, namespace=namespace):
        doc = {k: v for k, v in p.items() if k in _POLICY_FIELDS and k != "notification"}  # receivers are not exported
        policies.append((str(p["id"]), parse_policy(doc)))
    build = alerting().build_query

    def query(lvl: str, metric: str, period: float, ns: str | None) -> str:
        if build is None:
            raise RuntimeError("no catalogue to export catalogue rules with")
        return str(build(lvl, metric, "last", period, ns)[0])

    return jsonify(export_policies(policies, query, name=f"kubehub-{namespace or 'cluster'}"))


@bp.post("/alerting/policies/import")
@permission("node-policies:write")
def import_node_rules() -> Any:
    """Import Prometheus rule files / PrometheusRule YAML as node-level policies.

    Answers a report of what was imported, changed or not (and, with apply, what was created)."""
    return _import("node", None)


@bp.get("/alerting/policies/export")
@permission("node-policies:read")
def export_node_rules() -> Any:
    """Node-level policies as a PrometheusRule (catalogue rules as their reference alerting rule)."""
    return _export("node", None)


@bp.post("/namespaces/<ns>/alerting/policies/import")
@permission("policies:write", namespace_arg="ns")
def import_workload_rules(ns: str) -> Any:
    """Import Prometheus rule files as this project's policies, each expression scoped to it.

    An expression that cannot be scoped is not imported; the report names the construct."""
    return _import("workload", ns)


@bp.get("/namespaces/<ns>/alerting/policies/export")
@permission("policies:read", namespace_arg="ns")
def export_workload_rules(ns: str) -> Any:
    """This project's policies as a PrometheusRule (expressions scoped to the namespace)."""
    return _export("workload", ns)
