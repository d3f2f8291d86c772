"""Prometheus rule files and ``PrometheusRule`` objects in and out of kubehub policies. Pure:
text in, policy documents and a report out (``hub/cli.py`` and the web layer read files and
uploads and save the policies).

Import: each group becomes a policy (its ``interval`` the rules' period; more than
``MAX_RULES`` alerting rules: several policies), each alerting rule a PromQL rule (``for``,
``labels.severity`` through a configurable mapping, other labels, the ``summary`` and
``description`` annotations as templates). Nothing is dropped silently: the report lists every
rule as imported, changed (and why: a renamed rule, a severity mapped or defaulted, an
annotation folded into the description, a template action the hub does not render) or not
importable (and why: a tenant's expression that cannot be scoped, ``keep_firing_for``, a
recording rule, a malformed entry), naming the file, group and rule.

Export: policies as one ``PrometheusRule`` (one group per policy and period). A PromQL rule
exports its expression as the hub evaluates it (a tenant's scoped); a catalogue rule the
alerting rule docs/alerting.md "The same rule in Prometheus" gives.

Over 400 lines because import reports on every rule (imported, changed and why, or refused
and why) and export must give back what import reads; both sides share the same field rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from hub.alerts.engine_model import PROMQL_CLUSTER_PREFIX, rule_metric, step_for
from hub.alerts.policy_check import parse_policy
from hub.alerts.policy_expr import template_problems
from hub.alerts.policy_model import MAX_PERIOD, MAX_RULES, MIN_PERIOD, Policy, PolicyInvalid
from hub.alerts.policy_yaml import _expanded_nodes, _PolicyLoader
from hub.alerts.promql_scope import PromQLRefused, metric_names, parse_check, scope_expression
from hub.errors import InvalidInput
from hub.scope import split_key
from hub.timeutil import format_duration, parse_duration

MAX_FILE_BYTES = 2 * 1024 * 1024  # the community's whole Kubernetes rule set is ~0.3 MB


MAX_IMPORT_RULES = 5000  # alerting + recording rules of one import


MAX_IMPORT_NODES = 400_000  # YAML values of one file, aliases expanded


DEFAULT_SEVERITY_MAP: Mapping[str, str] = {
    "critical": "critical",
    "page": "critical",
    "high": "critical",
    "error": "major",
    "major": "major",
    "warning": "major",
    "medium": "major",
    "minor": "minor",
    "low": "minor",
    "info": "minor",
    "none": "minor",
}


@dataclass
class ImportItem:
    file: str
    group: str
    rule: str  # the alert's or record's name as written
    outcome: str  # imported | changed | not_importable | recording
    reasons: list[str] = field(default_factory=list)
    policy: str = ""  # the policy and rule name it became
    rule_name: str = ""
    expr: str = ""  # as written (not in the report)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "group": self.group,
            "rule": self.rule,
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "policy": self.policy,
            "policy_rule": self.rule_name,
        }

    def line(self) -> str:
        where = f"{self.file}: group {self.group!r}: {self.rule}"
        to = f" -> {self.policy}/{self.rule_name}" if self.policy else ""
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{where}: {self.outcome.replace('_', ' ')}{to}{why}"


@dataclass
class ImportResult:
    policies: list[dict[str, Any]] = field(default_factory=list)
    items: list[ImportItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # whole files or groups that could not be read

    def counts(self) -> dict[str, int]:
        out = {"imported": 0, "changed": 0, "not_importable": 0, "recording": 0}
        for it in self.items:
            out[it.outcome] += 1
        out["errors"] = len(self.errors)
        out["policies"] = len(self.policies)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.counts(),
            "policies": self.policies,
            "rules": [it.to_dict() for it in self.items],
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class ImportOptions:
    level: str = "node"
    namespace: str | None = None
    severity_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY_MAP))
    default_severity: str = "major"
    default_interval: float = 60.0  # Prometheus's global evaluation_interval default
    receivers: tuple[Mapping[str, Any], ...] = ()
    # The implicit cluster's ``cluster`` label on a shared endpoint ('' : none): an
    # implicit-cluster project's rule matching cluster is then not importable (AlertService).
    implicit_label: str = ""


def policy_name(text: str) -> str:
    """``KubePodCrashLooping`` -> ``kube-pod-crash-looping``; ``node-exporter.rules`` ->
    ``node-exporter-rules``: a kubehub name (lower-case, digits, '-', at most 63)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", text)
    name = re.sub(r"[^a-z0-9]+", "-", spaced.lower()).strip("-")[:63].strip("-")
    return name or "rule"


