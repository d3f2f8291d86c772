"""One pass of the notification pipeline over an engine cycle's result.

Input: the cycle's transitions and the tracked states after it. Output: the states with their
send counters advanced, every notice decided (with its status: queued, silenced, flap_held,
undelivered), the outbox messages, the flap records, and the history events of notices that
reached nobody. Nothing here does I/O except through the callables the caller passes (the
notification log lookup, the quota count, the receiver lookups), so the same code serves the
live cycle, policy edits and backtests. The stages live in their own modules (``decide``,
``gate``, ``damping``, ``routing``, ``quota``); :func:`process` calls them in order.

A notice that reaches nobody is never silent: a first notice or a repeat whose policy has no
reachable receiver is not counted as a send and not logged, so it is decided again next cycle
(and goes out once a receiver has an address); its alert gets ONE ``undelivered`` history
event per distinct reason ("not delivered: ops has no email address"), also when only some of
the receivers were unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from hub.alerts.engine import EntityState, Transition
from hub.alerts.notify import damping, decide, gate, grouping, quota, routing, window
from hub.alerts.notify.damping import FlapKey, FlapRecord
from hub.alerts.notify.decide import build_notice
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.silence import Silence
from hub.alerts.policy import FlapDamping, Policy

__all__ = ["PipelineInput", "PipelineOutput", "build_notice", "process"]

StateKey = tuple[str, str, str]


@dataclass
class PipelineInput:
    now: float
    transitions: list[Transition]
    states: dict[StateKey, EntityState]
    policies: Mapping[str, Policy]
    tenants: Mapping[str, str]  # policy id -> tenant (namespace, or "cluster")
    silences: list[Silence]
    flaps: dict[FlapKey, FlapRecord]
    query_text: Callable[[str, str], str]
    existing_keys: Callable[[Iterable[str]], set[str]]
    count_since: Callable[[str, float], int]
    # (user name, the policy's namespace or None) -> address; None if the user has none or may
    # no longer see that namespace's alerts
    resolve_user: Callable[[str, str | None], str | None] = lambda name, namespace: None
    # why a user resolved to no address ("has no email address"); None: one generic sentence
    explain_user: Callable[[str, str | None], str] | None = None
    default_language: str = "en"
    quota_per_hour: int = 0
    quota_exempt: Collection[str] = ()
    # grouping across policies (None: off, one message per policy and receiver, sent at once);
    # the groups' stored states (last release per receiver and group)
    group_settings: grouping.GroupSettings | None = None
    groups: Mapping[grouping.GroupKey, grouping.GroupState] = field(default_factory=dict)


@dataclass
class PipelineOutput:
    states: dict[StateKey, EntityState]
    notices: list[tuple[Notice, str]] = field(default_factory=list)
    messages: list[window.MessagePlan] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)  # undelivered notices, for history
    groups: dict[grouping.GroupKey, grouping.GroupState] = field(default_factory=dict)  # changed groups
    expired_groups: list[grouping.GroupKey] = field(default_factory=list)


def process(inp: PipelineInput) -> PipelineOutput:
    """One cycle's transitions and tracked states -> the notices to log and the messages to
    send, stage by stage (each in its own module)."""
    now = inp.now
    states = dict(inp.states)
    flap_cfg: dict[str, FlapDamping] = {pid: p.flap for pid, p in inp.policies.items()}

    # 1. flap damping learns this cycle's changes first, so the change that tips a pair into
    #    flapping is already held.
    damping.observe(inp.flaps, inp.transitions, flap_cfg, now)
    # 2. which alerts owe a notice, built
    decided = decide.decide(
        transitions=inp.transitions,
        states=states,
        policies=inp.policies,
        tenants=inp.tenants,
        query_text=inp.query_text,
        now=now,
    )
    # 3. de-duplicated against the notification log before anything is counted; silenced and
    #    flap-held notices are logged, the rest queued
    gated = gate.gate(decided, existing_keys=inp.existing_keys, silences=inp.silences, flaps=inp.flaps, now=now)
    # 4. flap summaries for pairs that calmed down
    summaries = damping.summaries(
        inp.flaps,
        flap_cfg,
        states=states,
        policies=inp.policies,
        tenants=inp.tenants,
        query_text=inp.query_text,
        existing_keys=inp.existing_keys,
        now=now,
    )
    _add_summaries(gated, summaries)
    # 5. route per policy and receiver (window, quiet hours), then the tenant quota
    messages, routed, unreached = routing.route(
        gated.sendable,
        policies=inp.policies,
        tenants=inp.tenants,
        resolve_user=inp.resolve_user,
        explain_user=inp.explain_user,
        default_language=inp.default_language,
        now=now,
    )
    # 6. grouping across policies: per receiver and group (node; namespace + workload), released
    #    after group_wait, updates no sooner than group_interval
    grouped = grouping.Grouped(messages=messages)
    if inp.group_settings is not None:
        by_key = {n.key: n for n in gated.sendable}
        own = {pid: p.notification.group_by for pid, p in inp.policies.items() if p.notification.group_by is not None}
        settings = replace(inp.group_settings, per_policy=own)
        grouped = grouping.group(messages, by_key, states=inp.groups, settings=settings, now=now)
        messages = grouped.messages
    limited = quota.apply(
        messages, now=now, limit=inp.quota_per_hour, count_since=inp.count_since, exempt=inp.quota_exempt
    )
    # 7. sends counted where a message carries them; the notices' final statuses; a record for
    #    each notice that reached nobody
    _count_sends(states, gated.counting, routed, now)
    out = PipelineOutput(states=states, messages=limited, notices=_settle(gated, routed))
    out.groups, out.expired_groups = grouped.states, grouped.expired
    lost = routing.undelivered(unreached, states=states, existing_keys=inp.existing_keys, now=now)
    out.notices += lost.notices
    out.events += lost.events
    out.problems += lost.problems
    return out


def _add_summaries(gated: gate.Gated, summaries: list[tuple[Notice, FlapKey | None]]) -> None:
    """Flap summaries are sendable and logged as queued; one that counts as an alert's first
    send is counted like any first notice."""
    for n, count_key in summaries:
        gated.sendable.append(n)
        gated.logged.append((n, "queued"))
        if count_key is not None:
            gated.counting[n.key] = count_key


def _count_sends(
    states: dict[StateKey, EntityState], counting: Mapping[str, StateKey], routed: set[str], now: float
) -> None:
    """Advance the send counters of the alerts whose counted notice some message carries."""
    for key, skey in counting.items():
        if key in routed and skey in states:
            st = states[skey]
            states[skey] = replace(st, sends=st.sends + 1, last_sent=now, first_sent=st.first_sent or now)


def _settle(gated: gate.Gated, routed: set[str]) -> list[tuple[Notice, str]]:
    """The notices to log with their final status: a queued notice no message carries is
    ``undelivered``, except a send that reached nobody, which is not logged at all (decided
    again next cycle, sent once someone is reachable)."""
    kept: list[tuple[Notice, str]] = []
    for n, status in gated.logged:
        if status == "queued" and n.key not in routed:
            if n.key in gated.retry_later:
                continue
            status = "undelivered"
        kept.append((n, status))
    return kept
