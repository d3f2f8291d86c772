"""Benchmark: the hub's batched rule engine against Prometheus evaluating the same rules (issue 8).

Setting (``--quick`` in brackets): 100 tenants x 100 rules = 10,000 workload-level rules
[10 x 20 = 200] over 1,000 nodes and 20,000 pods [100 nodes, 2,000 pods].

The data has the sandbox's shape (series names and labels of docs/metrics-conventions.md:
cAdvisor container series, kube-state-metrics pod/ReplicaSet owners, node-exporter node
series), served by a synthetic exporter process at the requested scale and scraped every 15 s
by a PRIVATE Prometheus (Debian's 2.42 binary) on a spare port, so that every CPU-second
measured on the Prometheus side is caused by this benchmark alone. All in the same run:

(a) Prometheus evaluating the equivalent rule file (one alerting rule per hub rule: the same
    catalogue PromQL restricted to the tenant's namespace, ``> threshold``, ``for`` =
    (consecutive-1) x period; 100 groups of 100 rules, 30 s interval): its CPU-seconds per
    evaluation cycle ABOVE its scrape-only baseline (measured first, over the same window).
(b) the hub's full cycle (planning, one PromQL per distinct (metric, level, aggregation,
    period), evaluation, state persistence, notices queued in the outbox): the hub process's
    CPU plus Prometheus's CPU above baseline while serving those queries; its wall time; the
    queries per cycle.
(c) 1,000 notices through the hub's email stage (outbox -> rendering with chart -> aiosmtplib
    over ``smtp.connections`` connections -> marked sent) against raw aiosmtplib sending the
    same 1,000 rendered messages over the same number of connections, to the same local SMTP
    sink (aiosmtpd in its own process).

With ``--postgres`` (a superuser URL of a server's ``postgres`` database; bare: the sandbox's
server) (b) and (c) run a second time with the hub's state in PostgreSQL (a database of their
own, dropped afterwards) instead of SQLite: ``pg_wall_x`` is the PostgreSQL cycle's wall time
over SQLite's, ``pg_email_x`` SQLite's email rate over PostgreSQL's (goal: both <= 1.5); the
PostgreSQL server's own CPU is reported beside the hub's.

Last line: ``alerts: ratio=<hub cycle CPU / prometheus rule CPU> wall_s=<hub cycle wall>
queries=<n> email_ratio=<hub msgs/s / raw msgs/s> ...`` (goals: ratio <= 0.1, wall_s <= 3 at
full scale, queries <= distinct keys, email_ratio >= 1.0).

``--email-only [RUNS]`` runs part (c) alone, RUNS times (default 1), against its own SMTP sink
and no Prometheus (seconds instead of minutes): one ``email_ratio=`` line per run, then their
median.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.exposition import exposition_server  # noqa: E402
from bench.hubproc import stop_processes  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRAPE = 15  # seconds between scrapes of the synthetic exporter
RULE_INTERVAL = 30  # Prometheus rule evaluation interval (the setting)
PODS_PER_WORKLOAD = 10
# The rule keys of every tenant: two metrics x two aggregations, the shape of the issue's
# prototype (4 PromQL queries for 10,000 rules).
KEYS = [
    ("workload_cpu_usage", "avg", 60),
    ("workload_cpu_usage", "max", 60),
    ("workload_memory_usage", "avg", 60),
    ("workload_memory_usage", "max", 60),
]


# -- helper processes ------------------------------------------------------------------------------


def _h(text: str) -> float:
    """A stable number in [0, 1) from a name (so every run has the same data)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 2**32


