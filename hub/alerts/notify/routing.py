"""Stage: routing — the sendable notices of one cycle become messages per policy and receiver
(within the policy's window and each receiver's quiet hours, :mod:`~hub.alerts.notify.window`),
and the notices that reached nobody get their ``undelivered`` records.

A notice that reaches nobody is never silent: its alert gets ONE ``undelivered`` history event
per distinct reason ("not delivered: ops has no email address"), however many cycles decide
the same unreachable notice again. Pure: the receiver lookups are callables passed in.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from hub.alerts.engine import EntityState
from hub.alerts.notify import window
from hub.alerts.notify.notice import Notice
from hub.alerts.policy import Policy

StateKey = tuple[str, str, str]


def route(
    sendable: list[Notice],
    *,
    policies: Mapping[str, Policy],
    tenants: Mapping[str, str],
    resolve_user: Callable[[str, str | None], str | None],
    explain_user: Callable[[str, str | None], str] | None,
    default_language: str,
    now: float,
) -> tuple[list[window.MessagePlan], set[str], list[tuple[Notice, list[str]]]]:
    """Messages per policy and receiver within their windows; the
    keys some message carries; the notices whose receivers could not all be reached, with why."""
    by_policy: dict[str, list[Notice]] = defaultdict(list)
    for n in sendable:
        by_policy[n.policy_id].append(n)
    messages: list[window.MessagePlan] = []
    routed: set[str] = set()
    unreached: list[tuple[Notice, list[str]]] = []
    for policy_id, notices in by_policy.items():
        policy = policies[policy_id]
        to, problems = window.recipients(
            policy,
            resolve_user=resolve_user,
            default_language=default_language,
            explain_user=explain_user,
        )
        if not policy.notification.receivers:
            problems = [window.NO_RECEIVERS]
        plans = window.route(
            notices, policy_id=policy_id, policy=policy, tenant=tenants.get(policy_id, "cluster"), to=to, now=now
        )
        if plans:
            routed |= {n.key for n in notices}
        messages += plans
        if problems:
            sentences = sorted({p.sentence for p in problems})
            unreached += [(n, sentences) for n in notices]
    return messages, routed, unreached


def _undelivered_key(alert_id: str, sentences: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sentences).encode()).hexdigest()[:12]
    return f"{alert_id}:undelivered:{digest}"


_STATE_OF_KIND = {
    "firing": "firing",
    "repeat": "firing",
    "nodata": "nodata",
    "resolved": "resolved",
    "closed": "closed",
}


@dataclass
class Undelivered:
    """The records of notices that reached nobody: for the notification log, for the alerts'
    history, and one problem line each for the hub's log."""

    notices: list[tuple[Notice, str]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def undelivered(
    unreached: list[tuple[Notice, list[str]]],
    *,
    states: Mapping[StateKey, EntityState],
    existing_keys: Callable[[Iterable[str]], set[str]],
    now: float,
) -> Undelivered:
    """One ``undelivered`` record (notification log) and history event per alert and distinct
    reason, however many cycles decide the same unreachable notice again."""
    out = Undelivered()
    if not unreached:
        return out
    wanted: dict[str, tuple[Notice, list[str]]] = {}
    for n, sentences in unreached:
        wanted.setdefault(_undelivered_key(n.alert_id, sentences), (n, sentences))
    known = existing_keys(list(wanted))
    for key, (n, sentences) in wanted.items():
        if key in known:
            continue
        reason = "; ".join(sentences)
        record = replace(n, key=key, detail={**n.detail, "undelivered": sentences})
        out.notices.append((record, "undelivered"))
        current = states.get((n.policy_id, n.rule, n.entity))
        out.events.append(
            {
                "alert_id": n.alert_id,
                "policy_id": n.policy_id,
                "namespace": n.namespace or "",
                "at": now,
                "from_state": current.state if current is not None else _STATE_OF_KIND.get(n.kind, n.kind),
                "to_state": "undelivered",
                "value": n.value,
                "reason": reason,
            }
        )
        out.problems.append(f"policy {n.policy_name}, alert {n.entity}: {reason}")
    return out
