"""Listing: label selectors (parsed with field names in every error), list queries, pages and
their continue tokens, and the one ``select`` that filters, sorts and pages every listing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from hub.errors import InvalidInput
from hub.model import (
    Workload,
    iso_or_none,
)

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"


_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


_SET_REQ = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")


_EQ_REQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")


_EXISTS_REQ = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


Matcher = Callable[[Mapping[str, str]], bool]


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # = != in notin exists !exists
    values: frozenset[str] = frozenset()

    def __call__(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "=":
            return value is not None and value in self.values
        if self.op == "!=":
            return value is None or value not in self.values
        if self.op == "in":
            return value in self.values
        if self.op == "notin":
            return value not in self.values
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class _Selector:
    requirements: tuple[_Requirement, ...]

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return all(r(labels) for r in self.requirements)


def parse_label_selector(text: str, *, field: str = "label_selector") -> Matcher:
    """A matcher for Kubernetes label-selector syntax: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    text = (text or "").strip()
    reqs: list[_Requirement] = []
    if not text:
        return _Selector(())
    for raw in _split_requirements(text):
        if not raw.strip():
            raise InvalidInput(f"{field}: empty requirement in {text!r}", field=field)
        m = _SET_REQ.match(raw)
        if m:
            values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
            reqs.append(_Requirement(m.group(1), m.group(3), values))
            continue
        m = _EQ_REQ.match(raw)
        if m:
            op = "!=" if m.group(3) == "!=" else "="
            reqs.append(_Requirement(m.group(1), op, frozenset({m.group(4)})))
            continue
        m = _EXISTS_REQ.match(raw)
        if m:
            reqs.append(_Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
            continue
        raise InvalidInput(
            f"{field}: cannot read {raw.strip()!r}; "
            "use key=value, key!=value, key in (a,b), key notin (a,b), key or !key",
            field=field,
        )
    return _Selector(tuple(reqs))


def selector_matches(workload: Workload, labels: Mapping[str, str]) -> bool:
    """Whether a workload's label selector (matchLabels + matchExpressions) selects ``labels``."""
    if not workload.selector and not workload.selector_expressions:
        return False
    if any(labels.get(k) != v for k, v in workload.selector.items()):
        return False
    for key, op, values in workload.selector_expressions:
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


@dataclass(frozen=True)
class ListQuery:
    """What a list request asks for: a window (offset/limit) and filters."""

    limit: int = 500
    offset: int = 0
    label_selector: str = ""
    name: str = ""  # case-insensitive substring of the name


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    continue_token: str | None = None
    stale_since: float | None = None
    # The items already encoded as JSON (one string each), when the producer keeps them cached.
    encoded: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"items": self.items, "total": self.total}
        if self.continue_token:
            out["continue"] = self.continue_token
        out["stale_since"] = iso_or_none(self.stale_since)
        return out

    def to_json(self) -> str:
        """The same document as :meth:`to_dict`, as JSON text; reuses ``encoded`` items when present."""
        items = self.encoded if self.encoded is not None else [encode_json(i) for i in self.items]
        rest = {k: v for k, v in self.to_dict().items() if k != "items"}
        return '{"items":[' + ",".join(items) + "]," + encode_json(rest)[1:]


def encode_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def encode_continue(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_continue(token: str, *, field: str = "continue") -> int:
    """The offset inside a ``continue`` token. The token is opaque to clients; only the hub reads it."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        offset = int(number)
        if kind != "o" or offset < 0:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{field}: not a token this hub gave out; start again without it", field=field) from exc
    return offset


T = TypeVar("T")


def select(
    objects: Iterable[T],
    query: ListQuery,
    *,
    labels_of: Callable[[T], Mapping[str, str]],
    name_of: Callable[[T], str],
    sort_key: Callable[[T], Any] | None = None,
    reverse: bool = False,
    presorted: bool = False,
) -> tuple[list[T], int, str | None]:
    """Filter by label selector and name, sort (by name unless told), and cut the requested window.

    ``presorted``: ``objects`` come in the order asked for already (a listing the caller keeps
    sorted), so filtering keeps it and no sort is needed.
    Returns (window, total matching, continue token or None when this is the last window).
    """
    needle = query.name.lower()
    if not needle and not query.label_selector.strip() and presorted:
        chosen = objects if isinstance(objects, list) else list(objects)
    else:
        match = parse_label_selector(query.label_selector)
        chosen = [o for o in objects if (not needle or needle in name_of(o).lower()) and match(labels_of(o))]
    if not presorted:
        chosen.sort(key=sort_key or name_of, reverse=reverse)
    total = len(chosen)
    end = query.offset + query.limit
    window = chosen[query.offset : end]
    return window, total, encode_continue(end) if end < total else None
