"""One observation of one (rule, entity): the state machine of ``hub/alerts/engine.py``'s
docstring (pending, firing, nodata, error, resolved) and the transitions it emits. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.alerts.engine_model import NODATA_CLOSE_MIN, SAMPLES_KEPT, EntityState, Transition, alert_id_for, evolve


def _with_sample(samples: tuple[tuple[float, float | None], ...], at: float, value: float | None) -> tuple:
    return (*samples, (at, value))[-SAMPLES_KEPT:]


def step(
    prev: EntityState | None,
    obs: str,
    *,
    at: float,
    value: float | None,
    consecutive: int,
    period: float,
    policy_id: str,
    rule: str,
    entity: str,
    labels: Mapping[str, str],
) -> tuple[EntityState | None, Transition | None]:
    """Apply one observation to one (rule, entity); returns (state or None if inactive, transition)."""
    if prev is None:
        if obs != "breach":
            return None, None
        alert_id = alert_id_for(policy_id, rule, entity, at)
        firing = consecutive <= 1
        new = EntityState(
            policy_id=policy_id,
            rule=rule,
            entity=entity,
            labels=dict(labels),
            state="firing" if firing else "pending",
            alert_id=alert_id,
            count=1,
            started_at=at,
            since=at,
            last_eval=at,
            fired_at=at if firing else None,
            last_breach=at,
            last_value=value,
            samples=((at, value),),
        )
        return new, _transition(new, "inactive", new.state, at, value)

    if obs == "error":
        if prev.state == "error":
            return evolve(prev, last_eval=at), None
        new = evolve(prev, state="error", prior=prev.state, since=at, last_eval=at)
        return new, _transition(new, prev.state, "error", at, None, "the metric query failed")

    base = prev
    recovered_from_error = prev.state == "error"
    if recovered_from_error:
        base = evolve(prev, state=prev.prior or "pending", prior=None)

    samples = _with_sample(base.samples, at, value)
    cur = base.state

    def moved(new: EntityState | None, to: str, reason: str = "") -> tuple[EntityState | None, Transition | None]:
        final = new if new is not None else evolve(base, last_eval=at, samples=samples, last_value=value)
        return new, _transition(final, prev.state, to, at, value, reason)

    if obs == "breach":
        count = base.count + 1
        if cur == "pending":
            if count >= consecutive:
                new = evolve(
                    base,
                    state="firing",
                    count=count,
                    since=at,
                    fired_at=at,
                    last_breach=at,
                    last_value=value,
                    last_eval=at,
                    samples=samples,
                )
                return moved(new, "firing")
            new = evolve(base, count=count, last_breach=at, last_value=value, last_eval=at, samples=samples)
            return (new, None) if not recovered_from_error else moved(new, "pending")
        if cur in ("firing", "nodata"):
            new = evolve(
                base,
                state="firing",
                count=count,
                prior=None,
                since=at if cur == "nodata" else base.since,
                last_breach=at,
                last_value=value,
                last_eval=at,
                samples=samples,
            )
            if cur == "nodata":
                return moved(new, "firing", "data is back and still breaching")
            return (new, None) if not recovered_from_error else moved(new, "firing")
    if obs == "ok":
        if cur == "pending":
            return moved(None, "inactive", "the value recovered before the rule fired")
        if cur in ("firing", "nodata"):
            return moved(None, "resolved")
    if obs == "nodata":
        if cur == "pending":
            return moved(None, "inactive", "no data broke the streak")
        if cur == "firing":
            new = evolve(base, state="nodata", prior="firing", since=at, last_eval=at, last_value=None, samples=samples)
            return moved(new, "nodata", "the entity returned no data")
        if cur == "nodata":
            if at - base.since >= max(NODATA_CLOSE_MIN, 10 * period):
                return moved(None, "closed", "no data for too long; the entity is probably gone")
            new = evolve(base, last_eval=at, samples=samples)
            return (new, None) if not recovered_from_error else moved(new, "nodata")
    raise ValueError(f"unknown observation {obs!r} in state {cur!r}")


def _transition(state: EntityState, frm: str, to: str, at: float, value: float | None, reason: str = "") -> Transition:
    return Transition(
        policy_id=state.policy_id,
        rule=state.rule,
        entity=state.entity,
        labels=state.labels,
        alert_id=state.alert_id,
        from_state=frm,
        to_state=to,
        at=at,
        value=value,
        state=state,
        reason=reason,
    )