def run_exporter(port: int, nodes: int, pods: int, namespaces: int) -> None:
    """Serve the synthetic series until killed. Values move with time like the real thing."""
    started = time.time()
    workloads = max(1, pods // namespaces // PODS_PER_WORKLOAD)
    pod_lines: list[tuple[str, str, float, float]] = []  # (cpu prefix, mem prefix, rate, bytes)
    static: list[str] = []
    n = 0
    for i in range(namespaces):
        ns = f"t-{i:03d}"
        for w in range(workloads):
            deploy = f"wl-{w:02d}"
            rs = f"{deploy}-5d8f"
            static.append(
                f'kube_replicaset_owner{{namespace="{ns}",replicaset="{rs}",owner_kind="Deployment",'
                f'owner_name="{deploy}"}} 1'
            )
            for p in range(PODS_PER_WORKLOAD):
                pod = f"{rs}-{p:02d}"
                node = f"node-{n % nodes:04d}"
                n += 1
                static.append(
                    f'kube_pod_owner{{namespace="{ns}",pod="{pod}",owner_kind="ReplicaSet",owner_name="{rs}"}} 1'
                )
                labels = f'namespace="{ns}",pod="{pod}",container="app",node="{node}"'
                hot = _h(pod) > 0.995  # a few hot pods: some rules breach, notices get queued
                rate = 1.5 if hot else 0.01 + 0.19 * _h(pod + "c")
                mem = (64 + 448 * _h(pod + "m")) * 2**20
                pod_lines.append(
                    (
                        f"container_cpu_usage_seconds_total{{{labels}}} ",
                        f"container_memory_working_set_bytes{{{labels}}} ",
                        rate,
                        mem,
                    )
                )
    node_names = [f"node-{k:04d}" for k in range(nodes)]
    static_text = "\n".join(static) + "\n"

    def body() -> bytes:
        t = time.time() - started + 3600  # counters start at an hour's worth of usage
        out = [static_text]
        out += [f"{c}{rate * t:.3f}\n{m}{mem:.0f}\n" for c, m, rate, mem in pod_lines]
        for name in node_names:
            busy = 0.2 + 0.5 * _h(name)
            for cpu in (0, 1):
                out.append(f'node_cpu_seconds_total{{node="{name}",cpu="{cpu}",mode="idle"}} {(1 - busy) * t:.2f}\n')
                out.append(f'node_cpu_seconds_total{{node="{name}",cpu="{cpu}",mode="user"}} {busy * t:.2f}\n')
            out.append(f'node_memory_MemTotal_bytes{{node="{name}"}} 17179869184\n')
            out.append(f'node_memory_MemAvailable_bytes{{node="{name}"}} {17179869184 * (1 - busy):.0f}\n')
            out.append(f'node_load5{{node="{name}"}} {4 * busy:.2f}\n')
        return "".join(out).encode()

    exposition_server(port, body).serve_forever()


def run_smtp_sink(port: int) -> None:
    """A real SMTP server (aiosmtpd) that accepts and forgets every message."""
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port, data_size_limit=32 * 2**20)
    controller.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def http_json(url: str, *, data: bytes | None = None, timeout: float = 120) -> Any:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


# -- the benchmark ---------------------------------------------------------------------------------


