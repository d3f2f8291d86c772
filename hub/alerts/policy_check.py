"""Validating a policy document into a :class:`~hub.alerts.policy_model.Policy`: every problem is
collected with its field path (``rules[2].threshold``) and source line, instead of stopping at
the first. Pure: the metric names come in as a mapping (``hub.alerts`` must not import the
collectors).

This module checks the top-level fields and drives the section validators: the shared problem
collector is ``policy_checker``, target and threshold rules ``policy_check_rules``, notification,
repeat and flap damping ``policy_check_notify``, PromQL rules ``policy_expr``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from hub.alerts.policy_check_notify import (
    MAX_GROUP_BY,
    MAX_URL_CHARS,
    _http_url_problem,
    _parse_flap,
    _parse_notification,
    _parse_repeat,
    _parse_window,
)
from hub.alerts.policy_check_rules import _RULE_FIELDS, _metric_table, _parse_rule, _parse_target
from hub.alerts.policy_checker import _Check, _closest, _kind, valid_timezone
from hub.alerts.policy_expr import EXPR_RULE_FIELDS, parse_expr_rule
from hub.alerts.policy_model import (
    _DNS_LABEL,
    _NAME,
    LEVELS,
    MAX_RULES,
    Policy,
    PolicyInvalid,
    Problem,
    Rule,
)
from hub.alerts.policy_yaml import _r, decode_policy_text
from hub.scope import KEY_SEPARATOR

# Re-exported: callers import these from here (hub.alerts.policy re-exports valid_timezone).
__all__ = [
    "MAX_GROUP_BY",
    "MAX_URL_CHARS",
    "_POLICY_FIELDS",
    "_RULE_FIELDS",
    "_Check",
    "_closest",
    "_http_url_problem",
    "_parse_flap",
    "_parse_notification",
    "_parse_repeat",
    "_parse_rule",
    "_parse_target",
    "_parse_window",
    "load_policy_text",
    "parse_policy",
    "valid_timezone",
]


def load_policy_text(
    text: str,
    *,
    content_type: str = "yaml",
    metrics: Mapping[str, Any] | None = None,
    users: Collection[str] | None = None,
) -> Policy:
    """One policy from JSON or YAML text; PolicySyntaxError (400) or PolicyInvalid (422)."""
    doc = decode_policy_text(text, content_type=content_type)
    return parse_policy(doc.data, metrics=metrics, users=users, lines=doc.lines, extra_problems=doc.problems)


_POLICY_FIELDS = (
    "name",
    "description",
    "level",
    "namespace",
    "cluster",
    "enabled",
    "target",
    "rules",
    "notification",
    "repeat",
    "flap",
)


def parse_policy(
    data: Any,
    *,
    metrics: Mapping[str, Any] | None = None,
    users: Collection[str] | None = None,
    lines: Mapping[str, int] | None = None,
    extra_problems: Iterable[Problem] = (),
    namespace: str | None = None,
) -> Policy:
    """Validate a decoded document into a Policy, or raise PolicyInvalid with every problem.

    ``metrics``: ``{level: names}`` or ``{level: {name: unit}}`` from the catalogue (None skips
    the metric check). ``users``: hub user names (None skips the receiver-user check).
    ``namespace``: when given (the project of an API URL), a workload policy must be in it; an
    omitted namespace is filled in, so a tenant cannot aim a policy at another project.
    """
    c = _Check(lines)
    c.problems.extend(extra_problems)
    if not isinstance(data, dict):
        c.add("", f"a policy must be a mapping of fields, got {_kind(data)}")
        raise PolicyInvalid(c.problems)
    doc = c.mapping(data, "", _POLICY_FIELDS)

    name = c.string(doc.get("name"), "name", required=True)
    if name and not _NAME.match(name):
        c.add(
            "name",
            f"{_r(name)} must be lower-case letters, digits and '-', 1-63 characters, starting and ending alphanumeric",
        )
    description = c.string(doc.get("description"), "description")
    if len(description) > 2000:
        c.add("description", "is longer than 2000 characters")
    level = c.choice(doc.get("level"), "level", LEVELS)
    enabled = c.boolean(doc.get("enabled"), "enabled", default=True)

    ns_value = doc.get("namespace")
    policy_ns: str | None = None
    if level == "workload":
        if ns_value is None and namespace is not None:
            ns_value = namespace
        ns = c.string(ns_value, "namespace")
        if ns_value is None:
            c.add("namespace", "is required for a workload-level policy (the project whose workloads it watches)")
        elif ns and not all(_DNS_LABEL.match(part) for part in ns.split(KEY_SEPARATOR, 1)):
            # A namespace, or a project of an added cluster keyed <cluster>/<ns> (hub.scope).
            c.add("namespace", f"{_r(ns)} is not a valid namespace name")
        elif namespace is not None and ns != namespace:
            c.add(
                "namespace",
                f"must be {_r(namespace)}, the project of this request; a policy cannot watch another project",
            )
        policy_ns = ns or None
    elif ns_value is not None:
        c.add("namespace", "only workload-level policies have a namespace; node-level policies cover the cluster")
    # Several clusters: a node-level policy may name the cluster whose nodes it watches (absent:
    # the implicit cluster); a workload policy's cluster is its project's (docs/multi-cluster.md).
    cluster = c.string(doc.get("cluster"), "cluster")
    if cluster and level != "node":
        c.add("cluster", "only node-level policies name a cluster; a workload policy's cluster is its project's")
    elif cluster and not _DNS_LABEL.match(cluster):
        c.add("cluster", f"{_r(cluster)} is not a valid cluster name")
    elif cluster and any(isinstance(r, dict) and "expr" in r for r in (doc.get("rules") or [])):
        c.add("cluster", "a PromQL rule names its series itself: match the cluster label in its expression")

    target = _parse_target(c, doc.get("target"), level)
    metric_table = _metric_table(metrics, level)

    rules: list[Rule] = []
    names: set[str] = set()
    raw_rules = c.seq(doc.get("rules"), "rules", limit=MAX_RULES)
    # Missing, null (``rules:`` in YAML) or empty: all three would store a policy that never
    # evaluates (and, parsed again on delete, could no longer be deleted).
    if doc.get("rules") is None or (isinstance(doc.get("rules"), list) and not raw_rules):
        c.add("rules", "a policy needs at least one rule")
    for i, raw in enumerate(raw_rules):
        rule: Rule | None
        if isinstance(raw, dict) and "expr" in raw:  # a PromQL rule (hub/alerts/policy_expr.py)
            rule = parse_expr_rule(c, c.mapping(raw, f"rules[{i}]", EXPR_RULE_FIELDS), f"rules[{i}]", level, policy_ns)
        else:
            rule = _parse_rule(c, raw, f"rules[{i}]", metric_table, level)
        if rule is None:
            continue
        if rule.name in names:
            c.add(f"rules[{i}].name", f"rule name {_r(rule.name)} is used twice in this policy")
        names.add(rule.name)
        rules.append(rule)

    notification = _parse_notification(c, doc.get("notification"), users)
    repeat = _parse_repeat(c, doc.get("repeat"))
    flap = _parse_flap(c, doc.get("flap"))

    if c.problems:
        raise PolicyInvalid(c.problems)
    return Policy(
        name=name,
        level=level,
        namespace=policy_ns,
        cluster=cluster,
        rules=tuple(rules),
        target=target,
        notification=notification,
        repeat=repeat,
        flap=flap,
        description=description,
        enabled=enabled,
    )
