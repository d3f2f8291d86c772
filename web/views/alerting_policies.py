"""The console's policy editor and backtests, at both homes: node level under
``/alerting/node-policies`` (platform admins) and workload level under
``/projects/<ns>/alerting/policies`` (the project's members); each route declares the
permission of its home. A form becomes a policy document (``document_from_form``) that the
alerting service validates like the API's; problems come back inline.

Over 400 lines because the editor is one form with many sections (rules, targets, window,
notification, repeat) and each home has the same eight routes.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from flask import flash, jsonify, redirect, request, url_for

from hub.alerts.policy import PolicyInvalid
from hub.errors import BackendUnavailable, HubError, NotFound
from web.access import current_principal, permission
from web.util import hub
from web.views import common
from web.views.alerting_common import AGGREGATIONS, COMPARATORS, REPEAT_MODES, SEVERITIES, UNITS, _svc, bp
from web.views.common import _, can, done, failed, page


# -- policies: the editor -----------------------------------------------------------------------------
def _number(raw: str) -> Any:
    """A number typed into the form, or the text itself (so validation names the field)."""
    text = (raw or "").strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def document_from_form(form: Any, *, level: str, namespace: str | None) -> dict[str, Any]:
    """The policy document (API.md "Alerting") described by the editor's fields.

    Values are passed as typed (numbers parsed where they look like numbers), so the alerting
    service's validation reports every problem with its field path and the form shows it
    beside that field.
    """
    doc: dict[str, Any] = {"name": form.get("name", "").strip(), "level": level}
    if form.get("description", "").strip():
        doc["description"] = form["description"].strip()
    # An unchecked box sends nothing; the hidden marker tells "unchecked" from "not on the form".
    doc["enabled"] = form.get("enabled") == "on" if form.get("enabled_present") else True
    if level == "workload":
        doc["namespace"] = namespace
        refs = []
        for line in re.split(r"[\n,]+", form.get("target_workloads", "")):
            line = line.strip()
            if not line:
                continue
            kind, _, name = line.partition("/")
            refs.append({"kind": kind.strip(), "name": name.strip()} if name else {"kind": "*", "name": kind.strip()})
        doc["target"] = {"workloads": refs}
    else:
        nodes = [n.strip() for n in re.split(r"[\n,]+", form.get("target_nodes", "")) if n.strip()]
        doc["target"] = {"nodes": nodes or ["*"]}
    indices = sorted({int(m.group(1)) for key in form for m in [re.match(r"rules-(\d+)-", key)] if m})
    rules = []
    for i in indices:
        prefix = f"rules-{i}-"
        if form.get(prefix + "remove"):
            continue
        expr = form.get(prefix + "expr", "").strip()
        if expr:  # a PromQL rule (docs/alerting.md "PromQL rules"): the catalogue fields do not apply
            rule: dict[str, Any] = {
                "name": form.get(prefix + "name", "").strip(),
                "expr": expr,
                "period": form.get(prefix + "period", "").strip() or "1m",
                "severity": form.get(prefix + "severity", "major"),
            }
            if form.get(prefix + "for", "").strip():
                rule["for"] = form[prefix + "for"].strip()
            else:
                rule["consecutive"] = _number(form.get(prefix + "consecutive", "")) or 1
            if form.get(prefix + "summary", "").strip():
                rule["summary"] = form[prefix + "summary"].strip()
            rules.append(rule)
            continue
        rules.append(
            {
                "name": form.get(prefix + "name", "").strip(),
                "metric": form.get(prefix + "metric", "").strip(),
                "aggregation": form.get(prefix + "aggregation", "avg"),
                "comparator": form.get(prefix + "comparator", ">"),
                "threshold": _number(form.get(prefix + "threshold", "")),
                "unit": form.get(prefix + "unit", "").strip(),
                "period": form.get(prefix + "period", "").strip() or "1m",
                "consecutive": _number(form.get(prefix + "consecutive", "")) or 1,
                "severity": form.get(prefix + "severity", "major"),
            }
        )
    doc["rules"] = rules
    receivers = []
    for line in re.split(r"[\n,]+", form.get("receivers", "")):
        line = line.strip()
        if not line:
            continue
        if line.startswith("user:"):
            receivers.append({"user": line[5:].strip()})
        elif line.startswith(("webhook:", "alertmanager:")):
            # "webhook:URL [timeout=10s]": URLs hold no spaces (the policy check refuses them)
            kind, rest = line.split(":", 1)
            words = rest.split()
            hook: dict[str, Any] = {kind: words[0] if words else ""}
            for word in words[1:]:
                if word.startswith("timeout="):
                    hook["timeout"] = word[len("timeout=") :]
            if kind == "webhook":  # write-only: blank keeps the stored secret (AlertService.update_policy)
                if form.get("webhook_secret_clear") == "on":
                    hook["secret"] = ""
                elif form.get("webhook_secret"):
                    hook["secret"] = form.get("webhook_secret")
            receivers.append(hook)
        else:
            receivers.append({"email": line})
    notification: dict[str, Any] = {"receivers": receivers, "send_resolved": form.get("send_resolved") == "on"}
    if form.get("window_start") or form.get("window_end"):
        notification["window"] = {
            "start": form.get("window_start", ""),
            "end": form.get("window_end", ""),
            "timezone": form.get("window_timezone", "") or "UTC",
        }
    doc["notification"] = notification
    repeat: dict[str, Any] = {}
    for severity in SEVERITIES:
        mode = form.get(f"repeat-{severity}-mode", "")
        if not mode:
            continue
        entry: dict[str, Any] = {"mode": mode}
        if mode != "none":
            entry["interval"] = form.get(f"repeat-{severity}-interval", "").strip() or "5m"
            entry["max_sends"] = _number(form.get(f"repeat-{severity}-max_sends", "")) or 1
        repeat[severity] = entry
    if repeat:
        doc["repeat"] = repeat
    return doc


# What the editor's fields show; a stored policy's other fields (a notification's group_by, a
# PromQL rule's labels and description, fields added later) are kept by a form save.
_FORM_TOP = frozenset(
    {"name", "level", "description", "enabled", "namespace", "target", "rules", "notification", "repeat"}
)
_FORM_NOTIFICATION = frozenset({"receivers", "send_resolved", "window"})
_FORM_RULE = {
    "expr": frozenset({"name", "expr", "period", "severity", "for", "consecutive", "summary"}),
    "metric": frozenset(
        {"name", "metric", "aggregation", "comparator", "threshold", "unit", "period", "consecutive", "severity"}
    ),
}
_STORED_ONLY = frozenset({"id", "version", "created_by", "created_at", "updated_by", "updated_at", "status"})


def keep_what_the_form_does_not_show(document: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The form's document plus the stored policy's fields the editor has no field for.

    Saving through the form must not drop what the form cannot show: a field absent from the
    form is carried over from the stored policy (a rule by its name, when it is still the same
    kind of rule); a field the form shows, even emptied, is the form's.
    """
    out = dict(document)
    for key, value in stored.items():
        if key not in _FORM_TOP and key not in _STORED_ONLY and key not in out:
            out[key] = value
    old_note, new_note = stored.get("notification"), out.get("notification")
    if isinstance(old_note, dict) and isinstance(new_note, dict):
        kept = {k: v for k, v in old_note.items() if k not in _FORM_NOTIFICATION and k not in new_note}
        out["notification"] = {**new_note, **kept}
    old_rules = {r.get("name"): r for r in stored.get("rules") or [] if isinstance(r, dict)}
    rules = []
    for rule in out.get("rules") or []:
        old = old_rules.get(rule.get("name")) if isinstance(rule, dict) else None
        kind = "expr" if isinstance(rule, dict) and "expr" in rule else "metric"
        if isinstance(old, dict) and ("expr" in old) == (kind == "expr"):
            rule = {**rule, **{k: v for k, v in old.items() if k not in _FORM_RULE[kind] and k not in rule}}
        rules.append(rule)
    if "rules" in out:
        out["rules"] = rules
    return out


