"""Validating a policy document into a :class:`~hub.alerts.policy_model.Policy`: every problem is
collected with its field path (``rules[2].threshold``) and source line, instead of stopping at
the first. Pure: the metric names come in as a mapping (``hub.alerts`` must not import the
collectors).

Over 400 lines because it is one validator per section of the document (target, rules, time
window, notification, repeat, flap damping), each small; splitting them further would scatter
the one :class:`_Check` they share.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from hub.alerts.policy_expr import EXPR_RULE_FIELDS, parse_expr_rule
from hub.alerts.policy_model import (
    _CATALOGUE_UNIT_ALIASES,
    _CLOCK,
    _DNS_LABEL,
    _EMAIL,
    _GLOB,
    _LABEL,
    _NAME,
    AGGREGATIONS,
    CATALOGUE_LEVEL,
    COMPARATORS,
    LANGUAGES,
    LEVELS,
    MAX_CONSECUTIVE,
    MAX_PERIOD,
    MAX_PROBLEMS,
    MAX_RECEIVERS,
    MAX_RULES,
    MAX_SENDS,
    MAX_TARGETS,
    MAX_THRESHOLD,
    MIN_PERIOD,
    RECEIVER_KINDS,
    REPEAT_MODES,
    SEVERITIES,
    UNITS,
    WORKLOAD_KINDS,
    FlapDamping,
    Notification,
    Policy,
    PolicyInvalid,
    Problem,
    Receiver,
    RepeatRule,
    Rule,
    Target,
    TimeWindow,
    WorkloadRef,
)
from hub.alerts.policy_yaml import _r, decode_policy_text
from hub.errors import InvalidInput
from hub.timeutil import format_duration, parse_duration


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


class _Check:
    """Collects problems; each accessor returns a usable default so checking can go on."""

    def __init__(self, lines: Mapping[str, int] | None) -> None:
        self.lines = lines or {}
        self.problems: list[Problem] = []

    def line_of(self, path: str) -> int | None:
        probe = path
        while True:
            if probe in self.lines:
                return self.lines[probe]
            if not probe:
                return None
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""

    def add(self, path: str, message: str) -> None:
        if len(self.problems) > MAX_PROBLEMS:
            return
        if len(self.problems) == MAX_PROBLEMS:
            path, message = "(document)", f"more than {MAX_PROBLEMS} problems; fix these first"
        self.problems.append(Problem(path[:200], message[:500], self.line_of(path)))

    def mapping(self, value: Any, path: str, known: Iterable[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping of fields, got {_kind(value)}")
            return {}
        allowed = set(known)
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                self.add(_join(path, str(key)), f"unknown field; known fields: {', '.join(sorted(allowed))}")
        return value

    def string(self, value: Any, path: str, *, required: bool = False, default: str = "") -> str:
        if value is None:
            if required:
                self.add(path, "is required")
            return default
        if isinstance(value, bool):
            self.add(path, f"must be a string, got the boolean {str(value).lower()} (quote it)")
            return default
        if isinstance(value, int | float):
            self.add(path, f"must be a string, got the number {value} (quote it)")
            return default
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_kind(value)}")
            return default
        return value

    def choice(self, value: Any, path: str, options: tuple[str, ...], *, default: str | None = None) -> str:
        if value is None and default is not None:
            return default
        text = self.string(value, path, required=True)
        if text and text not in options:
            self.add(path, f"{_r(text)} is not one of {', '.join(options)}")
            return default or options[0]
        return text or default or options[0]

    def duration(self, value: Any, path: str, *, required: bool = False, default: float = 0.0) -> float:
        if value is None:
            if required:
                self.add(path, "is required (a duration such as 30s, 5m or 1h)")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.add(path, f"must be a duration such as 30s, 5m or 1h, got {_kind(value)}")
            return default
        try:
            return parse_duration(value, field=path)
        except InvalidInput as exc:  # its message starts with "<path>: "
            self.add(path, exc.message.removeprefix(f"{path}: "))
            return default

    def integer(self, value: Any, path: str, *, low: int, high: int, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.add(path, f"must be a whole number, got {_r(value)}")
                return default
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}, got {value}")
            return default
        return int(value)

    def boolean(self, value: Any, path: str, *, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, f"must be true or false, got {_r(value)}")
            return default
        return value

    def seq(self, value: Any, path: str, *, limit: int) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, f"must be a list, got {_kind(value)}")
            return []
        if len(value) > limit:
            self.add(path, f"has {len(value)} entries; at most {limit} are allowed")
            return value[:limit]
        return value

    def timezone(self, value: Any, path: str, *, default: str = "UTC") -> str:
        if value is None:
            return default
        name = self.string(value, path)
        if not name:
            return default
        if not valid_timezone(name):
            self.add(path, f"{_r(name)} is not an IANA time zone name (e.g. Europe/Berlin, Asia/Shanghai, UTC)")
            return default
        return name

    def clock(self, value: Any, path: str) -> int:
        text = self.string(value, path, required=True)
        if not text:
            return 0
        m = _CLOCK.match(text.strip())
        if not m:
            self.add(path, f"{_r(text)} is not a time of day; use HH:MM in 24-hour form, e.g. 09:00 or 22:30")
            return 0
        return int(m.group(1)) * 60 + int(m.group(2))


def valid_timezone(name: str) -> bool:
    if not name or name.startswith(("/", ".")) or ".." in name or "\x00" in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _metric_table(metrics: Mapping[str, Any] | None, level: str) -> dict[str, str | None] | None:
    """Normalise the injected catalogue to {metric: unit or None} for one policy level."""
    if metrics is None:
        return None
    table = metrics.get(level)
    if table is None:
        table = metrics.get(CATALOGUE_LEVEL[level])
    if table is None:
        return {}
    if isinstance(table, Mapping):
        out: dict[str, str | None] = {}
        for name, unit in table.items():
            alias = _CATALOGUE_UNIT_ALIASES.get(str(unit).strip()) if isinstance(unit, str) else None
            out[str(name)] = alias
        return out
    return {str(name): None for name in table}


_POLICY_FIELDS = (
    "name",
    "description",
    "level",
    "namespace",
    "enabled",
    "target",
    "rules",
    "notification",
    "repeat",
    "flap",
)


_RULE_FIELDS = ("name", "metric", "aggregation", "comparator", "threshold", "unit", "period", "consecutive", "severity")


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
        elif ns and not _DNS_LABEL.match(ns):
            c.add("namespace", f"{_r(ns)} is not a valid namespace name")
        elif namespace is not None and ns != namespace:
            c.add(
                "namespace",
                f"must be {_r(namespace)}, the project of this request; a policy cannot watch another project",
            )
        policy_ns = ns or None
    elif ns_value is not None:
        c.add("namespace", "only workload-level policies have a namespace; node-level policies cover the cluster")

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
        rules=tuple(rules),
        target=target,
        notification=notification,
        repeat=repeat,
        flap=flap,
        description=description,
        enabled=enabled,
    )


def _parse_target(c: _Check, value: Any, level: str) -> Target:
    t = c.mapping(value, "target", ("nodes", "workloads", "selector"))
    nodes: list[str] = []
    workloads: list[WorkloadRef] = []
    if level == "node":
        if "workloads" in t:
            c.add("target.workloads", "a node-level policy targets nodes; use target.nodes")
        for i, item in enumerate(c.seq(t.get("nodes"), "target.nodes", limit=MAX_TARGETS)):
            text = c.string(item, f"target.nodes[{i}]", required=True)
            if text and not _GLOB.match(text):
                c.add(f"target.nodes[{i}]", f"{_r(text)} is not a node name or glob")
            elif text:
                nodes.append(text)
    else:
        if "nodes" in t:
            c.add("target.nodes", "a workload-level policy targets workloads of its namespace; use target.workloads")
        raw = t.get("workloads")
        if raw == "*" or raw == ["*"]:
            raw = []
        for i, item in enumerate(c.seq(raw, "target.workloads", limit=MAX_TARGETS)):
            path = f"target.workloads[{i}]"
            w = c.mapping(item, path, ("kind", "name"))
            if not w:
                if not isinstance(item, dict):
                    continue
                c.add(path, "needs a kind and a name")
                continue
            kind = c.choice(w.get("kind"), f"{path}.kind", (*WORKLOAD_KINDS, "*"))
            wname = c.string(w.get("name"), f"{path}.name", required=True)
            if wname and not _GLOB.match(wname):
                c.add(f"{path}.name", f"{_r(wname)} is not a workload name or glob")
            workloads.append(WorkloadRef(kind=kind, name=wname))
    if "*" in nodes:  # "every node" is one canonical form, the empty tuple
        nodes = []
    selector: list[tuple[str, str]] = []
    sel = t.get("selector")
    if sel is not None:
        if not isinstance(sel, dict):
            c.add("target.selector", f"must map label names to values or globs, got {_kind(sel)}")
        else:
            for key, val in sel.items():
                path = f"target.selector.{key}"
                if not isinstance(key, str) or not _LABEL.match(key):
                    c.add(path, f"{_r(key)} is not a label name")
                    continue
                text = c.string(val, path, required=True)
                if text:
                    selector.append((key, text))
    return Target(nodes=tuple(nodes), workloads=tuple(workloads), selector=tuple(sorted(selector)))


def _parse_rule(c: _Check, raw: Any, path: str, metric_table: dict[str, str | None] | None, level: str) -> Rule | None:
    if not isinstance(raw, dict):
        c.add(path, f"a rule must be a mapping of fields, got {_kind(raw)}")
        return None
    r = c.mapping(raw, path, _RULE_FIELDS)
    name = c.string(r.get("name"), f"{path}.name", required=True)
    if name and not _NAME.match(name):
        c.add(f"{path}.name", f"{_r(name)} must be lower-case letters, digits and '-', 1-63 characters")
    metric = c.string(r.get("metric"), f"{path}.metric", required=True)
    metric_unit: str | None = None
    if metric and metric_table is not None:
        if metric not in metric_table:
            known = sorted(metric_table)
            hint = _closest(metric, known)
            listing = f"; did you mean {_r(hint)}?" if hint else (f"; known: {', '.join(known[:12])}" if known else "")
            c.add(f"{path}.metric", f"unknown {level}-level metric {_r(metric)}{listing}")
        else:
            metric_unit = metric_table[metric]
    aggregation = c.choice(r.get("aggregation"), f"{path}.aggregation", AGGREGATIONS, default="avg")
    comparator = c.choice(r.get("comparator"), f"{path}.comparator", COMPARATORS)
    severity = c.choice(r.get("severity"), f"{path}.severity", SEVERITIES)

    unit_name = c.string(r.get("unit"), f"{path}.unit", default=metric_unit or "raw")
    unit = UNITS.get(unit_name)
    if unit is None:
        c.add(f"{path}.unit", f"{_r(unit_name)} is not a unit; known: {', '.join(UNITS)}")
    elif metric_unit and metric_unit in UNITS and UNITS[metric_unit].dimension != unit.dimension:
        c.add(f"{path}.unit", f"{metric} is measured in {metric_unit}; {_r(unit_name)} cannot be converted to it")

    threshold = 0.0
    raw_threshold = r.get("threshold")
    if raw_threshold is None:
        c.add(f"{path}.threshold", "is required")
    elif isinstance(raw_threshold, bool) or not isinstance(raw_threshold, int | float):
        c.add(f"{path}.threshold", f"must be a number, got {_kind(raw_threshold)}")
    elif not abs(raw_threshold) <= MAX_THRESHOLD:  # also NaN, infinities and 10**400 (no float)
        c.add(f"{path}.threshold", f"must be a finite number between {-MAX_THRESHOLD:g} and {MAX_THRESHOLD:g}")
    else:
        threshold = float(raw_threshold)
        if unit is not None and unit.nonnegative and threshold < 0:
            c.add(f"{path}.threshold", f"a negative threshold is meaningless for a value in {unit.name}")
        elif unit is not None and unit.upper is not None and threshold > unit.upper:
            hint = " (did you mean unit: percent?)" if unit.name == "ratio" else ""
            c.add(f"{path}.threshold", f"a {unit.name} threshold above {unit.upper:g} can never be reached{hint}")

    period = c.duration(r.get("period"), f"{path}.period", default=60.0)
    if r.get("period") is not None and not MIN_PERIOD <= period <= MAX_PERIOD and period > 0:
        c.add(
            f"{path}.period",
            f"must be between {format_duration(MIN_PERIOD)} and {format_duration(MAX_PERIOD)}, "
            f"got {format_duration(period)}",
        )
    elif period and period % 1:
        c.add(f"{path}.period", "must be a whole number of seconds")
    consecutive = c.integer(r.get("consecutive"), f"{path}.consecutive", low=1, high=MAX_CONSECUTIVE, default=1)
    return Rule(
        name=name,
        metric=metric,
        aggregation=aggregation,
        comparator=comparator,
        threshold=threshold,
        unit=unit_name if unit is not None else "raw",
        period=period,
        consecutive=consecutive,
        severity=severity,
    )


def _parse_window(
    c: _Check, value: Any, path: str, *, with_timezone: bool, default_tz: str = "UTC"
) -> TimeWindow | None:
    fields = ("start", "end", "timezone") if with_timezone else ("start", "end")
    w = c.mapping(value, path, fields)
    if not w:
        return None
    start = c.clock(w.get("start"), f"{path}.start")
    end = c.clock(w.get("end"), f"{path}.end")
    if "start" in w and "end" in w and start == end and _CLOCK.match(str(w.get("start")).strip()):
        c.add(f"{path}.end", "equals the start; a window needs a length (omit the window to allow the whole day)")
    tz = c.timezone(w.get("timezone"), f"{path}.timezone", default=default_tz) if with_timezone else default_tz
    return TimeWindow(start=start, end=end, timezone=tz)


MAX_URL_CHARS = 2000


def _http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an HTTP receiver's address, or None. No credentials in the URL: they
    would be shown back with the policy (a webhook's secret is the write-only ``secret``)."""
    if not url:
        return "must not be empty"
    if len(url) > MAX_URL_CHARS:
        return f"is longer than {MAX_URL_CHARS} characters"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{_r(url)} is not an http:// or https:// URL"
    if not parts.hostname:
        return f"{_r(url)} names no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password (a webhook's secret goes in its secret field)"
    if parts.fragment:
        return "must not have a #fragment"
    return None


