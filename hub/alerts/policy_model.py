"""The alert policy model: frozen dataclasses (Policy, Rule, Target, Notification, ...), units,
the documented limits, and the two errors a document can earn (PolicyInvalid, PolicySyntaxError).

Pure data: no parsing here (``policy_yaml`` reads text, ``policy_check`` validates, ``policy_files``
reads files); ``hub.alerts.policy`` re-exports all of it. A little over 400 lines because each
section of a policy is a small dataclass with its own ``to_document``; they belong together.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.errors import InvalidInput, Unprocessable
from hub.timeutil import format_duration

LEVELS = ("node", "workload")


AGGREGATIONS = ("avg", "max", "min", "last")


COMPARATORS = (">", ">=", "<", "<=", "==", "!=")


SEVERITIES = ("critical", "major", "minor")


REPEAT_MODES = ("none", "fixed", "exponential")


WORKLOAD_KINDS = ("deployment", "statefulset", "daemonset")


LANGUAGES = ("en", "zh")


# The catalogue names its levels in the plural (API.md "Monitoring"); policies in the singular.
CATALOGUE_LEVEL = {"node": "nodes", "workload": "workloads"}


# Bounds that keep one document from becoming a denial of service (each rule costs a slot in
# every cycle; each receiver an email per notice).
MAX_RULES = 100


MAX_RECEIVERS = 50


MAX_TARGETS = 500


MIN_PERIOD = 10.0  # below the usual scrape interval a period holds no new sample


MAX_PERIOD = 86400.0  # a day: longer periods are reports, not alerts


MAX_CONSECUTIVE = 1000


MAX_SENDS = 1000


# Bounds of the document text itself (README "Input limits"): a YAML alias bomb of 300 bytes
# expands ninefold per level, 20,000 nested sequences overflow the composer's recursion, and a
# 5,000-digit integer is beyond Python's int parsing limit. All are a 400, not a crash.
MAX_TEXT_CHARS = 256 * 1024


MAX_DEPTH = 32  # nesting of mappings and sequences


MAX_NODES = 20_000  # nodes of the document with every alias expanded


MAX_INT_DIGITS = 30


MAX_THRESHOLD = 1e18  # larger magnitudes are no measurement; float formatting loses them


MAX_PROBLEMS = 100  # problems reported per document; the rest are counted


_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


_DNS_LABEL = _NAME


_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+\Z")


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\Z")


_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")


_GLOB = re.compile(r"^[A-Za-z0-9*?.\-_/]+\Z")


@dataclass(frozen=True)
class Unit:
    """A threshold unit: its dimension and its factor to the dimension's base unit."""

    name: str
    dimension: str
    factor: float
    nonnegative: bool = True
    upper: float | None = None  # largest meaningful threshold, for ratios and percents


UNITS: dict[str, Unit] = {
    u.name: u
    for u in [
        Unit("ratio", "ratio", 1.0, upper=1.0),
        Unit("percent", "ratio", 0.01, upper=100.0),
        Unit("bytes", "bytes", 1.0),
        Unit("KiB", "bytes", 1024.0),
        Unit("MiB", "bytes", 1024.0**2),
        Unit("GiB", "bytes", 1024.0**3),
        Unit("TiB", "bytes", 1024.0**4),
        Unit("KB", "bytes", 1e3),
        Unit("MB", "bytes", 1e6),
        Unit("GB", "bytes", 1e9),
        Unit("cores", "cores", 1.0),
        Unit("millicores", "cores", 0.001),
        Unit("count", "count", 1.0),
        Unit("load", "load", 1.0),
        Unit("bytes/s", "bytes/s", 1.0),
        Unit("KiB/s", "bytes/s", 1024.0),
        Unit("MiB/s", "bytes/s", 1024.0**2),
        Unit("per_second", "per_second", 1.0),
        Unit("seconds", "seconds", 1.0),
        Unit("ms", "seconds", 0.001),
        Unit("raw", "raw", 1.0, nonnegative=False),
    ]
}


