"""How cost grows: the whole hub on a private sandbox at one of three sizes (issue 15, docs/scale.md).

    .venv/bin/python bench/scale.py --size small|medium|large [--port-base 25000] [--dir D] [--keep]
                                    [--tenants T] [--window 90] [--skip alerts,monitoring,inventory,logs]
                                    [--json FILE]

Sizes (rules and log lines in proportion to the cluster, as issue 15 asks):

    size    nodes   pods    tenants  bench rules  log lines  memory it needs
    tiny       10     100      1       100        20,000     4 GiB   (a check of this script)
    small     100   2,000     10     1,000       100,000     5 GiB
    medium    300   6,000     30     3,000       300,000     8 GiB
    large   1,000  20,000    100    10,000     1,000,000    16 GiB   (~15 min to come up)

What it does, in order, saying each step as it starts (long steps say what they wait for):

1. ``up``: a PRIVATE sandbox (never the shared one) in ``--dir`` (default a fresh temporary
   directory) at ``--port-base`` (default 25000) with the hub, brought up as ``kubehub sandbox up
   --nodes N --pods P --tenants T`` does (sandbox/core.py; T tenant workspaces of 3 projects, 10
   users and ~11 policies each, in proportion: 10, 30, 100; ``--tenants`` overrides); the wall
   time of that one call is ``up_s``.
2. at rest, hub running (``--window`` seconds, at least 60, after 30 s): the hub's CPU
   (utime+stime of its process group from /proc, as cores) and RSS (sampled every 5 s), its rule engine's cycles
   (``kubehub_alert_cycle_seconds`` from the hub's /metrics: count, mean wall, cycles in error),
   Prometheus's CPU, and the API server's requests (``apiserver_request_total`` by verb, resource
   and subresource; watches counted apart: a watch is one long request).
3. memory, at the end of that window: every component's RSS (its whole process group, ``status
   --json`` ``rss_mb``) and the total; Prometheus's head series (``/api/v1/status/tsdb``).
4. hub stopped, the same window again: the API server's and Prometheus's rates without the hub.
   ``hub_api_rps`` is the difference (requests per second the hub causes, watches aside), and
   the resources that make most of it are printed.
5. the benches, on this sandbox's engines, each with its own hub (the sandbox's stays stopped so
   that the two do not compete for two cores):
   - alerts: the rule engine's full cycle (``measure_hub`` of bench/alerts.py) over ``rules``
     workload rules spread over the sandbox's namespaces, against the sandbox's Prometheus:
     wall, the hub's CPU and Prometheus's CPU above its hub-less baseline, median of 3 cycles;
   - monitoring: ``bench/monitoring.py --prometheus <this Prometheus>`` (top-10 pods ranking
     p95 through the hub vs the raw ``topk``; a 24 h workload chart);
   - inventory: ``bench/inventory.py --kubeconfig <this cluster>`` (cached listing vs raw LIST,
     initial sync, watch-cache memory per 10,000 pods);
   - logs: ``bench/logs.py --lines <lines> --es-url <this Elasticsearch>`` (search p95 on both
     stores, ingest rate, disk per million lines on each store).
   The benches run as their own processes, so their output is shown as it comes (prefixed
   ``|``) and their last line is read.
6. the sandbox is brought down and reset (``--keep`` leaves it running, with its hub restarted).

Output: a Markdown table row (the header first) and, as the last line,
``scale: size=<s> nodes=<n> pods=<n> up_s=<...> rss_gib=<...> ... load=<1-min load at the start>/<highest seen>``.
A figure that could not be measured is ``–`` and the reason is printed above. Exit status 2
when the sandbox did not come up or the machine lacks the memory, else 0. Not part of ``make
test`` or ``make bench``: ``make bench-scale`` runs the three sizes in turn.

Over 400 lines because bringing the sandbox up, the two at-rest windows, driving the four benches
and the report are one run per size; the benches themselves are imported or run, not copied.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.alerts import cpu_seconds, measure_hub, tenant_policies  # noqa: E402
from bench.apiserver import Key, difference, request_totals  # noqa: E402
from sandbox.core import Sandbox  # noqa: E402
from sandbox.procs import group_members, port_in_use, rss_bytes, tail  # noqa: E402


@dataclass(frozen=True)
class Size:
    name: str
    nodes: int
    pods: int
    tenants: int  # sandbox up --tenants; x RULES_PER_TENANT rules for the alert cycle
    lines: int  # log lines for bench/logs.py
    need_gib: float  # memory available before it starts
    rank_iterations: int  # ranking requests per side in bench/monitoring.py


RULES_PER_TENANT = 100
SIZES = {
    s.name: s
    for s in (
        Size("tiny", 10, 100, 1, 20_000, 4, 30),
        Size("small", 100, 2_000, 10, 100_000, 5, 60),
        Size("medium", 300, 6_000, 30, 300_000, 8, 40),
        Size("large", 1_000, 20_000, 100, 1_000_000, 16, 20),
    )
}
BENCHES = ("alerts", "monitoring", "inventory", "logs")
NAN = float("nan")

_load_max = 0.0


def load() -> float:
    global _load_max
    now = os.getloadavg()[0]
    _load_max = max(_load_max, now)
    return now


def say(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')} load {load():.1f}] {message}", flush=True)


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return NAN


def http_json(url: str, timeout: float = 60) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def group_cpu(pgid: int) -> float:
    """CPU-seconds (utime+stime) of the live processes of a process group."""
    total = 0.0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(pid)
    return total


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN|[+-]Inf)$")


def hub_metrics(url: str) -> dict[str, float]:
    """The hub's /metrics summed by name plus ``{result}`` for the cycle counter."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        out[name] = out.get(name, 0.0) + value
        if name == "kubehub_alert_cycles_total":
            result = re.search(r'result="([^"]*)"', labels)
            key = f"{name}:{result.group(1) if result else ''}"
            out[key] = out.get(key, 0.0) + value
    return out


