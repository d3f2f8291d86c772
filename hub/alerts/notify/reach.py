"""The hub's own alert for notices that reach nobody: a firing alert whose policy has no
reachable receiver (no receivers at all, or only users without an email address or who may no
longer see the project's alerts).

Why a meta-alert and not only the alert's history: the people who would read that history are
exactly the ones who were not told. The admins (``alerts.admin_emails`` and platform admins
with an address) get one alert per such policy, ``receivers-unreachable`` on entity
``<project or cluster>/<policy name>``; it resolves when the policy's alerts stop firing or a
receiver becomes reachable. The meta policies themselves are not checked (their receivers are
the admins; a hub with no admin address has nobody to tell).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence

from hub.alerts.engine import EntityState, Transition
from hub.alerts.notify import window
from hub.alerts.notify.meta import step_observed
from hub.alerts.policy import Policy, Receiver
from hub.alerts.policy_model import hub_policy

StateKey = tuple[str, str, str]

REACH_POLICY_ID = "__meta_reach__"
REACH_POLICY_NAME = "kubehub-unreachable-receivers"
REACH_RULE = "receivers-unreachable"


def reach_policy(receivers: Sequence[Receiver], period: float) -> Policy:
    """The meta policy: one alert per policy whose firing alerts reach nobody."""
    return hub_policy(
        name=REACH_POLICY_NAME,
        rule=REACH_RULE,
        metric="kubehub_alert_unreachable",
        severity="major",
        receivers=receivers,
        period=period,
        description="A policy has firing alerts but none of its receivers can be mailed.",
    )


def unreachable_policies(
    states: Mapping[StateKey, EntityState],
    policies: Mapping[str, Policy],
    *,
    resolve_user: Callable[[str, str | None], str | None],
    explain_user: Callable[[str, str | None], str] | None = None,
) -> dict[str, tuple[int, list[str]]]:
    """policy id -> (firing alerts, reasons) for each policy with firing alerts and no
    reachable receiver. Receivers are resolved once per policy, only for policies that fire."""
    firing: dict[str, int] = {}
    for (pid, _, _), st in states.items():
        if st.effective == "firing" and pid in policies and not pid.startswith("__meta"):
            firing[pid] = firing.get(pid, 0) + 1
    out: dict[str, tuple[int, list[str]]] = {}
    for pid, count in firing.items():
        policy = policies[pid]
        if not policy.notification.receivers:
            out[pid] = (count, [window.NO_RECEIVERS.sentence])
            continue
        to, problems = window.recipients(
            policy, resolve_user=resolve_user, default_language="en", explain_user=explain_user
        )
        if not to:
            out[pid] = (count, sorted({p.sentence for p in problems}))
    return out


def track(
    states: MutableMapping[StateKey, EntityState],
    policies: Mapping[str, Policy],
    *,
    now: float,
    period: float,
    resolve_user: Callable[[str, str | None], str | None],
    explain_user: Callable[[str, str | None], str] | None = None,
) -> tuple[list[Transition], list[StateKey]]:
    """Step the meta-alert of every policy (firing with no reachable receiver: breach; tracked
    but fine again, or gone: ok). Updates ``states``; returns (transitions, ended keys)."""
    bad = unreachable_policies(states, policies, resolve_user=resolve_user, explain_user=explain_user)
    observed: dict[StateKey, tuple[str, float, dict[str, str]]] = {}
    for pid, (count, reasons) in bad.items():
        policy = policies[pid]
        entity = f"{policy.namespace or 'cluster'}/{policy.name}"
        labels = {
            "policy": policy.name,
            "policy_id": pid,
            "namespace": policy.namespace or "",
            "reason": "; ".join(reasons)[:300],
        }
        observed[(REACH_POLICY_ID, REACH_RULE, entity)] = ("breach", float(count), labels)
    for key, st in list(states.items()):
        if key[0] == REACH_POLICY_ID and key not in observed:
            observed[key] = ("ok", 0.0, dict(st.labels))
    return step_observed(states, observed, policy_id=REACH_POLICY_ID, rule=REACH_RULE, now=now, period=period)


def receiver_warnings(
    policy: Policy,
    *,
    resolve_user: Callable[[str, str | None], str | None],
    explain_user: Callable[[str, str | None], str] | None = None,
) -> list[dict[str, str]]:
    """Warnings for a policy being saved: receivers the hub cannot mail now (a user without an
    email address), or no receivers at all. ``{"field", "warning", "user"?}``; the policy is
    saved anyway (the user may add an address later, and the alerts still show in the console)."""
    out: list[dict[str, str]] = []
    if not policy.notification.receivers:
        return [
            {
                "field": "notification.receivers",
                "warning": "the policy names no receivers: its alerts show in the console but nobody is mailed",
            }
        ]
    for i, r in enumerate(policy.notification.receivers):
        if not r.user or resolve_user(r.user, policy.namespace):
            continue
        why = (explain_user(r.user, policy.namespace) if explain_user is not None else "") or window.UNREACHABLE
        out.append(
            {
                "field": f"notification.receivers[{i}].user",
                "user": r.user,
                "warning": f"{r.user} {why}: their notices will not be delivered",
            }
        )
    return out
