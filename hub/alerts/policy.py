"""The alert policy document: model, parsing and validation.

A policy arrives as YAML (files in ``rules/``, ``kubehub rules check``) or JSON (the API). Both
go through :func:`parse_policy`, which collects *every* problem instead of stopping at the
first, each with the field path of the offending input (``rules[2].threshold``) and, for text
input, its source line. The API answers with the first problem's path in ``field`` and all of
them in ``problems``; the CLI prints ``file:line: field: problem`` per problem.

Why a custom YAML loader: YAML 1.1 reads ``start: 10:30`` as the base-60 integer 630 and
``name: no`` as ``False``. Time windows and names are exactly where those traps bite, so the
loader resolves only ``true``/``false`` as booleans and plain decimal numbers as numbers
(YAML 1.2 behaviour); everything else stays a string.

Metric names are checked against an injected mapping ``{level: names}`` (the runtime and the
CLI pass the monitoring catalogue's), because ``hub.alerts`` must not import the collectors.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.errors import InvalidInput, Unprocessable
from hub.timeutil import format_duration, parse_duration

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


# -- the model -------------------------------------------------------------------------------


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

    @property
    def threshold_base(self) -> float:
        """The threshold in the metric's base unit (percent -> ratio, MiB -> bytes...)."""
        return self.threshold * UNITS[self.unit].factor if self.unit in UNITS else self.threshold

    def to_document(self) -> dict[str, Any]:
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


