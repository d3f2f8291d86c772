"""Benchmark: a 24 h workload chart through the hub against the same range queries sent raw, over a
whole day of history at scale (issue 15: "a 24 h workload chart <= 1.0x the raw range queries" at
20,000 pods).

    .venv/bin/python bench/chart.py [--quick] [--pods N] [--sample-step S] [--rounds R]

Why a Prometheus of its own: the scale sandbox writes its day of history at one point an hour
(a finer step for 20,000 pods takes promtool hours on 2 cores), and a chart's rates over a
10-minute window need two points in it, so a 24 h chart there shows only the hours the sandbox
has been up (39 points of 289 in the eleventh look, docs/scale.md). This bench writes a whole day
instead, in the sandbox's series shape (the label sets of docs/metrics-conventions.md as KWOK and
kube-state-metrics expose them), into a private Prometheus (Debian's binary, a spare port, no
scrape targets):

* ``--pods`` pods (20,000; ``--quick`` 2,000) in namespaces of 100 pods, 10 Deployments of 10
  pods each (one ReplicaSet per Deployment), spread over one node per 20 pods;
* per pod ``container_cpu_usage_seconds_total`` (a counter whose rate follows a daily curve, every
  pod a little different) and ``container_memory_working_set_bytes`` every ``--sample-step``
  seconds (300; a day of 20,000 pods at 60 s is 58 M samples for these two alone), and
  ``kube_pod_owner``; per ReplicaSet ``kube_replicaset_owner`` and per Deployment
  ``kube_deployment_spec_replicas``, every 240 s or the sample step if longer (the sandbox
  backfill's inventory step);
* written with ``promtool tsdb create-blocks-from openmetrics``, one file per 2-hour block
  (sandbox/backfill.py's writer).

Then the hub runs as its own process (``kubehub serve`` on a private data directory, as
bench/monitoring.py runs it) against that Prometheus, and one Deployment's 24 h chart (CPU and
memory, step 5 minutes: ``GET /api/v1/monitoring/workloads?start=…&end=…&step=300``) is timed
against the same two catalogue expressions sent raw by the same ``requests`` session,
interleaved, alternating which goes first. The Deployment charted is the first of the middle
namespace, so neither end of the index is favoured.

The last line is ``chart: ratio=<hub p95 / raw p95> hub_p95_ms=… raw_p95_ms=… points=<per series>
pods=… series=… samples=… sample_step_s=… build_s=<history written and converted> load=<1-min load
average before>-><after>``. Goal (issue 15): ratio <= 1.0 at 20,000 pods. Not a timed test: it
reports, it does not assert.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hubproc import ServedHub, free_port, stop_processes  # noqa: E402
from bench.monitoring import p95, prepare_data_dir, timed, workload_chart  # noqa: E402
from sandbox.backfill import Plan, Series, write_windows  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PODS_PER_NAMESPACE = 100
PODS_PER_DEPLOYMENT = 10
PODS_PER_NODE = 20
KSM = {"job": "kube-state-metrics", "instance": "127.0.0.1:9102"}


def _hash(text: str, n: int) -> str:
    """Stable pseudo-random name parts, like the controllers' suffixes."""
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def history(pods: int, plan: Plan) -> Iterator[Series]:
    """Every series the workload chart's expressions read (and the Deployments' replica counts),
    over ``plan``'s day."""
    grid, step = plan.grid, plan.step
    inv = len(plan.inv_grid)
    day = (grid % 86400) / 86400.0
    curve = 0.55 + 0.45 * np.sin(2 * np.pi * (day - 0.3)) ** 2  # busy afternoons, quiet nights
    inv_step = int(plan.inv_grid[1] - plan.inv_grid[0]) if inv > 1 else step
    for first in range(0, pods, PODS_PER_NAMESPACE):
        namespace = f"tenant-{first // PODS_PER_NAMESPACE:04d}"
        for dep_first in range(first, min(pods, first + PODS_PER_NAMESPACE), PODS_PER_DEPLOYMENT):
            deployment = f"svc-{(dep_first - first) // PODS_PER_DEPLOYMENT:02d}"
            replicaset = f"{deployment}-{_hash(namespace + deployment, 10)}"
            members = range(dep_first, min(pods, first + PODS_PER_NAMESPACE, dep_first + PODS_PER_DEPLOYMENT))
            owner = {"namespace": namespace, "owner_is_controller": "true"}
            yield Series(
                "kube_deployment_spec_replicas",
                {**KSM, "namespace": namespace, "deployment": deployment},
                np.full(inv, float(len(members))),
                inv_step,
            )
            yield Series(
                "kube_replicaset_owner",
                {**KSM, **owner, "owner_kind": "Deployment", "owner_name": deployment, "replicaset": replicaset},
                np.ones(inv),
                inv_step,
            )
            for i in members:
                pod = f"{replicaset}-{_hash(str(i), 5)}"
                node = f"kwok-node-{i // PODS_PER_NODE}"
                yield Series(
                    "kube_pod_owner",
                    {**KSM, **owner, "owner_kind": "ReplicaSet", "owner_name": replicaset, "pod": pod},
                    np.ones(inv),
                    inv_step,
                )
                cadvisor = {"job": "kubelet", "instance": node, "node": node, "namespace": namespace, "pod": pod}
                base = 0.05 + (i % 37) / 100.0  # cores at the daily peak
                cpu = base * curve
                counter = np.empty_like(cpu)
                counter[0] = 0.0
                np.cumsum(cpu[:-1] * step, out=counter[1:])
                yield Series("container_cpu_usage_seconds_total", {**cadvisor, "container": "app"}, counter, step)
                memory = np.round((64 + (i % 53) * 8) * 2**20 * (0.85 + 0.15 * curve))
                yield Series("container_memory_working_set_bytes", {**cadvisor, "container": "app"}, memory, step)


