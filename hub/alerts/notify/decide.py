"""Stage: the notices owed this cycle, built from the alerts' states and their policies.

:mod:`~hub.alerts.notify.repeating` says which alerts owe a notice (and of which kind); this
builds each :class:`~hub.alerts.notify.notice.Notice` with its evidence (the rule, the value,
the query in words, the samples). Pure: the policies, tenants and query texts are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hub.alerts.engine import EntityState, Transition
from hub.alerts.notify import reach, repeating
from hub.alerts.notify.notice import Notice
from hub.alerts.policy import Policy
from hub.alerts.policy_expr import render_template

StateKey = tuple[str, str, str]


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
    if rule.expr is not None and (rule.summary or rule.details):  # a PromQL rule's templates, rendered
        detail = {
            **(detail or {}),
            "summary": render_template(rule.summary, st.labels, st.last_value),
            "description": render_template(rule.details, st.labels, st.last_value),
        }
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


def decide(
    *,
    transitions: list[Transition],
    states: Mapping[StateKey, EntityState],
    policies: Mapping[str, Policy],
    tenants: Mapping[str, str],
    query_text: Callable[[str, str], str],
    now: float,
) -> list[tuple[Notice, repeating.Candidate]]:
    """The notices owed (first notices, repeats, resolutions, closings), built, each with the
    candidate it came from (whether it counts as a send, the state it is about)."""
    wanted = repeating.candidates(now=now, transitions=transitions, states=states, policies=policies)
    decided: list[tuple[Notice, repeating.Candidate]] = []
    for c in wanted:
        policy = policies.get(c.state.policy_id)
        if policy is None:
            continue
        at = c.transition.at if c.transition is not None else now
        n = build_notice(
            kind=c.kind,
            key=c.key,
            st=c.state,
            policy=policy,
            policy_id=c.state.policy_id,
            tenant=tenants.get(c.state.policy_id, "cluster"),
            query=query_text(c.state.policy_id, c.state.rule),
            at=at,
            reason=c.reason,
            send_number=c.state.sends + 1 if c.counts_as_send else c.state.sends,
            ended_at=c.transition.at if c.kind in ("resolved", "closed") and c.transition is not None else None,
            since=c.state.last_sent if c.kind == "repeat" else None,
        )
        if n is not None:
            decided.append((n, c))
    return decided
