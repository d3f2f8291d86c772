"""Stepping the hub's own meta-alerts (receivers nobody can reach, clusters the hub lost): each
is one policy and one rule whose entities are observed as breach or ok once per cycle, firing
at the first breach (``consecutive=1``). One loop for all of them, so they age, resolve and end
alike."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from hub.alerts import engine
from hub.alerts.engine import EntityState, Transition

StateKey = tuple[str, str, str]
Observed = Mapping[StateKey, tuple[str, float, dict[str, str]]]


def step_observed(
    states: MutableMapping[StateKey, EntityState],
    observed: Observed,
    *,
    policy_id: str,
    rule: str,
    now: float,
    period: float,
) -> tuple[list[Transition], list[StateKey]]:
    """Step each observed entity of the meta policy ``policy_id``; tracked entities that were
    not observed are the caller's to list as ``ok``. Updates ``states``; returns (transitions,
    ended keys)."""
    transitions: list[Transition] = []
    ended: list[StateKey] = []
    for key, (obs, value, labels) in observed.items():
        new, tr = engine.step(
            states.get(key),
            obs,
            at=now,
            value=value,
            consecutive=1,
            period=period,
            policy_id=policy_id,
            rule=rule,
            entity=key[2],
            labels=labels,
        )
        if new is not None:
            states[key] = new
        elif key in states:
            del states[key]
            ended.append(key)
        if tr is not None:
            transitions.append(tr)
    return transitions, ended
