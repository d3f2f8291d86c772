"""Issue 12: for every kind of period the validator accepts, kubehub's live cycle, its backtest
and Prometheus's own alerting rules agree on every (rule, entity) at every slot.

Why this file is long: it generates the history, runs three evaluators over it and compares
them; splitting it would only scatter one experiment over several modules.

The history. A synthetic but catalogue-shaped history (the raw series and labels of
docs/metrics-conventions.md: node-exporter CPU counters, memory and load; cAdvisor container
counters and working sets, including the pod cgroup row the catalogue must leave out;
kube-state-metrics pod and ReplicaSet owners, Deployment and StatefulSet replicas, restart
counters) with values that cross thresholds and flap, an exporter that is down for longer than
the lookback (the entity has no data), a node whose CPU counters freeze (0/0: NaN) and then
reset on reboot, a container restart (counter reset), a Deployment rollout that replaces its
ReplicaSet, and a foreign namespace ``team-b`` whose Deployment has the SAME workload,
ReplicaSet and pod names as ``team-a``'s and breaches every workload rule. One scenario per
period (10s, 15s, 30s, 45s, 60s, 90s, 150s, 5m, 1h), each in its own stretch of time (an hour
apart, so no lookback or rate window reaches into another), with a modest number of slots.
It is backfilled into a PRIVATE Prometheus (Debian's binary on a free loopback port, its own
data directory) with ``promtool tsdb create-blocks-from openmetrics``, as the sandbox does.

The policies. Per scenario one node policy and one workload policy of ``team-a``, whose rules
cover every aggregation (avg, max, min, last), every comparator and consecutive 1-3.

The three evaluators.
1. kubehub live: the production :class:`CycleRunner` over a SQLite state store, a fake clock
   stepped to each slot's end, the real Prometheus adapter querying the private Prometheus.
   Its per-slot states (pending, firing, nodata) are read from the store after each cycle.
2. kubehub backtest: :func:`run_backtest` per policy over the scenario, its range fetch cut
   into pieces of a few slots (so the seams between pieces are compared too); its firing and
   no-data intervals are read from its history events.
3. Prometheus: ``promtool test rules`` — Prometheus's own rule manager evaluating, every
   period P from the scenario's first slot, one alerting rule per kubehub rule:
   ``<agg>_over_time((<catalogue expression>)[<P>-1ms:<step>]) <cmp> <threshold>`` (for
   ``last``: the catalogue expression itself, the value at the slot's end), workload rules
   with the catalogue's expression for ``team-a`` only, ``for: (consecutive-1) x P``. Its input
   series are the same samples as the backfill, shifted so that the scenario starts at 0 (the
   shift is a multiple of every period and step, and subquery points are aligned to multiples
   of the step, so every evaluation sees the same points). The expectations it checks are
   kubehub's verdicts: at each slot, ``ALERTS`` (pending and firing, from the live run) and
   ``ALERTS{alertstate="firing"}`` (from the backtest). Prometheus computes its own ALERTS
   series with its own ``for`` logic and fails the test on any difference.

``[P-1ms:step]``: Prometheus 2.42's ranges include both ends, so ``[P:step]`` would take one
point of the previous slot; the first test shows it on the private Prometheus itself.

The differences documented in docs/alerting.md are applied to kubehub's verdicts before
Prometheus checks them, and asserted to occur (not hidden by a tolerance):
- no-data hold: a firing alert whose entity returns no data (missing or NaN) is held open in
  ``nodata`` (Prometheus: resolved); when data returns still breaching, kubehub fires again at
  once, where Prometheus starts a new ``for`` (pending for consecutive-1 periods).
- ``==``/``!=`` compare with a relative tolerance of 1e-5 in kubehub, exactly in Prometheus:
  the data is checked to keep every value away from that band, so both must agree.
Floating point: kubehub averages with numpy, Prometheus incrementally; the test checks that no
evaluated value lies within 1e-9 (relative) of its threshold, so the verdicts cannot depend on
the last bit, and fails (on the data, not the engines) if one does.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import socket
import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hub.alerts import backtest as backtest_module
from hub.alerts.backtest import run_backtest
from hub.alerts.cycle import CycleRunner
from hub.alerts.engine import step_for
from hub.alerts.policy import Policy, parse_policy
from hub.collectors.catalogue import default_catalogue
from hub.collectors.prometheus import PrometheusClient
from hub.store import Database
from hub.store.alerts import AlertStore
from hub.timeutil import FakeClock

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
BLOCK = 7200  # promtool's block range: one OpenMetrics file per 2-hour window
GiB = 2**30
MiB = 2**20

# (period, slots, seconds between samples): slots enough for a no-data gap longer than the
# lookback plus a whole slot, and for flapping on either side of it.
SCENARIOS = [
    (10, 80, 5),
    (15, 64, 5),
    (30, 48, 5),
    (45, 40, 5),
    (60, 36, 15),
    (90, 32, 15),
    (150, 28, 15),
    (300, 24, 30),
    (3600, 14, 60),
]

# (name, metric, aggregation, comparator, threshold, unit, consecutive). Thresholds sit off the
# lattices the values live on (memory ratios are multiples of 1/256, bytes of 1 MiB, loads of
# 1/4, counts are integers, averages of 4 or 5 such points, CPU rates mixtures of k/32 or k/16
# over a 5-minute window), so no value can equal them to the last bit; a test checks it.
NODE_RULES = [
    ("mem-avg", "node_memory_utilisation", "avg", ">", 0.84, "ratio", 2),
    ("mem-max", "node_memory_utilisation", "max", ">=", 0.9, "ratio", 1),
    ("mem-min", "node_memory_utilisation", "min", ">", 0.8, "ratio", 3),
    ("cpu-last", "node_cpu_utilisation", "last", ">", 0.7, "ratio", 1),
    ("cpu-min-low", "node_cpu_utilisation", "min", "<", 0.27, "ratio", 2),
    ("load-last", "node_load1", "last", ">=", 3.1, "load", 2),
    ("load-avg-low", "node_load1", "avg", "<=", 1.13, "load", 3),
    ("load-min-eq", "node_load1", "min", "==", 1.5, "load", 1),
]
WORKLOAD_RULES = [
    ("cpu-avg", "workload_cpu_usage", "avg", ">", 0.6071, "cores", 2),
    ("cpu-max", "workload_cpu_usage", "max", ">=", 0.7713, "cores", 1),
    ("cpu-last-low", "workload_cpu_usage", "last", "<", 0.2013, "cores", 3),
    ("mem-min", "workload_memory_usage", "min", ">", 400.3, "MiB", 2),
    ("mem-avg-low", "workload_memory_usage", "avg", "<=", 300.3, "MiB", 3),
    ("unavailable-eq", "workload_replicas_unavailable", "last", "==", 1, "count", 1),
    ("unavailable-ne", "workload_replicas_unavailable", "min", "!=", 0, "count", 2),
    ("restarts", "workload_container_restarts", "max", ">=", 0.9, "count", 1),
]
TENANT, FOREIGN = "team-a", "team-b"


# -- the history ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    period: int
    slots: int
    interval: int
    base: int = 0  # epoch seconds of slot 0: a multiple of 3600, hence of every period and step
    series: dict[tuple[str, tuple[tuple[str, str], ...]], np.ndarray] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.slots * self.period

    @property
    def times(self) -> np.ndarray:
        """Seconds since ``base`` of every sample."""
        return np.arange(self.length // self.interval + 1) * self.interval

    def slot_ends(self) -> list[int]:
        return [self.base + k * self.period for k in range(self.slots + 1)]

    def at(self, fraction: float) -> int:
        """A moment of the scenario, on the sample grid."""
        return round(fraction * self.length / self.interval) * self.interval

    def add(self, name: str, labels: dict[str, str], values: np.ndarray) -> None:
        self.series[(name, tuple(sorted(labels.items())))] = np.asarray(values, dtype=float)


def _levels(sc: Scenario, rng: np.random.Generator, chunk: float, choices: list[float]) -> np.ndarray:
    """A value per sample that changes every ``chunk`` seconds, drawn from ``choices``."""
    idx = (sc.times // chunk).astype(int)
    drawn = rng.choice(np.asarray(choices, dtype=float), size=int(idx.max()) + 1)
    return drawn[idx]


def _counter(sc: Scenario, rate: np.ndarray, start: float) -> np.ndarray:
    """A counter growing at ``rate`` per second (sample by sample), from ``start``."""
    return start + np.concatenate([[0.0], np.cumsum(rate[:-1] * sc.interval)])


def _absent(sc: Scenario, values: np.ndarray, start: int, end: int) -> np.ndarray:
    out = values.copy()
    out[(sc.times >= start) & (sc.times < end)] = np.nan
    return out


def node_history(sc: Scenario, rng: np.random.Generator) -> None:
    t = sc.times
    gap = (sc.at(0.35), sc.at(0.35) + math.ceil((2 * sc.period + 360) / sc.interval) * sc.interval)
    freeze = (sc.at(0.3), sc.at(0.3) + math.ceil(max(2 * sc.period + 360, 420) / sc.interval) * sc.interval)
    jitter = rng.choice([-4.0, 0.0, 4.0], size=len(t)) / 256
    for node in ("node-a", "node-b", "node-c"):
        labels = {"node": node, "job": "node-exporter", "instance": f"{node}:9100"}
        # memory: a ratio on the 1/256 lattice (so that 1 - avail/total is exact)
        if node == "node-a":
            util = _levels(sc, rng, sc.period, [176 / 256, 208 / 256, 224 / 256, 240 / 256]) + jitter
        elif node == "node-b":  # high around its exporter's outage, so that it fires before and after
            high = (t >= sc.at(0.2)) & (t < sc.at(0.97))
            util = np.where(high, 240 / 256 - np.abs(jitter), 128 / 256 + jitter)
        else:
            util = 128 / 256 + jitter
        total = np.full(len(t), 16.0 * GiB)
        avail = total * (1 - util)
        # cpu: busy share on the 1/16 lattice, integrated into idle/user/system counters
        busy = _levels(sc, rng, max(sc.period, 60), [k / 16 for k in range(1, 16)])
        if node == "node-c":
            busy = np.where(t < freeze[0], 14 / 16, busy)
        idle = _counter(sc, 1 - busy, 4000.0)
        user = _counter(sc, busy - 1 / 16, 2000.0)
        system = _counter(sc, np.full(len(t), 1 / 16), 300.0)
        if node == "node-c":  # the exporter freezes, then the node reboots: counters restart at 0
            frozen = (t >= freeze[0]) & (t < freeze[1])
            after = t >= freeze[1]
            for c in (idle, user, system):
                held = c[np.argmax(frozen)]
                c[frozen] = held
                c[after] = c[after] - c[np.argmax(after)]
        # load on the 1/4 lattice
        if node == "node-c":
            load = _levels(sc, rng, sc.period, [0.5, 1.0, 1.5])
        else:
            load = _levels(sc, rng, sc.period, [k / 2 for k in range(1, 12)]) + rng.choice([-0.25, 0, 0.25], len(t))
        named = {
            "node_memory_MemTotal_bytes": total,
            "node_memory_MemAvailable_bytes": avail,
            "node_load1": load,
        }
        for name, values in named.items():
            sc.add(name, labels, _absent(sc, values, *gap) if node == "node-b" else values)
        for mode, values in (("idle", idle), ("user", user), ("system", system)):
            series = _absent(sc, values, *gap) if node == "node-b" else values
            sc.add("node_cpu_seconds_total", {**labels, "cpu": "0", "mode": mode}, series)


KSM = {"job": "kube-state-metrics", "instance": "kube-state-metrics:8080"}


def _pod(
    sc: Scenario,
    rng: np.random.Generator,
    *,
    namespace: str,
    pod: str,
    owner: tuple[str, str],
    alive: tuple[int, int],
    cpu: np.ndarray,
    memory_mib: np.ndarray,
    node: str,
    restarts: tuple[int, ...] = (),
) -> None:
    t = sc.times
    live = (t >= alive[0]) & (t < alive[1])

    def only_alive(v: np.ndarray) -> np.ndarray:
        return np.where(live, v, np.nan)

    sc.add(
        "kube_pod_owner",
        {**KSM, "namespace": namespace, "pod": pod, "owner_kind": owner[0], "owner_name": owner[1],
         "owner_is_controller": "true"},
        only_alive(np.ones(len(t))),
    )  # fmt: skip
    counter = _counter(sc, cpu, 0.0 if alive[0] > 0 else float(rng.integers(100, 5000)))
    counter = counter - np.where(live, counter[np.argmax(live)], 0) if alive[0] > 0 else counter
    memory = memory_mib * MiB
    restarted = np.zeros(len(t))
    for r in restarts:  # the container restarts: its CPU counter starts again from 0
        after = t >= r
        counter = np.where(after, counter - counter[np.argmax(after)], counter)
        restarted += after
    cadvisor = {"job": "kubelet", "instance": node, "node": node, "namespace": namespace, "pod": pod}
    for container in ("app", ""):  # "" is the pod's cgroup: the catalogue must not count it twice
        labels = {**cadvisor, "container": container}
        sc.add("container_cpu_usage_seconds_total", labels, only_alive(counter))
        sc.add("container_memory_working_set_bytes", labels, only_alive(memory))
    sc.add(
        "kube_pod_container_status_restarts_total",
        {**KSM, "namespace": namespace, "pod": pod, "container": "app"},
        only_alive(restarted),
    )


def workload_history(sc: Scenario, rng: np.random.Generator) -> None:
    t = sc.times
    n = len(t)
    chunk = max(sc.period, 60)

    def cpu_levels(choices: list[float]) -> np.ndarray:
        return _levels(sc, rng, chunk, choices)

    def memory_levels(choices: list[float]) -> np.ndarray:
        return _levels(sc, rng, sc.period, choices) + rng.choice([-4.0, 0.0, 4.0], n)

    end = sc.length + 1
    # team-a/api: a Deployment whose rollout replaces ReplicaSet api-5d8f9 by api-7c4b2
    r0, d = sc.at(0.55), sc.at(0.06)
    old, new = "api-5d8f9", "api-7c4b2"
    for ns in (TENANT, FOREIGN):
        sc.add("kube_replicaset_owner", {**KSM, "namespace": ns, "replicaset": old, "owner_kind": "Deployment",
               "owner_name": "api", "owner_is_controller": "true"}, np.ones(n))  # fmt: skip
        sc.add("kube_deployment_spec_replicas", {**KSM, "namespace": ns, "deployment": "api"}, np.full(n, 2.0))
    sc.add("kube_replicaset_owner", {**KSM, "namespace": TENANT, "replicaset": new, "owner_kind": "Deployment",
           "owner_name": "api", "owner_is_controller": "true"}, np.where(t >= r0, 1.0, np.nan))  # fmt: skip
    pods = [
        (f"{old}-x2k4p", old, (0, r0 + d)),
        (f"{old}-q8w3n", old, (0, r0 + 2 * d)),
        (f"{new}-m5t7v", new, (r0, end)),
        (f"{new}-z9r6s", new, (r0 + d, end)),
    ]
    cpu_choices = [k / 32 for k in range(1, 20)]
    for i, (pod, rs, alive) in enumerate(pods):
        _pod(sc, rng, namespace=TENANT, pod=pod, owner=("ReplicaSet", rs), alive=alive,
             cpu=cpu_levels(cpu_choices), memory_mib=memory_levels([float(m) for m in range(120, 290, 8)]),
             node=("node-a", "node-b")[i % 2])  # fmt: skip
    available = np.where(rng.random(n) < 0.15, 1.0, 2.0)
    available = np.where(rng.random(n) < 0.05, 0.0, available)
    rolling = (t >= r0) & (t < r0 + 2 * d)
    available = np.where(rolling, np.minimum(available, _levels(sc, rng, sc.period, [1.0, 2.0])), available)
    sc.add("kube_deployment_status_replicas_available", {**KSM, "namespace": TENANT, "deployment": "api"}, available)

    # team-a/db: a StatefulSet whose container restarts three times
    restarts = (sc.at(0.3), sc.at(0.7), sc.at(0.76))
    _pod(sc, rng, namespace=TENANT, pod="db-0", owner=("StatefulSet", "db"), alive=(0, end),
         cpu=cpu_levels([k / 32 for k in range(1, 12)]), node="node-c", restarts=restarts,
         memory_mib=memory_levels([float(m) for m in range(150, 360, 8)]))  # fmt: skip
    ready = np.ones(n)
    for r in restarts:
        ready[(t >= r) & (t < r + sc.at(0.03))] = 0
    sc.add("kube_statefulset_replicas", {**KSM, "namespace": TENANT, "statefulset": "db"}, np.ones(n))
    sc.add("kube_statefulset_status_replicas_ready", {**KSM, "namespace": TENANT, "statefulset": "db"}, ready)

    # team-b/api: the same names in the foreign namespace, breaching most workload rules all the time
    _pod(sc, rng, namespace=FOREIGN, pod=f"{old}-x2k4p", owner=("ReplicaSet", old), alive=(0, end),
         cpu=np.full(n, 0.9), memory_mib=np.full(n, 900.0), node="node-a",
         restarts=tuple(sc.at(f / 10) for f in range(1, 10)))  # fmt: skip
    sc.add("kube_deployment_status_replicas_available", {**KSM, "namespace": FOREIGN, "deployment": "api"},
           np.ones(n))  # fmt: skip


def build_scenarios() -> list[Scenario]:
    """Every scenario's samples, placed one after another in the past, an hour or more apart."""
    now = time.time()
    start = (int(now) // 86400 - 4) * 86400
    out = []
    for period, slots, interval in SCENARIOS:
        sc = Scenario(period, slots, interval, base=start)
        rng = np.random.default_rng(period)
        node_history(sc, rng)
        workload_history(sc, rng)
        out.append(sc)
        start = (math.ceil((start + sc.length) / 3600) + 1) * 3600
    assert start < now - 86400, "the history must lie in the past"
    return out


def _series_text(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def write_openmetrics(scenarios: list[Scenario], out: Path) -> list[Path]:
    """One OpenMetrics file per 2-hour block window (promtool parses its input once per block)."""
    lines: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for sc in scenarios:
        ts = sc.base + sc.times
        for (name, labels), values in sc.series.items():
            head = _series_text(name, labels)
            for t, v in zip(ts.tolist(), values.tolist(), strict=True):
                if not math.isnan(v):
                    lines[t // BLOCK][head].append(f"{head} {v!r} {t}\n")
    files = []
    for window, by_series in sorted(lines.items()):
        path = out / f"window-{window}.om"
        with path.open("w") as fh:
            for head in sorted(by_series):  # a metric family's samples stay together
                fh.writelines(by_series[head])
            fh.write("# EOF\n")
        files.append(path)
    return files


# -- the policies and their Prometheus twins --------------------------------------------------------


def policies_for(sc: Scenario) -> list[Policy]:
    receivers = {"receivers": [{"email": "oncall@example.com"}]}
    out = []
    for level, name, rules, namespace in (
        ("node", f"nodes-p{sc.period}", NODE_RULES, None),
        ("workload", f"{TENANT}-p{sc.period}", WORKLOAD_RULES, TENANT),
    ):
        doc: dict[str, Any] = {
            "name": name,
            "level": level,
            "rules": [
                {
                    "name": r,
                    "metric": m,
                    "aggregation": a,
                    "comparator": c,
                    "threshold": thr,
                    "unit": u,
                    "period": f"{sc.period}s",
                    "consecutive": k,
                    "severity": "major",
                }
                for r, m, a, c, thr, u, k in rules
            ],
            "notification": receivers,
        }
        if namespace:
            doc["namespace"] = namespace
        out.append(parse_policy(doc))
    return out


def alertname(policy: Policy, rule: str) -> str:
    return f"{policy.name}__{rule}".replace("-", "_")


def inner_expr(policy: Policy, metric: str, period: int, *, tenant_only: bool = True) -> str:
    namespace = policy.namespace if policy.level == "workload" and tenant_only else None
    return default_catalogue().alert_query(policy.level, metric, "last", period, namespace)[0]


def value_expr(policy: Policy, rule_name: str, period: int, *, tenant_only: bool = True) -> str:
    """What Prometheus compares with the threshold: the reference of the issue."""
    rule = policy.rule(rule_name)
    assert rule is not None
    inner = inner_expr(policy, rule.metric, period, tenant_only=tenant_only)
    if rule.aggregation == "last":
        return f"({inner})"
    step = int(step_for(period))
    return f"{rule.aggregation}_over_time(({inner})[{period * 1000 - 1}ms:{step}s])"


def rule_file(sc: Scenario, policies: list[Policy]) -> dict[str, Any]:
    rules = []
    for policy in policies:
        for rule in policy.rules:
            rules.append(
                {
                    "alert": alertname(policy, rule.name),
                    "expr": f"{value_expr(policy, rule.name, sc.period)} {rule.comparator} {rule.threshold_base!r}",
                    "for": f"{(rule.consecutive - 1) * sc.period}s",
                }
            )
    return {"groups": [{"name": f"p{sc.period}", "interval": f"{sc.period}s", "rules": rules}]}


# -- kubehub's two runs ------------------------------------------------------------------------------

# (alertname, entity) -> state per slot (None: not tracked / inactive)
Verdicts = dict[tuple[str, str], list[str | None]]


def _store(path: Path, policies: list[Policy], now: float) -> tuple[Database, AlertStore]:
    db = Database(path)
    db.migrate()
    store = AlertStore(db)
    for p in policies:
        store.insert_policy(policy_id=p.name, level=p.level, namespace=p.namespace, name=p.name,
                            document=p.to_document(), enabled=True, actor="test", now=now)  # fmt: skip
    return db, store


def run_live(sc: Scenario, policies: list[Policy], prom: PrometheusClient, work: Path) -> Verdicts:
    db, store = _store(work / f"live-p{sc.period}.sqlite3", policies, sc.base)
    by_name = {p.name: p for p in policies}
    clock = FakeClock(sc.base)
    runner = CycleRunner(
        store=store,
        build_query=default_catalogue().alert_query,
        run_query=lambda q, start, end, step: prom.range(q, start=start, end=end, step=step),
        clock=clock,
    )
    out: Verdicts = defaultdict(lambda: [None] * (sc.slots + 1))
    try:
        for k, at in enumerate(sc.slot_ends()):
            clock.set(at)
            report = runner.run_once()
            assert not report.errors, report.errors
            assert report.missed == {}, report.missed
            for row in store.state_rows():
                name = alertname(by_name[row["policy_id"]], row["rule"])
                out[(name, row["entity"])][k] = row["state"]
    finally:
        db.close()
    return dict(out)


def run_backtests(sc: Scenario, policies: list[Policy], prom: PrometheusClient) -> Verdicts:
    out: Verdicts = defaultdict(lambda: [None] * (sc.slots + 1))
    ends = sc.slot_ends()
    for policy in policies:
        result = run_backtest(
            policy,
            start=sc.base,
            end=sc.base + sc.length,
            now=time.time(),
            build_query=default_catalogue().alert_query,
            range_query=lambda q, start, end, step: prom.range(q, start=start, end=end, step=step),
        )
        assert result.slots == sc.slots + 1
        timeline: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for e in result.events:
            at = datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
            timeline[alertname(policy, e["rule"]) + "\x00" + e["entity"]].append((at, e["to"]))
        for key, changes in timeline.items():
            name, entity = key.split("\x00")
            for k, at in enumerate(ends):
                last = [to for when, to in changes if when <= at + 1e-6]
                state = last[-1] if last else None
                out[(name, entity)][k] = state if state in ("firing", "nodata") else None
    return dict(out)


def as_prometheus(states: list[str | None], consecutive: int) -> tuple[list[str | None], int]:
    """kubehub's per-slot states as Prometheus's ALERTS would show them, by the documented
    differences (docs/alerting.md); also how many slots the no-data hold changed.

    ``nodata`` is not an alert in Prometheus (it resolved). A firing that follows a ``nodata``
    in the same episode is, for Prometheus, a new alert: pending until ``consecutive``
    breaching periods have passed since the data came back.
    """
    out: list[str | None] = []
    since: int | None = None  # breaching slots since the episode's last nodata
    changed = 0
    for s in states:
        if s == "nodata":
            out.append(None)
            since = 0
            changed += 1
        elif s == "firing" and since is not None:
            since += 1
            out.append("firing" if since >= consecutive else "pending")
            changed += since < consecutive
        else:
            since = None
            out.append(s)
    return out, changed


def entity_labels(level: str, entity: str) -> dict[str, str]:
    if level == "node":
        return {"node": entity}
    namespace, kind, workload = entity.split("/")
    return {"namespace": namespace, "kind": kind, "workload": workload}


# -- the private Prometheus ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


@dataclass
class World:
    scenarios: list[Scenario]
    policies: dict[int, list[Policy]]
    prom: PrometheusClient
    live: dict[int, Verdicts]
    backtest: dict[int, Verdicts]
    work: Path
    timings: dict[str, float]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for binary in (PROMETHEUS, PROMTOOL):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: apt-get install prometheus (the reference engine of this test)")
    work = tmp_path_factory.mktemp("alerts-reference")
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    scenarios = build_scenarios()
    blocks = work / "data"
    blocks.mkdir()
    om = work / "om"
    om.mkdir()
    for path in write_openmetrics(scenarios, om):
        proc = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(blocks)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"promtool rejected {path.name}: {proc.stdout}{proc.stderr}"
    timings["backfill"] = time.monotonic() - t0
    port = _free_port()
    config = work / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={blocks}",
         "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    prom = PrometheusClient(url, timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (work / "prometheus.log").read_text()
                    raise AssertionError(f"the private Prometheus did not start: {log_text}") from None
                time.sleep(0.2)
        policies = {sc.period: policies_for(sc) for sc in scenarios}
        t1 = time.monotonic()
        live = {sc.period: run_live(sc, policies[sc.period], prom, work) for sc in scenarios}
        timings["live"] = time.monotonic() - t1
        t2 = time.monotonic()
        with pytest.MonkeyPatch.context() as mp:
            # Replays this short are fetched in one piece; smaller pieces put the seams between
            # pieces (and more pieces than are fetched at once) under the comparison too.
            mp.setattr(backtest_module, "MIN_CHUNK_SLOTS", 8)
            mp.setattr(backtest_module, "MAX_QUERY_POINTS", 100)
            backtest = {sc.period: run_backtests(sc, policies[sc.period], prom) for sc in scenarios}
        timings["backtest"] = time.monotonic() - t2
        yield World(scenarios, policies, prom, live, backtest, work, timings)
    finally:
        prom.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _values(world: World, sc: Scenario, policy: Policy, rule: str, *, tenant_only: bool = True) -> pd.DataFrame:
    """Prometheus's value of a rule (before the comparison) at every slot end of the scenario."""
    return world.prom.range(
        value_expr(policy, rule, sc.period, tenant_only=tenant_only),
        start=sc.base,
        end=sc.base + sc.length,
        step=sc.period,
    )


# -- the tests ---------------------------------------------------------------------------------


def test_a_range_of_period_minus_1ms_holds_exactly_the_slot_points(world: World) -> None:
    """Prometheus 2.42's ranges include both ends: [P:step] has one point of the previous slot."""
    for sc in world.scenarios:
        step = int(step_for(sc.period))
        at = sc.base + sc.period
        closed = world.prom.instant(f"count_over_time(vector(1)[{sc.period}s:{step}s])", time=at)
        open_ = world.prom.instant(f"count_over_time(vector(1)[{sc.period * 1000 - 1}ms:{step}s])", time=at)
        assert list(closed["value"]) == [sc.period // step + 1], sc.period
        assert list(open_["value"]) == [sc.period // step], sc.period


def test_live_cycle_and_backtest_agree_slot_by_slot(world: World) -> None:
    for sc in world.scenarios:
        live = {
            key: [s if s in ("firing", "nodata") else None for s in states]
            for key, states in world.live[sc.period].items()
            if any(s in ("firing", "nodata") for s in states)
        }
        back = {key: states for key, states in world.backtest[sc.period].items() if any(states)}
        assert back == live, f"period {sc.period}s: the backtest and the live cycle disagree"


def test_no_value_lies_within_rounding_of_a_threshold(world: World) -> None:
    """The verdicts must not hinge on the last bit, on kubehub's tolerance for == and != (1e-5
    relative) nor on NaN under != (docs/alerting.md): a precondition of the data. The last
    bit matters where the two sides do arithmetic differently: averages (numpy vs Prometheus's
    running mean) and workload values (kubehub asks cluster-wide, the twin rule for one
    namespace, and Prometheus sums a workload's pods in a different order then). Node
    max/min/last compare the same float."""
    seen = 0
    for sc in world.scenarios:
        for policy in world.policies[sc.period]:
            for rule in policy.rules:
                thr = rule.threshold_base
                values = _values(world, sc, policy, rule.name)["value"].to_numpy(dtype=float)
                if rule.comparator == "!=":  # NaN != x is true in Prometheus, no data in kubehub
                    assert not np.isnan(values).any(), (sc.period, policy.name, rule.name)
                values = values[np.isfinite(values)]
                gap = np.abs(values - thr)
                if rule.comparator in ("==", "!="):
                    near = (gap > 0) & (gap <= 1e-5 * abs(thr) + 1e-8)
                elif rule.aggregation == "avg" or policy.level == "workload":
                    near = gap <= 1e-9 * max(1.0, abs(thr))
                else:
                    continue
                assert not near.any(), (sc.period, policy.name, rule.name, values[near])
                seen += len(values)
    assert seen > 1000


def test_prometheus_alerting_rules_agree_with_the_live_cycle_and_the_backtest(world: World) -> None:
    """promtool evaluates the twin rule file with Prometheus's own rule manager and checks, at
    every slot, ALERTS against the live run and the firing ALERTS against the backtest."""
    files = []
    changed_by_hold = 0
    for sc in world.scenarios:
        policies = world.policies[sc.period]
        levels = {}
        consecutive = {}
        for p in policies:
            for r in p.rules:
                levels[alertname(p, r.name)] = p.level
                consecutive[alertname(p, r.name)] = r.consecutive
        rules_path = world.work / f"rules-p{sc.period}.yml"
        rules_path.write_text(json.dumps(rule_file(sc, policies), indent=1))
        expected: list[dict[str, Any]] = []
        for source, verdicts, expr in (
            ("live", world.live[sc.period], "ALERTS"),
            ("backtest", world.backtest[sc.period], 'ALERTS{alertstate="firing"}'),
        ):
            per_slot: list[list[dict[str, Any]]] = [[] for _ in range(sc.slots + 1)]
            for (name, entity), states in sorted(verdicts.items()):
                view, changed = as_prometheus(states, consecutive[name])
                if source == "live":
                    changed_by_hold += changed
                for k, state in enumerate(view):
                    if state is None or (source == "backtest" and state != "firing"):
                        continue
                    labels = {"alertname": name, "alertstate": state, **entity_labels(levels[name], entity)}
                    per_slot[k].append({"labels": _series_text("ALERTS", tuple(sorted(labels.items()))), "value": 1})
            for k, samples in enumerate(per_slot):
                expected.append({"expr": expr, "eval_time": f"{k * sc.period}s", "exp_samples": samples})
        series = []
        for (name, labels), values in sorted(world_series(sc)):
            series.append({"series": _series_text(name, labels), "values": promtool_values(values)})
        test = {
            "rule_files": [rules_path.name],
            "evaluation_interval": f"{sc.period}s",
            "tests": [{"interval": f"{sc.interval}s", "input_series": series, "promql_expr_test": expected}],
        }
        path = world.work / f"test-p{sc.period}.yml"
        path.write_text(json.dumps(test))
        files.append(path.name)
    t0 = time.monotonic()
    proc = subprocess.run([PROMTOOL, "test", "rules", *files], cwd=world.work, capture_output=True, text=True)
    world.timings["promtool"] = time.monotonic() - t0
    report = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if line.strip())
    assert proc.returncode == 0, f"Prometheus disagrees with kubehub (exp: kubehub, got: Prometheus):\n{report[:20000]}"
    # The documented difference really occurred (and was checked by Prometheus as documented).
    assert changed_by_hold > 0
    print(f"timings: {world.timings}")


def world_series(sc: Scenario) -> Iterator[tuple[tuple[str, tuple[tuple[str, str], ...]], np.ndarray]]:
    for key, values in sc.series.items():
        if not np.isnan(values).all():
            yield key, values


def promtool_values(values: np.ndarray) -> str:
    return " ".join("_" if math.isnan(v) else repr(v) for v in values.tolist())


def test_every_rule_fires_and_recovers_and_every_case_is_exercised(world: World) -> None:
    fired: dict[str, int] = defaultdict(int)
    quiet: dict[str, int] = defaultdict(int)
    pending_dropped = 0
    holds_with_return = 0
    for sc in world.scenarios:
        for (name, _entity), states in world.live[sc.period].items():
            rule = name.split("__", 1)[1].replace("_", "-")
            fired[rule] += sum(s == "firing" for s in states)
            quiet[rule] += sum(s is None for s in states)
            for a, b in itertools.pairwise(states):
                pending_dropped += a == "pending" and b is None
                holds_with_return += a == "nodata" and b == "firing"
    names = [r[0] for r in NODE_RULES + WORKLOAD_RULES]
    assert {r for r in names if not fired[r]} == set(), "rules that never fired anywhere"
    assert all(quiet[r] for r in names)
    assert pending_dropped > 0  # a streak broken before it fired
    assert holds_with_return > 0  # data came back still breaching after a no-data hold


def test_a_workload_policy_never_sees_the_foreign_namespace(world: World) -> None:
    """team-b's Deployment (same workload, ReplicaSet and pod names) breaches every workload
    rule at every slot of the cluster-wide query; none of it reaches team-a's policy."""
    for sc in world.scenarios:
        policy = next(p for p in world.policies[sc.period] if p.level == "workload")
        everyone = _values(world, sc, policy, "mem-min", tenant_only=False)
        foreign = everyone[everyone["namespace"] == FOREIGN]
        assert len(foreign) == sc.slots + 1 and (foreign["value"] > 400.3 * MiB).all()
        for live_or_back in (world.live[sc.period], world.backtest[sc.period]):
            entities = {entity for (name, entity), states in live_or_back.items() if any(states)}
            assert entities and all(e.startswith(f"{TENANT}/") for e in entities if "/" in e)


def test_the_catalogue_alert_query_is_the_reference_expression() -> None:
    """The catalogue's aggregated alert query (what the benchmark's Prometheus rule file and
    people pasting evidence use) is this test's reference expression, for every scenario."""
    cat = default_catalogue()
    for period, _slots, _interval in SCENARIOS:
        for policy in policies_for(Scenario(period, 1, 1)):
            for rule in policy.rules:
                got, _ = cat.alert_query(policy.level, rule.metric, rule.aggregation, period, policy.namespace)
                want = value_expr(policy, rule.name, period)
                assert (f"({got})" if rule.aggregation == "last" else got) == want
