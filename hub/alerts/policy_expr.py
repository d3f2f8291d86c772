"""PromQL rules in a policy document (``rules[].expr``) and their summary/description
templates. Pure.

A PromQL rule is Prometheus's alerting rule inside a kubehub policy: every row the expression
returns at a slot's end is a breach of that entity (its whole label set), an entity it stops
returning is ok. ``for`` maps to ``consecutive`` the way Prometheus counts it: evaluated every
``period``, a row active since ``t0`` fires at the first evaluation ``t`` with ``t - t0 >= for``,
i.e. after ``ceil(for / period) + 1`` breaching periods.

Templates are a safe subset of Go's text/template as alerting rules use it: ``{{ $labels.x }}``,
``{{ $value }}`` and the pipes ``humanize``, ``humanize1024``, ``humanizePercentage``,
``humanizeDuration``, and ``printf "%.Nf"`` of ``$value``. Nothing else is executed; rendering
only substitutes strings, so a template can neither loop nor read anything but the alert's own
labels and value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from hub.alerts.policy_model import MAX_CONSECUTIVE, MAX_PERIOD, MIN_PERIOD, SEVERITIES, Rule
from hub.alerts.promql_scope import PromQLRefused, parse_check, scope_expression
from hub.scope import split_key
from hub.timeutil import format_duration

EXPR_RULE_FIELDS = (
    "name",
    "expr",
    "for",
    "period",
    "consecutive",
    "severity",
    "labels",
    "summary",
    "description",
)


MAX_TEMPLATE_CHARS = 2000


MAX_LABELS = 20


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)


_LABEL_REF = re.compile(r"^\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)$")


_PRINTF = re.compile(r'^printf\s+"%\.(\d)f"\s+\$value$')


_PIPES = ("humanize", "humanize1024", "humanizePercentage", "humanizeDuration")


def consecutive_for(for_seconds: float, period: float) -> int:
    """Breaching periods before firing that match Prometheus's ``for`` at evaluation interval
    ``period`` (see the module docstring)."""
    return math.ceil(for_seconds / period - 1e-9) + 1 if for_seconds > 0 else 1


def template_problems(text: str) -> list[str]:
    """The actions of ``text`` this renderer does not support (empty: it renders)."""
    return [m.group(0) for m in _ACTION.finditer(text) if _action(m.group(1)) is None]


def _action(body: str) -> tuple[str, str | None] | None:
    """(``label``|``value``, name or pipe) for a supported action, else None."""
    m = _LABEL_REF.match(body)
    if m:
        return "label", m.group(1)
    if body == "$value":
        return "value", None
    m = _PRINTF.match(body)
    if m:
        return "value", f"printf{m.group(1)}"
    parts = [p.strip() for p in body.split("|")]
    if len(parts) == 2 and parts[0] == "$value" and parts[1] in _PIPES:
        return "value", parts[1]
    return None


def render_template(text: str, labels: Mapping[str, str], value: float | None) -> str:
    """Substitute the supported actions; an unsupported one is left as written (validation
    refuses those in policies, so this only happens for hand-edited store rows)."""

    def sub(m: re.Match[str]) -> str:
        got = _action(m.group(1))
        if got is None:
            return m.group(0)
        kind, arg = got
        if kind == "label":
            return str(labels.get(arg or "", ""))
        return _format_value(value, arg)

    return _ACTION.sub(sub, text)


def _format_value(value: float | None, how: str | None) -> str:
    if value is None:
        return ""
    if how is None:
        return (
            repr(float(value))
            if not float(value).is_integer()
            else str(int(value))
            if abs(value) < 1e15
            else repr(value)
        )
    if how.startswith("printf"):
        return f"{value:.{int(how[6:])}f}"
    if how == "humanizePercentage":
        return _humanize(value * 100, 1000, ()) + "%"
    if how == "humanizeDuration":
        return format_duration(round(value)) if value >= 1 else f"{value:.4g}s"
    if how == "humanize1024":
        return _humanize(value, 1024, ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))
    return _humanize(value, 1000, ("k", "M", "G", "T", "P", "E"))


def _humanize(value: float, base: float, prefixes: tuple[str, ...]) -> str:
    if not math.isfinite(value):
        return str(value)
    prefix = ""
    for p in prefixes:
        if abs(value) < base:
            break
        value /= base
        prefix = p
    return f"{value:.4g}{prefix}"


def parse_expr_rule(c: Any, r: Mapping[str, Any], path: str, level: str, namespace: str | None) -> Rule:
    """Validate a PromQL rule (``c`` is policy_checker's problem collector)."""
    name = c.string(r.get("name"), f"{path}.name", required=True)
    expr = c.string(r.get("expr"), f"{path}.expr", required=True)
    if expr:
        try:
            if level == "workload":
                # A project of an added cluster (<cluster>/<ns>): checked with a cluster matcher,
                # so a rule matching cluster itself is refused when saved, not when evaluated.
                cluster, ns = split_key(namespace or "default")
                scope_expression(expr, ns, cluster_label=cluster)
            else:
                parse_check(expr)
        except PromQLRefused as exc:
            c.add(f"{path}.expr", f"refused: {exc}")
    severity = c.choice(r.get("severity"), f"{path}.severity", SEVERITIES)
    period = c.duration(r.get("period"), f"{path}.period", default=60.0)
    if not MIN_PERIOD <= period <= MAX_PERIOD:
        c.add(f"{path}.period", f"must be between {format_duration(MIN_PERIOD)} and {format_duration(MAX_PERIOD)}")
        period = 60.0
    elif period % 1:
        c.add(f"{path}.period", "must be a whole number of seconds")
    for_seconds: float | None = None
    if r.get("for") is not None:
        if r.get("consecutive") is not None:
            c.add(f"{path}.for", "give either for or consecutive, not both")
        for_seconds = c.duration(r.get("for"), f"{path}.for", default=0.0)
        consecutive = consecutive_for(for_seconds, period)
        if consecutive > MAX_CONSECUTIVE:
            c.add(f"{path}.for", f"is more than {MAX_CONSECUTIVE} periods of {format_duration(period)}")
            consecutive = 1
    else:
        consecutive = c.integer(r.get("consecutive"), f"{path}.consecutive", low=1, high=MAX_CONSECUTIVE, default=1)
    labels: list[tuple[str, str]] = []
    raw_labels = c.mapping(r.get("labels"), f"{path}.labels", r.get("labels") or {})
    if len(raw_labels) > MAX_LABELS:
        c.add(f"{path}.labels", f"has {len(raw_labels)} labels; at most {MAX_LABELS}")
    for key, val in list(raw_labels.items())[:MAX_LABELS]:
        lp = f"{path}.labels.{key}"
        if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z", str(key)) or str(key).startswith("__"):
            c.add(lp, "is not a label name")
            continue
        if key in ("severity", "alertname", "namespace"):
            c.add(lp, f"{key} is set by the hub (severity from the rule's severity)")
            continue
        text = c.string(val, lp, required=True)
        if len(text) > 1000:
            c.add(lp, "is longer than 1000 characters")
        labels.append((str(key), text))
    texts: dict[str, str] = {}
    for field in ("summary", "description"):
        text = c.string(r.get(field), f"{path}.{field}")
        if len(text) > MAX_TEMPLATE_CHARS:
            c.add(f"{path}.{field}", f"is longer than {MAX_TEMPLATE_CHARS} characters")
        for bad in template_problems(text)[:3]:
            c.add(
                f"{path}.{field}",
                f"template action {bad[:80]!r} is not supported; use {{{{ $labels.NAME }}}}, {{{{ $value }}}} "
                f"or {{{{ $value | humanize }}}}",
            )
        texts[field] = text
    return Rule(
        name=name,
        metric="",
        aggregation="last",
        comparator="present",
        threshold=0.0,
        unit="raw",
        period=period,
        consecutive=consecutive,
        severity=severity,
        expr=expr,
        for_seconds=for_seconds,
        labels=tuple(sorted(labels)),
        summary=texts["summary"],
        details=texts["description"],
    )