@dataclass(frozen=True)
class Receiver:
    """One recipient: an email address or a hub user (resolved to their address at send time).

    ``quiet_hours`` are in the receiver's own ``timezone``: notices for this receiver that fall
    inside them are held until they end (PRODUCT.md "Quiet hours per recipient").
    """

    email: str | None = None
    user: str | None = None
    timezone: str | None = None
    quiet_hours: TimeWindow | None = None
    language: str | None = None

    @property
    def key(self) -> str:
        return f"user:{self.user}" if self.user else f"email:{self.email}"

    def to_document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user} if self.user else {"email": self.email}
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

    def to_document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"receivers": [r.to_document() for r in self.receivers]}
        if self.window:
            out["window"] = self.window.to_document()
        out["send_resolved"] = self.send_resolved
        if self.language:
            out["language"] = self.language
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

    def repeat_for(self, severity: str) -> RepeatRule:
        return dict(self.repeat).get(severity, DEFAULT_REPEAT)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def to_document(self) -> dict[str, Any]:
        """The canonical document (what the API returns and the store keeps)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["level"] = self.level
        if self.namespace:
            out["namespace"] = self.namespace
        out["enabled"] = self.enabled
        out["target"] = self.target.to_document(self.level)
        out["rules"] = [r.to_document() for r in self.rules]
        out["notification"] = self.notification.to_document()
        out["repeat"] = {sev: rep.to_document() for sev, rep in self.repeat}
        out["flap"] = self.flap.to_document()
        return out


# -- problems --------------------------------------------------------------------------------


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


# -- YAML with line numbers ----------------------------------------------------------------


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style scalars (see the module docstring), bounded: nesting
    deeper than :data:`MAX_DEPTH` and integers longer than :data:`MAX_INT_DIGITS` stop the
    composer with a YAML error (the caller's 400); expansion is checked per document by
    :func:`_expanded_nodes`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: Any) -> Any:
        digits = str(node.value).lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of {len(digits)} digits; at most {MAX_INT_DIGITS} are accepted",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


_PolicyLoader.add_constructor("tag:yaml.org,2002:int", _PolicyLoader.construct_yaml_int)


def _expanded_nodes(root: yaml.Node, limit: int) -> int:
    """Nodes of ``root`` with every alias expanded (an alias shares its anchor's node object),
    counted without recursion and memoised per node; stops past ``limit`` (also on a cycle)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            open_nodes.discard(key)
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in open_nodes:  # an alias to an enclosing node: infinitely large
            return limit + 1
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


_PolicyLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class SourceDocument:
    data: Any
    lines: dict[str, int]  # field path -> 1-based line
    problems: list[Problem]  # structural problems found while reading (duplicate keys)


def _walk_lines(node: yaml.Node, path: str, lines: dict[str, int], problems: list[Problem], seen: set[int]) -> None:
    if id(node) in seen:  # an alias: its lines were recorded where the anchor is
        return
    seen.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in keys:
                problems.append(
                    Problem(child, "duplicate key; the later value would silently win", key_node.start_mark.line + 1)
                )
            keys.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk_lines(value_node, child, lines, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_lines(item, f"{path}[{i}]", lines, problems, seen)


def load_documents(text: str) -> list[SourceDocument]:
    """Parse YAML (or JSON, a subset of it) into documents with a path -> line map.

    Raises PolicySyntaxError (400) naming the line when the text does not parse.
    """
    docs: list[SourceDocument] = []
    if len(text) > MAX_TEXT_CHARS:
        raise PolicySyntaxError(f"the document has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
    try:
        loader = _PolicyLoader(text)
    except yaml.YAMLError as exc:  # the reader rejects control characters up front
        raise PolicySyntaxError(f"not valid YAML: {exc}") from exc
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            expanded = _expanded_nodes(node, MAX_NODES)
            if expanded > MAX_NODES:
                raise PolicySyntaxError(
                    f"the document expands (aliases included) to more than {MAX_NODES} values",
                    line=node.start_mark.line + 1,
                )
            lines: dict[str, int] = {}
            problems: list[Problem] = []
            _walk_lines(node, "", lines, problems, set())
            docs.append(SourceDocument(loader.construct_document(node), lines, problems))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "cannot parse"
        raise PolicySyntaxError(f"not valid YAML at line {line}: {what}", line=line) from exc
    except yaml.YAMLError as exc:
        raise PolicySyntaxError(f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return docs


def decode_policy_text(text: str, *, content_type: str = "yaml") -> SourceDocument:
    """One document from JSON or YAML text, with its line map; PolicySyntaxError (400) if it
    does not parse or holds more or less than one document."""
    if content_type == "json":
        if len(text) > MAX_TEXT_CHARS:
            raise PolicySyntaxError(f"the document has {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")
        try:
            data = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
        except json.JSONDecodeError as exc:
            raise PolicySyntaxError(f"not valid JSON at line {exc.lineno}: {exc.msg}", line=exc.lineno) from exc
        except (ValueError, RecursionError) as exc:  # digits, NaN, or nesting past the decoder's stack
            raise PolicySyntaxError(f"not acceptable JSON: {str(exc)[:200]}") from exc
        return SourceDocument(data, {}, [])
    docs = load_documents(text)
    if len(docs) != 1:
        raise PolicySyntaxError(f"expected exactly one policy document, found {len(docs)}")
    return docs[0]


def _json_int(raw: str) -> int:
    if len(raw.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(raw)} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(raw)


def _json_constant(raw: str) -> Any:
    raise ValueError(f"{raw} is not a number JSON allows")


def _r(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: a problem message must never echo an expanded
    document (an alias bomb's value is megabytes long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# -- validation ---------------------------------------------------------------------------


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


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


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


def _parse_notification(c: _Check, value: Any, users: Collection[str] | None) -> Notification:
    n = c.mapping(value, "notification", ("receivers", "window", "send_resolved", "language"))
    receivers: list[Receiver] = []
    seen: set[str] = set()
    for i, raw in enumerate(c.seq(n.get("receivers"), "notification.receivers", limit=MAX_RECEIVERS)):
        path = f"notification.receivers[{i}]"
        if isinstance(raw, str):
            raw = {"email": raw} if "@" in raw else {"user": raw}
        r = c.mapping(raw, path, ("email", "user", "timezone", "quiet_hours", "language"))
        if not r:
            if isinstance(raw, dict):
                c.add(path, "needs an email or a user")
            continue
        email = r.get("email")
        user = r.get("user")
        if (email is None) == (user is None):
            c.add(path, "give exactly one of email or user")
            continue
        rec_email: str | None = None
        rec_user: str | None = None
        if email is not None:
            rec_email = c.string(email, f"{path}.email").strip()
            if rec_email and not _EMAIL.match(rec_email):
                c.add(f"{path}.email", f"{_r(rec_email)} is not an email address")
        else:
            rec_user = c.string(user, f"{path}.user").strip()
            if rec_user and users is not None and rec_user not in users:
                c.add(f"{path}.user", f"unknown user {_r(rec_user)}, or one who may not see these alerts")
        tz = c.timezone(r.get("timezone"), f"{path}.timezone", default="") if r.get("timezone") is not None else None
        quiet = None
        if r.get("quiet_hours") is not None:
            quiet = _parse_window(
                c, r.get("quiet_hours"), f"{path}.quiet_hours", with_timezone=False, default_tz=tz or "UTC"
            )
        lang = c.choice(r.get("language"), f"{path}.language", LANGUAGES) if r.get("language") is not None else None
        rec = Receiver(email=rec_email, user=rec_user, timezone=tz or None, quiet_hours=quiet, language=lang)
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
    return Notification(receivers=tuple(receivers), window=window, send_resolved=send_resolved, language=language)


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


# -- files (``kubehub rules check``) -----------------------------------------------------------

_POLICY_SUFFIXES = (".yaml", ".yml", ".json")


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.suffix in _POLICY_SUFFIXES and f.is_file()))
        else:
            out.append(path)
    return out


def load_policy_file(
    path: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    users: Collection[str] | None = None,
) -> tuple[list[Policy], list[Problem]]:
    """Every policy document in a file (several may be separated by ``---``) and the problems."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [], [Problem("", f"cannot read the file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return [], [Problem("", "the file is not UTF-8 text")]
    try:
        docs = load_documents(text)
    except PolicySyntaxError as exc:
        return [], [Problem("", exc.message, exc.line)]
    if not docs:
        return [], [Problem("", "the file holds no policy document")]
    policies: list[Policy] = []
    problems: list[Problem] = []
    names: dict[tuple[str, str | None, str], int] = {}
    for doc in docs:
        try:
            policy = parse_policy(doc.data, metrics=metrics, users=users, lines=doc.lines, extra_problems=doc.problems)
        except PolicyInvalid as exc:
            problems.extend(exc.problems)
            continue
        key = (policy.level, policy.namespace, policy.name)
        if key in names:
            problems.append(
                Problem("name", f"policy {_r(policy.name)} appears twice in this file", doc.lines.get("name"))
            )
        names[key] = 1
        policies.append(policy)
    return policies, problems


def check_policy_files(
    paths: Iterable[str | Path],
    *,
    metrics: Mapping[str, Any] | None = None,
    users: Collection[str] | None = None,
) -> tuple[list[str], int]:
    """Validate policy files for ``kubehub rules check``.

    Returns (problems as ``file:line: field.path: message``, number of files checked).
    Directories are expanded to their ``*.yaml``/``*.yml``/``*.json`` files.
    """
    problems: list[str] = []
    files = _expand(paths)
    for path in files:
        _, found = load_policy_file(path, metrics=metrics, users=users)
        problems.extend(p.format(str(path)) for p in found)
    return problems, len(files)


def builtin_templates(directory: str | Path) -> dict[str, Policy]:
    """The built-in templates in ``rules/`` by policy name (invalid files are skipped)."""
    out: dict[str, Policy] = {}
    for path in _expand([directory]):
        policies, _ = load_policy_file(path)
        for p in policies:
            out[p.name] = p
    return out


MetricsProvider = Callable[[], Mapping[str, Any]]
