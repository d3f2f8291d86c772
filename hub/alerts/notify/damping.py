"""Stage: flap damping (PRODUCT.md "Beyond every peer").

Each fire and each resolve of a (rule, entity) is a change. When a policy's ``flap.changes``
changes fall within ``flap.window``, the pair is *holding*: its notices are recorded as
``flap_held`` instead of sent. Once it has been stable for a whole window, one
``flap_summary`` notice says how often it flipped and where it ended up; if it ended firing,
that summary counts as the alert's first send (so the repeat schedule carries on from it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.alerts import flap
from hub.alerts.engine import EntityState, Transition
from hub.alerts.notify import decide
from hub.alerts.notify.notice import Notice
from hub.alerts.policy import FlapDamping, Policy

FlapKey = tuple[str, str, str]  # (policy id, rule, entity)
CHANGES = ("firing", "resolved")


@dataclass
class FlapRecord:
    changes: list[float] = field(default_factory=list)
    holding: bool = False
    held: int = 0
    held_since: float | None = None
    alert_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    dirty: bool = False

    def to_row(self, key: FlapKey) -> tuple[str, str, str, str, int, int, float | None]:
        blob = json.dumps({"t": self.changes, "alert_id": self.alert_id, "labels": self.labels})
        return (*key, blob, int(self.holding), self.held, self.held_since)

    @classmethod
    def from_row(cls, row: Any) -> FlapRecord:
        blob = json.loads(row["changes"] or "{}")
        if isinstance(blob, list):
            blob = {"t": blob}
        return cls(
            changes=[float(t) for t in blob.get("t", [])],
            holding=bool(row["holding"]),
            held=int(row["held"]),
            held_since=row["held_since"],
            alert_id=str(blob.get("alert_id", "")),
            labels=dict(blob.get("labels", {})),
        )


def observe(
    records: dict[FlapKey, FlapRecord],
    transitions: list[Transition],
    config: Mapping[str, FlapDamping],
    now: float,
) -> None:
    """Record fire/resolve changes and start holding the pairs that flap."""
    for t in transitions:
        if t.to_state not in CHANGES:
            continue
        cfg = config.get(t.policy_id)
        if cfg is None or not cfg.enabled:
            continue
        key = (t.policy_id, t.rule, t.entity)
        rec = records.setdefault(key, FlapRecord())
        rec.changes = [*flap.recent(rec.changes, now, cfg), t.at]
        rec.alert_id = t.alert_id
        rec.labels = dict(t.labels)
        rec.dirty = True
        if not rec.holding and flap.is_flapping(rec.changes, now, cfg):
            rec.holding = True
            rec.held_since = now
            rec.held = 0


def is_holding(records: Mapping[FlapKey, FlapRecord], key: FlapKey) -> bool:
    rec = records.get(key)
    return rec is not None and rec.holding


def settled(records: dict[FlapKey, FlapRecord], config: Mapping[str, FlapDamping], now: float) -> list[FlapKey]:
    """Holding pairs that have been stable for a window: time for their summary."""
    out = []
    for key, rec in records.items():
        cfg = config.get(key[0])
        if rec.holding and (cfg is None or flap.settled(rec.changes, now, cfg)):
            out.append(key)
    return out


def prunable(records: Mapping[FlapKey, FlapRecord], config: Mapping[str, FlapDamping], now: float) -> list[FlapKey]:
    """Records with nothing left to remember (no recent change, not holding) or whose policy is gone."""
    out = []
    for key, rec in records.items():
        cfg = config.get(key[0])
        if cfg is None or (not rec.holding and not flap.recent(rec.changes, now, cfg)):
            out.append(key)
    return out


def summaries(
    records: dict[FlapKey, FlapRecord],
    config: Mapping[str, FlapDamping],
    *,
    states: Mapping[FlapKey, EntityState],
    policies: Mapping[str, Policy],
    tenants: Mapping[str, str],
    query_text: Callable[[str, str], str],
    existing_keys: Callable[[Iterable[str]], set[str]],
    now: float,
) -> list[tuple[Notice, FlapKey | None]]:
    """A summary notice for each pair that stopped flapping, with the state whose first
    send it counts as (a firing alert never told while it was held), if any."""
    out: list[tuple[Notice, FlapKey | None]] = []
    for fkey in settled(records, config, now):
        rec = records[fkey]
        policy = policies.get(fkey[0])
        rec.holding = False
        rec.dirty = True
        if policy is None:
            continue
        current = states.get(fkey)
        st = current or EntityState(
            policy_id=fkey[0],
            rule=fkey[1],
            entity=fkey[2],
            labels=rec.labels,
            state="ok",
            alert_id=rec.alert_id,
            count=0,
            started_at=rec.held_since or now,
            since=now,
            last_eval=now,
        )
        detail = {
            "changes": len(rec.changes),
            "held": rec.held,
            "since": rec.held_since,
            "state": current.state if current else "ok",
        }
        n = decide.build_notice(
            kind="flap_summary",
            key=f"flap:{fkey[0]}/{fkey[1]}/{fkey[2]}:{now:.0f}",
            st=st,
            policy=policy,
            policy_id=fkey[0],
            tenant=tenants.get(fkey[0], "cluster"),
            query=query_text(fkey[0], fkey[1]),
            at=now,
            detail=detail,
        )
        if n is None or n.key in existing_keys([n.key]):
            continue
        counts = current is not None and current.state == "firing" and current.sends == 0
        out.append((n, fkey if counts else None))
        rec.held = 0
        rec.held_since = None
    return out