# Unit names the catalogue may use for a metric, mapped onto ours (for the dimension check).
_CATALOGUE_UNIT_ALIASES = {
    "": None,
    "none": None,
    "ratio": "ratio",
    "percent": "percent",
    "percentage": "percent",
    "bytes": "bytes",
    "byte": "bytes",
    "cores": "cores",
    "core": "cores",
    "cpu": "cores",
    "count": "count",
    "load": "load",
    "bytes/s": "bytes/s",
    "bytes_per_second": "bytes/s",
    "per_second": "per_second",
    "ops/s": "per_second",
    "iops": "per_second",
    "seconds": "seconds",
    "s": "seconds",
}


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    aggregation: str
    comparator: str
    threshold: float
    unit: str
    period: float  # seconds
    consecutive: int
    severity: str
    # A PromQL rule (``expr`` instead of a catalogue metric; docs/alerting.md "PromQL rules"):
    # a row the expression returns is a breach, one missing is ok (Prometheus's alerting-rule
    # meaning). ``for_seconds`` is kept as written (``consecutive`` is derived from it).
    expr: str | None = None
    for_seconds: float | None = None
    labels: tuple[tuple[str, str], ...] = ()
    summary: str = ""
    details: str = ""

    @property
    def threshold_base(self) -> float:
        """The threshold in the metric's base unit (percent -> ratio, MiB -> bytes...)."""
        return self.threshold * UNITS[self.unit].factor if self.unit in UNITS else self.threshold

    def to_document(self) -> dict[str, Any]:
        if self.expr is not None:
            out: dict[str, Any] = {"name": self.name, "expr": self.expr, "period": format_duration(self.period)}
            if self.for_seconds is not None:
                out["for"] = format_duration(self.for_seconds) if self.for_seconds else "0s"
            else:
                out["consecutive"] = self.consecutive
            out["severity"] = self.severity
            if self.labels:
                out["labels"] = dict(self.labels)
            if self.summary:
                out["summary"] = self.summary
            if self.details:
                out["description"] = self.details
            return out
        return {
            "name": self.name,
            "metric": self.metric,
            "aggregation": self.aggregation,
            "comparator": self.comparator,
            "threshold": self.threshold,
            "unit": self.unit,
            "period": format_duration(self.period),
            "consecutive": self.consecutive,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class WorkloadRef:
    kind: str  # deployment | statefulset | daemonset | "*"
    name: str  # a name or a glob


@dataclass(frozen=True)
class Target:
    """Which entities a policy's rules look at.

    Empty ``nodes``/``workloads``/``selector`` means every entity of the level (in the policy's
    namespace for workload policies). ``selector`` matches the entity labels the query returns
    (e.g. ``{node: "worker-*"}``) with shell-style globs.
    """

    nodes: tuple[str, ...] = ()
    workloads: tuple[WorkloadRef, ...] = ()
    selector: tuple[tuple[str, str], ...] = ()

    @property
    def everything(self) -> bool:
        return not self.nodes and not self.workloads and not self.selector

    def to_document(self, level: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if level == "node":
            out["nodes"] = list(self.nodes or ("*",))
        elif self.workloads:
            out["workloads"] = [{"kind": w.kind, "name": w.name} for w in self.workloads]
        if self.selector:
            out["selector"] = dict(self.selector)
        return out


@dataclass(frozen=True)
class TimeWindow:
    """A daily window ``start``..``end`` (minutes after local midnight) in ``timezone``.

    ``end <= start`` means the window spans midnight (e.g. 22:00-06:00).
    """

    start: int
    end: int
    timezone: str

    def to_document(self) -> dict[str, Any]:
        return {"start": _hhmm(self.start), "end": _hhmm(self.end), "timezone": self.timezone}


RECEIVER_KINDS = ("email", "user", "webhook", "alertmanager")


# Schemes of the outbox's recipient column: an email address has none; HTTP receivers are
# "webhook:<url>" or "alertmanager:<url>", so the dispatcher knows which sender takes a row.
HTTP_SCHEMES = ("webhook", "alertmanager")


@dataclass(frozen=True)
class Receiver:
    """One recipient: an email address, a hub user (resolved to their address at send time), a
    webhook URL (Alertmanager's webhook JSON, signed with ``secret``) or an Alertmanager's base
    URL (its v2 API gets the alerts themselves; docs/alerting.md "Webhooks and Alertmanager").

    ``quiet_hours`` are in the receiver's own ``timezone``: notices for this receiver that fall
    inside them are held until they end (PRODUCT.md "Quiet hours per recipient").

    ``secret`` is write-only: it is kept in the store but never shown back (``to_document``
    says only ``secret_set``) and ``repr=False`` keeps it out of log lines and tracebacks.
    """

    email: str | None = None
    user: str | None = None
    timezone: str | None = None
    quiet_hours: TimeWindow | None = None
    language: str | None = None
    webhook: str | None = None
    alertmanager: str | None = None
    secret: str | None = field(default=None, repr=False)
    timeout: float | None = None  # seconds per HTTP request (HTTP receivers), default 10

    @property
    def kind(self) -> str:
        return next((k for k in RECEIVER_KINDS if getattr(self, k)), "email")

    @property
    def key(self) -> str:
        if self.user:
            return f"user:{self.user}"
        if self.webhook:
            return f"webhook:{self.webhook}"
        if self.alertmanager:
            return f"alertmanager:{self.alertmanager}"
        return f"email:{self.email}"

    def to_document(self, *, secrets: bool = False) -> dict[str, Any]:
        """The receiver as the API shows it; ``secrets=True`` (the store only) keeps the secret."""
        out: dict[str, Any]
        if self.user:
            out = {"user": self.user}
        elif self.webhook:
            out = {"webhook": self.webhook}
        elif self.alertmanager:
            out = {"alertmanager": self.alertmanager}
        else:
            out = {"email": self.email}
        if self.secret:
            if secrets:
                out["secret"] = self.secret
            else:
                out["secret_set"] = True
        if self.timeout is not None:
            out["timeout"] = format_duration(self.timeout)
        if self.timezone:
            out["timezone"] = self.timezone
        if self.quiet_hours:
            q = self.quiet_hours
            out["quiet_hours"] = {"start": _hhmm(q.start), "end": _hhmm(q.end)}
        if self.language:
            out["language"] = self.language
        return out


@dataclass(frozen=True)
class Notification:
    receivers: tuple[Receiver, ...] = ()
    window: TimeWindow | None = None
    send_resolved: bool = True
    language: str | None = None
    # labels this policy's notices are grouped by across policies (docs/alerting.md "Grouping
    # across policies"); None: the hub's default for the level; "policy" names the policy itself
    group_by: tuple[str, ...] | None = None

    def to_document(self, *, secrets: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"receivers": [r.to_document(secrets=secrets) for r in self.receivers]}
        if self.window:
            out["window"] = self.window.to_document()
        out["send_resolved"] = self.send_resolved
        if self.language:
            out["language"] = self.language
        if self.group_by is not None:
            out["group_by"] = list(self.group_by)
        return out


@dataclass(frozen=True)
class RepeatRule:
    """How often a still-firing alert is re-sent: never, every ``interval``, or with doubling
    gaps (``interval``, 2x, 4x... capped at ``max_interval``); ``max_sends`` counts the first."""

    mode: str = "none"
    interval: float = 0.0
    max_sends: int = 1
    max_interval: float | None = None

    def to_document(self) -> dict[str, Any]:
        if self.mode == "none":
            return {"mode": "none"}
        out: dict[str, Any] = {
            "mode": self.mode,
            "interval": format_duration(self.interval),
            "max_sends": self.max_sends,
        }
        if self.max_interval:
            out["max_interval"] = format_duration(self.max_interval)
        return out


@dataclass(frozen=True)
class FlapDamping:
    """Hold a rule's notices once it changes state ``changes`` times within ``window`` seconds,
    and send one summary when it has been stable for a whole window."""

    enabled: bool = True
    changes: int = 6
    window: float = 3600.0

    def to_document(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False}
        return {"changes": self.changes, "window": format_duration(self.window)}


DEFAULT_REPEAT = RepeatRule()


@dataclass(frozen=True)
class Policy:
    name: str
    level: str
    rules: tuple[Rule, ...]
    namespace: str | None = None
    target: Target = field(default_factory=Target)
    notification: Notification = field(default_factory=Notification)
    repeat: tuple[tuple[str, RepeatRule], ...] = ()
    flap: FlapDamping = field(default_factory=FlapDamping)
    description: str = ""
    enabled: bool = True
    cluster: str = ""  # a node-level policy's cluster ('' : the implicit one)

    def repeat_for(self, severity: str) -> RepeatRule:
        return dict(self.repeat).get(severity, DEFAULT_REPEAT)

    def rule(self, name: str) -> Rule | None:
        return self._rules_by_name.get(name)

    @functools.cached_property
    def _rules_by_name(self) -> dict[str, Rule]:
        # Looked up per tracked entity and notice (50,000 per cycle with 1,000 imported rules).
        return {r.name: r for r in self.rules}

    def to_document(self, *, secrets: bool = False) -> dict[str, Any]:
        """The canonical document: what the API returns, and with ``secrets=True`` what the store
        keeps (receivers' webhook secrets are write-only: never in an answer)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["level"] = self.level
        if self.namespace:
            out["namespace"] = self.namespace
        if self.cluster:
            out["cluster"] = self.cluster
        out["enabled"] = self.enabled
        out["target"] = self.target.to_document(self.level)
        out["rules"] = [r.to_document() for r in self.rules]
        out["notification"] = self.notification.to_document(secrets=secrets)
        out["repeat"] = {sev: rep.to_document() for sev, rep in self.repeat}
        out["flap"] = self.flap.to_document()
        return out


@dataclass(frozen=True)
class Problem:
    path: str  # "rules[2].threshold"; "" for the document itself
    message: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.path or "(document)", "error": self.message}
        if self.line:
            out["line"] = self.line
        return out

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line or 1}: {self.path or '(document)'}: {self.message}"


def hub_policy(
    *, name: str, rule: str, metric: str, severity: str, receivers: Sequence[Receiver], period: float, description: str
) -> Policy:
    """One of the hub's own node-level policies (its meta-alerts): a single ``last > 0`` rule on
    a count the hub computes itself, sent to ``receivers`` and resolved when the count is 0."""
    return Policy(
        name=name,
        level="node",
        rules=(
            Rule(
                name=rule,
                metric=metric,
                aggregation="last",
                comparator=">",
                threshold=0,
                unit="count",
                period=period,
                consecutive=1,
                severity=severity,
            ),
        ),
        notification=Notification(receivers=tuple(receivers), send_resolved=True),
        description=description,
    )


class PolicyInvalid(Unprocessable):
    """A well-formed document whose content is wrong; carries every problem found (422)."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        where = f"{first.path}: " if first.path else ""
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(f"{where}{first.message}{more}", field=first.path or None)
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(super().to_dict())
        body["problems"] = [p.to_dict() for p in self.problems]
        return body


class PolicySyntaxError(InvalidInput):
    """The text is not YAML/JSON at all (400); ``line`` points at the parser's complaint."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message, field="(document)")
        self.line = line


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