class _Importer:
    def __init__(self, options: ImportOptions) -> None:
        self.o = options
        self.result = ImportResult()
        self.policy_names: set[str] = set()
        self.total = 0
        self.records: set[str] = set()  # series recording rules make

    def text(self, filename: str, text: str) -> None:
        if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
            self.result.errors.append(f"{filename}: larger than {MAX_FILE_BYTES} bytes; split it")
            return
        try:
            docs = _load_all(text)
        except InvalidInput as exc:
            self.result.errors.append(f"{filename}: {exc.message}")
            return
        for i, doc in enumerate(docs):
            where = filename if len(docs) == 1 else f"{filename} (document {i + 1})"
            if doc is None:
                continue
            groups = self.groups_of(where, doc)
            if groups is None:
                continue
            for j, group in enumerate(groups):
                self.group(where, j, group)

    def groups_of(self, where: str, doc: Any) -> list[Any] | None:
        if not isinstance(doc, dict):
            self.result.errors.append(f"{where}: not a rule file or PrometheusRule (a mapping is expected)")
            return None
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out: list[Any] = []
            for item in doc["items"]:
                got = self.groups_of(where, item)
                out.extend(got or [])
            return out
        if "kind" in doc:
            if doc.get("kind") != "PrometheusRule":
                self.result.errors.append(
                    f"{where}: kind {str(doc.get('kind'))[:60]!r} is not a PrometheusRule; skipped"
                )
                return None
            spec = doc.get("spec")
            groups = spec.get("groups") if isinstance(spec, dict) else None
        else:
            groups = doc.get("groups")
        if not isinstance(groups, list):
            self.result.errors.append(
                f"{where}: no groups list (a rule file has groups:, a PrometheusRule spec.groups:)"
            )
            return None
        return groups

    def group(self, where: str, index: int, group: Any) -> None:
        if not isinstance(group, dict):
            self.result.errors.append(f"{where}: groups[{index}] is not a mapping")
            return
        gname = str(group.get("name") or f"group-{index + 1}")
        rules = group.get("rules")
        if not isinstance(rules, list):
            self.result.errors.append(f"{where}: group {gname!r}: no rules list")
            return
        interval = self.o.default_interval
        group_notes: list[str] = []
        if group.get("interval") is not None:
            try:
                interval = parse_duration(str(group["interval"]), field="interval")
            except InvalidInput as exc:
                self.result.errors.append(f"{where}: group {gname!r}: interval: {exc.message}")
                return
        if interval % 1 or not MIN_PERIOD <= interval <= MAX_PERIOD:
            clamped = float(min(max(round(interval), MIN_PERIOD), MAX_PERIOD))
            group_notes.append(f"interval {format_duration(interval)} became {format_duration(clamped)}")
            interval = clamped
        for key in ("limit", "query_offset", "partial_response_strategy"):
            if group.get(key) is not None:
                group_notes.append(f"group field {key} is not used by kubehub")
        alerting: list[dict[str, Any]] = []
        first_item = len(self.result.items)
        taken: set[str] = set()
        for k, raw in enumerate(rules):
            self.total += 1
            if self.total > MAX_IMPORT_RULES:
                if self.total == MAX_IMPORT_RULES + 1:
                    self.result.errors.append(f"{where}: more than {MAX_IMPORT_RULES} rules in one import; stopped")
                break
            got = self.rule(where, gname, k, raw, interval, group_notes, taken)
            if got is not None:
                alerting.append(got)
                taken.add(got["name"])
        for part in range(0, len(alerting), MAX_RULES):
            chunk = alerting[part : part + MAX_RULES]
            base = policy_name(gname)
            if len(alerting) > MAX_RULES:
                base = f"{base[:58]}-{part // MAX_RULES + 1}"
            name = base
            n = 2
            while name in self.policy_names:
                name = f"{base[:58]}-{n}"
                n += 1
            self.policy_names.add(name)
            doc: dict[str, Any] = {
                "name": name,
                "description": f"Imported from {where}, group {gname}"[:2000],
                "level": self.o.level,
                "rules": chunk,
                "notification": {"receivers": [dict(r) for r in self.o.receivers]},
            }
            if self.o.level == "workload":
                doc["namespace"] = self.o.namespace
            names = {r["name"] for r in chunk}
            for it in self.result.items[first_item:]:
                if it.rule_name in names and not it.policy:
                    it.policy = name
            self.result.policies.append(doc)

    def rule(
        self, where: str, gname: str, k: int, raw: Any, interval: float, notes: list[str], taken: set[str]
    ) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.result.items.append(ImportItem(where, gname, f"rules[{k}]", "not_importable", ["not a mapping"]))
            return None
        if "record" in raw:
            name = str(raw.get("record"))[:200]
            self.records.add(name)
            self.result.items.append(
                ImportItem(
                    where,
                    gname,
                    name,
                    "recording",
                    ["a recording rule: kubehub evaluates alerts only; keep it in Prometheus if an alert reads it"],
                )
            )
            return None
        alert = raw.get("alert")
        label = str(alert)[:200] if alert else f"rules[{k}]"
        item = ImportItem(where, gname, label, "imported", list(notes), expr=str(raw.get("expr") or ""))
        self.result.items.append(item)
        unknown = set(raw) - {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        problem = ""
        if not isinstance(alert, str) or not alert:
            problem = "no alert name"
        elif not isinstance(raw.get("expr"), str | int | float) or not str(raw.get("expr")).strip():
            problem = "no expr"
        elif unknown:
            problem = f"unknown field(s) {', '.join(sorted(map(str, unknown)))}"
        elif raw.get("keep_firing_for") not in (None, "0s", "0", 0):
            problem = "keep_firing_for is not supported (kubehub resolves when the expression stops returning the row)"
        if problem:
            item.outcome, item.reasons = "not_importable", [*item.reasons, problem]
            return None
        expr = str(raw["expr"]).strip()
        try:
            if self.o.level == "workload":
                # a project of an added cluster (<cluster>/<ns>): its rules may not match cluster
                cluster, ns = split_key(self.o.namespace or "")
                scoped = scope_expression(expr, ns, cluster_label=cluster or self.o.implicit_label)
                if scoped != expr:
                    item.reasons.append("the expression is evaluated scoped to the namespace")
            else:
                parse_check(expr)
        except PromQLRefused as exc:
            item.outcome, item.reasons = "not_importable", [*item.reasons, f"expr refused: {exc}"]
            return None
        base = name = policy_name(str(alert))
        n = 2
        while name in taken:
            name = f"{base[:60]}-{n}"
            n += 1
        if name != base:
            item.reasons.append(f"named {name}: {alert} repeats in the group")
        item.rule_name = name
        out: dict[str, Any] = {"name": name, "expr": expr, "period": format_duration(interval)}
        if raw.get("for") is not None:
            try:
                for_s = parse_duration(str(raw["for"]), field="for")
            except InvalidInput as exc:
                item.outcome, item.reasons = "not_importable", [*item.reasons, f"for: {exc.message}"]
                return None
            out["for"] = format_duration(for_s) if for_s else "0s"
        labels = raw.get("labels") or {}
        annotations = raw.get("annotations") or {}
        if not isinstance(labels, dict) or not isinstance(annotations, dict):
            item.outcome, item.reasons = "not_importable", [*item.reasons, "labels/annotations must be mappings"]
            return None
        sev_raw = labels.get("severity")
        if sev_raw is None:
            sev = self.o.default_severity
            item.reasons.append(f"no severity label; {sev}")
        else:
            mapped = self.o.severity_map.get(str(sev_raw).lower())
            sev = mapped or self.o.default_severity
            if mapped is None:
                item.reasons.append(f"severity {str(sev_raw)[:40]!r} is not in the mapping; {sev}")
            elif mapped != str(sev_raw):
                item.reasons.append(f"severity {sev_raw} -> {sev}")
        out["severity"] = sev
        kept: dict[str, str] = {}
        for key, val in labels.items():
            if key == "severity":
                continue
            if key in ("alertname", "namespace") or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", str(key)):
                item.reasons.append(f"label {str(key)[:40]} dropped (set by the hub)")
                continue
            if template_problems(str(val)) or "{{" in str(val):
                item.reasons.append(f"label {key} holds a template; kept as text (labels are not templated)")
            kept[str(key)] = str(val)
        if kept:
            out["labels"] = kept
        summary = str(annotations.get("summary") or "")
        description = str(annotations.get("description") or annotations.get("message") or "")
        extra = [(k, str(v)) for k, v in annotations.items() if k not in ("summary", "description", "message")]
        if annotations.get("message") and annotations.get("description"):
            extra.append(("message", str(annotations["message"])))
        if extra:
            description = "\n".join([description, *[f"{k}: {v}" for k, v in extra]]).strip()
            item.reasons.append(f"annotation(s) {', '.join(k for k, _ in extra)} kept in the description")
        for field_name, text in (("summary", summary), ("description", description)):
            bad = template_problems(text)
            if bad:
                for action in bad:
                    text = text.replace(action, "(" + action.strip("{} -") + ")")
                item.reasons.append(f"{field_name}: template action(s) {', '.join(b[:60] for b in bad)} kept as text")
            if text:
                out[field_name] = text[:2000]
        if item.reasons and item.outcome == "imported":
            item.outcome = "changed"
        return out


def _load_all(text: str) -> list[Any]:
    """Every YAML document of ``text`` with the policy loader's scalars and bounds."""
    out: list[Any] = []
    try:
        loader = _PolicyLoader(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}") from exc
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if _expanded_nodes(node, MAX_IMPORT_NODES) > MAX_IMPORT_NODES:
                raise InvalidInput(f"a document expands to more than {MAX_IMPORT_NODES} values")
            out.append(loader.construct_document(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InvalidInput(f"not valid YAML at line {mark.line + 1 if mark else '?'}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return out


def import_rule_texts(files: Sequence[tuple[str, str]], options: ImportOptions | None = None) -> ImportResult:
    """Import ``(filename, text)`` pairs; every policy produced is validated by the policy
    checker (a rule it refuses moves to not importable with the checker's message)."""
    imp = _Importer(options or ImportOptions())
    for name, text in files:
        imp.text(name, text)
    result = imp.result
    for it in result.items:
        if it.outcome in ("recording", "not_importable") or not imp.records or not it.expr:
            continue
        try:
            read = sorted(metric_names(it.expr) & imp.records)
        except PromQLRefused:
            continue
        if read:
            it.reasons.append(f"reads {', '.join(read)}, made by a recording rule: Prometheus must keep recording it")
            it.outcome = "changed"
    valid: list[dict[str, Any]] = []
    for doc in result.policies:
        try:
            parse_policy(doc, namespace=options.namespace if options else None)
            valid.append(doc)
        except PolicyInvalid as exc:
            bad = {p.path.split(".")[0] for p in exc.problems}
            keep = []
            for i, rule in enumerate(doc["rules"]):
                msgs = [p.message for p in exc.problems if p.path.startswith(f"rules[{i}]")]
                if f"rules[{i}]" in bad:
                    for it in result.items:
                        if it.policy == doc["name"] and it.rule_name == rule["name"]:
                            it.outcome, it.reasons = "not_importable", [*it.reasons, *msgs]
                else:
                    keep.append(rule)
            if keep:
                doc = {**doc, "rules": keep}
                try:
                    parse_policy(doc, namespace=options.namespace if options else None)
                    valid.append(doc)
                except PolicyInvalid as again:
                    result.errors.append(f"policy {doc['name']}: {again}")
    result.policies = valid
    return result


# -- export ------------------------------------------------------------------------------------


def alert_name(text: str) -> str:
    """A Prometheus alert name (``[a-zA-Z_:][a-zA-Z0-9_:]*``) from a kubehub name."""
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", text)
    return name if name and not name[0].isdigit() else f"_{name}"


CatalogueQuery = Callable[[str, str, float, str | None], str]


def export_policies(
    policies: Sequence[tuple[str, Policy]], catalogue_query: CatalogueQuery, *, name: str = "kubehub"
) -> dict[str, Any]:
    """A ``PrometheusRule`` holding ``policies``; ``catalogue_query(level, metric, period,
    namespace)`` gives a catalogue metric's PromQL (the hub's ``alert_query``)."""
    groups: list[dict[str, Any]] = []
    for _pid, policy in policies:
        periods = sorted({r.period for r in policy.rules})
        for period in periods:
            rules: list[dict[str, Any]] = []
            for rule in (r for r in policy.rules if r.period == period):
                labels: dict[str, str] = {"severity": rule.severity, "kubehub_policy": policy.name}
                annotations: dict[str, str] = {}
                if rule.expr is not None:
                    expr = rule_metric(policy, rule).removeprefix("promql:")
                    if expr.startswith(PROMQL_CLUSTER_PREFIX):  # an added cluster's project: its
                        # namespace's scope (the cluster's label value is the runtime's to add)
                        expr = scope_expression(rule.expr, split_key(policy.namespace or "")[1])
                    labels.update(dict(rule.labels))
                    if rule.summary:
                        annotations["summary"] = rule.summary
                    if rule.details:
                        annotations["description"] = rule.details
                else:
                    base = catalogue_query(policy.level, rule.metric, period, policy.namespace)
                    threshold = repr(rule.threshold_base)
                    if rule.aggregation == "last":
                        expr = f"({base}) {rule.comparator} {threshold}"
                    else:
                        step = format_duration(step_for(period))
                        rng = f"{int(period * 1000) - 1}ms"
                        expr = f"{rule.aggregation}_over_time(({base})[{rng}:{step}]) {rule.comparator} {threshold}"
                    annotations["summary"] = (
                        f"{rule.aggregation} of {rule.metric} {rule.comparator} {rule.threshold:g} {rule.unit}"
                    )
                if policy.namespace:
                    labels["namespace"] = policy.namespace
                entry: dict[str, Any] = {"alert": alert_name(rule.name), "expr": expr}
                for_s = rule.for_seconds if rule.for_seconds is not None else (rule.consecutive - 1) * period
                if for_s:
                    entry["for"] = format_duration(for_s)
                entry["labels"] = labels
                if annotations:
                    entry["annotations"] = annotations
                rules.append(entry)
            suffix = "" if len(periods) == 1 else f"-{format_duration(period)}"
            gname = f"{policy.namespace + '/' if policy.namespace else ''}{policy.name}{suffix}"
            groups.append({"name": gname, "interval": format_duration(period), "rules": rules})
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubehub"}},
        "spec": {"groups": groups},
    }
