"""Safe pieces for building PromQL: name validation, string and regex escaping, matchers.

Every value that reaches a PromQL string from outside the catalogue's own templates passes
through here. Two independent guards apply, so that either alone keeps a hostile name from
changing the meaning of a query:

1. names are validated against the Kubernetes grammar of their kind (a namespace is a DNS-1123
   label, a pod or node a DNS-1123 subdomain, ...) and a bad one is an ``InvalidInput`` naming
   the request field;
2. values are escaped for the PromQL string literal they end up in, and for the RE2 syntax when
   a set of names becomes an alternation (``namespace=~"a|b"``), so every alternative is a
   literal and the regex can never match more than the listed names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hub.errors import InvalidInput

# Kubernetes name grammars (k8s.io/apimachinery/pkg/util/validation).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)")

# (pattern, longest allowed, words for the error message)
GRAMMARS: dict[str, tuple[re.Pattern[str], int, str]] = {
    "label": (_DNS1123_LABEL, 63, "a DNS-1123 label (lower-case letters, digits and '-', at most 63)"),
    "subdomain": (
        _DNS1123_SUBDOMAIN,
        253,
        "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253)",
    ),
    "label_value": (_LABEL_VALUE, 63, "a Kubernetes label value (letters, digits, '-', '_' and '.', at most 63)"),
}


def validate_name(value: str, *, grammar: str, field: str) -> str:
    """Return ``value`` if it is a valid Kubernetes name of ``grammar``, else InvalidInput."""
    pattern, longest, words = GRAMMARS[grammar]
    if not isinstance(value, str) or len(value) > longest or not pattern.fullmatch(value):
        raise InvalidInput(f"{field}: {value!r} is not a valid name; expected {words}", field=field)
    return value


def validate_names(values: Iterable[str], *, grammar: str, field: str) -> tuple[str, ...]:
    """Validate every name and return them de-duplicated in sorted order (stable queries)."""
    return tuple(sorted({validate_name(v, grammar=grammar, field=field) for v in values}))


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``.

    PromQL strings follow Go's escaping; backslash, the double quote and control characters
    are the only characters that could end or alter the literal.
    """
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_RE2_META = frozenset("\\.+*?()|[]{}^$")


def regex_literal(value: str) -> str:
    """RE2 source matching exactly ``value`` (every metacharacter backslash-escaped)."""
    return "".join("\\" + ch if ch in _RE2_META else ch for ch in value)


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class Matcher:
    """One label matcher. ``values`` is a set of literal names (exact match on any of them)."""

    label: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _LABEL_NAME.fullmatch(self.label):
            raise ValueError(f"not a label name: {self.label!r}")
        if not self.values:
            # An empty set would need a matcher that matches nothing; callers short-circuit
            # instead (no query at all), so reaching here is a programming error.
            raise ValueError(f"empty value set for label {self.label}")

    def render(self) -> str:
        """``label="v"`` for one value, else ``label=~"v1|v2"`` of escaped literals.

        Prometheus anchors regex matchers at both ends, so the alternation of literals matches
        exactly the listed values and nothing else.
        """
        values = sorted(set(self.values))
        if len(values) == 1:
            return f"{self.label}={quote(values[0])}"
        return f"{self.label}=~{quote('|'.join(regex_literal(v) for v in values))}"


def one_of(label: str, values: Iterable[str]) -> Matcher:
    return Matcher(label, tuple(values))


def selector(series: str, matchers: Iterable[str]) -> str:
    """``series{m1,m2}``; ``matchers`` are already-rendered matcher strings."""
    if not _LABEL_NAME.fullmatch(series.replace(":", "_")):
        raise ValueError(f"not a series name: {series!r}")
    return f"{series}{{{','.join(matchers)}}}"


def promql_number(value: float) -> str:
    """A float literal PromQL parses back to exactly ``value`` (repr round-trips)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def duration(seconds: float) -> str:
    """A PromQL duration for a whole number of seconds (``300s``); PromQL wants integers."""
    whole = round(seconds)
    if whole <= 0:
        raise ValueError(f"duration must be positive: {seconds}")
    return f"{whole}s"