def api_rates(before: dict[Key, float], after: dict[Key, float], seconds: float) -> tuple[float, dict[Key, float]]:
    """(requests/s but watches, per-key requests/s) between two readings of the API server."""
    per_key = {k: v / seconds for k, v in difference(after, before).items()}
    return sum(v for k, v in per_key.items() if k[0] != "WATCH"), per_key


# ---- the steps ---------------------------------------------------------------------------------


def tenancy_option(tenants: int) -> dict[str, int]:
    """``tenants=N`` for ``Sandbox.up`` (the sandbox's scale tenancy, ``kubehub sandbox up
    --tenants N``), or nothing with a sandbox that predates it or when N is 0."""
    return {"tenants": tenants} if tenants and "tenants" in inspect.signature(Sandbox.up).parameters else {}


def bring_up(sb: Sandbox, size: Size, tenants: int, results: dict[str, Any]) -> bool:
    option = tenancy_option(tenants)
    results["tenants"] = option.get("tenants", 0)
    say(
        f"up: private sandbox in {sb.dir}, port base {sb.config.port_base}: {size.nodes} nodes, {size.pods} pods, "
        f"with the hub; "
        + (f"{tenants} tenant workspaces (--tenants {tenants})" if option else "the demo tenancy only")
        + ("; at this size this takes about 15 minutes" if size.nodes >= 1000 else "")
    )
    for attempt in (1, 2):
        started = time.monotonic()
        try:
            status = sb.up(nodes=size.nodes, pods=size.pods, hub=True, **option)  # type: ignore[arg-type]
            results["up_s"] = time.monotonic() - started
            seeded = status.get("tenants") or {}
            results["tenancy"] = {k: seeded.get(k) for k in ("workspaces", "projects", "users", "policies")}
            say(
                f"up: done in {results['up_s']:.0f} s"
                + (
                    f"; tenancy: {seeded.get('workspaces')} workspaces, {seeded.get('projects')} projects, "
                    f"{seeded.get('users')} users, {seeded.get('policies')} policies"
                    if seeded
                    else ""
                )
            )
            return True
        except Exception as exc:
            say(f"up: failed ({exc})")
            log = getattr(exc, "log", None)
            if isinstance(log, Path):
                print(tail(log, 20), flush=True)
            if attempt == 2:
                return False
            say("up: trying once more")
    return False