def _problems_of(exc: HubError) -> dict[str, str]:
    if isinstance(exc, PolicyInvalid) and exc.problems:
        return {p.path or "(document)": p.message for p in exc.problems}
    return {exc.field or "(document)": exc.message}


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _policy_url(level: str, ns: str | None, pid: str) -> str:
    if level == "node":
        return url_for(".node_policy", pid=pid)
    return url_for(".workload_policy", ns=ns, pid=pid)


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


def _form_value(doc: dict[str, Any]) -> dict[str, Any]:
    """The editor's text fields for a document (targets and receivers as lines)."""
    target = doc.get("target") or {}
    workloads = [
        f"{w.get('kind', '*')}/{w.get('name', '')}" if w.get("kind") not in (None, "*") else str(w.get("name", ""))
        for w in target.get("workloads") or []
        if isinstance(w, dict)
    ]
    receivers = []
    for r in (doc.get("notification") or {}).get("receivers") or []:
        if isinstance(r, dict) and r.get("user"):
            receivers.append(f"user:{r['user']}")
        elif isinstance(r, dict) and (r.get("webhook") or r.get("alertmanager")):
            kind = "webhook" if r.get("webhook") else "alertmanager"
            timeout = f" timeout={r['timeout']}" if r.get("timeout") else ""
            receivers.append(f"{kind}:{r[kind]}{timeout}")
        elif isinstance(r, dict) and r.get("email"):
            receivers.append(str(r["email"]))
    window = (doc.get("notification") or {}).get("window") or {}
    return {
        "target_workloads": "\n".join(workloads),
        "target_nodes": "\n".join(str(n) for n in target.get("nodes") or []),
        "receivers": "\n".join(receivers),
        "window": window,
        "webhook_secret_set": any(
            isinstance(r, dict) and r.get("secret_set") for r in (doc.get("notification") or {}).get("receivers") or []
        ),
    }