class Stack:
    def __init__(self, work: Path, *, nodes: int, pods: int, tenants: int) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.exporter_port = free_port()
        self.prom_port = free_port()
        self.smtp_port = free_port()
        self.nodes, self.pods, self.tenants = nodes, pods, tenants
        self.config = work / "prometheus.yml"
        self.rules = work / "rules.yml"
        self.rules.write_text("groups: []\n")

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    def spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.work)
        self.procs.append(p)
        return p

    def start(self) -> None:
        me = [sys.executable, str(Path(__file__).resolve())]
        self.spawn([*me, "--exporter", str(self.exporter_port), str(self.nodes), str(self.pods), str(self.tenants)])
        self.start_smtp()
        self.config.write_text(
            f"global: {{scrape_interval: {SCRAPE}s, evaluation_interval: {RULE_INTERVAL}s}}\n"
            f"rule_files: [{self.rules}]\n"
            "scrape_configs:\n"
            "  - job_name: synthetic\n    scrape_timeout: 14s\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.exporter_port}']}}]\n"
        )
        self.prom = self.spawn(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.work / 'data'}",
                "--storage.tsdb.retention.time=2h",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ]
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                up = http_json(f"{self.prom_url}/api/v1/query?query=up")["data"]["result"]
                if up and up[0]["value"][1] == "1":
                    n = http_json(f"{self.prom_url}/api/v1/query?query=count(container_cpu_usage_seconds_total)")
                    if n["data"]["result"]:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise SystemExit("alerts bench: the private Prometheus did not scrape the synthetic exporter in 2 minutes")

    def start_smtp(self) -> None:
        """The SMTP sink alone (all ``--email-only`` needs), answering before this returns."""
        self.spawn([sys.executable, str(Path(__file__).resolve()), "--smtp-sink", str(self.smtp_port)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1) as s:
                    if s.recv(64).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("alerts bench: the SMTP sink did not answer in 30 s")

    def reload(self) -> None:
        http_json(f"{self.prom_url}/-/reload", data=b"")

    def stop(self) -> None:
        stop_processes(self.procs)


def tenant_policies(tenants: int, rules: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for t in range(tenants):
        ns = f"t-{t:03d}"
        doc_rules = []
        for r in range(rules):
            metric, agg, period = KEYS[r % len(KEYS)]
            if metric == "workload_cpu_usage":
                threshold, unit = round(1.2 + 0.05 * (r // len(KEYS)), 2), "cores"
            else:
                threshold, unit = round(3.2 + 0.05 * (r // len(KEYS)), 2), "GiB"
            doc_rules.append(
                {
                    "name": f"r{r:03d}",
                    "metric": metric,
                    "aggregation": agg,
                    "comparator": ">",
                    "threshold": threshold,
                    "unit": unit,
                    "period": f"{period}s",
                    "consecutive": 1 + r % 3,
                    "severity": ("critical", "major", "minor")[r % 3],
                }
            )
        doc = {
            "name": f"tenant-{t:03d}",
            "level": "workload",
            "namespace": ns,
            "rules": doc_rules,
            "notification": {"receivers": [{"email": f"oncall@{ns}.example"}]},
        }
        out.append((f"pol-{t:03d}", doc))
    return out


def prometheus_rule_file(policies: list[tuple[str, dict[str, Any]]]) -> str:
    from hub.alerts.policy import parse_policy
    from hub.collectors.catalogue import default_catalogue

    cat = default_catalogue()
    groups = []
    for pid, doc in policies:
        policy = parse_policy(doc)
        rules = []
        for rule in policy.rules:
            promql, _ = cat.alert_query("workloads", rule.metric, rule.aggregation, rule.period, policy.namespace)
            rules.append(
                {
                    "alert": f"{pid}-{rule.name}",
                    "expr": f"{promql} > {rule.threshold_base!r}",
                    "for": f"{int(rule.period * (rule.consecutive - 1))}s",
                    "labels": {"severity": rule.severity},
                }
            )
        groups.append({"name": pid, "interval": f"{RULE_INTERVAL}s", "rules": rules})
    return json.dumps({"groups": groups})  # JSON is YAML


def measure_rules(
    stack: Stack, policies: list[tuple[str, dict[str, Any]]], window: float
) -> tuple[float, float, dict[str, float]]:
    """(baseline CPU/s, rules CPU/s, rule group stats) of the private Prometheus."""
    c0, t0 = cpu_seconds(stack.prom.pid), time.monotonic()
    time.sleep(window)
    baseline = (cpu_seconds(stack.prom.pid) - c0) / (time.monotonic() - t0)
    print(f"alerts: prometheus scrape-only baseline {baseline:.3f} CPU-s/s over {window:.0f}s", flush=True)
    stack.rules.write_text(prometheus_rule_file(policies))
    stack.reload()
    time.sleep(RULE_INTERVAL + 5)  # one full evaluation round before measuring
    c0, t0 = cpu_seconds(stack.prom.pid), time.monotonic()
    time.sleep(window)
    with_rules = (cpu_seconds(stack.prom.pid) - c0) / (time.monotonic() - t0)
    groups = http_json(f"{stack.prom_url}/api/v1/rules?type=alert")["data"]["groups"]
    eval_s = sum(float(g.get("evaluationTime", 0)) for g in groups)
    firing = sum(1 for g in groups for r in g["rules"] if r.get("state") == "firing")
    errors = sum(1 for g in groups for r in g["rules"] if r.get("health") not in ("ok", "unknown"))
    stack.rules.write_text("groups: []\n")
    stack.reload()
    return baseline, with_rules, {"eval_wall_s": eval_s, "firing": firing, "rule_errors": errors, "groups": len(groups)}


PROMQL_RULES = 1000
PROMQL_INTERVAL = 30


def promql_rule_file(tenants: int, count: int = PROMQL_RULES) -> str:
    """``count`` alerting rules of the shapes real stacks ship (cAdvisor per pod, ownership
    joins, node-exporter ratios and rates) over the synthetic exporter's series, in groups of
    100 with a 30 s interval: the file Prometheus evaluates and the hub imports."""
    shapes = [
        'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{namespace="{ns}"}}[5m])) > {t}',
        'container_memory_working_set_bytes{{namespace="{ns}", container!=""}} / 2^20 > {m}',
        'sum by (namespace, owner_name) (kube_replicaset_owner{{namespace="{ns}"}}) > {k}',
        "100 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 > {p}",
        '1 - avg by (node) (rate(node_cpu_seconds_total{{mode="idle"}}[5m])) > {r}',
        "node_load5 > {l}",
    ]
    groups: list[dict[str, Any]] = []
    for i in range(count):
        if i % 100 == 0:
            groups.append({"name": f"bench-{i // 100:02d}", "interval": f"{PROMQL_INTERVAL}s", "rules": []})
        step = i // len(shapes)
        expr = shapes[i % len(shapes)].format(
            ns=f"t-{step % tenants:03d}",
            t=round(0.1 + 0.01 * (step % 150), 2),
            m=64 + 4 * (step % 120),
            k=step % 20,
            p=20 + step % 70,
            r=round(0.2 + 0.005 * (step % 100), 3),
            l=round(0.8 + 0.02 * (step % 100), 2),
        )
        rule: dict[str, Any] = {"alert": f"Bench{i:04d}", "expr": expr, "labels": {"severity": "warning"}}
        if i % 3:
            rule["for"] = "1m"
        groups[-1]["rules"].append(rule)
    return json.dumps({"groups": groups})


def measure_promql(stack: Stack, work: Path, tenants: int, window: float, cycles: int) -> dict[str, Any]:
    """The PromQL-rule run: Prometheus evaluating ``PROMQL_RULES`` imported-shape rules (CPU per
    30 s round above its scrape-only baseline) vs the hub importing the same file and evaluating
    it (hub process + Prometheus serving the hub's queries, per cycle; median of ``cycles``)."""
    from hub.alerts.cycle import CycleRunner
    from hub.alerts.rule_import import ImportOptions, import_rule_texts
    from hub.collectors.catalogue import default_catalogue
    from hub.collectors.prometheus import PrometheusClient
    from hub.store.alerts import AlertStore
    from hub.timeutil import FakeClock

    text = promql_rule_file(tenants)
    c0, t0 = cpu_seconds(stack.prom.pid), time.monotonic()
    time.sleep(window)
    baseline = (cpu_seconds(stack.prom.pid) - c0) / (time.monotonic() - t0)
    stack.rules.write_text(text)
    stack.reload()
    time.sleep(PROMQL_INTERVAL + 5)
    c0, t0 = cpu_seconds(stack.prom.pid), time.monotonic()
    time.sleep(window)
    with_rules = (cpu_seconds(stack.prom.pid) - c0) / (time.monotonic() - t0)
    groups = http_json(f"{stack.prom_url}/api/v1/rules?type=alert")["data"]["groups"]
    prom_firing = sum(1 for g in groups for r in g["rules"] if r.get("state") == "firing")
    stack.rules.write_text("groups: []\n")
    stack.reload()
    prom_round = (with_rules - baseline) * PROMQL_INTERVAL
    print(
        f"alerts-promql: prometheus with {PROMQL_RULES} rules: {with_rules:.3f} CPU-s/s (baseline {baseline:.3f}) -> "
        f"{prom_round:.3f} CPU-s per {PROMQL_INTERVAL}s round; {prom_firing} firing",
        flush=True,
    )
    time.sleep(SCRAPE)
    imported = import_rule_texts(
        [("bench-rules.json", text)], ImportOptions(receivers=({"email": "oncall@bench.example"},))
    )
    counts = imported.counts()
    assert not imported.errors and counts["imported"] + counts["changed"] == PROMQL_RULES, counts
    db = sqlite_store(work)("hub-promql")
    db.migrate()
    store = AlertStore(db)
    for k, doc in enumerate(imported.policies):
        from hub.alerts.policy import parse_policy

        p = parse_policy(doc)
        store.insert_policy(policy_id=f"imp-{k:02d}", level=p.level, namespace=None, name=p.name,
                            document=p.to_document(), enabled=True, actor="bench", now=0)  # fmt: skip
    prom = PrometheusClient(stack.prom_url, timeout=120)
    clock = FakeClock(0)
    runner = CycleRunner(
        store=store,
        build_query=default_catalogue().alert_query,
        run_query=lambda q, start, end, step: prom.range(q, start=start, end=end, step=step),
        clock=clock,
        quota_per_hour=0,
        tick_seconds=PROMQL_INTERVAL,
    )
    slot = (time.time() // PROMQL_INTERVAL) * PROMQL_INTERVAL - PROMQL_INTERVAL
    runner.policies()
    results = []
    for k in range(cycles):
        db.execute("DELETE FROM alert_slots")
        clock.set(slot + 1)
        p0 = cpu_seconds(stack.prom.pid)
        h0, w0 = time.process_time(), time.perf_counter()
        if os.environ.get("KUBEHUB_BENCH_PROFILE") and k == 1:  # where the hub's time goes (not measured)
            import cProfile

            cProfile.runctx("runner.run_once()", globals(), {"runner": runner}, os.environ["KUBEHUB_BENCH_PROFILE"])
            continue
        report = runner.run_once()
        wall = time.perf_counter() - w0
        hub_cpu = time.process_time() - h0
        prom_cpu = max(0.0, cpu_seconds(stack.prom.pid) - p0 - baseline * wall)
        results.append((hub_cpu + prom_cpu, hub_cpu, prom_cpu, wall, report.queries))
        print(
            f"alerts-promql: hub cycle {k + 1}: {report.due_rules} rules due, {report.queries} queries, "
            f"{report.transitions} transitions; wall {wall:.2f}s, hub CPU {hub_cpu:.2f}s, "
            f"prometheus CPU {prom_cpu:.2f}s",
            flush=True,
        )
    prom.close()
    db.close()
    total, hub_cpu, prom_cpu, wall, queries = sorted(results)[len(results) // 2]
    ratio = total / prom_round if prom_round > 0 else float("inf")
    return {"ratio": ratio, "hub_cpu": hub_cpu, "prom_cpu": prom_cpu, "wall": wall, "queries": queries,
            "prom_round": prom_round}  # fmt: skip


def sqlite_store(work: Path) -> Any:
    """Opens the hub's state as the benchmark's SQLite files (the embedded default)."""
    from hub.store import Database

    return lambda name: Database(work / f"{name}.sqlite3")


class PostgresStores:
    """Opens each named state store as a fresh database on a PostgreSQL server; drops them at close."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: list[str] = []

    def __call__(self, name: str) -> Any:
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        from hub.store.postgres import PostgresDatabase

        db_name = f"kh_bench_{name.replace('-', '_')}_{os.getpid()}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db_name}"')
        self.names.append(db_name)
        parts = urlsplit(self.admin_url)
        return PostgresDatabase(urlunsplit((parts.scheme, parts.netloc, "/" + db_name, parts.query, "")))

    def server_cpu(self) -> float:
        """CPU-seconds of the server: the postmaster, its live backends (children in sessions of
        their own) and the backends it has reaped (its ``cutime``/``cstime``)."""
        import psycopg

        try:
            with psycopg.connect(self.admin_url) as conn:
                row = conn.execute("SELECT current_setting('data_directory')").fetchone()
            pid = int(Path(str(row[0]) if row else "", "postmaster.pid").read_text().split()[0])
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, psycopg.Error):
            return 0.0  # another machine's server, or its files are not readable here
        total = sum(int(f) for f in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                child = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(child[1]) == pid:
                total += (int(child[11]) + int(child[12])) / CLK_TCK
        return total

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for db_name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def measure_hub(
    stack: Stack,
    policies: list[tuple[str, dict[str, Any]]],
    work: Path,
    baseline: float,
    cycles: int,
    open_db: Any = None,
) -> dict[str, Any]:
    from hub.alerts.cycle import CycleRunner
    from hub.alerts.policy import parse_policy
    from hub.collectors.catalogue import default_catalogue
    from hub.collectors.prometheus import PrometheusClient
    from hub.store.alerts import AlertStore
    from hub.timeutil import FakeClock

    db = (open_db or sqlite_store(work))("hub-state")
    db.migrate()
    store = AlertStore(db)
    for pid, doc in policies:
        p = parse_policy(doc)
        store.insert_policy(
            policy_id=pid,
            level=p.level,
            namespace=p.namespace,
            name=p.name,
            document=p.to_document(),
            enabled=True,
            actor="bench",
            now=0,
        )
    prom = PrometheusClient(stack.prom_url, timeout=120)
    clock = FakeClock(0)
    runner = CycleRunner(
        store=store,
        build_query=default_catalogue().alert_query,
        run_query=lambda q, start, end, step: prom.range(q, start=start, end=end, step=step),
        clock=clock,
        quota_per_hour=0,
        tick_seconds=60,
    )
    # Every cycle evaluates the latest complete slot (its scrapes have landed): the slot record
    # is cleared between cycles so that every rule is due each time, while the alert states
    # carry over as they would between successive slots. Older slots would need minutes more of
    # history in the private Prometheus for the same measurement.
    slot = (time.time() // 60) * 60 - 60
    results = []
    runner.policies()  # parse the policies once (cached by generation, as in the live engine)
    for k in range(cycles):
        db.execute("DELETE FROM alert_slots")
        clock.set(slot + 1)
        p0 = cpu_seconds(stack.prom.pid)
        h0, w0 = time.process_time(), time.perf_counter()
        report = runner.run_once()
        wall = time.perf_counter() - w0
        hub_cpu = time.process_time() - h0
        prom_cpu = max(0.0, cpu_seconds(stack.prom.pid) - p0 - baseline * wall)
        results.append({"wall": wall, "hub_cpu": hub_cpu, "prom_cpu": prom_cpu, "queries": report.queries,
                        "due": report.due_rules, "transitions": report.transitions, "messages": report.messages,
                        "errors": report.errors})  # fmt: skip
        print(
            f"alerts: hub cycle {k + 1}: {report.due_rules} rules due, {report.queries} queries, "
            f"{report.transitions} transitions, {report.messages} messages queued; wall {wall:.2f}s, "
            f"hub CPU {hub_cpu:.2f}s, prometheus CPU {prom_cpu:.2f}s",
            flush=True,
        )
        if report.errors:
            print(f"alerts: query errors: {report.errors}", file=sys.stderr)
    prom.close()
    db.close()
    return {"cycles": results}


def measure_email(
    stack: Stack, work: Path, n: int, connections: int, open_db: Any = None, *, raw: bool = True
) -> tuple[float, float, float]:
    """Messages/s: the hub through outbox and SmtpNotifier; raw aiosmtplib with EmailMessage
    objects built beforehand; raw aiosmtplib with bytes serialised beforehand."""
    import aiosmtplib

    from hub.alerts.notify.email import SmtpNotifier
    from hub.alerts.notify.notice import Notice
    from hub.alerts.notify.outbox import Dispatcher
    from hub.alerts.notify.render import Renderer
    from hub.alerts.notify.window import message_id_for
    from hub.settings import SmtpSettings
    from hub.store.alerts import AlertStore, CycleWrite
    from hub.timeutil import FakeClock

    db = (open_db or sqlite_store(work))("email-state")
    db.migrate()
    store = AlertStore(db)
    now = time.time()
    w = CycleWrite()
    notices = []
    for i in range(n):
        samples = tuple((now - 60 * (11 - k), 0.5 + 0.05 * k + 0.01 * (i % 7)) for k in range(12))
        notice = Notice(
            key=f"a{i}:firing:1", kind="firing", at=now, alert_id=f"a{i:05d}", policy_id="pol-1", policy_name="bench",
            level="workload", namespace=f"t-{i % 100:03d}", tenant=f"t-{i % 100:03d}", rule=f"r{i % 100:03d}",
            severity="critical", entity=f"t-{i % 100:03d}/deployment/wl-{i % 20:02d}",
            labels={"namespace": f"t-{i % 100:03d}", "kind": "deployment", "workload": f"wl-{i % 20:02d}"},
            metric="workload_cpu_usage", aggregation="avg", comparator=">", threshold=0.8, unit="cores", value=1.05,
            query="avg_over_time((...)[60s:15s])", period=60, consecutive=3, started_at=now - 600, fired_at=now - 480,
            last_breach=now, periods=9, samples=samples, send_number=1,
        )  # fmt: skip
        notices.append(notice)
        w.notices.append(
            {"key": notice.key, "alert_id": notice.alert_id, "policy_id": "pol-1", "namespace": notice.namespace,
             "kind": "firing", "at": now, "status": "queued", "payload": notice.to_json()}
        )  # fmt: skip
        mkey = f"now:pol-1:oncall-{i % 50}@bench.example:{i}"
        w.messages.append(
            {"mkey": mkey, "tenant": notice.tenant, "policy_id": "pol-1", "recipient": f"oncall-{i % 50}@bench.example",
             "language": "en", "notices": [notice.key], "not_before": now, "reason": "",
             "message_id": message_id_for(mkey)}
        )  # fmt: skip
    store.commit_cycle(w, now=now)
    smtp = SmtpSettings(host="127.0.0.1", port=stack.smtp_port, connections=connections, timeout=30)
    renderer = Renderer(public_url="http://console.example")
    dispatcher = Dispatcher(
        store=store, notifier=SmtpNotifier(smtp), renderer=renderer, clock=FakeClock(now + 1), batch=200
    )
    # Both sides are warmed up untimed (here: the templates' compilation, numpy's first calls;
    # below: the standard library's MIME generator), so neither pays a once-per-process cost
    # inside its 1,000 messages: the raw side's first-use cost had lifted email_ratio by up to
    # 0.3 in the first run of a process.
    from hub.alerts.notify.delivery import OutgoingEmail
    from hub.alerts.notify.email import serialize_message

    warm = renderer.render([notices[0]])
    serialize_message(OutgoingEmail("<warm@bench>", "warm@bench.example", warm.subject, warm.text, warm.html,
                                    warm.images), sender=smtp.sender)  # fmt: skip
    t0 = time.perf_counter()
    report = dispatcher.deliver_all_due()
    hub_wall = time.perf_counter() - t0
    if report.sent != n:
        raise SystemExit(f"alerts bench: the hub sent {report.sent} of {n} messages ({report})")
    db.close()
    if not raw:
        return n / hub_wall, 0.0, 0.0

    # Raw: the same rendered content as standard-library EmailMessage objects built BEFORE the
    # clock starts (as aiosmtplib's documentation sends them), the same connection count and
    # recipient partition; aiosmtplib serialises each one as it sends it.
    from email.message import EmailMessage

    def _email_message(r: Any, sender: str, rcpt: str, message_id: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, rcpt, r.subject
        msg["Message-ID"] = message_id
        msg.set_content(r.text)
        msg.add_alternative(r.html, subtype="html")
        for cid, png in r.images:
            msg.get_payload()[1].add_related(png, maintype="image", subtype="png", cid=f"<{cid}>")
        return msg

    prepared = []
    for i, notice in enumerate(notices):
        rcpt = f"oncall-{i % 50}@bench.example"
        msg = _email_message(renderer.render([notice]), smtp.sender, rcpt, f"<raw-{i}@bench>")
        prepared.append((msg["To"], msg))
    from aiosmtplib.email import flatten_message

    flatten_message(_email_message(renderer.render([notices[0]]), smtp.sender, "warm@bench.example", "<warm@bench>"))

    # And the floor: bytes already serialised (by the hub's own serialiser, untimed), handed to
    # aiosmtplib.sendmail. Nothing but the SMTP conversation is left in this one.
    wire = []
    for i, notice in enumerate(notices):
        r = renderer.render([notice])
        rcpt = f"oncall-{i % 50}@bench.example"
        email = OutgoingEmail(f"<wire-{i}@bench>", rcpt, r.subject, r.text, r.html, r.images)
        wire.append((rcpt, serialize_message(email, sender=smtp.sender)))

    async def raw_send(items: list[tuple[str, Any]], as_bytes: bool) -> None:
        # The hub's partition (crc32 of the recipient): str hash() changes with every process's
        # hash seed, which split the 50 recipients anywhere from 50/50 to 64/36 between two
        # connections and moved the raw rate (and email_ratio) from run to run.
        groups: list[list[Any]] = [[] for _ in range(connections)]
        for rcpt, msg in items:
            groups[zlib.crc32(rcpt.lower().encode()) % connections].append((rcpt, msg))

        async def one(group: Sequence[Any]) -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=stack.smtp_port, start_tls=False, timeout=30)
            await client.connect()
            for rcpt, msg in group:
                if as_bytes:
                    await client.sendmail(smtp.sender, [rcpt], msg)
                else:
                    await client.send_message(msg, sender=smtp.sender, recipients=[rcpt])
            await client.quit()

        await asyncio.gather(*(one(g) for g in groups if g))

    t0 = time.perf_counter()
    asyncio.run(raw_send(prepared, False))
    raw_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    asyncio.run(raw_send(wire, True))
    wire_wall = time.perf_counter() - t0
    print(
        f"alerts: email stage: hub {n} messages in {hub_wall:.2f}s ({n / hub_wall:.0f}/s, rendering and outbox "
        f"bookkeeping included); raw aiosmtplib.send_message of pre-built EmailMessages {raw_wall:.2f}s "
        f"({n / raw_wall:.0f}/s); raw aiosmtplib.sendmail of pre-serialised bytes {wire_wall:.2f}s "
        f"({n / wire_wall:.0f}/s); {connections} connections",
        flush=True,
    )
    return n / hub_wall, n / raw_wall, n / wire_wall


def measure_postgres(
    url: str,
    stack: Stack,
    policies: list[tuple[str, dict[str, Any]]],
    work: Path,
    baseline: float,
    cycles: int,
    emails: int,
    connections: int,
    *,
    sqlite_wall: float,
    sqlite_rate: float,
) -> str:
    """The cycle and the email stage again with the state in PostgreSQL; fields for the last line."""
    if url == "sandbox":
        from sandbox.core import Sandbox

        url = Sandbox().ensure_postgresql()
    stores = PostgresStores(url)
    try:
        c0 = stores.server_cpu()
        hub = measure_hub(stack, policies, work, baseline, cycles, open_db=stores)
        server_cpu = stores.server_cpu() - c0
        walls = sorted(c["wall"] for c in hub["cycles"])
        cpus = sorted(c["hub_cpu"] for c in hub["cycles"])
        wall = walls[len(walls) // 2]
        c0 = stores.server_cpu()
        rate, _, _ = measure_email(stack, work, emails, connections, open_db=stores, raw=False)
        email_server_cpu = stores.server_cpu() - c0
    finally:
        stores.close()
    print(
        f"alerts: on PostgreSQL: cycle wall {wall:.2f}s (SQLite {sqlite_wall:.2f}s), "
        f"hub CPU {cpus[len(cpus) // 2]:.2f}s per cycle, "
        f"PostgreSQL server CPU {server_cpu / max(1, cycles):.2f}s per cycle; email {rate:.0f}/s "
        f"(SQLite {sqlite_rate:.0f}/s), server CPU {email_server_cpu:.2f}s for {emails} messages",
        flush=True,
    )
    return f" pg_wall_x={wall / sqlite_wall:.2f} pg_email_x={sqlite_rate / rate:.2f}"


def email_only(runs: int) -> int:
    """``--email-only``: part (c) alone, ``runs`` times, each with a fresh state store."""
    from hub.settings import SmtpSettings

    connections = SmtpSettings().connections
    work = Path(tempfile.mkdtemp(prefix="kubehub-bench-email-"))
    stack = Stack(work, nodes=0, pods=0, tenants=0)
    try:
        stack.start_smtp()
        ratios = []
        for k in range(runs):
            run = work / f"run-{k}"
            run.mkdir()
            hub_rate, raw_rate, wire_rate = measure_email(stack, run, 1000, connections)
            ratios.append(hub_rate / raw_rate)
            print(
                f"alerts-email: run {k + 1}: email_ratio={hub_rate / raw_rate:.2f} "
                f"email_wire_ratio={hub_rate / wire_rate:.2f} load={os.getloadavg()[0]:.2f}",
                flush=True,
            )
        ratios.sort()
        print(f"alerts-email: email_ratio={ratios[len(ratios) // 2]:.2f} (median of {runs}) goal >= 1.0")
        return 0
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller scale for CI (a few minutes)")
    parser.add_argument("--exporter", nargs=4, metavar=("PORT", "NODES", "PODS", "NAMESPACES"), help=argparse.SUPPRESS)
    parser.add_argument("--smtp-sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--cycles", type=int, help="hub cycles to measure (default 5, quick 3)")
    parser.add_argument(
        "--promql-only",
        action="store_true",
        help=f"only the PromQL-rule run ({PROMQL_RULES} imported rules, hub vs Prometheus; goal ratio <= 1.1)",
    )
    parser.add_argument(
        "--email-only",
        nargs="?",
        type=int,
        const=1,
        metavar="RUNS",
        help="only part (c), the email stage, RUNS times (default 1) against its own SMTP sink (no Prometheus)",
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="sandbox",
        metavar="URL",
        help="measure the cycle and the email stage again with the state in PostgreSQL "
        "(a superuser URL of the server's postgres database; bare: the sandbox's server)",
    )
    args = parser.parse_args(argv)
    if args.exporter:
        port, nodes, pods, namespaces = map(int, args.exporter)
        run_exporter(port, nodes, pods, namespaces)
        return 0
    if args.smtp_sink:
        run_smtp_sink(args.smtp_sink)
        return 0
    if args.email_only:
        return email_only(args.email_only)
    if not Path(PROMETHEUS).exists():
        raise SystemExit("alerts bench: needs the prometheus binary (apt-get install prometheus)")

    nodes, pods, tenants, rules = (100, 2000, 10, 20) if args.quick else (1000, 20000, 100, 100)
    window = 45.0 if args.quick else 90.0
    cycles = args.cycles or (3 if args.quick else 5)
    emails = 1000
    from hub.settings import SmtpSettings

    connections = SmtpSettings().connections
    work = Path(tempfile.mkdtemp(prefix="kubehub-bench-alerts-"))
    stack = Stack(work, nodes=nodes, pods=pods, tenants=tenants)
    started = time.monotonic()
    try:
        print(
            f"alerts: {tenants} tenants x {rules} rules = {tenants * rules} rules over {nodes} nodes and {pods} pods; "
            f"private Prometheus {stack.prom_url} (scrape {SCRAPE}s, rule interval {RULE_INTERVAL}s)",
            flush=True,
        )
        stack.start()
        time.sleep(2 * SCRAPE)  # a few samples per series, so rate() has something to work with
        if args.promql_only:
            pq = measure_promql(stack, work, tenants, window, cycles)
            print(
                f"alerts-promql: ratio={pq['ratio']:.2f} hub_cpu_s={pq['hub_cpu']:.3f} "
                f"prom_serving_cpu_s={pq['prom_cpu']:.3f} prom_rule_cpu_s={pq['prom_round']:.3f} "
                f"wall_s={pq['wall']:.2f} queries={pq['queries']} rules={PROMQL_RULES} "
                f"load={os.getloadavg()[0]:.1f} (goal ratio <= 1.1)"
            )
            return 0
        policies = tenant_policies(tenants, rules)
        keys = {(k[0], k[1], k[2]) for k in KEYS[: min(rules, len(KEYS))]}
        baseline, with_rules, stats = measure_rules(stack, policies, window)
        prom_rule_cycle = (with_rules - baseline) * RULE_INTERVAL
        print(
            f"alerts: prometheus with {tenants * rules} rules: {with_rules:.3f} CPU-s/s -> {prom_rule_cycle:.2f} CPU-s "
            f"per {RULE_INTERVAL}s cycle above baseline; rule groups report {stats['eval_wall_s']:.2f}s of evaluation, "
            f"{stats['firing']} firing, {stats['rule_errors']} unhealthy rules",
            flush=True,
        )
        time.sleep(SCRAPE)  # let Prometheus settle back to scrape-only
        hub = measure_hub(stack, policies, work, baseline, cycles)
        # The first cycle pays for what every later one reuses (connection, parsed policies are
        # not counted: parsed before); report the median of the full cycles.
        full = sorted(hub["cycles"], key=lambda c: c["hub_cpu"] + c["prom_cpu"])
        mid = full[len(full) // 2]
        hub_cycle_cpu = mid["hub_cpu"] + mid["prom_cpu"]
        walls = sorted(c["wall"] for c in hub["cycles"])
        wall = walls[len(walls) // 2]
        queries = max(c["queries"] for c in hub["cycles"])
        hub_rate, raw_rate, wire_rate = measure_email(stack, work, emails, connections)
        ratio = hub_cycle_cpu / prom_rule_cycle if prom_rule_cycle > 0 else float("inf")
        pq = measure_promql(stack, work, tenants, window, cycles)
        pg_fields = ""
        if args.postgres:
            pg_fields = measure_postgres(args.postgres, stack, policies, work, baseline, cycles, emails, connections,
                                         sqlite_wall=wall, sqlite_rate=hub_rate)  # fmt: skip
        print(
            f"alerts: hub cycle {hub_cycle_cpu:.2f} CPU-s (hub {mid['hub_cpu']:.2f} + prometheus "
            f"{mid['prom_cpu']:.2f}) "
            f"vs prometheus rules {prom_rule_cycle:.2f} CPU-s per cycle; distinct keys {len(keys)}; "
            f"load average {os.getloadavg()[0]:.1f}; bench took {time.monotonic() - started:.0f}s",
            flush=True,
        )
        print(
            f"alerts: ratio={ratio:.3f} wall_s={wall:.2f} queries={queries} email_ratio={hub_rate / raw_rate:.2f} "
            f"email_wire_ratio={hub_rate / wire_rate:.2f} rules={tenants * rules} hub_cpu_s={hub_cycle_cpu:.2f} "
            f"prom_rule_cpu_s={prom_rule_cycle:.2f} keys={len(keys)} promql_ratio={pq['ratio']:.2f}{pg_fields}"
        )
        return 0
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
