"""The pure steps of one engine cycle, between the engine and the state store: the cycle
itself (:mod:`hub.alerts.cycle`) reads the store, runs the queries and calls these in order.

After the engine, :func:`hub_alerts` closes the states whose rule is gone and tracks the hub's
own alerts (its metric source failing; alerts that reach nobody). Around the notification
pipeline: :func:`tenants_of`, rule health to write (:func:`health_changes`), the flap records to
forget (:func:`prunable`), closing transitions for policy edits (:func:`close_states`) and the
rows of decided notices (:func:`notice_rows`); the JSON of the tracked states and which of them
must be written (:func:`must_persist`). No I/O.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from hub.alerts import engine
from hub.alerts.engine import EntityState, Evaluation, FetchKey, Transition, step_for
from hub.alerts.notify import clusters, damping, reach
from hub.alerts.notify.damping import FlapRecord
from hub.alerts.notify.silence import Silence
from hub.alerts.policy import Policy, Receiver
from hub.alerts.policy_model import hub_policy

StateKey = tuple[str, str, str]

META_POLICY_ID = "__meta__"
META_RULE = "metric-source-down"
META_ENTITY = "prometheus"
META_TENANT = "__hub__"


def describe_query(metric_promql: str, aggregation: str, period: float) -> str:
    """What a rule's value is, in words a person can check against Prometheus: the metric's
    points every ``step`` inside each period, aggregated."""
    if metric_promql.startswith("promql:") or aggregation == "promql":
        return f"the rows at the end of each {period:g}s period of: {metric_promql.removeprefix('promql:')}"
    step = step_for(period)
    points = round(period / step)
    return f"{aggregation} of {points} points ({step:g}s apart) in each {period:g}s period of: {metric_promql}"


def meta_policy(receivers: Sequence[Receiver], period: float) -> Policy:
    """The hub's own alert: the metric source fails, so every rule is in error."""
    return hub_policy(
        name="kubehub-metric-source",
        rule=META_RULE,
        metric="kubehub_alert_query_errors",
        severity="critical",
        receivers=receivers,
        period=period,
        description="Alert queries fail: every rule is in the error state until they succeed again.",
    )


_STATE_FIELDS = tuple(f.name for f in fields(EntityState))
_STATE_VALUES = operator.attrgetter(*_STATE_FIELDS)
# json.dumps with non-default separators builds a new encoder per call; one encoder, reused,
# writes the same text.
_STATE_ENCODER = json.JSONEncoder(separators=(",", ":"))


def state_to_json(st: EntityState) -> str:
    # Field by field rather than dataclasses.asdict: asdict deep-copies every sample tuple,
    # which made it the largest cost of a replayed cycle. The JSON is the same. One attrgetter
    # call rather than a getattr per field: tens of thousands of states are encoded in a cycle
    # where alerts start or fire.
    d = dict(zip(_STATE_FIELDS, _STATE_VALUES(st), strict=True))
    d["labels"] = dict(st.labels)
    return _STATE_ENCODER.encode(d)


# How stale the evidence of a persisted state may get (see :func:`must_persist`).
CHECKPOINT_SECONDS = 300.0


def persisted_content(st: EntityState) -> tuple[Any, ...]:
    """What a restart must read back exactly to make the same decisions: the state, its
    episode (alert id, started, since, fired, prior), the sends that drive repeats, the labels,
    and the breach count while it decides pending -> firing. Left out: the evidence (samples,
    last value, last breach, the firing count shown as periods) and ``last_eval`` — no
    transition depends on them, they only describe the alert."""
    counting = st.effective == "pending"
    return (
        st.state,
        st.prior,
        st.alert_id,
        st.started_at,
        st.since,
        st.fired_at,
        st.count if counting else None,
        st.sends,
        st.first_sent,
        st.last_sent,
        tuple(sorted(st.labels.items())),
    )


def must_persist(new: EntityState, saved: EntityState | None, *, checkpoint: float = CHECKPOINT_SECONDS) -> bool:
    """Whether a tracked state must be written this cycle, ``saved`` being the copy in the store.

    Why not every state every cycle: with tens of thousands of firing alerts, re-encoding and
    upserting each state (and its alert record) every cycle was most of the hub's cost, while
    Prometheus keeps its alert state in memory. The engine keeps its states in memory, so a
    write only has to make a restart (kill -9, a new leader) decide the same: a state is
    written when it is new or its :func:`persisted_content` changed. Its evidence (the
    samples of the email chart, the last value and the periods shown on the alert) is written
    with it, and otherwise refreshed once per ``checkpoint`` seconds of evaluation, so after a
    restart it is at most that stale — and the next evaluations append to it again."""
    if saved is None:
        return True
    if new is saved:
        return False
    if _content_differs(new, saved):
        return True
    return new.last_eval - saved.last_eval >= checkpoint


