"""One engine cycle over the state store: the glue used live (scheduler) and by backtests.

run_once():
1. loads the enabled policies (re-parsed only when their generation changes),
2. plans the due rules and their queries (one per distinct key), runs the queries (a few
   concurrently), evaluates them with the pure engine,
3. closes states whose rule disappeared, tracks the hub's own meta-alert (the metric source
   failing), runs the notification pipeline,
4. writes everything in ONE transaction, refused if a policy changed meanwhile (then the
   cycle simply runs again on the new policies: the slot is still unevaluated).

The query runner, the query builder and the clock are injected; this module knows no vendor.

Over 400 lines because the cycle is one transaction's worth of steps (due rules, queries,
evaluation, closing, the meta-alert, notices) that share the cycle's snapshot of the state.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeAlias

import pandas as pd

from hub.alerts import engine
from hub.alerts.engine import CompiledRule, EntityState, FetchKey, QueryBuilder, QueryKey, Transition, step_for
from hub.alerts.notify import history, pipeline, reach
from hub.alerts.notify.damping import FlapRecord
from hub.alerts.notify.silence import Silence
from hub.alerts.policy import Policy, Receiver, parse_policy
from hub.alerts.policy_model import hub_policy
from hub.store.alerts import AlertStore, CycleWrite, StaleCycle
from hub.timeutil import Clock

log = logging.getLogger("kubehub.alerts")

# What a fetch yields: a range answer (label columns, "timestamp", "value"), or in replays
# the slot's share of a range already aggregated per slot.
Fetched: TypeAlias = pd.DataFrame | engine.Aggregated
# (promql, start, end, step) -> the fetch
QueryRunner = Callable[[str, float, float, float], Fetched]

META_POLICY_ID = "__meta__"
META_RULE = "metric-source-down"
META_ENTITY = "prometheus"
META_TENANT = "__hub__"
QUERY_WORKERS = 4  # Prometheus evaluates queries in parallel; a few at once cut the cycle's wall time


def describe_query(metric_promql: str, aggregation: str, period: float) -> str:
    """What a rule's value is, in words a person can check against Prometheus: the metric's
    points every ``step`` inside each period, aggregated."""
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


def state_to_json(st: EntityState) -> str:
    # Field by field rather than dataclasses.asdict: asdict deep-copies every sample tuple,
    # which made it the largest cost of a replayed cycle. The JSON is the same.
    d = {name: getattr(st, name) for name in _STATE_FIELDS}
    d["labels"] = dict(st.labels)
    return json.dumps(d, separators=(",", ":"))


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
class CycleReport:
    now: float
    due_rules: int = 0
    queries: int = 0
    query_errors: int = 0
    transitions: int = 0
    notices: int = 0
    messages: int = 0
    missed: dict[float, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    retries: int = 0
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per failed query


class CycleRunner:
    def __init__(
        self,
        *,
        store: AlertStore,
        build_query: QueryBuilder,
        run_query: QueryRunner,
        clock: Clock,
        resolve_user: Callable[[str, str | None], str | None] = lambda name, namespace: None,
        admin_receivers: Callable[[], Sequence[Receiver]] = lambda: (),
        default_language: str = "en",
        explain_user: Callable[[str, str | None], str] | None = None,
        track_receivers: bool = False,
        quota_per_hour: int = 0,
        tick_seconds: float = 15.0,
        query_workers: int = QUERY_WORKERS,
        on_query: Callable[[FetchKey, float, BaseException | None], None] | None = None,
    ) -> None:
        self.store = store
        self.build_query = build_query
        self.run_query = run_query
        self.clock = clock
        self.resolve_user = resolve_user
        self.explain_user = explain_user
        self.track_receivers = track_receivers  # the live engine; replays tell nobody, so they skip it
        self.admin_receivers = admin_receivers
        self.default_language = default_language
        self.quota_per_hour = quota_per_hour
        self.tick_seconds = tick_seconds
        self.query_workers = query_workers
        self.on_query = on_query
        self._generation: int | None = None
        self._policies: dict[str, Policy] = {}
        self._rules: list[CompiledRule] = []
        self._query_cache: dict[QueryKey, tuple[str, tuple[str, ...]]] = {}
        self._query_pool: ThreadPoolExecutor | None = None

    # -- policies -----------------------------------------------------------------------------
    def policies(self) -> tuple[int, dict[str, Policy], list[CompiledRule]]:
        gen = self.store.generation()
        if gen != self._generation:
            policies: dict[str, Policy] = {}
            for row in self.store.enabled_policy_rows():
                try:
                    policies[row["id"]] = parse_policy(json.loads(row["document"]))
                except Exception:  # stored documents were validated on save; one bad row must not stop the rest
                    log.exception("stored policy %s no longer parses; skipped", row["id"])
            self._policies = policies
            self._rules = engine.compile_rules(policies.items())
            self._generation = gen
        return gen, self._policies, self._rules

    def _builder(
        self, level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None
    ) -> Any:
        key = QueryKey(level, metric, aggregation, period_seconds)
        found = self._query_cache.get(key)
        if found is None:
            promql, labels = self.build_query(level, metric, aggregation, period_seconds)
            found = (promql, tuple(labels))
            self._query_cache[key] = found
        return found

    def query_text(self, policies: Mapping[str, Policy]) -> Callable[[str, str], str]:
        def text(policy_id: str, rule_name: str) -> str:
            if policy_id == META_POLICY_ID:
                return "(every alert query of the cycle)"
            if policy_id == reach.REACH_POLICY_ID:
                return "(the receivers of every policy with firing alerts)"
            policy = policies.get(policy_id)
            rule = policy.rule(rule_name) if policy else None
            if policy is None or rule is None:
                return ""
            try:
                metric = str(self._builder(policy.level, rule.metric, "last", rule.period)[0])
            except Exception as exc:  # an unknown metric after a catalogue change: say so in the notice
                return f"(no query: {exc})"
            return describe_query(metric, rule.aggregation, rule.period)

        return text

    # -- the cycle ----------------------------------------------------------------------------
    def run_once(self, *, results: Mapping[FetchKey, Fetched | BaseException] | None = None) -> CycleReport:
        """Run one cycle at the clock's time. ``results`` short-circuits the queries (replays)."""
        started = time.perf_counter()
        retries = 0
        while True:
            gen, policies, rules = self.policies()
            try:
                report = self._cycle(gen, policies, rules, results)
                break
            except StaleCycle:
                retries += 1
                if retries > 5:
                    raise
                log.info("a policy changed during the cycle; evaluating again on the new policies")
        report.retries = retries
        report.wall_seconds = time.perf_counter() - started
        return report

    def _run_queries(self, plan: engine.Plan) -> dict[FetchKey, Fetched | BaseException]:
        def one(q: engine.PlannedQuery) -> tuple[FetchKey, Fetched | BaseException]:
            t0 = time.perf_counter()
            try:
                frame: Fetched | BaseException = self.run_query(q.promql, q.start, q.at, q.step)
                err = None
            except Exception as exc:  # recorded per query: its rules go to the error state
                frame, err = exc, exc
            if self.on_query is not None:
                self.on_query(q.key, time.perf_counter() - t0, err)
            return q.key, frame

        if len(plan.queries) <= 1 or self.query_workers <= 1:
            return dict(one(q) for q in plan.queries)
        return dict(self._pool().map(one, plan.queries))

    def _pool(self) -> ThreadPoolExecutor:
        """The runner's query threads, kept for its lifetime. Why not a pool per cycle: the
        Prometheus adapter keeps one HTTP connection per thread, so new threads every cycle
        opened new connections every cycle; cycles in quick succession (a catch-up, a replay)
        then filled Prometheus's connection limit and the next queries hung."""
        if self._query_pool is None:
            self._query_pool = ThreadPoolExecutor(max_workers=self.query_workers, thread_name_prefix="alert-query")
            weakref.finalize(self, self._query_pool.shutdown, wait=False)
        return self._query_pool

    def _cycle(
        self,
        gen: int,
        policies: dict[str, Policy],
        rules: list[CompiledRule],
        given: Mapping[FetchKey, Fetched | BaseException] | None,
    ) -> CycleReport:
        now = self.clock.now()
        plan = engine.plan(rules, now=now, last_slots=self.store.slots(), build_query=self._builder)
        results = dict(given) if given is not None else self._run_queries(plan)
        tracked = {
            (r["policy_id"], r["rule"], r["entity"]): state_from_json(r["data"]) for r in self.store.state_rows()
        }
        ev = engine.evaluate(plan, results, tracked)
        states = ev.states
        transitions = list(ev.transitions)
        ended = list(ev.ended)

        # States whose policy or rule is gone (not through an edit, which closes them itself).
        close_orphans(states, policies, now=now, transitions=transitions, ended=ended)

        # The hub's own alert: any failing query this cycle.
        all_policies = dict(policies)
        meta = meta_policy(self.admin_receivers(), self.tick_seconds)
        all_policies[META_POLICY_ID] = meta
        failed = [k for k, r in results.items() if isinstance(r, BaseException)]
        if plan.queries:
            track_metric_source(
                states, failed, results, now=now, period=self.tick_seconds, transitions=transitions, ended=ended
            )

        # The hub's own alert: firing alerts that reach nobody (hub/alerts/notify/reach.py).
        if self.track_receivers:
            admins = meta.notification.receivers
            all_policies[reach.REACH_POLICY_ID] = reach.reach_policy(admins, self.tick_seconds)
            reach_tr, reach_ended = reach.track(
                states,
                policies,
                now=now,
                period=self.tick_seconds,
                resolve_user=self.resolve_user,
                explain_user=self.explain_user,
            )
            transitions += reach_tr
            ended += reach_ended

        tenants = {pid: (p.namespace or "cluster") for pid, p in all_policies.items()}
        tenants[META_POLICY_ID] = META_TENANT
        tenants[reach.REACH_POLICY_ID] = META_TENANT
        silences = [
            silence_from_row(r) for r in self.store.silences(namespaces=None, include_cluster=True, active_at=now)
        ]
        flaps = {(r["policy_id"], r["rule"], r["entity"]): FlapRecord.from_row(r) for r in self.store.flap_rows()}
        query_text = self.query_text(policies)
        out = pipeline.process(
            pipeline.PipelineInput(
                now=now,
                transitions=transitions,
                states=states,
                policies=all_policies,
                tenants=tenants,
                silences=silences,
                flaps=flaps,
                query_text=query_text,
                existing_keys=self.store.existing_notice_keys,
                count_since=self.store.tenant_messages_since,
                resolve_user=self.resolve_user,
                explain_user=self.explain_user,
                default_language=self.default_language,
                quota_per_hour=self.quota_per_hour,
                quota_exempt=(META_TENANT,),
            )
        )
        states = out.states
        changed = {k: s for k, s in states.items() if s is not tracked.get(k)}
        alert_rows, alert_deletes, events = history.records(
            transitions=transitions, changed=changed, policies=all_policies, query_text=query_text, now=now
        )

        w = CycleWrite(slots=dict(plan.slots))
        w.upsert_states = [(k[0], k[1], k[2], s.alert_id, s.state, state_to_json(s)) for k, s in changed.items()]
        w.delete_states = [k for k in ended if k not in states]
        w.upsert_alerts = alert_rows
        w.delete_alerts = alert_deletes
        w.events = events + out.events
        w.notices = notice_rows(out.notices)
        w.messages = [m.to_row() for m in out.messages]
        prune = set(_prunable(flaps, all_policies, now))
        w.upsert_flaps = [rec.to_row(k) for k, rec in flaps.items() if rec.dirty and k not in prune]
        w.delete_flaps = sorted(prune)
        w.health = health_changes(ev.health, {r["rule_id"] for r in self.store.health_rows()}, now=now)
        self.store.commit_cycle(w, now=now, generation=gen)
        if out.problems:
            for p in out.problems:
                log.warning("alerting: %s", p)
        return CycleReport(
            now=now,
            due_rules=len(plan.due),
            queries=len(plan.queries),
            query_errors=len(failed),
            transitions=len(transitions),
            notices=len(out.notices),
            messages=len(out.messages),
            missed=dict(plan.missed),
            problems=out.problems,
            errors=[f"{k.level}/{k.metric}/{k.period:g}s: {results[k]}" for k in failed],
        )


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
) -> None:
    """Close the tracked states whose policy or rule no longer exists (a policy edit closes its
    own; this catches the rest), in place: removed from ``states``, a transition each."""
    for key, st in list(states.items()):
        if key[0] in (META_POLICY_ID, reach.REACH_POLICY_ID):
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


def _prunable(flaps: Mapping[tuple[str, str, str], FlapRecord], policies: Mapping[str, Policy], now: float) -> list:
    from hub.alerts.notify import damping

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