def _parse_notification(c: _Check, value: Any, users: Collection[str] | None) -> Notification:
    n = c.mapping(value, "notification", ("receivers", "window", "send_resolved", "language", "group_by"))
    receivers: list[Receiver] = []
    seen: set[str] = set()
    for i, raw in enumerate(c.seq(n.get("receivers"), "notification.receivers", limit=MAX_RECEIVERS)):
        path = f"notification.receivers[{i}]"
        if isinstance(raw, str):
            raw = {"email": raw} if "@" in raw else {"user": raw}
        r = c.mapping(
            raw,
            path,
            (*RECEIVER_KINDS, "secret", "secret_set", "timeout", "timezone", "quiet_hours", "language"),
        )
        if not r:
            if isinstance(raw, dict):
                c.add(path, "needs an email, a user, a webhook or an alertmanager")
            continue
        given = [k for k in RECEIVER_KINDS if r.get(k) is not None]
        if len(given) != 1:
            c.add(path, "give exactly one of email, user, webhook or alertmanager")
            continue
        rec_email: str | None = None
        rec_user: str | None = None
        rec_url: dict[str, str] = {}
        secret: str | None = None
        timeout: float | None = None
        email, user = r.get("email"), r.get("user")
        if email is not None:
            rec_email = c.string(email, f"{path}.email").strip()
            if rec_email and not _EMAIL.match(rec_email):
                c.add(f"{path}.email", f"{_r(rec_email)} is not an email address")
        elif user is not None:
            rec_user = c.string(user, f"{path}.user").strip()
            if rec_user and users is not None and rec_user not in users:
                c.add(f"{path}.user", f"unknown user {_r(rec_user)}, or one who may not see these alerts")
        else:
            kind = given[0]
            url = c.string(r.get(kind), f"{path}.{kind}").strip()
            why = _http_url_problem(url)
            if why:
                c.add(f"{path}.{kind}", why)
            rec_url[kind] = url
            if r.get("timeout") is not None:
                timeout = c.duration(r.get("timeout"), f"{path}.timeout")
                if timeout is not None and not 1 <= timeout <= 60:
                    c.add(f"{path}.timeout", "must be 1s..60s")
        if r.get("secret") is not None:
            if not r.get("webhook"):
                c.add(f"{path}.secret", "only a webhook receiver has a secret (it signs the body)")
            else:
                secret = c.string(r.get("secret"), f"{path}.secret")
                if secret and not 16 <= len(secret) <= 256:
                    c.add(f"{path}.secret", "must be 16..256 characters (or empty to remove it)")
                if any(ch in secret for ch in "\r\n\0"):
                    c.add(f"{path}.secret", "must not contain line breaks or NUL")
        if r.get("timeout") is not None and not rec_url:
            c.add(f"{path}.timeout", "only webhook and alertmanager receivers have a timeout")
        tz = c.timezone(r.get("timezone"), f"{path}.timezone", default="") if r.get("timezone") is not None else None
        quiet = None
        if r.get("quiet_hours") is not None:
            quiet = _parse_window(
                c, r.get("quiet_hours"), f"{path}.quiet_hours", with_timezone=False, default_tz=tz or "UTC"
            )
        lang = c.choice(r.get("language"), f"{path}.language", LANGUAGES) if r.get("language") is not None else None
        rec = Receiver(
            email=rec_email,
            user=rec_user,
            timezone=tz or None,
            quiet_hours=quiet,
            language=lang,
            webhook=rec_url.get("webhook"),
            alertmanager=rec_url.get("alertmanager"),
            secret=secret,
            timeout=timeout,
        )
        if rec.key in seen:
            c.add(path, f"{_r(rec.key.split(':', 1)[1])} is listed twice")
        seen.add(rec.key)
        receivers.append(rec)
    window = (
        _parse_window(c, n.get("window"), "notification.window", with_timezone=True)
        if n.get("window") is not None
        else None
    )
    send_resolved = c.boolean(n.get("send_resolved"), "notification.send_resolved", default=True)
    language = (
        c.choice(n.get("language"), "notification.language", LANGUAGES) if n.get("language") is not None else None
    )
    group_by: tuple[str, ...] | None = None
    if n.get("group_by") is not None:
        names: list[str] = []
        for i, raw in enumerate(c.seq(n.get("group_by"), "notification.group_by", limit=MAX_GROUP_BY)):
            if not isinstance(raw, str) or not _LABEL_NAME.fullmatch(raw):
                c.add(f"notification.group_by[{i}]", "must be a label name (letters, digits and _, not a digit first)")
            elif raw not in names:
                names.append(raw)
        group_by = tuple(names)
    return Notification(
        receivers=tuple(receivers), window=window, send_resolved=send_resolved, language=language, group_by=group_by
    )