NEW_RULE = {
    "name": "",
    "metric": "",
    "aggregation": "avg",
    "comparator": ">",
    "threshold": None,
    "unit": "",
    "period": "1m",
    "consecutive": 3,
    "severity": "major",
}


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


_SECRET_IN_TEXT = re.compile(
    r"""("secret"\s*:\s*"(?:[^"\\]|\\.)*")|(\bsecret:[ \t]*(?:"[^"\n]*"|'[^'\n]*'|[^,}\n]*))"""
)


def _hide_secret_text(text: str) -> str:
    """Editor text shown back after a refused save, without any webhook secret typed into it
    (secrets are write-only, docs/alerting.md): ``secret_set`` keeps the stored one."""
    return _SECRET_IN_TEXT.sub(lambda m: '"secret_set": true' if m.group(1) else "secret_set: true", text)


def _hide_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    """A form's document shown back: each receiver's typed secret becomes ``secret_set``."""
    notification = doc.get("notification")
    if not isinstance(notification, dict) or not isinstance(notification.get("receivers"), list):
        return doc
    receivers = []
    for r in notification["receivers"]:
        if isinstance(r, dict) and "secret" in r:
            r = {k: v for k, v in r.items() if k != "secret"} | ({"secret_set": True} if r["secret"] else {})
        receivers.append(r)
    return {**doc, "notification": {**notification, "receivers": receivers}}


def _safe_yaml(text: str) -> dict[str, Any] | None:
    """The editor's text as a mapping, read by the policy reader (bounded: depth, aliases,
    size), or None when it is not one."""
    from hub.alerts.policy import decode_policy_text

    try:
        data = decode_policy_text(text).data
    except HubError:
        return None
    return data if isinstance(data, dict) else None


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


def _backtest(level: str, ns: str | None, pid: str) -> Any:
    """Start replaying the saved policy over the chosen window, then show its job page.

    The replay runs in the background (a week of slots takes seconds); the job page shows its
    progress and then the would-be notices on a timeline. Reloading the result page never
    runs the replay again.
    """
    svc = _svc()
    svc.get_policy(pid, level=level, namespace=ns)  # 404 before any work for a policy out of reach
    window = request.form.get("window") or "24h"
    jobs = hub().backtest_jobs
    try:
        job = jobs.submit(
            lambda progress: svc.backtest(pid, level=level, namespace=ns, start=window, end=None, progress=progress),
            owner=current_principal().username,
            target=(level, ns, pid),
            window=window,
        )
    except HubError as exc:
        return failed(exc, _policy_url(level, ns, pid))
    return redirect(_backtest_url(level, ns, pid, job.id), code=303)


def _backtest_url(level: str, ns: str | None, pid: str, jid: str) -> str:
    if level == "node":
        return url_for(".node_policy_backtest_job", pid=pid, jid=jid)
    return url_for(".workload_policy_backtest_job", ns=ns, pid=pid, jid=jid)


def _backtest_job(level: str, ns: str | None, pid: str, jid: str) -> Any:
    """A backtest's progress while it runs (the page reloads itself), then its result."""
    policy = _svc().get_policy(pid, level=level, namespace=ns)
    job = hub().backtest_jobs.get(jid, owner=current_principal().username, target=(level, ns, pid))
    if job is None:
        raise NotFound("no such backtest (it may have expired; run it again)")
    running = job.running  # read first: a job sets its result or error before it counts as finished
    result, exc = (None, None) if running else (job.result, job.error)
    if exc is not None:
        if isinstance(exc, BackendUnavailable):
            common.backend_down(exc)
        else:
            common.banner("error", exc.message, field=exc.field)
    return page(
        "backtest.html",
        policy=policy,
        job=job,
        running=running,
        result=result,
        window=job.window,
        level=level,
        ns=ns,
        timeline=_timeline(result) if result else None,
        back_url=_policy_url(level, ns, pid),
    )


def _timeline(result: dict[str, Any]) -> dict[str, Any]:
    """Positions (0..100 %) of each would-be email and each alert span on the replay window."""
    from hub.timeutil import parse_time

    start = parse_time(result["start"], field="start")
    end = parse_time(result["end"], field="end")
    span = max(end - start, 1.0)

    def pos(text: str | None, default: float) -> float:
        if not text:
            return default
        return max(0.0, min(100.0, (parse_time(text, field="time") - start) / span * 100))

    marks = [{"left": pos(n["time"], 0), **n} for n in result.get("notices", [])]
    bars = []
    for a in result.get("alerts", []):
        left = pos(a.get("fired_at") or a.get("started_at"), 0)
        right = pos(a.get("ended_at") or a.get("resolved_at"), 100)
        bars.append({"left": left, "width": max(right - left, 0.4), "alert": a})
    ticks = [{"left": i * 25.0, "time": start + span * i / 4} for i in range(5)]
    return {"marks": marks, "bars": bars, "ticks": ticks}


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
        result = import_rule_texts(files, ImportOptions(level=level, namespace=ns))
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
