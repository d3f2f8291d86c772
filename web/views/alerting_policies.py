"""The console's policy editor and backtest routes, at both homes: node level under
``/alerting/node-policies`` (platform admins) and workload level under
``/projects/<ns>/alerting/policies`` (the project's members); each route declares the
permission of its home. A form becomes a policy document (``document_from_form``) that the
alerting service validates like the API's; problems come back inline.

The form <-> document conversion and secret hiding are in ``web.views.policy_form``; the
backtest job and result pages in ``web.views.alerting_backtest``.
"""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, request, url_for

from hub.errors import HubError
from web.access import current_principal, permission
from web.util import hub
from web.views.alerting_backtest import _backtest, _backtest_job, _policy_url
from web.views.alerting_common import AGGREGATIONS, COMPARATORS, REPEAT_MODES, SEVERITIES, UNITS, _svc, bp
from web.views.common import _, can, done, failed, page
from web.views.policy_form import (
    NEW_RULE,
    _form_value,
    _hide_secret_text,
    _hide_secrets,
    _problems_of,
    _safe_yaml,
    _yaml,
    document_from_form,
    keep_what_the_form_does_not_show,
)


# -- policies: the editor -----------------------------------------------------------------------------
def _metric_choices(level: str) -> list[dict[str, str]]:
    svc = hub().monitoring
    if svc is None:
        return []
    api_level = "nodes" if level == "node" else "workloads"
    out = []
    for entry in svc.catalogue.to_dict()["levels"]:
        if entry["level"] == api_level:
            out = [{"name": m["name"], "unit": m["unit"], "description": m["description"]} for m in entry["metrics"]]
    return out


def _workload_choices(ns: str | None) -> list[str]:
    cluster = hub().cluster
    if cluster is None or not ns:
        return []
    from hub.collectors.inventory import ListQuery

    try:
        body = cluster.list_workloads(ns, ListQuery(limit=5000, offset=0, label_selector="", name="")).to_dict()
    except HubError:
        return []
    return [
        f"{w['kind']}/{w['name']}" for w in body["items"] if w["kind"] in ("deployment", "statefulset", "daemonset")
    ]


def _editor(
    *,
    level: str,
    ns: str | None,
    doc: dict[str, Any],
    pid: str | None = None,
    problems: dict[str, str] | None = None,
    status: int = 200,
    yaml_text: str | None = None,
) -> Any:
    action = (
        (url_for(".node_policy_save", pid=pid) if pid else url_for(".node_policy_create"))
        if level == "node"
        else (url_for(".workload_policy_save", ns=ns, pid=pid) if pid else url_for(".workload_policy_create", ns=ns))
    )
    check = url_for(".node_policy_check") if level == "node" else url_for(".workload_policy_check", ns=ns)
    html, page_status = page(
        "policy_edit.html",
        level=level,
        ns=ns,
        pid=pid,
        doc=doc,
        problems=problems or {},
        yaml_text=yaml_text if yaml_text is not None else _yaml(doc),
        action=action,
        check_url=check,
        metrics=_metric_choices(level),
        workload_choices=_workload_choices(ns) if level == "workload" else [],
        aggregations=AGGREGATIONS,
        comparators=COMPARATORS,
        severities=SEVERITIES,
        repeat_modes=REPEAT_MODES,
        units=UNITS,
        form_value=_form_value(doc),
    )
    return html, max(status, page_status)


def _new_document(level: str, ns: str | None) -> dict[str, Any]:
    template = request.args.get("template")
    if template:
        svc = hub().alerting
        for t in svc.templates(level=level) if svc is not None else []:
            if t.get("name") == template:
                doc = {k: v for k, v in (t.get("document") or t).items() if k not in ("id", "file")}
                doc["level"] = level
                if ns:
                    doc["namespace"] = ns
                return doc
    rule = dict(NEW_RULE, name="rule-1")
    return {
        "name": "",
        "level": level,
        **({"namespace": ns} if ns else {}),
        "target": {"nodes": ["*"]} if level == "node" else {"workloads": []},
        "rules": [rule],
        "notification": {"receivers": [], "send_resolved": True},
    }


