"""Builds the alerting area: the policy/alert service, the rule engine's scheduler and the
outbox dispatcher, and joins them to the other areas by callables.

- ``hub.alerting``: :class:`hub.alerts.service.AlertService` (API and console).
- ``hub.backtest_jobs``: :class:`hub.alerts.jobs.BacktestJobs`, the console's
  backtests running in the background with progress.
- ``hub.alert_engine``: :class:`AlertEngine`, the background part: APScheduler
  (3.x) runs one engine cycle per ``alerts.tick_seconds`` (each evaluates the rules whose
  period slot closed) and an outbox delivery round per ``alerts.delivery_seconds``. Missed
  cycles (the process was busy or asleep) are counted and logged, and the engine itself
  reports how many period slots a rule skipped.

What crosses from other areas, and how: the monitoring catalogue's metric names (policy
validation) and ``alert_query`` (one PromQL per distinct key), the Prometheus adapter's instant
and range queries (returning frames), the tenancy service's users (receiver validation and
email addresses), platform admins (the hub's own meta-alert) and audit log, and the log store
(evidence lines in alert emails, ``hub/runtime/evidence.py``).

Over 400 lines because it is the alerting area's wiring: the engine's scheduler and the
callables that join it to the other areas are built together from one ``Hub``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from hub.alerts.cycle import CycleReport, CycleRunner, CycleStopped
from hub.alerts.engine import FetchKey
from hub.alerts.engine_model import CLUSTER_MARK, PROMQL_CLUSTER_PREFIX
from hub.alerts.jobs import BacktestJobs
from hub.alerts.notify.email import SmtpNotifier
from hub.alerts.notify.grouping import GroupSettings, parse_group_by
from hub.alerts.notify.http_send import HttpNotifier
from hub.alerts.notify.outbox import Dispatcher
from hub.alerts.notify.render import Renderer
from hub.alerts.notify.repost import AlertmanagerRepost
from hub.alerts.policy import PolicyInvalid, Receiver, parse_policy
from hub.alerts.promql_scope import scope_expression
from hub.alerts.service import AlertService
from hub.collectors.catalogue import default_catalogue
from hub.errors import ConfigError, InvalidInput
from hub.runtime.alert_schedule import cycle_trigger, delivery_wake
from hub.runtime.evidence import evidence_lines
from hub.scope import KEY_SEPARATOR, split_key
from hub.store.alerts import AlertStore
from hub.store.leases import Fence, FencedStore, FencingLost
from hub.timeutil import Clock

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.settings import AlertSettings

log = logging.getLogger("kubehub.alerts")


def _builtin_rules_dir() -> Path:
    """rules/ of a source checkout, else the copy a wheel installs as data files under
    ``<prefix>/share/kubehub/rules`` (pyproject.toml): the image has no source tree."""
    checkout = Path(__file__).resolve().parents[2] / "rules"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "kubehub" / "rules"


RULES_DIR = _builtin_rules_dir()
STUCK_CYCLES = 5


def group_settings(alerts: AlertSettings) -> GroupSettings | None:
    """Grouping across policies from the settings (None when ``alerts.group`` is off); a bad
    ``alerts.group_by`` stops the start with the reason."""
    if not alerts.group:
        return None
    try:
        by = parse_group_by(alerts.group_by)
    except ValueError as exc:
        raise ConfigError("KUBEHUB_ALERTS_GROUP_BY", str(exc)) from exc
    return GroupSettings(wait=alerts.group_wait_seconds, interval=alerts.group_interval_seconds, group_by=by)


def alertmanager_hold(tick_seconds: float) -> float:
    """How far ahead a firing alert's ``endsAt`` goes in Alertmanager: four cycles, at least
    three minutes (Alertmanager's own client convention is a few evaluation intervals), so a
    hub that stops re-posting (stopped, lost its lease) lets Alertmanager resolve it soon."""
    return max(180.0, 4 * tick_seconds)  # /readyz complains when no cycle completed for this many ticks


class AlertEngine:
    """The background half of alerting: scheduled cycles and deliveries."""

    def __init__(
        self,
        *,
        runner: CycleRunner | None,
        dispatcher: Dispatcher | None,
        store: AlertStore,
        metrics: Any,
        tick_seconds: float,
        delivery_seconds: float,
        clock: Clock,
        fenced: FencedStore | None = None,
        fence: Callable[[], Fence | None] | None = None,
        repost: AlertmanagerRepost | None = None,
    ) -> None:
        self.repost = repost
        self.fenced = fenced  # the runner's and dispatcher's store, when a lease guards them
        self.fence = fence
        self.runner = runner
        self.clock = clock  # readiness ages (last cycle, start) on the hub's clock, as the cycles
        self.dispatcher = dispatcher
        self.store = store
        self.metrics = metrics
        self.tick_seconds = tick_seconds
        self.delivery_seconds = delivery_seconds
        self.scheduler: BackgroundScheduler | None = None
        self.last_report: CycleReport | None = None
        self.last_ok: float | None = None
        self.started_at: float | None = None
        self.missed_cycles = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # set by stop(): a cycle under way ends before it writes
        if runner is not None:
            runner.stopping = self._stopping.is_set

    @contextmanager
    def _acting(self) -> Iterator[bool]:
        """One unit of work under the fence it began with (True), or skipped (False) when this
        replica does not hold the lease. Without a lease (a test's engine) it always runs."""
        if self.fenced is None or self.fence is None:
            yield True
            return
        fence = self.fence()
        if fence is None:
            yield False
            return
        with self.fenced.acting(fence):
            yield True

    def cycle(self) -> CycleReport | None:
        if self.runner is None:
            return None
        with self._lock, self._acting() as leading:
            if not leading:
                return None
            started = time.perf_counter()
            log.debug("alert cycle started")
            try:
                report = self.runner.run_once()
            except FencingLost as exc:
                self.metrics.alert_cycles.labels("fenced").inc()
                log.warning("alert cycle not committed: %s", exc)
                return None
            except CycleStopped as exc:
                log.info("alert cycle not committed: %s", exc)
                return None
            except Exception:
                self.metrics.alert_cycles.labels("failed").inc()
                log.exception("alert cycle failed")
                return None
            self.metrics.alert_cycles.labels("error" if report.query_errors else "ok").inc()
            for error in report.errors:
                log.warning("alert query failed (its rules are in the error state): %s", error)
            self.metrics.alert_cycle_seconds.observe(time.perf_counter() - started)
            for period, missed in report.missed.items():
                log.warning(
                    "alert rules with a %gs period skipped %d slot(s) (the hub was stopped or busy)", period, missed
                )
            self.last_report = report
            self.last_ok = self.clock.now()
            if report.messages:
                self._wake_delivery()
            if self.repost is not None:
                try:  # Alertmanager wants firing alerts re-posted each cycle (notify/repost.py)
                    self.repost.run()
                except FencingLost as exc:
                    log.warning("Alertmanager re-post stopped: %s", exc)
                except Exception:
                    log.exception("Alertmanager re-post failed")
            log.debug(
                "alert cycle committed: %d rules due, %d queries, %d notices in %.3fs",
                report.due_rules,
                report.queries,
                report.notices,
                report.wall_seconds,
            )
            return report

    def _wake_delivery(self) -> None:
        """A delivery round at the outbox's next due time, when the regular round would come
        later (:func:`delivery_wake`)."""
        sched = self.scheduler
        if sched is None or self.dispatcher is None:
            return
        try:
            regular = sched.get_job("alert-delivery")
            regular_next = regular.next_run_time.timestamp() if regular and regular.next_run_time else None
            at = delivery_wake(
                self.store.next_due_time(), hub_now=self.clock.now(), wall_now=time.time(), regular_next=regular_next
            )
            if at is not None and regular is not None:
                # the regular round moves earlier (and keeps its interval from there): no
                # one-off job that shutdown could race with
                sched.modify_job("alert-delivery", next_run_time=datetime.fromtimestamp(at, UTC))
        except Exception:  # the regular rounds still deliver
            log.exception("could not schedule the next delivery round")

    def deliver(self) -> None:
        if self.dispatcher is None:
            return
        with self._acting() as leading:
            if not leading:
                return
            try:
                r = self.dispatcher.deliver_all_due()
            except FencingLost as exc:
                log.warning("outbox delivery round stopped: %s", exc)
                return
            except Exception:
                log.exception("outbox delivery round failed")
                return
        if r.sent:
            self.metrics.notices.labels("sent").inc(r.sent)
        if r.retried:
            self.metrics.notices.labels("retry").inc(r.retried)
        if r.failed:
            self.metrics.notices.labels("failed").inc(r.failed)
        self.metrics.outbox_depth.set(self.store.outbox_depth())

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code in (EVENT_JOB_MISSED, EVENT_JOB_MAX_INSTANCES) and event.job_id == "alert-cycle":
            self.missed_cycles += 1
            self.metrics.alert_cycles.labels("missed").inc()
            log.warning("an alert cycle was missed (the previous one still ran, or the process was paused)")
        elif event.code == EVENT_JOB_ERROR:
            log.error("alerting job %s failed: %s", event.job_id, event.exception)

    def start(self) -> None:
        if self.scheduler is not None or (self.runner is None and self.dispatcher is None):
            return  # a web-only process, or nothing to evaluate or deliver
        if self.dispatcher is not None:
            with self._acting() as leading:
                if leading:
                    self.dispatcher.recover()
        self.started_at = self.clock.now()
        sched = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        if self.runner is not None:
            sched.add_job(
                self.cycle,
                cycle_trigger(self.tick_seconds),
                id="alert-cycle",
                misfire_grace_time=max(1, int(self.tick_seconds / 2)),
                # the first cycle right away, not at the next tick (a new leader's at once); the
                # ticks after it are on the grid (cycle_trigger)
                next_run_time=_soon(0.0 if self.fenced is not None else 1.0),
            )
        if self.dispatcher is not None:
            sched.add_job(
                self.deliver,
                "interval",
                seconds=self.delivery_seconds,
                id="alert-delivery",
                misfire_grace_time=max(1, int(self.delivery_seconds)),
            )
        sched.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR)
        sched.start()
        self.scheduler = sched

    def stop(self) -> None:
        if self.scheduler is not None:
            self._stopping.set()  # the cycle under way (if any) ends after its queries in flight
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
            self.started_at = None
            self._stopping.clear()  # a leader again later starts afresh

    def probe(self) -> str:
        if self.runner is None:
            return "rule engine off (no Prometheus configured or alerts.evaluate is false)"
        if self.fenced is not None and self.scheduler is None:
            return "another replica leads: the rule engine runs there"
        now = self.clock.now()
        if self.scheduler is not None and self.started_at is not None:
            since = self.last_ok or self.started_at
            if now - since > STUCK_CYCLES * self.tick_seconds + 30:
                raise RuntimeError(f"no alert cycle completed for {now - since:.0f}s")
        r = self.last_report
        if r is None:
            return "waiting for the first cycle"
        return (
            f"last cycle: {r.due_rules} rules due, {r.queries} queries, {r.query_errors} failed, {r.wall_seconds:.2f}s"
        )


def _soon(seconds: float = 1.0) -> Any:
    """APScheduler's first run time. The scheduler runs on the machine's wall clock (it sleeps
    in real time), so this one read is the scheduler's, not the hub's injected clock: a test
    clock in the past would make the first cycle a misfire."""
    from datetime import UTC, datetime

    return datetime.now(UTC) + timedelta(seconds=seconds)


def _metric_table() -> Mapping[str, Any]:
    catalogue = default_catalogue()
    return {level: catalogue.units(level) for level in ("nodes", "workloads")}


def stale_clusters(hub: Hub) -> dict[str, float]:
    """Every cluster whose watch cache lost its API server, with since when: the implicit one's
    and each added one's (the stale-cluster meta-alert, hub.alerts.notify.clusters)."""
    out: dict[str, float] = {}
    if hub.cluster is not None and (since := hub.cluster.cache.stale_since()):
        out[hub.clusters.implicit.name] = since
    for name, service in list(hub.added_clusters.items()):
        if since := service.cache.stale_since():
            out[name] = since
    return out


class _Receivers(Collection[str]):
    """The users who may receive a policy's notices, asked one name at a time.

    A save names a few receivers; listing every user who may receive them first resolved each
    user's principal (six queries), which made one policy save cost O(users): 70 ms at 1,000 users
    on SQLite, over a second on PostgreSQL (the sandbox's scale tenancy, docs/sandbox.md).
    """

    def __init__(self, tenancy: Any, namespace: str | None) -> None:
        self._tenancy = tenancy
        self._namespace = namespace

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        user = self._tenancy.user(name)
        return user is not None and not user.disabled and bool(self._tenancy.may_receive(name, self._namespace))

    def __iter__(self) -> Iterator[str]:
        return iter([u.name for u in self._tenancy.users() if u.name in self])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def build(hub: Hub) -> None:
    settings = hub.settings
    store = AlertStore(hub.db)
    catalogue = default_catalogue()
    t = hub.tenancy

    def users(namespace: str | None) -> Collection[str]:
        """Users who may receive a policy's notices: anyone for node policies (admins write
        those), the users who may read alerts in the project for workload policies."""
        return _Receivers(t, namespace)

    def resolve_user(name: str, namespace: str | None) -> str | None:
        """A receiver user's address at send time; None once they may not see the project's
        alerts any more (removed from it after the policy was written)."""
        if namespace is not None and not t.may_receive(name, namespace):
            return None
        return t.user_email(name)

    def explain_user(name: str, namespace: str | None) -> str:
        """Why ``resolve_user`` found no address for a user, in words for the alert's history
        and the policy editor's warning ("api-operator has no email address")."""
        user = t.user(name)
        if user is None:
            return "is not a user of the hub any more"
        if user.disabled:
            return "is disabled"
        if namespace is not None and not t.may_receive(name, namespace):
            return f"may no longer see the alerts of project {namespace}"
        if not user.email:
            return "has no email address"
        return ""

    def audit(actor: str, action: str, target: str, result: str, detail: Mapping[str, Any]) -> None:
        t.audit(actor, action, target, result, detail)

    def admin_receivers() -> Sequence[Receiver]:
        out = [Receiver(email=a.strip()) for a in settings.alerts.admin_emails.split(",") if a.strip()]
        for u in t.users():
            if u.platform_role == "admin" and u.email and not u.disabled:
                out.append(Receiver(email=u.email))
        return out

    prom = hub.prometheus
    own_label = hub.settings.clusters.default_metrics_label

    def build_query(
        level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None
    ) -> Any:
        if metric.startswith(PROMQL_CLUSTER_PREFIX):  # a PromQL rule of an added cluster's project
            return cluster_promql(metric[len(PROMQL_CLUSTER_PREFIX) :])
        metric, _, cluster = metric.partition(CLUSTER_MARK)
        if cluster:  # a policy of an added cluster (engine_model.rule_metric)
            return cluster_query(level, metric, aggregation, period_seconds, cluster)
        # The implicit cluster's series only, when its Prometheus also holds other clusters'
        # (clusters.default_metrics_label; docs/multi-cluster.md).
        return catalogue.alert_query(level, metric, aggregation, period_seconds, namespace, cluster_label=own_label)

    def cluster_query(level: str, metric: str, aggregation: str, period: float, cluster: str) -> Any:
        """An added cluster's batched query: on a shared endpoint with the cluster's label
        matched by every selector (the owner/workload join included), or on the cluster's own
        Prometheus (``routes``: ``range_query`` sends it there), every row labelled ``cluster``.
        Node rows: ``cluster`` is an entity label, so the alerts are ``<cluster>/<node>``.
        Workload rows: ``namespace`` becomes the project key ``<cluster>/<ns>``, the only
        namespace the engine matches a workload policy of that project against (``rows_for``),
        so a same-named namespace of another cluster never contributes. A cluster without
        metrics (``metrics.mode none``) is the rule's query error."""
        # The cluster's metrics source, as monitoring reads it (NotFound for a cluster removed
        # since): its backend (this endpoint's client, or its own Prometheus's) and the value
        # of its cluster label on a shared endpoint ('' for its own Prometheus).
        backend, label = cluster_source(cluster)
        promql, labels = catalogue.alert_query(level, metric, aggregation, period, cluster_label=label)
        promql = f'label_replace({promql}, "cluster", {json.dumps(cluster)}, "", "")'
        if "namespace" in labels:
            key = json.dumps(f"{cluster}{KEY_SEPARATOR}$1")  # hub.scope.project_key's form
            promql = f'label_replace({promql}, "namespace", {key}, "namespace", "(.+)")'
        else:
            labels = ["cluster", *labels]
        if backend is not prom:  # its own Prometheus: the fetch of this query goes there
            routes[promql] = backend
        return promql, labels

    def cluster_source(cluster: str) -> tuple[Any, str]:
        """The cluster's metrics source, as monitoring reads it (NotFound for a cluster removed
        since): its backend (this endpoint's client, or its own Prometheus's) and the value of
        its cluster label on a shared endpoint ('' for its own Prometheus)."""
        sources = hub.monitoring.sources  # the monitoring area is built before this one
        backend, label = sources(cluster) if sources is not None else (None, "")
        if backend is None:
            raise InvalidInput(f"cluster {cluster} has no metrics source (metrics.mode none)", field="cluster")
        return backend, label

    def cluster_promql(key_expr: str) -> Any:
        """A tenant's PromQL rule of a project ``<cluster>/<ns>`` (``<project>:<expr>``, from
        engine_model.rule_metric): every selector scoped to the namespace and, on a shared
        endpoint, to the cluster's label (promql_scope; a rule matching ``cluster`` itself is
        refused), or sent to the cluster's own Prometheus; ``namespace`` rewritten to the
        project key as for its catalogue rules, so the rows carry it and only they match."""
        project, _, expr = key_expr.partition(":")
        cluster, namespace = split_key(project)
        backend, label = cluster_source(cluster)
        promql = scope_expression(expr, namespace, cluster_label=label)
        key = json.dumps(f"{cluster}{KEY_SEPARATOR}$1")  # hub.scope.project_key's form
        promql = f'label_replace({promql}, "namespace", {key}, "namespace", "(.+)")'
        if backend is not prom:
            routes[promql] = backend
        return promql, ("*",)

    # An added cluster's query text (unique: it names the cluster) -> its own Prometheus; every
    # other query runs on prometheus.url. The engine fetches by query text, so this is the only
    # place that needs to know a fetch's endpoint.
    routes: dict[str, Any] = {}

    def range_query(promql: str, start: float, end: float, step: float) -> pd.DataFrame:
        backend = routes.get(promql, prom)
        assert backend is not None
        return backend.range(promql, start=start, end=end, step=step)

    service = AlertService(
        store,
        clock=hub.clock,
        build_query=build_query,
        range_query=range_query if prom is not None else None,
        metrics=_metric_table,
        users=users,
        resolve_user=resolve_user,
        explain_user=explain_user,
        audit=audit,
        templates_dir=RULES_DIR,
        default_language=settings.alerts.language,
        quota_per_hour=settings.alerts.quota_per_hour,
        implicit_label=own_label,
    )
    hub.alerting = service
    hub.backtest_jobs = BacktestJobs(hub.db, clock=hub.clock)

    runner = None
    dispatcher = None
    repost: AlertmanagerRepost | None = None
    # The background half writes through the lease's fence (hub/runtime/leadership.py).
    fenced = FencedStore(hub.db)
    engine_store = AlertStore(fenced)

    def may_send() -> bool:
        fence = fenced.bound()
        return fence is not None and hub.leadership.may_act(fence)

    if settings.alerts.evaluate:
        if prom is not None:

            def on_query(key: FetchKey, seconds: float, error: BaseException | None) -> None:
                hub.metrics.alert_queries.inc()

            runner = CycleRunner(
                store=engine_store,
                build_query=build_query,
                run_query=range_query,
                clock=hub.clock,
                resolve_user=resolve_user,
                explain_user=explain_user,
                track_receivers=True,
                admin_receivers=admin_receivers,
                default_language=settings.alerts.language,
                quota_per_hour=settings.alerts.quota_per_hour,
                tick_seconds=settings.alerts.tick_seconds,
                on_query=on_query,
                group_settings=group_settings(settings.alerts),
                # the implicit cluster's tenants' PromQL rules match its label, as its catalogue
                # queries do (build_query above); '' : unchanged single-cluster queries
                implicit_label=own_label,
            )
            runner.stale_clusters = lambda: stale_clusters(hub)
        # Always: webhook and Alertmanager receivers need no SMTP server (without one, email
        # messages wait in the outbox as "no SMTP server is configured", retried with back-off).
        http = HttpNotifier()
        hold = alertmanager_hold(settings.alerts.tick_seconds)

        def receiver(policy_id: str, recipient: str) -> Receiver | None:
            row = engine_store.policy(policy_id)
            if row is None:
                return None
            try:
                policy = parse_policy(json.loads(row["document"]))
            except (PolicyInvalid, InvalidInput, ValueError):
                return None
            return next((r for r in policy.notification.receivers if r.key == recipient), None)

        def implicit_cluster() -> str:
            """The implicit cluster's name while the hub has several clusters: the ``cluster``
            label of its alerts in webhook payloads and Alertmanager (the email names it too)."""
            return settings.clusters.default_name if len(hub.clusters.names()) > 1 else ""

        if runner is not None:
            repost = AlertmanagerRepost(
                store=engine_store,
                http=http,
                clock=hub.clock,
                public_url=settings.public_url,
                hold=hold,
                may_send=may_send,
                implicit_cluster=implicit_cluster,
            )
        dispatcher = Dispatcher(
            store=engine_store,
            may_send=may_send,
            http=http,
            receiver=receiver,
            public_url=settings.public_url,
            alertmanager_hold=hold,
            implicit_cluster=implicit_cluster,
            notifier=SmtpNotifier(settings.smtp),
            renderer=Renderer(
                public_url=settings.public_url,
                log_lines=evidence_lines(hub.logs.store, hub.cluster, t.project_log_floors),
                cluster=hub.settings.clusters.default_name,
                several_clusters=lambda: bool(implicit_cluster()),
            ),
            clock=hub.clock,
            retry_initial=settings.alerts.retry_initial_seconds,
            retry_max=settings.alerts.retry_max_seconds,
        )
    hub.alert_engine = AlertEngine(
        runner=runner,
        dispatcher=dispatcher,
        store=store,
        metrics=hub.metrics,
        tick_seconds=settings.alerts.tick_seconds,
        delivery_seconds=settings.alerts.delivery_seconds,
        clock=hub.clock,
        fenced=fenced,
        fence=hub.leadership.fence,
        repost=repost,
    )