def measure_memory(sb: Sandbox, results: dict[str, Any]) -> None:
    status = sb.status()
    comps = sorted(status["components"], key=lambda c: -c["rss_mb"])
    results["rss_gib"] = status["rss_mb"] / 1024
    results["rss_mb"] = {c["name"]: c["rss_mb"] for c in comps}
    results["prom_rss_gib"] = results["rss_mb"].get("prometheus", 0.0) / 1024
    say(
        f"memory: {results['rss_gib']:.2f} GiB in all: "
        + ", ".join(f"{c['name']} {c['rss_mb']:.0f} MiB" for c in comps if c["rss_mb"] >= 1)
    )
    try:
        head = http_json(sb.prometheus_url + "/api/v1/status/tsdb")["data"]["headStats"]
        results["head_series"] = int(head["numSeries"])
        say(f"prometheus: {results['head_series']:,} head series")
    except (OSError, KeyError, ValueError) as exc:
        say(f"prometheus: head series not read ({exc})")


def measure_rest(sb: Sandbox, window: float, results: dict[str, Any]) -> None:
    hub_pid, prom_pid = sb.sup.pid("hub"), sb.sup.pid("prometheus")
    if hub_pid is None or prom_pid is None:
        say("at rest: the hub or Prometheus is not running; skipped")
        measure_memory(sb, results)
        return
    kubeconfig = sb.kubeconfig
    say("at rest: waiting 30 s for the hub's first cycles, then measuring")
    time.sleep(30)

    def window_of(hub: bool) -> dict[str, Any]:
        rss: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss.append(rss_bytes(hub_pid))
                stop.wait(5)

        sampler = threading.Thread(target=sample, daemon=True)
        if hub:
            sampler.start()
        m0 = hub_metrics(sb.hub_url) if hub else {}
        a0, p0, h0, t0 = request_totals(kubeconfig), cpu_seconds(prom_pid), group_cpu(hub_pid), time.monotonic()
        time.sleep(window)
        a1, p1, h1, t1 = request_totals(kubeconfig), cpu_seconds(prom_pid), group_cpu(hub_pid), time.monotonic()
        m1 = hub_metrics(sb.hub_url) if hub else {}
        stop.set()
        rps, per_key = api_rates(a0, a1, t1 - t0)
        return {"rps": rps, "keys": per_key, "prom_cpu": (p1 - p0) / (t1 - t0), "hub_cpu": (h1 - h0) / (t1 - t0),
                "rss": rss, "m0": m0, "m1": m1}  # fmt: skip

    say(f"at rest, hub running: {window:.0f} s of the hub's CPU and RSS, its cycles, the API server's requests")
    on = window_of(True)
    cycles = on["m1"].get("kubehub_alert_cycle_seconds_count", 0) - on["m0"].get("kubehub_alert_cycle_seconds_count", 0)
    wall = on["m1"].get("kubehub_alert_cycle_seconds_sum", 0) - on["m0"].get("kubehub_alert_cycle_seconds_sum", 0)
    errors = on["m1"].get("kubehub_alert_cycles_total:error", 0) - on["m0"].get("kubehub_alert_cycles_total:error", 0)
    queries = on["m1"].get("kubehub_prometheus_queries_total", 0) - on["m0"].get("kubehub_prometheus_queries_total", 0)
    results.update(
        hub_cpu_rest=on["hub_cpu"],
        hub_rss_mib=statistics.mean(on["rss"]) / 2**20 if on["rss"] else NAN,
        hub_rss_max_mib=max(on["rss"]) / 2**20 if on["rss"] else NAN,
        live_cycles=cycles,
        live_cycle_wall_s=wall / cycles if cycles else NAN,
        live_cycle_errors=errors,
        hub_promql_per_s=queries / window,
    )
    say(
        f"at rest: hub {on['hub_cpu']:.3f} cores, RSS {results['hub_rss_mib']:.0f} MiB (max "
        f"{results['hub_rss_max_mib']:.0f}); {cycles:.0f} rule-engine cycles, mean wall "
        f"{results['live_cycle_wall_s']:.2f} s, {errors:.0f} in error; {queries / window:.2f} PromQL queries/s; "
        f"API server {on['rps']:.2f} requests/s (watches aside); Prometheus {on['prom_cpu']:.3f} cores"
    )

    measure_memory(sb, results)  # after minutes of scraping and the hub's work, before the hub stops
    say(f"hub stopped: the same {window:.0f} s without it (the API server's other clients, Prometheus alone)")
    sb.sup.stop("hub")
    time.sleep(5)
    off = window_of(False)
    results["hub_api_rps"] = max(0.0, on["rps"] - off["rps"])
    if on["rps"] < off["rps"]:
        say(
            "hub stopped: the API server served more without the hub than with it: its other clients varied "
            "more than the hub's share, so the difference says nothing; read the per-resource figures below"
        )
    results["prom_cpu_base"] = off["prom_cpu"]
    results["hub_prom_cpu"] = on["prom_cpu"] - off["prom_cpu"]
    keys = {k: v - off["keys"].get(k, 0.0) for k, v in on["keys"].items() if k[0] != "WATCH"}
    top = sorted(((k, v) for k, v in keys.items() if v >= 0.01), key=lambda kv: -kv[1])[:5]
    results["hub_api_top"] = {"/".join(x for x in k if x): round(v, 2) for k, v in top}
    say(
        f"hub stopped: API server {off['rps']:.2f} requests/s, Prometheus {off['prom_cpu']:.3f} cores -> the hub "
        f"causes {results['hub_api_rps']:.2f} requests/s (most: "
        + ", ".join(f"{k} {v:.2f}/s" for k, v in results["hub_api_top"].items())
        + f") and {results['hub_prom_cpu']:.3f} cores of Prometheus"
    )