def _save(level: str, ns: str | None, pid: str | None) -> Any:
    """Create or replace a policy from the editor; problems come back beside their fields."""
    form = request.form
    svc = _svc()
    actor = current_principal().username
    if form.get("mode") == "yaml":
        text = form.get("yaml", "")
        document: Any = text
        ctype = "yaml"
    else:
        document = document_from_form(form, level=level, namespace=ns)
        if pid:
            document = keep_what_the_form_does_not_show(document, svc.get_policy(pid, level=level, namespace=ns))
        ctype = "json"
    try:
        if pid:
            out = svc.update_policy(pid, document, level=level, namespace=ns, actor=actor, content_type=ctype)
        else:
            out = svc.create_policy(document, level=level, namespace=ns, actor=actor, content_type=ctype)
    except HubError as exc:
        if exc.status not in (400, 422):
            raise
        doc = document if isinstance(document, dict) else _safe_yaml(document) or _new_document(level, ns)
        return _editor(
            level=level,
            ns=ns,
            doc=_hide_secrets(doc),
            pid=pid,
            problems=_problems_of(exc),
            status=exc.status,
            yaml_text=_hide_secret_text(document) if isinstance(document, str) else None,
        )
    key = "policy.updated" if pid else "policy.created"
    response = done(_(key, name=out["name"]), _policy_url(level, ns, out["id"]))
    # Saved, but some receivers cannot be mailed: say so on the next page (hub/alerts/notify/reach.py).
    for warning in out.get("warnings") or []:
        if warning.get("user"):
            flash(_("policy.warn_unreachable", user=warning["user"]), "warn")
        else:
            flash(_("policy.warn_no_receivers"), "warn")
    return response


def _check(level: str, ns: str | None) -> Any:
    """Live validation for the editor: ``{"valid", "problems": {path: message}, "yaml"}``."""
    svc = _svc()
    if request.form.get("mode") == "yaml":
        document: Any = request.form.get("yaml", "")
        ctype = "yaml"
    else:
        document = document_from_form(request.form, level=level, namespace=ns)
        ctype = "json"
    try:
        out = svc.validate(document, level=level, namespace=ns, content_type=ctype)
    except HubError as exc:
        if exc.status not in (400, 422):
            raise
        doc = _hide_secrets(document) if isinstance(document, dict) else None
        return jsonify({"valid": False, "problems": _problems_of(exc), "yaml": _yaml(doc) if doc else None})
    return jsonify({"valid": True, "problems": {}, "yaml": _yaml(out["policy"])})


def _show(level: str, ns: str | None, pid: str) -> Any:
    svc = _svc()
    policy = svc.get_policy(pid, level=level, namespace=ns)
    doc = {k: v for k, v in policy.items() if k not in ("id", "version", "created_by", "created_at", "updated_by",
                                                          "updated_at", "status")}  # fmt: skip
    may_write = can("node-policies:write") if level == "node" else can("policies:write", namespace=ns)
    if may_write:
        html, status = _editor(level=level, ns=ns, doc=doc, pid=pid)
        return html, status
    return page("policy_view.html", policy=policy, yaml_text=_yaml(doc), level=level, ns=ns)


def _delete(level: str, ns: str | None, pid: str) -> Any:
    svc = _svc()
    try:
        out = svc.delete_policy(pid, level=level, namespace=ns, actor=current_principal().username)
    except HubError as exc:
        if exc.status == 404:
            raise
        return failed(exc, _policy_url(level, ns, pid))
    del out
    return done(_("policy.deleted"), url_for(".policies"))


# Node-level policy routes (platform admins).
@bp.get("/alerting/node-policies/new")
@permission("node-policies:write")
def node_policy_new() -> Any:
    return _editor(level="node", ns=None, doc=_new_document("node", None))


@bp.post("/alerting/node-policies")
@permission("node-policies:write")
def node_policy_create() -> Any:
    return _save("node", None, None)


@bp.post("/alerting/node-policies/check")
@permission("node-policies:read")
def node_policy_check() -> Any:
    return _check("node", None)


@bp.get("/alerting/node-policies/<pid>")
@permission("node-policies:read")
def node_policy(pid: str) -> Any:
    return _show("node", None, pid)


