"""Stage: which alerts owe a notice this cycle (first send, repeats, resolve, no-data, closed).

Driven by the alert's own counters rather than by transitions alone: a firing alert with zero
sends owes its first notice (whether it just fired, or its first notice was silenced or held
by flap damping until now); one with sends owes a repeat when the severity's repeat rule says
so. Ends (resolved, closed) and no-data are told only to people who were told it fired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.alerts import repeat
from hub.alerts.engine import EntityState, Transition
from hub.alerts.policy import Policy, RepeatRule

StateKey = tuple[str, str, str]


@dataclass(frozen=True)
class Candidate:
    kind: str  # firing | repeat | resolved | nodata | closed
    state: EntityState
    key: str  # the notice key (alert:kind:sequence)
    reason: str = ""
    counts_as_send: bool = False
    transition: Transition | None = None


def candidates(
    *,
    now: float,
    transitions: list[Transition],
    states: Mapping[StateKey, EntityState],
    policies: Mapping[str, Policy],
) -> list[Candidate]:
    out: list[Candidate] = []
    for t in transitions:
        policy = policies.get(t.policy_id)
        st = t.state
        if t.to_state == "resolved" and st.sends > 0 and (policy is None or policy.notification.send_resolved):
            out.append(Candidate("resolved", st, f"{st.alert_id}:resolved", t.reason, transition=t))
        elif t.to_state == "closed" and st.sends > 0:
            out.append(Candidate("closed", st, f"{st.alert_id}:closed", t.reason, transition=t))
        elif t.to_state == "nodata" and st.sends > 0:
            out.append(Candidate("nodata", st, f"{st.alert_id}:nodata:{t.at:.0f}", t.reason, transition=t))
        elif t.to_state == "firing" and t.from_state == "nodata" and st.sends > 0:
            out.append(Candidate("firing", st, f"{st.alert_id}:back:{t.at:.0f}", t.reason, transition=t))
    # The repeat rule of each (policy, rule), looked up once per cycle rather than per alert
    # (a rule has thousands of firing alerts at scale); None: the policy or rule is gone.
    schedules: dict[tuple[str, str], RepeatRule | None] = {}
    for st in states.values():
        if st.state != "firing":
            continue
        pair = (st.policy_id, st.rule)
        if pair in schedules:
            schedule = schedules[pair]
        else:
            policy = policies.get(st.policy_id)
            rule = policy.rule(st.rule) if policy is not None else None
            found = policy.repeat_for(rule.severity) if policy is not None and rule is not None else None
            schedule = schedules[pair] = found
        if schedule is None:
            continue
        if st.sends == 0:
            out.append(Candidate("firing", st, f"{st.alert_id}:firing:1", counts_as_send=True))
            continue
        due = repeat.next_send_at(schedule, sends=st.sends, last_sent=st.last_sent)
        if due is not None and due <= now:
            n = st.sends + 1
            out.append(Candidate("repeat", st, f"{st.alert_id}:repeat:{n}", counts_as_send=True))
    return out
