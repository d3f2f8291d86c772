"""The console policy editor's conversions, without Flask: the form's fields to a policy
document (``document_from_form``) and back (``_form_value``), keeping a stored policy's fields
the form cannot show on a save, and hiding typed webhook secrets when a refused document is
shown back (secrets are write-only, docs/alerting.md). Kept apart from the routes in
``web.views.alerting_policies`` so it can be tested on plain dicts.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from hub.alerts.policy import PolicyInvalid
from hub.errors import HubError
from web.views.alerting_common import SEVERITIES


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
    # group_by (docs/alerting.md "Grouping across policies"): label names, blank for the level's
    # default, "[]" for none (all of the tenant's notices of the level in one group).
    group_by = form.get("group_by", "").strip()
    if group_by == "[]":
        notification["group_by"] = []
    elif group_by:
        notification["group_by"] = [n for n in re.split(r"[\s,]+", group_by) if n]
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


# What the editor's fields show; a stored policy's other fields (a PromQL rule's labels and
# description, fields added later) are kept by a form save.
_FORM_TOP = frozenset(
    {"name", "level", "description", "enabled", "namespace", "target", "rules", "notification", "repeat"}
)
_FORM_NOTIFICATION = frozenset({"receivers", "send_resolved", "window", "group_by"})
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
    group_by = (doc.get("notification") or {}).get("group_by")
    return {
        "group_by": ("[]" if not group_by else ", ".join(str(n) for n in group_by))
        if isinstance(group_by, list)
        else "",
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
