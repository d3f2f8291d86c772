"""Stage: history. Alert records (one per episode, kept after it ends) and state-change events.

Pending streaks that never fire are not history: nobody was told, and at scale they would
drown the record. Everything from firing on is kept: fire, no-data, errors, resolve, close.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from hub.alerts.engine import EntityState, Transition
from hub.alerts.policy import Policy

QUIET_MOVES = {("inactive", "pending"), ("pending", "inactive"), ("pending", "error"), ("error", "pending")}


def alert_row(
    st: EntityState,
    *,
    policy: Policy | None,
    query: str,
    now: float,
    state: str | None = None,
    ended_at: float | None = None,
    reason: str = "",
) -> dict[str, Any] | None:
    rule = policy.rule(st.rule) if policy else None
    if policy is None or rule is None:
        return None
    final = state or st.state
    return {
        "id": st.alert_id,
        "policy_id": st.policy_id,
        "policy_name": policy.name,
        "level": policy.level,
        "namespace": policy.namespace or "",
        "rule": st.rule,
        "severity": rule.severity,
        "entity": st.entity,
        "labels": json.dumps(dict(st.labels)),
        "state": final,
        "active": 0 if final in ("resolved", "closed") else 1,
        "started_at": st.started_at,
        "fired_at": st.fired_at,
        "ended_at": ended_at,
        "last_value": st.last_value,
        "threshold": rule.threshold,
        "comparator": rule.comparator,
        "unit": rule.unit,
        "metric": rule.metric,
        "query": query,
        "periods": st.count,
        "sends": 0,  # counted by the delivery when a mail server accepts a notice (store.record_results)
        "reason": reason,
        "updated_at": now,
    }


def records(
    *,
    transitions: list[Transition],
    changed: Mapping[tuple[str, str, str], EntityState],
    policies: Mapping[str, Policy],
    query_text: Callable[[str, str], str],
    now: float,
) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """(alert rows to upsert, alert ids to delete, events) for one cycle."""
    upserts: dict[str, dict[str, Any]] = {}
    deletes: list[str] = []
    events: list[dict[str, Any]] = []
    for st in changed.values():
        row = alert_row(st, policy=policies.get(st.policy_id), query=query_text(st.policy_id, st.rule), now=now)
        if row is not None:
            upserts[st.alert_id] = row
    for t in transitions:
        policy = policies.get(t.policy_id)
        if t.to_state in ("resolved", "closed"):
            row = alert_row(
                t.state,
                policy=policy,
                query=query_text(t.policy_id, t.rule),
                now=now,
                state=t.to_state,
                ended_at=t.at,
                reason=t.reason,
            )
            if row is not None:
                upserts[t.alert_id] = row
        elif t.to_state == "inactive":
            upserts.pop(t.alert_id, None)
            deletes.append(t.alert_id)
        if (t.from_state, t.to_state) in QUIET_MOVES:
            continue
        events.append(
            {
                "alert_id": t.alert_id,
                "policy_id": t.policy_id,
                "namespace": (policy.namespace if policy else None) or "",
                "at": t.at,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "value": t.value,
                "reason": t.reason,
            }
        )
    return list(upserts.values()), deletes, events
