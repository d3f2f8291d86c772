"""24 hours of history for Prometheus, written with ``promtool tsdb create-blocks-from openmetrics``.

Runs once, before the sandbox's Prometheus starts for the first time, after seeding (pod names
and nodes are known by then). To make the history join the live data exactly, every target is
scraped once here and its series are replayed over the past day with the *same label sets*
(``job``, ``instance``, ``node`` set as the scrape configuration sets them). The values:

* containers (job ``kubelet``): :mod:`sandbox.model`'s daily curve of each pod's annotations,
  plus a few hot periods (``state/backfill.json`` lists them) so that backtests and window
  rankings find something; counters are integrated from 0 at the start of the day. KWOK's live
  counters start from 0 when it first serves a pod, which Prometheus sees as one counter reset;
  ``rate()`` and ``increase()`` handle that by design.
* simulated nodes (job ``node-exporter``): the same model as :mod:`sandbox.nodesim`, and the
  counters are integrated *backwards* from the live values scraped here, so they are monotonic
  and continue exactly into the live series.
* inventory (kube-state-metrics) and control plane: today's values held over the day; control-plane
  counters grow linearly from 0 to today's value; ``up`` is 1 for every target.

Promtool parses its whole input once per 2-hour block, so the samples are written to one file
per 2-hour window and each is converted separately.
"""

from __future__ import annotations

import json
import math
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from sandbox import kube, model, volsim
from sandbox.procs import ComponentError

if TYPE_CHECKING:
    from sandbox.core import Sandbox

HISTORY = 86400
BLOCK = 7200  # promtool's block range
HOT_HISTORY = 3 * 3600  # pods that run hot now (annotation) have done so for the last 3 hours
SAMPLE_BUDGET = 12_000_000  # keeps a 1,000-node backfill within minutes on 2 cores
INVENTORY_STEP = 240  # inventory barely changes; < 5 min so instant queries never see a gap

# kube-state-metrics families replayed (the catalogue's, see docs/metrics-conventions.md, and a
# few that dashboards commonly join on).
KSM_FAMILIES = {
    "kube_node_info", "kube_node_status_condition", "kube_node_spec_unschedulable", "kube_node_status_capacity",
    "kube_node_status_allocatable", "kube_node_labels",
    "kube_pod_info", "kube_pod_status_phase", "kube_pod_owner", "kube_pod_status_ready", "kube_pod_labels",
    "kube_pod_container_info", "kube_pod_container_status_restarts_total", "kube_pod_container_status_running",
    "kube_pod_container_status_ready", "kube_pod_container_resource_requests", "kube_pod_container_resource_limits",
    "kube_namespace_labels", "kube_namespace_created", "kube_namespace_status_phase",
    "kube_replicaset_owner", "kube_replicaset_spec_replicas", "kube_replicaset_status_ready_replicas",
    "kube_deployment_spec_replicas", "kube_deployment_status_replicas", "kube_deployment_status_replicas_available",
    "kube_deployment_status_replicas_unavailable", "kube_deployment_labels", "kube_deployment_created",
    "kube_statefulset_replicas", "kube_statefulset_status_replicas_ready", "kube_statefulset_labels",
    "kube_daemonset_status_desired_number_scheduled", "kube_daemonset_status_number_available",
    "kube_daemonset_status_number_unavailable", "kube_daemonset_labels",
    "kube_job_owner", "kube_job_status_succeeded", "kube_job_status_failed", "kube_job_complete",
    "kube_cronjob_info", "kube_cronjob_labels", "kube_resourcequota",
    # claims and the pods that mount them (the per-workload PVC metrics join on the first)
    "kube_pod_spec_volumes_persistentvolumeclaims_info", "kube_persistentvolumeclaim_info",
    "kube_persistentvolumeclaim_status_phase", "kube_persistentvolumeclaim_resource_requests_storage_bytes",
}  # fmt: skip
CONTROL_PLANE_FAMILIES = {
    "etcd_server_has_leader", "etcd_server_leader_changes_seen_total", "etcd_server_proposals_committed_total",
    "etcd_server_proposals_failed_total", "etcd_server_proposals_pending", "etcd_mvcc_db_total_size_in_bytes",
    "etcd_disk_wal_fsync_duration_seconds_bucket", "etcd_disk_wal_fsync_duration_seconds_sum",
    "etcd_disk_wal_fsync_duration_seconds_count", "etcd_disk_backend_commit_duration_seconds_bucket",
    "etcd_disk_backend_commit_duration_seconds_sum", "etcd_disk_backend_commit_duration_seconds_count",
    "apiserver_request_total", "scheduler_schedule_attempts_total",
    "scheduler_scheduling_attempt_duration_seconds_bucket", "scheduler_scheduling_attempt_duration_seconds_sum",
    "scheduler_scheduling_attempt_duration_seconds_count", "workqueue_depth",
}  # fmt: skip