def sandbox_namespaces(sb: Sandbox) -> list[str]:
    """The namespaces with pods, busiest first (from kube-state-metrics through Prometheus)."""
    q = urllib.parse.quote("count by (namespace) (kube_pod_info)")
    rows = http_json(f"{sb.prometheus_url}/api/v1/query?query={q}")["data"]["result"]
    return [r["metric"]["namespace"] for r in sorted(rows, key=lambda r: -float(r["value"][1]))]


def measure_alerts(sb: Sandbox, size: Size, results: dict[str, Any]) -> None:
    """bench/alerts.py's hub cycle (planning, the PromQL, evaluation, state, outbox), on the
    sandbox's Prometheus with its own rule set spread over the sandbox's namespaces."""
    prom_pid = sb.sup.pid("prometheus")
    namespaces = sandbox_namespaces(sb)
    if prom_pid is None or not namespaces:
        say("alerts: no Prometheus or no namespace with pods; skipped")
        return
    policies = tenant_policies(size.tenants, RULES_PER_TENANT)
    for i, (_pid, doc) in enumerate(policies):
        doc["namespace"] = namespaces[i % len(namespaces)]
    rules = size.tenants * RULES_PER_TENANT
    say(f"alerts: {rules} workload rules in {len(policies)} policies over {len(namespaces)} namespaces, 3 cycles")
    baseline = results.get("prom_cpu_base", 0.0)
    stack = SimpleNamespace(prom_url=sb.prometheus_url, prom=SimpleNamespace(pid=prom_pid))
    with tempfile.TemporaryDirectory(prefix="kubehub-bench-scale-alerts-") as work:
        cycles = measure_hub(stack, policies, Path(work), baseline, 3)["cycles"]  # type: ignore[arg-type]
    mid = sorted(cycles, key=lambda c: c["hub_cpu"] + c["prom_cpu"])[len(cycles) // 2]
    results.update(
        rules=rules,
        cycle_wall_s=statistics.median(c["wall"] for c in cycles),
        cycle_hub_cpu_s=mid["hub_cpu"],
        cycle_prom_cpu_s=mid["prom_cpu"],
        cycle_queries=max(c["queries"] for c in cycles),
        cycle_errors=sum(len(c["errors"]) for c in cycles),
    )


def run_bench(name: str, argv: list[str], timeout: float) -> dict[str, str]:
    """Runs ``bench/<name>.py`` as its own process, showing its output; the ``key=value`` fields
    of its last ``<name>:`` line."""
    say(f"{name}: bench/{name}.py {' '.join(argv)}")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / f"{name}.py"), *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")},
    )
    timer = threading.Timer(timeout, proc.terminate)
    timer.start()
    last = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"    | {line.rstrip()}", flush=True)
            if line.startswith(f"{name}: ") and "=" in line:
                last = line
    except BaseException:
        proc.terminate()  # its own finally cleans up what it made
        proc.wait(timeout=120)
        raise
    finally:
        timer.cancel()
    code = proc.wait()
    if code != 0 or not last:
        say(f"{name}: ended with status {code}{' (timed out)' if not timer.is_alive() and code < 0 else ''}")
    return dict(re.findall(r"(\w+)=(\S+)", last))