MAX_GROUP_BY = 10
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def _parse_repeat(c: _Check, value: Any) -> tuple[tuple[str, RepeatRule], ...]:
    rep = c.mapping(value, "repeat", SEVERITIES)
    out: list[tuple[str, RepeatRule]] = []
    for sev in SEVERITIES:
        if sev not in rep:
            continue
        path = f"repeat.{sev}"
        raw = rep[sev]
        if isinstance(raw, str):
            raw = {"mode": raw}
        r = c.mapping(raw, path, ("mode", "interval", "max_sends", "max_interval"))
        mode = c.choice(r.get("mode"), f"{path}.mode", REPEAT_MODES, default="none")
        if mode == "none":
            for extra in ("interval", "max_sends", "max_interval"):
                if r.get(extra) is not None:
                    c.add(f"{path}.{extra}", "has no effect with mode none (nothing is repeated)")
            out.append((sev, RepeatRule()))
            continue
        interval = c.duration(r.get("interval"), f"{path}.interval", required=True, default=300.0)
        if r.get("interval") is not None and interval < 60:
            c.add(f"{path}.interval", "must be at least 1m; faster repeats are a mail storm")
        max_sends = c.integer(r.get("max_sends"), f"{path}.max_sends", low=1, high=MAX_SENDS, default=10)
        max_interval = None
        if r.get("max_interval") is not None:
            if mode != "exponential":
                c.add(f"{path}.max_interval", "only applies to mode exponential")
            max_interval = c.duration(r.get("max_interval"), f"{path}.max_interval")
            if max_interval and max_interval < interval:
                c.add(f"{path}.max_interval", "must not be shorter than interval")
        out.append((sev, RepeatRule(mode=mode, interval=interval, max_sends=max_sends, max_interval=max_interval)))
    return tuple(out)


def _parse_flap(c: _Check, value: Any) -> FlapDamping:
    if value is False:
        return FlapDamping(enabled=False)
    f = c.mapping(value, "flap", ("enabled", "changes", "window"))
    enabled = c.boolean(f.get("enabled"), "flap.enabled", default=True)
    changes = c.integer(f.get("changes"), "flap.changes", low=2, high=1000, default=FlapDamping.changes)
    window = c.duration(f.get("window"), "flap.window", default=FlapDamping.window)
    if f.get("window") is not None and window < 60:
        c.add("flap.window", "must be at least 1m")
    return FlapDamping(enabled=enabled, changes=changes, window=window)


def _closest(word: str, options: list[str]) -> str | None:
    import difflib

    prefixed = sorted((o for o in options if o.startswith(word) or word.startswith(o)), key=len)
    if prefixed:  # a truncated or over-long name is the commonest typo
        return prefixed[0]
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    return found[0] if found else None