Labels = tuple[tuple[str, str], ...]


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    values: np.ndarray  # one value per point of the grid it belongs to
    step: int


@dataclass
class Incident:
    kind: str  # pod-cpu | pod-memory-leak | node-cpu | node-memory | node-disk
    target: str  # "<namespace>/<pod>" or node name
    start: float
    end: float
    value: float  # factor (pods) or utilisation (nodes)

    def active(self, grid: np.ndarray) -> np.ndarray:
        return (grid >= self.start) & (grid < self.end)


@dataclass
class Plan:
    end: int
    step: int
    grid: np.ndarray = field(init=False)
    inv_grid: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        start = self.end - HISTORY
        self.grid = np.arange(start, self.end + 1, self.step, dtype=np.float64)
        inv_step = max(INVENTORY_STEP, self.step)
        self.inv_grid = np.arange(start, self.end + 1, inv_step, dtype=np.float64)


# ---- scraping ----------------------------------------------------------------------------------


def _get(url: str, ctx: ssl.SSLContext | None, timeout: float = 30) -> str:
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
        return str(resp.read().decode("utf-8"))


def parse(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            yield s.name, dict(s.labels), float(s.value)


def _target_labels(job: str, instance: str, own: dict[str, str], *, honor: bool) -> dict[str, str]:
    if honor:
        return {"job": job, "instance": instance, **own}
    return {**own, "job": job, "instance": instance}


# ---- the plan ----------------------------------------------------------------------------------


def choose_step(fast_series: int, held_series: int) -> int:
    """60 s, or coarser until the whole history fits the sample budget (big clusters only)."""
    step = 60
    while step < 3600:
        samples = fast_series * (HISTORY // step) + held_series * (HISTORY // max(INVENTORY_STEP, step))
        if samples <= SAMPLE_BUDGET:
            break
        step += 60
    return step


def make_incidents(end: float, pods: list[dict[str, Any]], nodes: list[str]) -> list[Incident]:
    """The hot periods of the history, deterministic from the seeded names."""
    first: dict[str, str] = {}
    for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
        wl = (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name")
        if wl and wl not in first:
            first[wl] = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
    h = 3600.0
    out: list[Incident] = []
    if "storefront" in first:
        out.append(Incident("pod-cpu", first["storefront"], end - 15 * h, end - 14.25 * h, 4.0))
    if "ingest-worker" in first:
        out.append(Incident("pod-cpu", first["ingest-worker"], end - 6 * h, end - 5 * h, 3.0))
    if "query-gateway" in first:
        out.append(Incident("pod-memory-leak", first["query-gateway"], end - 12 * h, end - 8 * h, 3.0))
    if nodes:
        out.append(Incident("node-cpu", nodes[1 % len(nodes)], end - 20 * h, end - 19 * h, 0.95))
        out.append(Incident("node-memory", nodes[3 % len(nodes)], end - 9 * h, end - 7.5 * h, 0.93))
        out.append(Incident("node-disk", nodes[2 % len(nodes)], end - 4 * h, end - 2 * h, 0.93))
    return out


def _tri(grid: np.ndarray) -> np.ndarray:
    s = (grid.astype(np.int64) + model.TROUGH_OFFSET) % 86400
    return np.where(s <= 43200, s / 43200.0, (86400 - s) / 43200.0)


# ---- containers (job kubelet) --------------------------------------------------------------------


def container_series(
    plan: Plan, scraped: dict[str, list[tuple[str, dict[str, str]]]], pods: dict[tuple[str, str], dict[str, Any]],
    incidents: list[Incident],
) -> Iterator[Series]:  # fmt: skip
    grid, step = plan.grid, plan.step
    tri = _tri(grid)
    cpu_shape = 0.55 + 0.45 * tri
    mem_shape = 0.85 + 0.15 * tri
    hot_now = grid >= plan.end - HOT_HISTORY
    for node, series in scraped.items():
        per_pod_cpu: dict[tuple[str, str], np.ndarray] = {}
        for name, own in series:
            key = (own.get("namespace", ""), own.get("pod", ""))
            pod = pods.get(key)
            if pod is None:
                continue
            ann = pod["metadata"].get("annotations") or {}
            base_cpu = model.parse_quantity(ann.get(model.ANN_CPU_BASE)) or model.DEFAULT_CPU_BASE
            base_mem = model.parse_quantity(ann.get(model.ANN_MEMORY_BASE)) or model.DEFAULT_MEMORY_BASE
            cpu = base_cpu * cpu_shape
            mem = base_mem * mem_shape
            fixed_cpu = model.parse_quantity(ann.get(model.ANN_CPU))
            fixed_mem = model.parse_quantity(ann.get(model.ANN_MEMORY))
            if fixed_cpu is not None:
                cpu = np.where(hot_now, fixed_cpu, cpu)
            if fixed_mem is not None:
                mem = np.where(hot_now, fixed_mem, mem)
            for inc in incidents:
                if inc.target != f"{key[0]}/{key[1]}":
                    continue
                act = inc.active(grid)
                if inc.kind == "pod-cpu":
                    cpu = np.where(act, cpu * inc.value, cpu)
                elif inc.kind == "pod-memory-leak":
                    ramp = np.clip((grid - inc.start) / (inc.end - inc.start), 0, 1)
                    mem = np.where(act, mem * (1 + (inc.value - 1) * ramp), mem)
            labels = {**own, "job": "kubelet", "instance": node, "node": node}
            if name == "container_cpu_usage_seconds_total":
                per_pod_cpu[key] = per_pod_cpu.get(key, 0) + cpu
                yield Series(name, labels, _integrate(cpu, step), step)
            elif name == "container_memory_working_set_bytes":
                yield Series(name, labels, np.round(mem), step)
            elif name == "container_memory_usage_bytes":
                yield Series(name, labels, np.round(mem * model.MEMORY_USAGE_OVER_WORKING_SET), step)
        for name, own in series:
            key = (own.get("namespace", ""), own.get("pod", ""))
            if key not in per_pod_cpu:
                continue
            labels = {**own, "job": "kubelet", "instance": node, "node": node}
            if name == "container_network_receive_bytes_total":
                yield Series(name, labels, np.round(_integrate(per_pod_cpu[key] * model.NET_RX_PER_CORE, step)), step)
            elif name == "container_network_transmit_bytes_total":
                rate = per_pod_cpu[key] * model.NET_RX_PER_CORE * model.NET_TX_RATIO
                yield Series(name, labels, np.round(_integrate(rate, step)), step)


def _integrate(rate: np.ndarray, step: int) -> np.ndarray:
    """Counter from 0 at the first point: sum of rate x step over the points before."""
    out = np.empty_like(rate, dtype=np.float64)
    out[0] = 0.0
    np.cumsum(rate[:-1] * step, out=out[1:])
    return out


# ---- simulated nodes (job node-exporter) ----------------------------------------------------------


def node_series(
    plan: Plan, live: dict[str, dict[tuple[str, Labels], float]], nodes: dict[str, dict[str, Any]],
    incidents: list[Incident], scraped_at: float,
) -> Iterator[Series]:  # fmt: skip
    grid, step = plan.grid, plan.step
    for name, obj in nodes.items():
        from sandbox.nodesim import node_profile_from, overrides_from

        prof = node_profile_from(obj)
        cpu_ovr, mem_ovr = overrides_from(obj["metadata"].get("annotations"))
        util = np.array([model.node_cpu_util(prof, t, cpu_ovr) for t in grid])
        mem = np.array([model.node_memory_util(prof, t, mem_ovr) for t in grid])
        disk = np.array([model.node_disk_util(prof, t) for t in grid])
        for inc in incidents:
            if inc.target != name:
                continue
            act = inc.active(grid)
            if inc.kind == "node-cpu":
                util = np.where(act, inc.value, util)
            elif inc.kind == "node-memory":
                mem = np.where(act, inc.value, mem)
            elif inc.kind == "node-disk":
                disk = np.where(act, inc.value, disk)
        a = model.node_rates(prof, 0.0)
        b1 = model.node_rates(prof, 1.0)
        counters = live.get(name, {})
        ident = {"job": "node-exporter", "instance": name, "node": name}
        for key, a_k in a.items():
            metric, labels = key
            v_live = counters.get((metric, labels))
            if v_live is None:
                continue  # not served live (yet): no history either, so label sets stay equal
            rate = a_k + (b1[key] - a_k) * util
            # Backwards from the live value: counter(t) = live - increase over (t, scraped_at].
            tail = float(rate[-1]) * max(0.0, scraped_at - grid[-1])
            inc_after = np.concatenate([np.cumsum((rate[:-1] * step)[::-1])[::-1], [0.0]])
            values = np.maximum(0.0, v_live - tail - inc_after)
            yield Series(metric, {**ident, **dict(labels)}, np.round(values, 3), step)
        fs = {"device": "/dev/vda1", "fstype": "ext4", "mountpoint": "/"}
        gauges: dict[tuple[str, Labels], np.ndarray] = {
            ("node_memory_MemTotal_bytes", ()): np.full(grid.shape, prof.memory_bytes),
            ("node_memory_MemAvailable_bytes", ()): np.round(prof.memory_bytes * (1 - mem)),
            ("node_load1", ()): np.round(prof.cores * util * 1.05, 3),
            ("node_load5", ()): np.round(prof.cores * np.concatenate([util[:5], util[:-5]]), 3),
            ("node_load15", ()): np.round(prof.cores * np.concatenate([util[:15], util[:-15]]) * 0.95, 3),
            ("node_filesystem_size_bytes", tuple(sorted(fs.items()))): np.full(grid.shape, float(model.DISK_SIZE)),
            ("node_filesystem_avail_bytes", tuple(sorted(fs.items()))): np.round(model.DISK_SIZE * (1 - disk)),
            ("node_filesystem_files", tuple(sorted(fs.items()))): np.full(grid.shape, float(model.DISK_FILES)),
            ("node_filesystem_files_free", tuple(sorted(fs.items()))): np.round(
                model.DISK_FILES * (1 - prof.inode_base - 0.02 * disk)
            ),
        }
        for (metric, labels), values in gauges.items():
            if (metric, labels) in counters:
                yield Series(metric, {**ident, **dict(labels)}, values, step)


def volume_series(
    plan: Plan, live: dict[tuple[str, Labels], float], claims: Iterable[volsim.Claim], instance: str
) -> Iterator[Series]:
    """The kubelet's volume statistics of the declared claims over the day, from the model the
    node simulator serves live (:mod:`sandbox.volsim`: a claim whose growth started before the
    sandbox fills up in the history too), with the live label sets (``job``, ``instance`` as
    the scrape sets them); a series not served live gets no history, so label sets stay equal."""
    grid = plan.grid
    for c in claims:
        own = {"namespace": c.namespace, "persistentvolumeclaim": c.name}
        key = tuple(sorted(own.items()))
        points = [c.stats(float(t)) for t in grid]
        for metric in volsim.HELP:
            if (metric, key) in live:
                values = np.array([p[metric] for p in points], dtype=float)
                yield Series(metric, {"job": "node-exporter", "instance": instance, **own}, values, plan.step)


# ---- inventory and control plane ------------------------------------------------------------------


def held_series(
    plan: Plan, scraped: list[tuple[str, dict[str, str], float]], *, counters_grow: bool
) -> Iterator[Series]:
    grid = plan.inv_grid
    frac = (grid - grid[0]) / max(1.0, grid[-1] - grid[0])
    for name, labels, value in scraped:
        if math.isnan(value):
            continue
        is_counter = name.endswith(("_total", "_count", "_sum", "_bucket"))
        values = np.round(value * frac, 6) if counters_grow and is_counter else np.full(grid.shape, value)
        yield Series(name, labels, values, int(grid[1] - grid[0]) if len(grid) > 1 else plan.step)


# ---- writing ---------------------------------------------------------------------------------------


def _fmt_labels(name: str, labels: dict[str, str]) -> str:
    parts = []
    for k in sorted(labels):
        v = labels[k].replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{k}="{v}"')
    return name + "{" + ",".join(parts) + "}"


def write_windows(series: Iterable[Series], plan: Plan, out_dir: Path) -> tuple[list[Path], int]:
    """One OpenMetrics file per 2-hour block window; returns the files and the sample count."""
    start = plan.end - HISTORY
    first_block = int(start // BLOCK) * BLOCK
    files: dict[int, Any] = {}
    paths: list[Path] = []
    samples = 0
    try:
        for s in series:
            head = _fmt_labels(s.name, s.labels)
            grid = plan.grid if s.step == plan.step else plan.inv_grid
            vals = s.values
            windows = ((grid.astype(np.int64) - first_block) // BLOCK).astype(np.int64)
            for w in np.unique(windows):
                mask = windows == w
                fh = files.get(int(w))
                if fh is None:
                    path = out_dir / f"window-{int(w):03d}.om"
                    paths.append(path)
                    fh = files[int(w)] = open(path, "w", encoding="utf-8")  # noqa: SIM115
                ts = grid[mask].astype(np.int64)
                vs = vals[mask]
                fh.write("".join(f"{head} {v:.10g} {t}\n" for v, t in zip(vs.tolist(), ts.tolist(), strict=True)))
                samples += int(mask.sum())
    finally:
        for fh in files.values():
            fh.write("# EOF\n")
            fh.close()
    return sorted(paths), samples


RECORD = "backfill.json"  # under the sandbox's state directory, written once with the history


def read_record(state_dir: Path) -> dict[str, Any]:
    """What :func:`ensure_backfill` wrote: the history's ``start`` and ``end`` (epoch seconds),
    its ``step``, sample count and hot ``incidents``. Tests that need history read its window
    here: on a sandbox kept up for days, "hours before now" is live data with gaps."""
    record: dict[str, Any] = json.loads((state_dir / RECORD).read_text())
    return record


def ensure_backfill(sb: Sandbox) -> None:
    """Write the 24 h history into <sandbox>/prometheus/data unless Prometheus ever ran there."""
    data = sb.dir / "prometheus" / "data"
    if data.exists():
        return
    say = sb.say
    t0 = time.monotonic()
    say("backfill: scraping every target once for the live label sets")
    api = kube.KubeRest(sb.kubeconfig)
    node_objs = {n["metadata"]["name"]: n for n in api.list("/api/v1/nodes")}
    from sandbox.seed import Seeder

    pods_list = [p for p in Seeder(sb, api).pods() if p.get("status", {}).get("phase") == "Running"]
    pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pods_list}
    ctx = sb._tls()

    def scrape_kwok(node: str) -> tuple[str, list[tuple[str, dict[str, str]]]]:
        url = f"{sb.url_of('kwok')}{kube.CADVISOR_PATH.replace('{nodeName}', node)}"
        try:
            return node, [(n, lab) for n, lab, _ in parse(_get(url, ctx))]
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            # KWOK answers 404 for a node it does not manage yet (seen right after `up` restarted
            # it after a crash): no series yet, so the wait below asks again.
            return node, []

    # KWOK fills its per-node pod lists a moment after the pods run: wait until it serves a CPU
    # series for every running container, or the history would miss the pods it did not list yet.
    expected = {
        (p["metadata"]["namespace"], p["metadata"]["name"], c["name"])
        for p in pods_list
        for c in p["spec"]["containers"]
    }
    deadline = time.monotonic() + 90
    while True:
        with ThreadPoolExecutor(max_workers=8) as pool:
            kwok_scraped = dict(pool.map(scrape_kwok, sorted(node_objs)))
        served = {
            (lab.get("namespace"), lab.get("pod"), lab.get("container"))
            for series in kwok_scraped.values()
            for name, lab in series
            if name == "container_cpu_usage_seconds_total"
        }
        missing = expected - served
        if not missing:
            break
        if time.monotonic() > deadline:
            say(f"backfill: KWOK serves no series for {len(missing)} containers yet; they get no history")
            break
        time.sleep(2)
    scraped_at = time.time()
    live_nodes: dict[str, dict[tuple[str, Labels], float]] = {}
    for name, labels, value in parse(_get(sb.url_of("nodesim") + "/metrics", None)):
        node = labels.pop("node", "")
        labels.pop("instance", None)
        live_nodes.setdefault(node, {})[(name, tuple(sorted(labels.items())))] = value

    def held(job: str, url: str, families: set[str] | None, *, honor: bool) -> list[tuple[str, dict[str, str], float]]:
        instance = url.split("://", 1)[1].split("/", 1)[0]
        out = []
        for name, labels, value in parse(_get(url, ctx if url.startswith("https") else None)):
            if families is not None and name not in families:
                continue
            out.append((name, _target_labels(job, instance, labels, honor=honor), value))
        return out

    inventory = held("kube-state-metrics", sb.url_of("kube-state-metrics") + "/metrics", KSM_FAMILIES, honor=True)
    control: list[tuple[str, dict[str, str], float]] = []
    for job, comp in (
        ("etcd", "etcd"),
        ("apiserver", "kube-apiserver"),
        ("kube-scheduler", "kube-scheduler"),
        ("kube-controller-manager", "kube-controller-manager"),
    ):
        control.extend(held(job, sb.url_of(comp) + "/metrics", CONTROL_PLANE_FAMILIES, honor=False))
    ups = []
    for job, comp in (
        ("prometheus", "prometheus"), ("etcd", "etcd"), ("apiserver", "kube-apiserver"),
        ("kube-scheduler", "kube-scheduler"), ("kube-controller-manager", "kube-controller-manager"),
        ("node-exporter", "nodesim"), ("kube-state-metrics", "kube-state-metrics"), ("host", "node-exporter"),
    ):  # fmt: skip
        ups.append(("up", {"job": job, "instance": sb.url_of(comp).split("://", 1)[1]}, 1.0))
    ups.extend(("up", {"job": "kubelet", "instance": n, "node": n}, 1.0) for n in node_objs)

    n_series = sum(len(v) for v in kwok_scraped.values()) + sum(len(v) for v in live_nodes.values())
    step = choose_step(n_series, len(inventory) + len(control) + len(ups))
    end = int(scraped_at // 60) * 60 - 60
    plan = Plan(end=end, step=step)
    incidents = make_incidents(
        end,
        pods_list,
        sorted(node_objs, key=lambda n: int(n.rsplit("-", 1)[-1]) if n.rsplit("-", 1)[-1].isdigit() else 0),
    )

    claims = [c for sts in api.list("/apis/apps/v1/statefulsets") for c in volsim.claims_of(sts)]
    nodesim_instance = sb.url_of("nodesim").split("://", 1)[1].split("/", 1)[0]

    def everything() -> Iterator[Series]:
        yield from container_series(plan, kwok_scraped, pods, incidents)
        yield from node_series(plan, live_nodes, node_objs, incidents, scraped_at)
        yield from volume_series(plan, live_nodes.get("", {}), claims, nodesim_instance)
        yield from held_series(plan, inventory, counters_grow=False)
        yield from held_series(plan, control, counters_grow=True)
        yield from held_series(plan, ups, counters_grow=False)

    work = Path(tempfile.mkdtemp(prefix="backfill-", dir=sb.dir))
    try:
        files, samples = write_windows(everything(), plan, work)
        took = time.monotonic() - t0
        say(f"backfill: {samples:,} samples ({len(files)} windows, step {step}s) written in {took:.1f}s")
        blocks = sb.dir / "prometheus" / "backfill-blocks"
        shutil.rmtree(blocks, ignore_errors=True)
        blocks.mkdir(parents=True)

        def convert(path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
            argv = ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path), str(blocks)]
            return path, subprocess.run(argv, capture_output=True, text=True, check=False)

        with ThreadPoolExecutor(max_workers=2) as pool:
            for i, (path, proc) in enumerate(pool.map(convert, files), 1):
                if proc.returncode != 0:
                    log = sb.logs_dir / "backfill.log"
                    log.write_text(proc.stdout + proc.stderr)
                    raise ComponentError("prometheus", f"promtool rejected the backfill {path.name}", log)
                say.counter("  promtool blocks", i, len(files))
        blocks.rename(data)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {
        "start": end - HISTORY,
        "end": end,
        "step": step,
        "samples": samples,
        "seconds": round(time.monotonic() - t0, 1),
        "incidents": [inc.__dict__ for inc in incidents],
    }
    (sb.state_dir / RECORD).write_text(json.dumps(record, indent=2))
    say(f"backfill: 24 h of history ready in {time.monotonic() - t0:.1f}s")
