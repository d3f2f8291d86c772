"""Benchmark: a window ranking's table from kept points against Prometheus's own subquery (issue 15).

    .venv/bin/python bench/window.py [--quick] [--prometheus URL] [--level workloads] [--window 24h]

A live ranking by a window statistic (``window=24h&stat=avg``) is answered from one table per
subquery step. For the object levels (nodes, workspaces, namespaces, workloads) the hub keeps the
window's points between tables and asks Prometheus only for the ones it lacks
(hub/collectors/monitoring_window.py). Side by side, in the same run, against the same
Prometheus (the sandbox's, or ``--prometheus``):

- **raw**: ``avg_over_time((<the level's expression>)[<window>:<step>])`` as one instant query
  over plain HTTP, the query a table cost before, at ``steps`` consecutive step times;
- **first**: the hub's first table (no points kept: the whole window in range queries of 24
  points, through the hub's own Prometheus client);
- **next**: the tables of the following steps with the points kept (each asks for its new point).

The times are an hour in the past, so every point is final. Each table's values are compared
with the raw answer at the same time (``max_rel_diff``: the largest relative difference over
every entity and step; it must be ~1e-12, not a ranking difference). A raw query that Prometheus
ends at its own query timeout counts with the time it took (a lower bound) and is not compared.

Last line: ``window: level=<...> window=<...> entities=<n> raw_p50_ms=<...> first_ms=<...>
next_p50_ms=<...> ratio=<next p50 / raw p50> first_ratio=<first / raw p50> max_rel_diff=<...>
raw_timeouts=<n>``.
Goal: ``ratio`` well under 1 (a table per step costs one point, not a window of them); ``first``
near the raw query. Not a timed test: it reports, it does not assert.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.monitoring import sandbox_prometheus  # noqa: E402
from hub.collectors.catalogue import ENTITY_LABELS, Filters, default_catalogue, resolution  # noqa: E402
from hub.collectors.monitoring_window import SteppedWindows  # noqa: E402
from hub.collectors.prometheus import PrometheusClient  # noqa: E402
from hub.timeutil import parse_duration  # noqa: E402

METRIC = {"workloads": "workload_cpu_usage", "nodes": "node_cpu_utilisation", "namespaces": "namespace_cpu_usage"}


def raw_stat(session: requests.Session, url: str, promql: str, at: float, keys: tuple[str, ...]) -> dict | None:
    """The raw answer by entity, or None when Prometheus gave up at its own query timeout
    (``--query.timeout``, 2 minutes by default: at 20,000 pods under load the 24 h workload
    subquery does)."""
    data = {"query": promql, "time": f"{at:.3f}", "timeout": "10m"}
    answer = session.post(f"{url}/api/v1/query", data=data, timeout=900).json()
    if answer.get("status") != "success":
        if answer.get("errorType") == "timeout":
            return None
        raise SystemExit(f"window: raw query failed: {answer}")
    return {tuple(r["metric"].get(k, "") for k in keys): float(r["value"][1]) for r in answer["data"]["result"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="6 steps instead of 12")
    ap.add_argument("--steps", type=int, default=0, help="step times to measure (at least 2)")
    ap.add_argument("--prometheus", default="", help="Prometheus URL (default: the sandbox's)")
    ap.add_argument("--level", default="workloads", choices=sorted(METRIC))
    ap.add_argument("--window", default="24h")
    args = ap.parse_args(argv)
    url = args.prometheus or sandbox_prometheus()  # exits saying so when the sandbox's is down
    steps = max(2, args.steps) if args.steps else (6 if args.quick else 12)
    window = parse_duration(args.window)
    step = resolution(window)
    level, metric = args.level, METRIC[args.level]
    keys = ENTITY_LABELS[level]
    catalogue = default_catalogue()
    whole = Filters()
    raw_expr = f"({catalogue.window_expr(level, metric, stat='avg', window_seconds=window, filters=whole)}) >= -Inf"
    client = PrometheusClient(url, timeout=300.0)
    session = requests.Session()
    start = (math.floor(time.time() / step) - steps - math.ceil(3600 / step)) * step + step / 3
    times = [start + i * step for i in range(steps)]
    load = os.getloadavg()[0]
    print(f"window: load average {load:.1f} on {os.cpu_count()} cpus; {url}; {level} {args.window}", flush=True)

    raw_ms: list[float] = []
    hub_ms: list[float] = []
    worst = 0.0
    entities = timeouts = compared = 0
    windows = SteppedWindows()
    key = ("default", "", level, metric, window)
    for at in times:
        t0 = time.perf_counter()
        want = raw_stat(session, url, raw_expr, at, keys)
        raw_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        got = windows.statistic(
            key, catalogue, client, whole, stat="avg", at=at,
            remaining=lambda: 300.0, now=time.time,
        )  # fmt: skip
        hub_ms.append((time.perf_counter() - t0) * 1000)
        table = {tuple(m.get(k, "") for k in keys): v for m, v in zip(got.metrics, got.values, strict=True)}
        entities = len(table)
        if want is None:
            timeouts += 1
            print(f"window: at {at:.0f}: raw timed out after {raw_ms[-1]:.0f} ms, hub {hub_ms[-1]:.1f} ms", flush=True)
            continue
        compared += 1
        if table.keys() != want.keys():
            raise SystemExit(f"window: the entities differ at {at}: {sorted(set(table) ^ set(want))[:5]}")
        for k, v in want.items():
            worst = max(worst, abs(table[k] - v) / max(abs(v), 1e-300))
        print(
            f"window: at {at:.0f}: raw {raw_ms[-1]:.1f} ms, hub {hub_ms[-1]:.1f} ms, {entities} entities",
            flush=True,
        )
    client.close()
    raw_p50 = statistics.median(raw_ms)
    next_p50 = statistics.median(hub_ms[1:])
    print(f"window: load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    print(
        f"window: level={level} window={args.window} entities={entities} raw_p50_ms={raw_p50:.1f} "
        f"first_ms={hub_ms[0]:.1f} next_p50_ms={next_p50:.1f} ratio={next_p50 / raw_p50:.3f} "
        f"first_ratio={hub_ms[0] / raw_p50:.2f} max_rel_diff={worst if compared else math.nan:.1e} "
        f"raw_timeouts={timeouts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