@bp.post("/alerting/node-policies/<pid>")
@permission("node-policies:write")
def node_policy_save(pid: str) -> Any:
    return _save("node", None, pid)


@bp.post("/alerting/node-policies/<pid>/delete")
@permission("node-policies:write")
def node_policy_delete(pid: str) -> Any:
    return _delete("node", None, pid)


@bp.post("/alerting/node-policies/<pid>/backtest")
@permission("node-policies:read")
def node_policy_backtest(pid: str) -> Any:
    return _backtest("node", None, pid)


@bp.get("/alerting/node-policies/<pid>/backtests/<jid>")
@permission("node-policies:read")
def node_policy_backtest_job(pid: str, jid: str) -> Any:
    return _backtest_job("node", None, pid, jid)


# Workload-level policy routes (project members).
@bp.get("/projects/<ns>/alerting/policies/new")
@permission("policies:write", namespace_arg="ns")
def workload_policy_new(ns: str) -> Any:
    return _editor(level="workload", ns=ns, doc=_new_document("workload", ns))


@bp.post("/projects/<ns>/alerting/policies")
@permission("policies:write", namespace_arg="ns")
def workload_policy_create(ns: str) -> Any:
    return _save("workload", ns, None)


@bp.post("/projects/<ns>/alerting/policies/check")
@permission("policies:read", namespace_arg="ns")
def workload_policy_check(ns: str) -> Any:
    return _check("workload", ns)


@bp.get("/projects/<ns>/alerting/policies/<pid>")
@permission("policies:read", namespace_arg="ns")
def workload_policy(ns: str, pid: str) -> Any:
    return _show("workload", ns, pid)


@bp.post("/projects/<ns>/alerting/policies/<pid>")
@permission("policies:write", namespace_arg="ns")
def workload_policy_save(ns: str, pid: str) -> Any:
    return _save("workload", ns, pid)


@bp.post("/projects/<ns>/alerting/policies/<pid>/delete")
@permission("policies:write", namespace_arg="ns")
def workload_policy_delete(ns: str, pid: str) -> Any:
    return _delete("workload", ns, pid)


@bp.post("/projects/<ns>/alerting/policies/<pid>/backtest")
@permission("policies:read", namespace_arg="ns")
def workload_policy_backtest(ns: str, pid: str) -> Any:
    return _backtest("workload", ns, pid)


@bp.get("/projects/<ns>/alerting/policies/<pid>/backtests/<jid>")
@permission("policies:read", namespace_arg="ns")
def workload_policy_backtest_job(ns: str, pid: str, jid: str) -> Any:
    return _backtest_job("workload", ns, pid, jid)


# -- Prometheus rule import (docs/alerting.md "Import and export") ------------------------------


def _import_page(level: str, ns: str | None) -> Any:
    """The upload form; after a POST, the import report (and the policies created with apply)."""
    from hub.alerts.rule_import import ImportOptions, import_rule_texts

    report: dict[str, Any] | None = None
    created: list[str] = []
    if request.method == "POST":
        files = []
        for f in request.files.getlist("files")[:50]:
            data = f.read()
            files.append((f.filename or "upload.yaml", data.decode("utf-8", "replace")))
        if request.form.get("text", "").strip():
            files.append(("pasted.yaml", request.form["text"]))
        options = ImportOptions(level=level, namespace=ns, implicit_label=_svc().implicit_label)
        result = import_rule_texts(files, options)
        if request.form.get("apply"):
            for doc in result.policies:
                try:
                    _svc().create_policy(doc, level=level, namespace=ns, actor=current_principal().username)
                    created.append(doc["name"])
                except HubError as exc:
                    result.errors.append(f"policy {doc['name']}: not created: {exc.message}")
        report = result.to_dict()
    return page("rules_import.html", level=level, ns=ns, report=report, created=created)


@bp.route("/alerting/node-policies/import", methods=["GET", "POST"])
@permission("node-policies:write")
def node_rules_import() -> Any:
    return _import_page("node", None)


@bp.route("/projects/<ns>/alerting/policies/import", methods=["GET", "POST"])
@permission("policies:write", namespace_arg="ns")
def workload_rules_import(ns: str) -> Any:
    return _import_page("workload", ns)