def _content_differs(a: EntityState, b: EntityState) -> bool:
    """``persisted_content(a) != persisted_content(b)``, field by field with an early exit.

    Why not the tuples: this runs for every tracked alert every cycle, and building two
    11-tuples (with the sorted labels) per alert was a visible share of a steady cycle; the
    labels are usually the very same mapping (the state machine carries it over)."""
    if (
        a.state != b.state
        or a.prior != b.prior
        or a.alert_id != b.alert_id
        or a.started_at != b.started_at
        or a.since != b.since
        or a.fired_at != b.fired_at
        or a.sends != b.sends
        or a.first_sent != b.first_sent
        or a.last_sent != b.last_sent
    ):
        return True
    if (a.count if a.effective == "pending" else None) != (b.count if b.effective == "pending" else None):
        return True
    return a.labels is not b.labels and dict(a.labels) != dict(b.labels)


def state_from_json(text: str) -> EntityState:
    d = json.loads(text)
    d["samples"] = tuple((float(t), None if v is None else float(v)) for t, v in d.get("samples", []))
    return EntityState(**d)


def silence_from_row(row: Any) -> Silence:
    return Silence(
        id=row["id"],
        namespace=row["namespace"] or None,
        matchers=json.loads(row["matchers"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        comment=row["comment"],
        created_by=row["created_by"],
    )


@dataclass
class Evaluated:
    """A cycle's outcome before notifying: the tracked states after the engine and the hub's own
    alerts, this cycle's transitions, the states that ended, every policy (the tenants' and the
    hub's own) and the fetches that failed."""

    states: dict[StateKey, EntityState]
    transitions: list[Transition]
    ended: list[StateKey]
    policies: dict[str, Policy]
    failed: list[FetchKey]


def hub_alerts(
    ev: Evaluation,
    policies: Mapping[str, Policy],
    results: Mapping[FetchKey, object],
    *,
    ran_queries: bool,
    now: float,
    period: float,
    admins: Sequence[Receiver],
    track_receivers: bool,
    resolve_user: Callable[[str, str | None], str | None],
    explain_user: Callable[[str, str | None], str] | None,
    orphan_candidates: Iterable[StateKey] | None = None,
    stale_clusters: Mapping[str, float] | None = None,
) -> Evaluated:
    """After the engine: close the states whose rule is gone, then the hub's own alerts — its
    metric source failing (any failed query this cycle) and, live only, firing alerts that
    reach nobody (:mod:`hub.alerts.notify.reach`). ``orphan_candidates``: the only states that
    may have lost their rule (see :func:`close_orphans`); None: every state."""
    states = ev.states
    transitions = list(ev.transitions)
    ended = list(ev.ended)
    close_orphans(states, policies, now=now, transitions=transitions, ended=ended, candidates=orphan_candidates)
    meta = meta_policy(admins, period)
    all_policies = {**policies, META_POLICY_ID: meta}
    failed = [k for k, r in results.items() if isinstance(r, BaseException)]
    if ran_queries:
        track_metric_source(states, failed, results, now=now, period=period, transitions=transitions, ended=ended)
    if track_receivers:
        all_policies[reach.REACH_POLICY_ID] = reach.reach_policy(meta.notification.receivers, period)
        reach_tr, reach_ended = reach.track(
            states, policies, now=now, period=period, resolve_user=resolve_user, explain_user=explain_user
        )
        transitions += reach_tr
        ended += reach_ended
    if stale_clusters is not None:  # the clusters the hub lost (hub.alerts.notify.clusters), live only
        all_policies[clusters.STALE_POLICY_ID] = clusters.stale_policy(meta.notification.receivers, period)
        stale_tr, stale_ended = clusters.track(states, stale_clusters, now=now, period=period)
        transitions += stale_tr
        ended += stale_ended
    return Evaluated(states=states, transitions=transitions, ended=ended, policies=all_policies, failed=failed)


def tenants_of(policies: Mapping[str, Policy]) -> dict[str, str]:
    """Whose quota and messages each policy's notices are: its namespace, "cluster" for node
    policies, the hub itself for its own alerts."""
    tenants = {pid: (p.namespace or "cluster") for pid, p in policies.items()}
    tenants[META_POLICY_ID] = META_TENANT
    tenants[reach.REACH_POLICY_ID] = META_TENANT
    tenants[clusters.STALE_POLICY_ID] = META_TENANT
    return tenants


def health_changes(
    health: Mapping[str, Any], existing: set[str], *, now: float
) -> dict[str, tuple[str, str, float] | None]:
    """Rule health rows to write: every rule not ok (status, detail, since now), and a removal
    for a rule that is ok again."""
    out: dict[str, tuple[str, str, float] | None] = {}
    for rule_id, h in health.items():
        if h.status != "ok":
            out[rule_id] = (h.status, h.detail, now)
        elif rule_id in existing:
            out[rule_id] = None
    return out


def close_orphans(
    states: dict[tuple[str, str, str], EntityState],
    policies: Mapping[str, Policy],
    *,
    now: float,
    transitions: list[Transition],
    ended: list[tuple[str, str, str]],
    candidates: Iterable[StateKey] | None = None,
) -> None:
    """Close the tracked states whose policy or rule no longer exists (a policy edit closes its
    own; this catches the rest), in place: removed from ``states``, a transition each.

    ``candidates`` limits the check to those keys: the live cycle passes the keys that were not
    tracked before this cycle when the states it tracked were already checked against these
    same policies (a state that had its rule then still has it), so that a steady cycle does not
    scan every tracked alert. None: check every state."""
    keys = list(states) if candidates is None else [k for k in candidates if k in states]
    for key in keys:
        st = states[key]
        if key[0] in (META_POLICY_ID, reach.REACH_POLICY_ID, clusters.STALE_POLICY_ID):
            continue
        policy = policies.get(key[0])
        if policy is None or policy.rule(key[1]) is None:
            del states[key]
            ended.append(key)
            transitions += close_states([st], reason="its rule no longer exists", now=now)


def track_metric_source(
    states: dict[tuple[str, str, str], EntityState],
    failed: Sequence[Any],
    results: Mapping[Any, Any],
    *,
    now: float,
    period: float,
    transitions: list[Transition],
    ended: list[tuple[str, str, str]],
) -> None:
    """The hub's own alert on its metric source: one observation per cycle that ran queries,
    breaching when any failed (the first error in its labels), in place like the engine's."""
    mkey = (META_POLICY_ID, META_RULE, META_ENTITY)
    first_error = next((str(results[k]) for k in failed), "")
    new, tr = engine.step(
        states.get(mkey),
        "breach" if failed else "ok",
        at=now,
        value=float(len(failed)),
        consecutive=1,
        period=period,
        policy_id=META_POLICY_ID,
        rule=META_RULE,
        entity=META_ENTITY,
        labels={"backend": "prometheus", "error": first_error[:200]},
    )
    if new is not None:
        states[mkey] = new
    elif mkey in states:
        del states[mkey]
        ended.append(mkey)
    if tr is not None:
        transitions.append(tr)


def prunable(flaps: Mapping[StateKey, FlapRecord], policies: Mapping[str, Policy], now: float) -> list[StateKey]:
    """The flap records that may be forgotten (their pairs stable for a window, or gone)."""
    return damping.prunable(flaps, {pid: p.flap for pid, p in policies.items()}, now)


def close_states(
    states: Sequence[EntityState],
    *,
    reason: str,
    now: float,
) -> list[Transition]:
    """Transitions that close tracked states (policy edits and deletions)."""
    out = []
    for st in states:
        out.append(
            Transition(
                policy_id=st.policy_id,
                rule=st.rule,
                entity=st.entity,
                labels=st.labels,
                alert_id=st.alert_id,
                from_state=st.state,
                to_state="closed",
                at=now,
                value=None,
                state=replace(st, last_eval=now),
                reason=reason,
            )
        )
    return out


def notice_rows(notices: Iterable[tuple[Any, str]]) -> list[dict[str, Any]]:
    """Outbox rows for (notice, status) pairs, as a cycle or a policy edit queues them."""
    return [
        {
            "key": n.key,
            "alert_id": n.alert_id,
            "policy_id": n.policy_id,
            "namespace": n.namespace or "",
            "kind": n.kind,
            "at": n.at,
            "status": status,
            "payload": n.to_json(),
        }
        for n, status in notices
    ]
