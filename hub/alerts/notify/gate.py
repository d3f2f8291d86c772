"""Stage: the gate between deciding a notice and routing it — the notification log
(:mod:`~hub.alerts.notify.dedup`), silences (:mod:`~hub.alerts.notify.silence`) and flap holds
(:mod:`~hub.alerts.notify.damping`), in that order, so a notice already logged is never
counted or held twice. Pure: the log lookup is a callable passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from hub.alerts.notify import damping, dedup, repeating
from hub.alerts.notify.damping import FlapKey, FlapRecord
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.silence import Silence, silenced_by

StateKey = tuple[str, str, str]


@dataclass
class Gated:
    """What passed the gate: the sendable notices, every notice to log with its status
    (queued, silenced, flap_held), the sends to count once a message carries them, and the
    sends decided again next cycle if nobody is reached."""

    sendable: list[Notice] = field(default_factory=list)
    logged: list[tuple[Notice, str]] = field(default_factory=list)
    counting: dict[str, StateKey] = field(default_factory=dict)
    retry_later: set[str] = field(default_factory=set)


def gate(
    decided: list[tuple[Notice, repeating.Candidate]],
    *,
    existing_keys: Callable[[Iterable[str]], set[str]],
    silences: list[Silence],
    flaps: dict[FlapKey, FlapRecord],
    now: float,
) -> Gated:
    """De-duplicate the decided notices against the notification log (before anything is
    counted), then hold the silenced and the flapping ones; the rest are sendable."""
    fresh_keys = {n.key for n in dedup.fresh([n for n, _ in decided], existing_keys)}
    out = Gated()
    for n, c in decided:
        if n.key not in fresh_keys:
            continue
        fresh_keys.discard(n.key)  # the same key twice in one batch counts once
        skey = (c.state.policy_id, c.state.rule, c.state.entity)
        silence = silenced_by(n, silences, now)
        if silence is not None:
            # A silenced first notice is not recorded, so it is decided again (and sent) when
            # the silence ends; other silenced notices are recorded once, as silenced.
            if not c.counts_as_send:
                out.logged.append((replace(n, detail={**n.detail, "silence": silence.id}), "silenced"))
            continue
        if damping.is_holding(flaps, skey):
            rec = flaps[skey]
            rec.held += 1
            rec.dirty = True
            if not c.counts_as_send:
                out.logged.append((n, "flap_held"))
            continue
        out.sendable.append(n)
        out.logged.append((n, "queued"))
        if c.counts_as_send:
            # A send is counted only once a message to someone carries it (the routing stage);
            # one that reaches nobody is decided again next cycle.
            out.counting[n.key] = skey
            out.retry_later.add(n.key)
    return out