def build(work: Path, pods: int, sample_step: int, end: int) -> tuple[Path, int, int]:
    """The day's blocks under ``work/data``; returns (that directory, series, samples)."""
    plan = Plan(end=end, step=sample_step)
    counted = [0]

    def each() -> Iterator[Series]:
        for series in history(pods, plan):
            counted[0] += 1
            yield series

    files, samples = write_windows(each(), plan, work)
    data = work / "data"
    data.mkdir()

    def convert(path: Path) -> subprocess.CompletedProcess[str]:
        argv = [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(data)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        path.unlink()
        return done

    with ThreadPoolExecutor(max_workers=2) as pool:
        for path, done in zip(files, pool.map(convert, files), strict=True):
            if done.returncode != 0:
                raise SystemExit(f"chart bench: promtool rejected {path.name}: {done.stdout}{done.stderr}")
    return data, counted[0], samples


def start_prometheus(work: Path, data: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"chart bench: Prometheus exited with status {proc.returncode}")
        try:
            if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return url, proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_processes([proc])
    raise SystemExit("chart bench: the private Prometheus was not ready in 3 minutes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 pods instead of 20,000")
    parser.add_argument("--pods", type=int, default=0, help="pods in the history (default 20,000)")
    parser.add_argument(
        "--sample-step", type=int, default=300, help="seconds between a series' samples (15..300, dividing 300)"
    )
    parser.add_argument("--rounds", type=int, default=40, help="charts per side")
    args = parser.parse_args(argv)
    pods = args.pods or (2_000 if args.quick else 20_000)
    if not 10 <= pods <= 100_000:
        parser.error("--pods must be between 10 and 100,000")
    if not 15 <= args.sample_step <= 300 or 300 % args.sample_step:
        # The chart's points fall every 300 s with rates over 600 s: a step dividing 300 puts a
        # sample on every point (within the 5-minute lookback) and two or more in every rate.
        parser.error("--sample-step must divide 300 and be at least 15 seconds")
    if not 5 <= args.rounds <= 1_000:
        parser.error("--rounds must be between 5 and 1,000")
    for binary in (PROMETHEUS, PROMTOOL):
        if not Path(binary).exists():
            raise SystemExit(f"chart bench: {binary} is missing (apt-get install prometheus)")

    load_before = os.getloadavg()[0]
    end = int(time.time()) // 3600 * 3600  # a whole hour: the chart's grid and the blocks' edges agree
    with tempfile.TemporaryDirectory(prefix="kubehub-bench-chart-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        print(f"chart bench: writing a day of history for {pods:,} pods ...", flush=True)
        data, series, samples = build(work, pods, args.sample_step, end)
        build_s = time.monotonic() - started
        print(f"chart bench: {series:,} series, {samples:,} samples in {build_s:.1f} s", flush=True)
        prometheus, prom_proc = start_prometheus(work, data)
        hub_proc: ServedHub | None = None
        hub_ms: list[float] = []
        raw_ms: list[float] = []
        parallel_ms: list[float] = []
        try:
            token = prepare_data_dir(prometheus, work / "hub")
            env = {"PROMETHEUS_URL": prometheus, "PROMETHEUS_TIMEOUT": "60", "RATE_LIMITS_LONG_QUERIES": "0"}
            hub_proc = ServedHub(work / "hub", env)
            client = requests.Session()
            namespace = f"tenant-{(pods // PODS_PER_NAMESPACE) // 2:04d}"
            target = (namespace, "svc-00")
            span = {"start": end - 86400.0, "end": float(end)}
            hub_chart, raw_queries = workload_chart(client, hub_proc.url, token, prometheus, target, **span)

            def raw_chart() -> None:
                for send in raw_queries:
                    send()

            answer = hub_chart()
            series_answered = answer["results"][0]["series"]
            points = len(series_answered[0]["values"]) if series_answered else 0
            if points == 0:
                raise SystemExit(f"chart bench: the hub's chart of {namespace}/svc-00 is empty")
            raw_chart()
            print(
                f"chart bench: hub as its own process (pid {hub_proc.pid}) on Prometheus {prometheus}; "
                f"charting {namespace}/svc-00 ({points} points a series); load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            # A raw client could send the two range queries at once too, as the hub does: timed as
            # a third side (two sessions, one per query), so the ratio is not read as the hub's
            # work being cheaper than Prometheus's.
            own_session_queries = []
            for i in range(len(raw_queries)):
                _, queries = workload_chart(requests.Session(), hub_proc.url, token, prometheus, target, **span)
                own_session_queries.append(queries[i])  # query i, sent from a session of its own
            pool = ThreadPoolExecutor(max_workers=len(own_session_queries))

            def raw_at_once() -> None:
                for done in [pool.submit(send) for send in own_session_queries]:
                    done.result()

            sides: list[tuple[list[float], Callable[[], object]]] = [
                (hub_ms, hub_chart),
                (raw_ms, raw_chart),
                (parallel_ms, raw_at_once),
            ]
            for turn in range(args.rounds):
                for i in range(3):  # each side goes first, second and third in turn
                    samples_of, call = sides[(turn + i) % 3]
                    samples_of.append(timed(call))
            pool.shutdown()
        finally:
            if hub_proc is not None:
                hub_proc.close()
            stop_processes([prom_proc])
    ratio = p95(hub_ms) / p95(raw_ms)
    print(
        f"24h chart of one Deployment (2 metrics, step 300 s) over {pods:,} pods: hub p95 {p95(hub_ms):.1f} ms, "
        f"raw p95 {p95(raw_ms):.1f} ms (the two range queries one after the other), "
        f"{p95(parallel_ms):.1f} ms (both at once) ({args.rounds} each)"
    )
    print(
        f"chart: ratio={ratio:.2f} parallel_ratio={p95(hub_ms) / p95(parallel_ms):.2f} "
        f"hub_p95_ms={p95(hub_ms):.1f} raw_p95_ms={p95(raw_ms):.1f} points={points} "
        f"pods={pods} series={series} samples={samples} sample_step_s={args.sample_step} build_s={build_s:.0f} "
        f"load={load_before:.2f}->{os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