def run_benches(sb: Sandbox, size: Size, skip: set[str], results: dict[str, Any]) -> None:
    def num(fields: dict[str, str], key: str) -> float:
        try:
            return float(fields[key])
        except (KeyError, ValueError):
            return NAN

    if "alerts" not in skip:
        try:
            measure_alerts(sb, size, results)
        except Exception as exc:  # one bench failing leaves the others' figures
            say(f"alerts: failed ({type(exc).__name__}: {exc})")
    if "monitoring" not in skip:
        f = run_bench("monitoring", ["--prometheus", sb.prometheus_url, "--iterations", str(size.rank_iterations)],
                      timeout=3600)  # fmt: skip
        results.update(
            ranking_hub_p95_ms=num(f, "hub_p95_ms"),
            ranking_raw_p95_ms=num(f, "raw_p95_ms"),
            ranking_ratio=num(f, "ratio"),
            ranking_shared_ratio=num(f, "shared_ratio"),
            chart_p95_ms=num(f, "chart_p95_ms"),
            chart_ratio=num(f, "chart_ratio"),
        )
    if "inventory" not in skip:
        f = run_bench("inventory", ["--kubeconfig", str(sb.kubeconfig), "--iterations", "15"], timeout=3600)
        results.update(
            inventory_ratio=num(f, "ratio"),
            sync_s=num(f, "sync_s"),
            cache_mib_per_10k_pods=num(f, "mem_mib_per_10k_pods"),
        )
    if "logs" not in skip:
        f = run_bench("logs", ["--lines", str(size.lines), "--es-url", sb.elasticsearch_url, "--reps", "5"],
                      timeout=3600)  # fmt: skip
        results.update(
            logs_ratio=num(f, "ratio"),
            embedded_p95_ms=num(f, "embedded_p95_ms"),
            embedded_ingest_lps=num(f, "embedded_ingest_lps"),
            es_ingest_lps=num(f, "es_ingest_lps"),
            embedded_mb_per_m=num(f, "embedded_mb_per_m"),
            es_mb_per_m=num(f, "es_mb_per_m"),
        )


# ---- output ------------------------------------------------------------------------------------

COLUMNS = [  # (header, key, format)
    ("size", "size", "{}"),
    ("nodes", "nodes", "{:,}"),
    ("pods", "pods", "{:,}"),
    ("tenants", "tenants", "{}"),
    ("up s", "up_s", "{:.0f}"),
    ("RSS GiB", "rss_gib", "{:.1f}"),
    ("Prometheus GiB", "prom_rss_gib", "{:.1f}"),
    ("head series", "head_series", "{:,}"),
    ("hub cores at rest", "hub_cpu_rest", "{:.3f}"),
    ("hub RSS MiB", "hub_rss_mib", "{:.0f}"),
    ("API req/s by hub", "hub_api_rps", "{:.1f}"),
    ("rules", "rules", "{:,}"),
    ("cycle wall s", "cycle_wall_s", "{:.2f}"),
    ("cycle CPU-s hub+Prom", "cycle_cpu", "{}"),
    ("ranking p95 hub/raw ms", "ranking", "{}"),
    ("inventory ratio", "inventory_ratio", "{:.3f}"),
    ("sync s", "sync_s", "{:.1f}"),
    ("log lines", "lines", "{:,}"),
    ("logs ES ratio", "logs_ratio", "{:.2f}"),
    ("embedded p95 ms", "embedded_p95_ms", "{:.1f}"),
    ("MB/M lines emb/ES", "disk", "{}"),
    ("load", "load", "{}"),
]
SUMMARY = ["up_s", "rss_gib", "prom_rss_gib", "head_series", "hub_cpu_rest", "hub_rss_mib", "hub_api_rps",
           "live_cycle_wall_s", "rules", "cycle_wall_s", "cycle_hub_cpu_s", "cycle_prom_cpu_s",
           "ranking_hub_p95_ms", "ranking_raw_p95_ms", "ranking_ratio", "chart_ratio", "inventory_ratio", "sync_s",
           "logs_ratio", "embedded_p95_ms", "embedded_mb_per_m", "es_mb_per_m"]  # fmt: skip


def cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def report(results: dict[str, Any]) -> None:
    r = dict(results)
    r["cycle_cpu"] = f"{cell(r.get('cycle_hub_cpu_s'), '{:.2f}')}+{cell(r.get('cycle_prom_cpu_s'), '{:.2f}')}"
    r["ranking"] = f"{cell(r.get('ranking_hub_p95_ms'), '{:.0f}')}/{cell(r.get('ranking_raw_p95_ms'), '{:.0f}')}"
    r["disk"] = f"{cell(r.get('embedded_mb_per_m'), '{:.0f}')}/{cell(r.get('es_mb_per_m'), '{:.0f}')}"
    r["load"] = f"{r['load_start']:.1f}/{r['load_max']:.1f}"
    print("| " + " | ".join(h for h, _, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    print("| " + " | ".join(cell(r.get(k), f) for _, k, f in COLUMNS) + " |")
    fields = " ".join(f"{k}={cell(r.get(k), '{:.4g}' if isinstance(r.get(k), float) else '{}')}" for k in SUMMARY)
    print(
        f"scale: size={r['size']} nodes={r['nodes']} pods={r['pods']} {fields} "
        f"tenants={r.get('tenants', 0)} load={r['load']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=list(SIZES), default="small")
    ap.add_argument("--port-base", type=int, default=25000, help="the private sandbox's ports (default 25000)")
    ap.add_argument("--dir", help="the private sandbox's directory (default: a fresh temporary one)")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running (hub restarted) afterwards")
    ap.add_argument("--window", type=float, default=90.0, help="seconds of each at-rest window (at least 60)")
    ap.add_argument("--skip", default="", help=f"comma list of benches not to run: {','.join(BENCHES)}")
    ap.add_argument(
        "--tenants", type=int, help="tenant workspaces seeded (sandbox up --tenants; default: the size's, 0: none)"
    )
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--force", action="store_true", help="start even with less memory available than the size needs")
    args = ap.parse_args(argv)
    size = SIZES[args.size]
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(BENCHES):
        raise SystemExit(f"scale: --skip takes a comma list of {', '.join(BENCHES)}")
    window = max(60.0, args.window)
    results: dict[str, Any] = {
        "size": size.name,
        "nodes": size.nodes,
        "pods": size.pods,
        "lines": size.lines,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": load(),
    }
    available = mem_available_gib()
    say(
        f"size {size.name}: {size.nodes} nodes, {size.pods} pods, {size.tenants * RULES_PER_TENANT} rules, "
        f"{size.lines:,} log lines; {available:.1f} GiB available (needs {size.need_gib:g}), {os.cpu_count()} cpus"
    )
    if available < size.need_gib and not args.force:
        say("not enough memory available for this size (--force to start anyway)")
        return 2
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kubehub-scale-"))
    fresh = not (root / "sandbox.json").exists()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # Elasticsearch runs as its own user when we are root
    sb = Sandbox(root, port_base=args.port_base)
    if fresh and any(port_in_use(sb.port(n)) for n in ("kube-apiserver", "prometheus", "hub")):
        say(f"port base {args.port_base} is in use by something else; choose another with --port-base")
        return 2

    def _terminate(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    code = 0
    try:
        if not bring_up(sb, size, size.tenants if args.tenants is None else args.tenants, results):
            return 2
        measure_rest(sb, window, results)
        run_benches(sb, size, skip, results)
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    finally:
        if args.keep:
            say(f"--keep: the sandbox stays up in {root}; its hub is started again")
            with contextlib.suppress(Exception):
                sb.sup.start(sb._spec_hub())
        else:
            say("stopping and resetting the private sandbox")
            with contextlib.suppress(Exception):
                sb.down()
            with contextlib.suppress(Exception):
                sb.reset()  # also Elasticsearch's data when it lives outside the directory
            if not args.dir:
                shutil.rmtree(root, ignore_errors=True)
    results["load_max"] = max(_load_max, load())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    report(results)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
