"""One engine cycle over the state store: the glue used live (scheduler) and by backtests.

run_once():
1. loads the enabled policies (re-parsed only when their generation changes),
2. plans the due rules and their queries (one per distinct key), runs the queries (a few
   concurrently), evaluates them with the pure engine,
3. closes states whose rule disappeared, tracks the hub's own alerts (the metric source
   failing, alerts that reach nobody), runs the notification pipeline,
4. writes everything in ONE transaction, refused if a policy changed meanwhile (then the
   cycle simply runs again on the new policies: the slot is still unevaluated).

The tracked states stay in memory between cycles, as Prometheus keeps its alerts: they are
read from the store once, and again whenever the store may hold something else — the policy
generation changed (an edit closes states itself), the lease's fence changed (this replica
became the leader, or leader again, and the previous leader wrote meanwhile), or a cycle failed
before or at its commit (a refused, fenced-off or crashed write leaves memory and store apart,
so the memory copy is dropped). Only the states whose restart-relevant content changed are
written (:func:`hub.alerts.cycle_stages.must_persist` says what, and why that is enough).

The query runner, the query builder and the clock are injected; this module knows no vendor.
The pure steps between the engine and the store are in :mod:`hub.alerts.cycle_stages` (its
names used elsewhere are re-exported here). Over 400 lines because the memory copy of the
states and the cycle that reads and commits it belong together: split apart, the rules of when
the copy is valid would sit away from the writes that keep it so.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pandas as pd

from hub.alerts import engine
from hub.alerts.cycle_stages import (
    CHECKPOINT_SECONDS,
    META_ENTITY,
    META_POLICY_ID,
    META_RULE,
    META_TENANT,
    Evaluated,
    StateKey,
    close_orphans,
    close_states,
    describe_query,
    health_changes,
    hub_alerts,
    meta_policy,
    must_persist,
    notice_rows,
    prunable,
    silence_from_row,
    state_from_json,
    state_to_json,
    tenants_of,
    track_metric_source,
)
from hub.alerts.engine import CompiledRule, EntityState, Evaluation, FetchKey, QueryBuilder, QueryKey
from hub.alerts.engine_model import PROMQL_CLUSTER_PREFIX, PROMQL_PREFIX, rule_metric
from hub.alerts.notify import clusters, grouping, history, pipeline, reach
from hub.alerts.notify.damping import FlapRecord
from hub.alerts.policy import Policy, Receiver, parse_policy
from hub.store.alerts import AlertStore, CycleWrite, StaleCycle
from hub.timeutil import Clock

__all__ = [
    "META_ENTITY",
    "META_POLICY_ID",
    "META_RULE",
    "META_TENANT",
    "CycleReport",
    "CycleRunner",
    "Fetched",
    "QueryRunner",
    "close_orphans",
    "close_states",
    "describe_query",
    "meta_policy",
    "notice_rows",
    "silence_from_row",
    "state_from_json",
    "state_to_json",
    "track_metric_source",
]

log = logging.getLogger("kubehub.alerts")

# What a fetch yields: a range answer (label columns, "timestamp", "value"), or in replays
# the slot's share of a range already aggregated per slot.
Fetched: TypeAlias = pd.DataFrame | engine.Aggregated
# (promql, start, end, step) -> the fetch
QueryRunner = Callable[[str, float, float, float], Fetched]

QUERY_WORKERS = 4  # Prometheus evaluates queries in parallel; a few at once cut the cycle's wall time


class CycleStopped(Exception):
    """The hub began stopping while a cycle's queries ran: the cycle ends before it writes
    anything, as a cycle killed there would, and the next one (or the next leader) evaluates
    its slots. Why: at scale a cycle's queries take up to their timeout, and waiting for them
    made a stopping hub outlast Kubernetes's grace period."""


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
        group_settings: grouping.GroupSettings | None = None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        implicit_label: str = "",
    ) -> None:
        self.group_settings = group_settings  # grouping across policies; None: one message per policy
        self.store = store
        self.build_query = build_query
        self.run_query = run_query
        self.clock = clock
        self.resolve_user = resolve_user
        self.explain_user = explain_user
        self.track_receivers = track_receivers  # the live engine; replays tell nobody, so they skip it
        # The live engine's clusters the hub lost: name -> stale since (hub.alerts.notify.clusters);
        # None (replays, hubs without the cluster registry): not tracked.
        self.stale_clusters: Callable[[], Mapping[str, float]] | None = None
        self.admin_receivers = admin_receivers
        self.default_language = default_language
        self.quota_per_hour = quota_per_hour
        self.tick_seconds = tick_seconds
        self.query_workers = query_workers
        self.on_query = on_query
        self.stopping: Callable[[], bool] = lambda: False  # the live engine's: is the hub stopping?
        # The implicit cluster's ``cluster`` label on a shared endpoint ('' : none), which its
        # tenants' PromQL rules match (engine_model.compile_rules); a value, not the builder's,
        # so replays and tests with their own builder compile the same keys.
        self.implicit_label = implicit_label
        self._generation: int | None = None
        self._policies: dict[str, Policy] = {}
        self._rules: list[CompiledRule] = []
        self._query_cache: dict[QueryKey, tuple[str, tuple[str, ...]]] = {}
        self._query_pool: ThreadPoolExecutor | None = None
        self.checkpoint_seconds = checkpoint_seconds
        # The tracked states in memory and the copies the store holds (None: read them again),
        # valid for one policy generation under one fence.
        self._tracked: dict[StateKey, EntityState] | None = None
        self._saved: dict[StateKey, EntityState] = {}
        self._tracked_for: tuple[int, Any] | None = None
        self._fence: Any = None  # the last fence the states were read under
        # The flap records, kept and re-read with the states (None: read them at the next cycle).
        self._flaps: dict[StateKey, FlapRecord] | None = None
        # Whether the memory copy of the states was checked for orphans (close_orphans) against
        # the current policies: then only the keys new in a cycle need the check.
        self._orphans_checked = False
        # policies whose tracked states (and alert records) are rewritten at the next commit
        self._versions: dict[str, int] = {}
        self._refresh: set[str] = set()
        self._refresh_all = False

    # -- policies -----------------------------------------------------------------------------
    def policies(self) -> tuple[int, dict[str, Policy], list[CompiledRule]]:
        gen = self.store.generation()
        if gen != self._generation:
            policies: dict[str, Policy] = {}
            rows = self.store.enabled_policy_rows()
            versions = {str(row["id"]): int(row["version"]) for row in rows}
            # An edited policy's carried-over alerts show its new name, threshold and query:
            # their records are rewritten once (all of them at the runner's first load).
            if self._generation is None:
                self._refresh_all = True
            self._refresh |= {pid for pid, v in versions.items() if self._versions.get(pid) != v}
            self._versions = versions
            for row in rows:
                try:
                    policies[row["id"]] = parse_policy(json.loads(row["document"]))
                except Exception:  # stored documents were validated on save; one bad row must not stop the rest
                    log.exception("stored policy %s no longer parses; skipped", row["id"])
            self._policies = policies
            self._rules = engine.compile_rules(policies.items(), implicit_label=self.implicit_label)
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
        # Memoised per (policy, rule) for the cycle: every alert record written asks for it, and
        # a rule may have thousands of alerts (the policies do not change within a cycle).
        known: dict[tuple[str, str], str] = {}

        def text(policy_id: str, rule_name: str) -> str:
            found = known.get((policy_id, rule_name))
            if found is None:
                found = known[(policy_id, rule_name)] = describe(policy_id, rule_name)
            return found

        def describe(policy_id: str, rule_name: str) -> str:
            if policy_id == META_POLICY_ID:
                return "(every alert query of the cycle)"
            if policy_id == reach.REACH_POLICY_ID:
                return "(the receivers of every policy with firing alerts)"
            if policy_id == clusters.STALE_POLICY_ID:
                return "(the watch cache of every cluster: stale_since)"
            policy = policies.get(policy_id)
            rule = policy.rule(rule_name) if policy else None
            if policy is None or rule is None:
                return ""
            metric_key = rule_metric(policy, rule, implicit_label=self.implicit_label)
            if rule.expr is not None and not metric_key.startswith(PROMQL_CLUSTER_PREFIX):
                # the query as sent (a tenant's: scoped to the namespace); an added cluster's
                # project's is built by the runtime like its catalogue queries (below)
                return describe_query(metric_key, rule.aggregation, rule.period)
            try:
                # rule_metric: an added cluster's policy names its own query (its cluster matched)
                metric = str(self._builder(policy.level, metric_key, "last", rule.period)[0])
                if rule.expr is not None:
                    metric = PROMQL_PREFIX + metric
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
            if self.stopping():  # the queries not yet sent are not sent
                return q.key, CycleStopped()
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
        try:
            return self._cycle_tracked(gen, policies, rules, given)
        except StaleCycle:
            # Refused before writing anything: the states' memory copy still matches the store;
            # the flap records were updated in place by the pipeline, so they are read again.
            self._flaps = None
            raise
        except BaseException:
            self.forget_states()  # the store may or may not hold this cycle's states: read them again
            raise

    def forget_states(self) -> None:
        """Drop the in-memory states: the next cycle reads them from the store."""
        self._tracked = None
        self._saved = {}
        self._tracked_for = None
        self._flaps = None
        self._orphans_checked = False

    def _tracked_states(self, gen: int) -> dict[StateKey, EntityState]:
        """The tracked states: the memory copy, or the store's when the memory copy may differ
        from it (another policy generation, another fence, none yet)."""
        fence = self.store.bound_fence()
        if self._tracked is None or self._tracked_for != (gen, fence):
            memory, saved = self._tracked, self._saved
            if fence != self._fence:  # a new term: what the last leader left is rewritten once
                self._refresh_all = True
                self._fence = fence
                memory = None
            stored = {
                (r["policy_id"], r["rule"], r["entity"]): state_from_json(r["data"]) for r in self.store.state_rows()
            }
            # After a policy edit (same term): a state the edit left as this runner wrote it
            # keeps its fresher evidence from memory.
            self._tracked = {
                k: memory[k] if memory is not None and k in memory and saved.get(k) == st else st
                for k, st in stored.items()
            }
            self._saved = stored
            self._tracked_for = (gen, fence)
            self._flaps = None  # whatever changed the states may have changed these too
            self._orphans_checked = False
        return self._tracked

    def _flap_records(self) -> dict[StateKey, FlapRecord]:
        """The flap records: the memory copy, valid exactly as long as the states' (every other
        writer of them — a policy edit or deletion — changes the policy generation), or the
        store's. Why kept: one record per alert that ever fired, and parsing each row's JSON
        every cycle cost as much as the state machine itself."""
        if self._flaps is None:
            self._flaps = {
                (r["policy_id"], r["rule"], r["entity"]): FlapRecord.from_row(r) for r in self.store.flap_rows()
            }
        return self._flaps

    def _cycle_tracked(
        self,
        gen: int,
        policies: dict[str, Policy],
        rules: list[CompiledRule],
        given: Mapping[FetchKey, Fetched | BaseException] | None,
    ) -> CycleReport:
        now = self.clock.now()
        # 1. plan the due rules, run their queries (or take the replay's answers), evaluate
        plan = engine.plan(rules, now=now, last_slots=self.store.slots(), build_query=self._builder)
        results = dict(given) if given is not None else self._run_queries(plan)
        if given is None and self.stopping():
            raise CycleStopped("the hub is stopping: this cycle's slots are evaluated by the next one")
        tracked = self._tracked_states(gen)
        ev = engine.evaluate(plan, results, tracked)
        candidates = ev.states.keys() - tracked.keys() if self._orphans_checked else None
        # 2. close the states whose rule is gone; the hub's own alerts
        own = hub_alerts(
            ev,
            policies,
            results,
            ran_queries=bool(plan.queries),
            now=now,
            period=self.tick_seconds,
            admins=self.admin_receivers(),
            track_receivers=self.track_receivers,
            stale_clusters=self.stale_clusters() if self.stale_clusters is not None else None,
            resolve_user=self.resolve_user,
            explain_user=self.explain_user,
            orphan_candidates=candidates,
        )
        # 3. the notification pipeline: notices, messages, flap records
        query_text = self.query_text(policies)
        flaps = self._flap_records()
        out = self._notify(own, flaps, query_text, now)
        # 4. everything in one transaction, refused if a policy changed meanwhile
        w, saved = self._write(plan, ev, own, out, flaps, query_text, now)
        self.store.commit_cycle(w, now=now, generation=gen)
        self._tracked, self._saved = dict(out.states), saved
        self._orphans_checked = True
        for key in w.delete_flaps:  # the memory copy of the flap records, as now stored
            flaps.pop(key, None)
        for row in w.upsert_flaps:
            flaps[(row[0], row[1], row[2])].dirty = False
        self._refresh, self._refresh_all = set(), False
        for p in out.problems:
            log.warning("alerting: %s", p)
        return CycleReport(
            now=now,
            due_rules=len(plan.due),
            queries=len(plan.queries),
            query_errors=len(own.failed),
            transitions=len(own.transitions),
            notices=len(out.notices),
            messages=len(out.messages),
            missed=dict(plan.missed),
            problems=out.problems,
            errors=[f"{k.level}/{k.metric}/{k.period:g}s: {results[k]}" for k in own.failed],
        )

    def _notify(
        self, own: Evaluated, flaps: dict[StateKey, FlapRecord], query_text: Callable[[str, str], str], now: float
    ) -> pipeline.PipelineOutput:
        """The pipeline over this cycle's transitions, with the active silences and the
        notification log and quota counts read from the store."""
        silences = [
            silence_from_row(r) for r in self.store.silences(namespaces=None, include_cluster=True, active_at=now)
        ]
        return pipeline.process(
            pipeline.PipelineInput(
                now=now,
                transitions=own.transitions,
                states=own.states,
                policies=own.policies,
                tenants=tenants_of(own.policies),
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
                group_settings=self.group_settings,
                groups=self._groups() if self.group_settings is not None else {},
            )
        )

    def _groups(self) -> dict[grouping.GroupKey, grouping.GroupState]:
        return {
            (r["recipient"], r["group_id"]): grouping.GroupState(
                recipient=r["recipient"],
                group_id=r["group_id"],
                tenant=r["tenant"],
                labels=json.loads(r["labels"]),
                flush_at=float(r["flush_at"]),
            )
            for r in self.store.group_rows()
        }

    def _write(
        self,
        plan: engine.Plan,
        ev: Evaluation,
        own: Evaluated,
        out: pipeline.PipelineOutput,
        flaps: Mapping[StateKey, FlapRecord],
        query_text: Callable[[str, str], str],
        now: float,
    ) -> tuple[CycleWrite, dict[StateKey, EntityState]]:
        """What the cycle changes: the states to persist (:func:`must_persist`) with their alert
        records, the history events of the transitions, the notices and messages, the flap
        records, rule health; and what the store holds of the states once it is committed."""
        states = out.states
        saved = self._saved
        refresh, everything = self._refresh, self._refresh_all
        changed = {
            k: s
            for k, s in states.items()
            if everything or k[0] in refresh or must_persist(s, saved.get(k), checkpoint=self.checkpoint_seconds)
        }
        gone = {k for k in own.ended if k not in states} | {k for k in saved if k not in states}
        after = {k: s for k, s in saved.items() if k in states}
        after.update(changed)
        alert_rows, alert_deletes, events = history.records(
            transitions=own.transitions, changed=changed, policies=own.policies, query_text=query_text, now=now
        )
        prune = set(prunable(flaps, own.policies, now))
        write = CycleWrite(
            slots=dict(plan.slots),
            upsert_states=[(k[0], k[1], k[2], s.alert_id, s.state, state_to_json(s)) for k, s in changed.items()],
            delete_states=sorted(gone),
            upsert_alerts=alert_rows,
            delete_alerts=alert_deletes,
            events=events + out.events,
            notices=notice_rows(out.notices),
            messages=[m.to_row() for m in out.messages],
            upsert_flaps=[rec.to_row(k) for k, rec in flaps.items() if rec.dirty and k not in prune],
            delete_flaps=sorted(prune),
            health=health_changes(ev.health, {r["rule_id"] for r in self.store.health_rows()}, now=now),
            upsert_groups=[
                (g.recipient, g.group_id, g.tenant, json.dumps(dict(g.labels), sort_keys=True), g.flush_at)
                for g in out.groups.values()
            ],
            delete_groups=list(out.expired_groups),
        )
        return write, after
