"""One pass of the notification pipeline over an engine cycle's result.

Input: the cycle's transitions and the tracked states after it. Output: the states with their
send counters advanced, every notice decided (with its status: queued, silenced, flap_held,
undelivered), the outbox messages, the flap records, and the history events of notices that
reached nobody. Nothing here does I/O except through the callables the caller passes (the
notification log lookup, the quota count, the receiver lookups), so the same code serves the
live cycle, policy edits and backtests.

A notice that reaches nobody is never silent: a first notice or a repeat whose policy has no
reachable receiver is not counted as a send and not logged, so it is decided again next cycle
(and goes out once a receiver has an address); its alert gets ONE ``undelivered`` history
event per distinct reason ("not delivered: ops has no email address"), also when only some of
the receivers were unreachable.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from hub.alerts.engine import EntityState, Transition
from hub.alerts.notify import damping, dedup, quota, reach, repeating, window
from hub.alerts.notify.damping import FlapKey, FlapRecord
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.silence import Silence, silenced_by
from hub.alerts.policy import FlapDamping, Policy

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


@dataclass
class PipelineOutput:
    states: dict[StateKey, EntityState]
    notices: list[tuple[Notice, str]] = field(default_factory=list)
    messages: list[window.MessagePlan] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)  # undelivered notices, for history


def build_notice(
    *,
    kind: str,
    key: str,
    st: EntityState,
    policy: Policy,
    policy_id: str,
    tenant: str,
    query: str,
    at: float,
    reason: str = "",
    send_number: int = 0,
    detail: Mapping[str, object] | None = None,
    ended_at: float | None = None,
    since: float | None = None,
) -> Notice | None:
    rule = policy.rule(st.rule)
    if rule is None:
        return None
    if policy_id == reach.REACH_POLICY_ID and not reason:
        reason = st.labels.get("reason", "")  # who is unreachable, and why: the notice's point
    return Notice(
        key=key,
        kind=kind,
        at=at,
        alert_id=st.alert_id,
        policy_id=policy_id,
        policy_name=policy.name,
        level=policy.level,
        namespace=policy.namespace,
        tenant=tenant,
        rule=rule.name,
        severity=rule.severity,
        entity=st.entity,
        labels=dict(st.labels),
        metric=rule.metric,
        aggregation=rule.aggregation,
        comparator=rule.comparator,
        threshold=rule.threshold,
        unit=rule.unit,
        value=st.last_value,
        query=query,
        period=rule.period,
        consecutive=rule.consecutive,
        started_at=st.started_at,
        fired_at=st.fired_at,
        ended_at=ended_at,
        last_breach=st.last_breach,
        periods=st.count,
        samples=tuple(st.samples),
        send_number=send_number,
        reason=reason,
        detail=dict(detail or {}),
        since=since,
    )


def process(inp: PipelineInput) -> PipelineOutput:
    """One cycle's transitions and tracked states -> the notices to log and the messages to
    send, in five stages (each below, in its own function or stage module)."""
    now = inp.now
    states = dict(inp.states)
    out = PipelineOutput(states=states)
    flap_cfg: dict[str, FlapDamping] = {pid: p.flap for pid, p in inp.policies.items()}

    # 1. flap damping learns this cycle's changes first, so the change that tips a pair into
    #    flapping is already held.
    damping.observe(inp.flaps, inp.transitions, flap_cfg, now)
    # 2. which alerts owe a notice
    decided = _decide(inp, states, now)
    # 3. de-duplicated against the notification log before anything is counted; silenced and
    #    flap-held notices are logged, the rest queued
    sendable, counting, retry_later = _gate(inp, decided, out, now)
    # 4. flap summaries for pairs that calmed down
    for n, count_key in _flap_summaries(inp, states, flap_cfg, now):
        sendable.append(n)
        out.notices.append((n, "queued"))
        if count_key is not None:
            counting[n.key] = count_key
    # 5. route per policy and receiver (window, quiet hours), then the tenant quota
    messages, routed, unreached = _route(inp, sendable, now)
    out.messages = quota.apply(
        messages, now=now, limit=inp.quota_per_hour, count_since=inp.count_since, exempt=inp.quota_exempt
    )
    for key, skey in counting.items():
        if key in routed and skey in states:
            st = states[skey]
            states[skey] = replace(st, sends=st.sends + 1, last_sent=now, first_sent=st.first_sent or now)
    kept: list[tuple[Notice, str]] = []
    for n, status in out.notices:
        if status == "queued" and n.key not in routed:
            if n.key in retry_later:
                continue  # not logged: decided again next cycle, sent once someone is reachable
            status = "undelivered"
        kept.append((n, status))
    out.notices = kept
    _record_unreached(out, unreached, inp, states)
    return out


def _decide(
    inp: PipelineInput, states: Mapping[StateKey, EntityState], now: float
) -> list[tuple[Notice, repeating.Candidate]]:
    """Stage 2: the notices owed (first notices, repeats, resolutions, closings), built."""
    wanted = repeating.candidates(now=now, transitions=inp.transitions, states=states, policies=inp.policies)
    decided: list[tuple[Notice, repeating.Candidate]] = []
    for c in wanted:
        policy = inp.policies.get(c.state.policy_id)
        if policy is None:
            continue
        at = c.transition.at if c.transition is not None else now
        n = build_notice(
            kind=c.kind,
            key=c.key,
            st=c.state,
            policy=policy,
            policy_id=c.state.policy_id,
            tenant=inp.tenants.get(c.state.policy_id, "cluster"),
            query=inp.query_text(c.state.policy_id, c.state.rule),
            at=at,
            reason=c.reason,
            send_number=c.state.sends + 1 if c.counts_as_send else c.state.sends,
            ended_at=c.transition.at if c.kind in ("resolved", "closed") and c.transition is not None else None,
            since=c.state.last_sent if c.kind == "repeat" else None,
        )
        if n is not None:
            decided.append((n, c))
    return decided


def _gate(
    inp: PipelineInput, decided: list[tuple[Notice, repeating.Candidate]], out: PipelineOutput, now: float
) -> tuple[list[Notice], dict[str, StateKey], set[str]]:
    """Stage 3: de-duplication, silences and flap holds. Returns the sendable notices, the sends
    to count once a message carries them, and the sends decided again next cycle if nobody is
    reached."""
    fresh_keys = {n.key for n in dedup.fresh([n for n, _ in decided], inp.existing_keys)}
    sendable: list[Notice] = []
    # A send is counted only once a message to someone carries it (stage 5).
    counting: dict[str, StateKey] = {}
    retry_later: set[str] = set()  # sends that reach nobody: decided again next cycle
    for n, c in decided:
        if n.key not in fresh_keys:
            continue
        fresh_keys.discard(n.key)  # the same key twice in one batch counts once
        skey = (c.state.policy_id, c.state.rule, c.state.entity)
        silence = silenced_by(n, inp.silences, now)
        if silence is not None:
            # A silenced first notice is not recorded, so it is decided again (and sent) when
            # the silence ends; other silenced notices are recorded once, as silenced.
            if not c.counts_as_send:
                out.notices.append((replace(n, detail={**n.detail, "silence": silence.id}), "silenced"))
            continue
        if damping.is_holding(inp.flaps, skey):
            rec = inp.flaps[skey]
            rec.held += 1
            rec.dirty = True
            if not c.counts_as_send:
                out.notices.append((n, "flap_held"))
            continue
        sendable.append(n)
        out.notices.append((n, "queued"))
        if c.counts_as_send:
            counting[n.key] = skey
            retry_later.add(n.key)
    return sendable, counting, retry_later


def _flap_summaries(
    inp: PipelineInput, states: Mapping[StateKey, EntityState], flap_cfg: Mapping[str, FlapDamping], now: float
) -> list[tuple[Notice, StateKey | None]]:
    """Stage 4: a summary notice for each pair that stopped flapping, with the state whose first
    send it counts as (a firing alert never told while it was held), if any."""
    out: list[tuple[Notice, StateKey | None]] = []
    for fkey in damping.settled(inp.flaps, flap_cfg, now):
        rec = inp.flaps[fkey]
        policy = inp.policies.get(fkey[0])
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
        n = build_notice(
            kind="flap_summary",
            key=f"flap:{fkey[0]}/{fkey[1]}/{fkey[2]}:{now:.0f}",
            st=st,
            policy=policy,
            policy_id=fkey[0],
            tenant=inp.tenants.get(fkey[0], "cluster"),
            query=inp.query_text(fkey[0], fkey[1]),
            at=now,
            detail=detail,
        )
        if n is None or n.key in inp.existing_keys([n.key]):
            continue
        counts = current is not None and current.state == "firing" and current.sends == 0
        out.append((n, fkey if counts else None))
        rec.held = 0
        rec.held_since = None
    return out


def _route(
    inp: PipelineInput, sendable: list[Notice], now: float
) -> tuple[list[window.MessagePlan], set[str], list[tuple[Notice, list[str]]]]:
    """Stage 5 (before the quota): messages per policy and receiver within their windows; the
    keys some message carries; the notices whose receivers could not all be reached, with why."""
    by_policy: dict[str, list[Notice]] = defaultdict(list)
    for n in sendable:
        by_policy[n.policy_id].append(n)
    messages: list[window.MessagePlan] = []
    routed: set[str] = set()
    unreached: list[tuple[Notice, list[str]]] = []
    for policy_id, notices in by_policy.items():
        policy = inp.policies[policy_id]
        to, problems = window.recipients(
            policy,
            resolve_user=inp.resolve_user,
            default_language=inp.default_language,
            explain_user=inp.explain_user,
        )
        if not policy.notification.receivers:
            problems = [window.NO_RECEIVERS]
        plans = window.route(
            notices, policy_id=policy_id, policy=policy, tenant=inp.tenants.get(policy_id, "cluster"), to=to, now=now
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


def _record_unreached(
    out: PipelineOutput,
    unreached: list[tuple[Notice, list[str]]],
    inp: PipelineInput,
    states: Mapping[StateKey, EntityState],
) -> None:
    """One ``undelivered`` record (notification log) and history event per alert and distinct
    reason, however many cycles decide the same unreachable notice again."""
    if not unreached:
        return
    wanted: dict[str, tuple[Notice, list[str]]] = {}
    for n, sentences in unreached:
        wanted.setdefault(_undelivered_key(n.alert_id, sentences), (n, sentences))
    known = inp.existing_keys(list(wanted))
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
                "at": inp.now,
                "from_state": current.state if current is not None else _STATE_OF_KIND.get(n.kind, n.kind),
                "to_state": "undelivered",
                "value": n.value,
                "reason": reason,
            }
        )
        out.problems.append(f"policy {n.policy_name}, alert {n.entity}: {reason}")
