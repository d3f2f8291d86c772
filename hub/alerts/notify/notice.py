"""A notice: one thing to tell people about one alert, with its evidence.

A notice's ``key`` is deterministic (alert, kind, sequence), which is what makes the
notification log work: the same notice decided twice (a cycle re-run after a crash, a replay)
is recorded and sent once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hub.alerts.policy import UNITS

KINDS = ("firing", "repeat", "resolved", "nodata", "closed", "flap_summary")


@dataclass(frozen=True)
class Notice:
    key: str
    kind: str
    at: float
    alert_id: str
    policy_id: str
    policy_name: str
    level: str
    namespace: str | None
    tenant: str
    rule: str
    severity: str
    entity: str
    labels: Mapping[str, str]
    metric: str
    aggregation: str
    comparator: str
    threshold: float
    unit: str
    value: float | None
    query: str
    period: float
    consecutive: int
    started_at: float
    fired_at: float | None = None
    ended_at: float | None = None
    last_breach: float | None = None
    periods: int = 0
    samples: tuple[tuple[float, float | None], ...] = ()
    send_number: int = 0
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    since: float | None = None  # a repeat: when the previous notice went out (its evidence starts there)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Notice:
        data = json.loads(text)
        data["samples"] = tuple((float(t), None if v is None else float(v)) for t, v in data.get("samples", []))
        return cls(**data)

    @property
    def threshold_base(self) -> float:
        unit = UNITS.get(self.unit)
        return self.threshold * unit.factor if unit else self.threshold


def _human_bytes(v: float, per_second: bool = False) -> str:
    suffix = "/s" if per_second else ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.0f} {unit}{suffix}" if unit == "B" else f"{v:.1f} {unit}{suffix}"
        v /= 1024
    return f"{v:.1f}"  # pragma: no cover


def _num(value: float, digits: int = 1) -> str:
    """Fixed decimals without a useless trailing zero: 90.0 -> '90', 97.25 -> '97.2'."""
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(value: float | None, unit: str) -> str:
    """A metric value (in its base unit) the way a person reads it, in the rule's unit family."""
    if value is None:
        return "no data"
    dim = UNITS[unit].dimension if unit in UNITS else "raw"
    if dim == "ratio":
        return f"{_num(value * 100)}%"
    if dim == "bytes":
        return _human_bytes(value)
    if dim == "bytes/s":
        return _human_bytes(value, per_second=True)
    if dim == "cores":
        return f"{value * 1000:.0f}m" if abs(value) < 1 else f"{_num(value, 2)} cores"
    if dim == "count":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    if dim == "seconds":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    return f"{value:.4g}"


def format_threshold(threshold: float, unit: str) -> str:
    """The threshold as the user wrote it (90 percent -> '90%')."""
    if unit == "percent":
        return f"{threshold:g}%"
    if unit in ("ratio", "raw", "count", "load", ""):
        return f"{threshold:g}"
    return f"{threshold:g} {unit}"


def short_entity(n: Notice) -> str:
    """The entity as it reads in a phone's subject line: node name, or kind/name of a workload."""
    if n.level == "workload":
        kind = n.labels.get("kind") or n.labels.get("workload_kind") or ""
        name = n.labels.get("workload") or n.entity.rsplit("/", 1)[-1]
        return f"{kind}/{name}" if kind else name
    return n.labels.get("node") or n.entity
