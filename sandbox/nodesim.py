"""node-exporter-style series for every simulated (KWOK) node, from one HTTP endpoint; and the
seeded containers' ongoing log lines.

KWOK plays kubelets but has no node-exporter; this process watches the nodes through the API and
serves, for each, the node-exporter series of docs/metrics-conventions.md with ``node`` and
``instance`` set to the node's name (Prometheus scrapes it with ``honor_labels``). Values come
from :mod:`sandbox.model`: deterministic per node, shaped by the time of day, overridden by the
node's ``kubehub.io/cpu`` / ``kubehub.io/memory`` annotations (utilisation 0..1). It also serves
the kubelet's volume statistics for the claims the StatefulSets declare (:mod:`sandbox.volsim`).

Counters are integrated from the model and saved to a state file every few seconds, so they stay
monotonic across restarts of this process; the backfill writes the same file with the values at
the end of the history, so the live counters continue the backfilled ones.

Run: ``python -m sandbox.nodesim --kubeconfig K --port P --state FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox import kwoknudge, model, volsim

Key = tuple[str, tuple[tuple[str, str], ...]]
INTEGRATION_STEP = 60.0  # seconds per step when catching up over a gap (restart, backfill)

HELP = {
    "node_cpu_seconds_total": ("counter", "Seconds the CPUs spent in each mode."),
    "node_memory_MemTotal_bytes": ("gauge", "Memory information field MemTotal_bytes."),
    "node_memory_MemAvailable_bytes": ("gauge", "Memory information field MemAvailable_bytes."),
    "node_load1": ("gauge", "1m load average."),
    "node_load5": ("gauge", "5m load average."),
    "node_load15": ("gauge", "15m load average."),
    "node_filesystem_size_bytes": ("gauge", "Filesystem size in bytes."),
    "node_filesystem_avail_bytes": ("gauge", "Filesystem space available to non-root users in bytes."),
    "node_filesystem_files": ("gauge", "Filesystem total file nodes."),
    "node_filesystem_files_free": ("gauge", "Filesystem total free file nodes."),
    "node_disk_read_bytes_total": ("counter", "The total number of bytes read successfully."),
    "node_disk_written_bytes_total": ("counter", "The total number of bytes written successfully."),
    "node_disk_reads_completed_total": ("counter", "The total number of reads completed successfully."),
    "node_disk_writes_completed_total": ("counter", "The total number of writes completed successfully."),
    "node_network_receive_bytes_total": ("counter", "Network device statistic receive_bytes."),
    "node_network_transmit_bytes_total": ("counter", "Network device statistic transmit_bytes."),
}


def key_str(k: Key) -> str:
    return k[0] + "|" + ",".join(f"{a}={b}" for a, b in k[1])


def key_parse(s: str) -> Key:
    name, _, rest = s.partition("|")
    labels = tuple(tuple(p.split("=", 1)) for p in rest.split(",") if p)
    return name, labels  # type: ignore[return-value]


def node_profile_from(obj: dict[str, Any]) -> model.NodeProfile:
    cap = obj.get("status", {}).get("capacity", {}) or {}
    cores = int(model.parse_quantity(cap.get("cpu")) or 4)
    mem = model.parse_quantity(cap.get("memory")) or 16 * 1024**3
    return model.NodeProfile.of(obj["metadata"]["name"], cores, mem)


def overrides_from(annotations: dict[str, str] | None) -> tuple[float | None, float | None]:
    ann = annotations or {}
    return model.parse_quantity(ann.get(model.ANN_CPU)), model.parse_quantity(ann.get(model.ANN_MEMORY))


def integrate(
    p: model.NodeProfile, counters: dict[Key, float], t_from: float, t_to: float, cpu_override: float | None = None
) -> None:
    """Advance a node's counters from t_from to t_to in steps of at most INTEGRATION_STEP."""
    t = t_from
    while t < t_to:
        dt = min(INTEGRATION_STEP, t_to - t)
        util = model.node_cpu_util(p, t + dt / 2, cpu_override)
        for k, rate in model.node_rates(p, util).items():
            counters[k] = counters.get(k, 0.0) + rate * dt
        t += dt


class NodeSim:
    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.lock = threading.Lock()
        self.nodes: dict[str, tuple[model.NodeProfile, float | None, float | None]] = {}
        self.counters: dict[str, dict[Key, float]] = {}
        self.last: dict[str, float] = {}
        self.synced = False
        self.claims: list[volsim.Claim] = []  # declared by the StatefulSets (watch_statefulsets)
        # Each node's last seen Ready condition, and the nodes seen going from not Ready to
        # Ready since the last take_recovered() (their pods may need Ready again: kwoknudge).
        self.ready: dict[str, bool] = {}
        self.recovered: set[str] = set()
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return
        for name, rec in raw.get("nodes", {}).items():
            self.counters[name] = {key_parse(k): float(v) for k, v in rec["counters"].items()}
            self.last[name] = float(rec["t"])

    def save(self) -> None:
        with self.lock:
            data = {
                "nodes": {
                    n: {"t": self.last[n], "counters": {key_str(k): v for k, v in c.items()}}
                    for n, c in self.counters.items()
                    if n in self.last
                }
            }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state_path)

    def set_node(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        prof = node_profile_from(obj)
        cpu, mem = overrides_from(obj["metadata"].get("annotations"))
        now = time.time()
        with self.lock:
            if name not in self.counters:
                # A node we have no history of: it has been up for its uptime at its base load.
                self.counters[name] = model.node_initial_counters(prof)
                self.last[name] = now
            elif name not in self.nodes:
                # Known from the state file: catch up over the time this process was down.
                integrate(prof, self.counters[name], self.last[name], now)
                self.last[name] = now
            else:
                self._advance_one(name, now)
            self.nodes[name] = (prof, cpu, mem)
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            )
            if ready and self.ready.get(name) is False:
                self.recovered.add(name)
            self.ready[name] = ready

    def take_recovered(self) -> set[str]:
        """The nodes that became Ready again since the last call."""
        with self.lock:
            taken, self.recovered = self.recovered, set()
        return taken

    def drop_node(self, name: str) -> None:
        with self.lock:
            self.nodes.pop(name, None)
            self.ready.pop(name, None)
            self.recovered.discard(name)
            self.counters.pop(name, None)
            self.last.pop(name, None)

    def _advance_one(self, name: str, now: float) -> None:
        prof, cpu, _ = self.nodes[name]
        last = self.last.get(name, now)
        if now > last:
            integrate(prof, self.counters[name], last, now, cpu)
        self.last[name] = now

    def advance(self) -> None:
        now = time.time()
        with self.lock:
            for name in list(self.nodes):
                self._advance_one(name, now)

    def exposition(self) -> str:
        self.advance()
        now = time.time()
        families: dict[str, list[str]] = {}
        with self.lock:
            for name in sorted(self.nodes):
                prof, cpu, mem = self.nodes[name]
                ident = f'instance="{name}",node="{name}"'
                for (metric, labels), value in self.counters[name].items():
                    lab = ident + "".join(f',{a}="{b}"' for a, b in labels)
                    families.setdefault(metric, []).append(f"{metric}{{{lab}}} {value:.3f}")
                for (metric, labels), value in model.node_gauges(
                    prof, now, cpu_override=cpu, memory_override=mem
                ).items():
                    lab = ident + "".join(f',{a}="{b}"' for a, b in labels)
                    families.setdefault(metric, []).append(f"{metric}{{{lab}}} {value:g}")
        out: list[str] = []
        for metric in sorted(families):
            kind, text = HELP.get(metric, ("gauge", metric))
            out.append(f"# HELP {metric} {text} (simulated node)")
            out.append(f"# TYPE {metric} {kind}")
            out.extend(families[metric])
        with self.lock:
            claims = list(self.claims)
        return "\n".join(out) + "\n" + volsim.exposition(claims, now)


def watch_nodes(sim: NodeSim, kubeconfig: str, stop: threading.Event) -> None:
    from sandbox.kube import KubeRest

    api = KubeRest(Path(kubeconfig), pool=2)
    while not stop.is_set():
        try:
            listing = api.get("/api/v1/nodes")
            names = set()
            for obj in listing["items"]:
                sim.set_node(obj)
                names.add(obj["metadata"]["name"])
            for gone in set(sim.nodes) - names:
                sim.drop_node(gone)
            sim.synced = True
            rv = listing["metadata"]["resourceVersion"]
            for ev in api.watch("/api/v1/nodes", rv):
                if stop.is_set():
                    break
                obj = ev["object"]
                if ev["type"] == "DELETED":
                    sim.drop_node(obj["metadata"]["name"])
                elif ev["type"] in ("ADDED", "MODIFIED"):
                    sim.set_node(obj)
                elif ev["type"] == "ERROR":
                    break  # e.g. 410 Gone: list again
        except Exception as exc:  # any API or transport error: keep serving, list and watch again
            print(f"node watch: {exc!r}; retrying", file=sys.stderr, flush=True)
            stop.wait(2)


def watch_statefulsets(sim: NodeSim, kubeconfig: str, stop: threading.Event, every: float = 5.0) -> None:
    """Keep the declared claims current: one StatefulSet LIST per round (few objects, no watch);
    provision the pending claims of the sandbox's StorageClass (:func:`volsim.provision`); and
    touch the pods KWOK missed while it was taking the node leases over, and make ready again
    the pods the node lifecycle controller marked not ready while a node's lease had lapsed: on
    the nodes that became Ready again, and on every node in the first round (sandbox/kwoknudge.py)."""
    from sandbox.kube import KubeRest

    api = KubeRest(Path(kubeconfig), pool=1)
    nudged: dict[str, float] = {}
    swept = False
    while True:
        try:
            items = api.get("/apis/apps/v1/statefulsets")["items"]
            claims = [c for sts in items for c in volsim.claims_of(sts)]
            with sim.lock:
                sim.claims = claims
        except Exception as exc:  # keep the last known claims; the next round lists again
            print(f"statefulset list: {exc!r}; retrying", file=sys.stderr, flush=True)
        try:
            volsim.provision(api)
        except Exception as exc:  # the next round tries again
            print(f"volume provisioning: {exc!r}; retrying", file=sys.stderr, flush=True)
        try:
            touched = kwoknudge.nudge_missed_pods(api, nudged)
            if touched:
                print(f"kwok: touched {touched} pod(s) bound but still Pending", file=sys.stderr, flush=True)
        except Exception as exc:  # the next round tries again
            print(f"pending pods: {exc!r}; retrying", file=sys.stderr, flush=True)
        recovered = sim.take_recovered()
        try:
            repaired = kwoknudge.repair_unready_pods(api, recovered, everywhere=not swept)
            swept = True
            if repaired:
                print(f"kwok: set Ready on {repaired} unready pod(s)", file=sys.stderr, flush=True)
        except Exception as exc:  # those nodes are looked at again next round
            with sim.lock:
                sim.recovered |= recovered
            print(f"unready pods: {exc!r}; retrying", file=sys.stderr, flush=True)
        if stop.wait(every):
            return


def append_logs(pod_logs: Path, stop: threading.Event, every: float = 15.0, nodes: NodeLogs | None = None) -> None:
    """Keep the seeded containers logging: append what each would have written since the last round.

    The pod log API (KWOK's ClusterLogs) serves these files, so log shippers and ``kubectl logs
    -f`` see new lines arrive, in the same languages and styles as the seeded history. With
    ``nodes``, the same lines also go to each pod's file in its node's ``/var/log/pods`` tree.
    """
    from sandbox.seed import WORKLOADS, generate_logs, write_cri

    last = time.time()
    while not stop.wait(every):
        now = time.time()
        if nodes is not None:
            nodes.sync_pods()
        for w in WORKLOADS:
            for c in w.containers:
                path = pod_logs / w.namespace / f"{c}.log"
                if not path.exists():
                    continue  # not seeded (yet)
                records = list(generate_logs(w, c, last, now, salt=f"@{int(last)}"))
                if records:
                    with contextlib.suppress(OSError):
                        write_cri(path, records, append=True)
                    if nodes is not None:
                        nodes.write(w.namespace, w.name, c, records)
        last = now


# -- per-node /var/log/pods trees (the node collector reads these; sandbox/crilogs.py) ---------------
class NodeLogs:
    """Writes the seeded containers' lines into ``<state dir>/nodes/<node>/var/log/pods``, one
    file per pod and container as the kubelet names them, rotated as the kubelet rotates them
    (at ``max_size``, so a day of the sandbox shows rotations), removed when the pod is deleted.
    One pod LIST per round (every 15 s)."""

    def __init__(self, kubeconfig: str, state_dir: Path, *, max_size: int = 1024 * 1024) -> None:
        from sandbox.kube import KubeRest

        self.api = KubeRest(Path(kubeconfig), pool=1)
        self.state_dir = state_dir
        self.max_size = max_size
        self.pods: dict[str, tuple[str, str, str, str]] = {}  # uid -> (namespace, name, node, ...)
        self.files: dict[tuple[str, str], Any] = {}  # (pod uid, container) -> ContainerLog

    def sync_pods(self) -> None:
        from sandbox.crilogs import delete_pod, node_root

        try:
            items = self.api.get("/api/v1/pods")["items"]
        except Exception as exc:  # keep the last known pods; the next round lists again
            print(f"node logs: pod list failed: {exc!r}", file=sys.stderr, flush=True)
            return
        current = {}
        for pod in items:
            meta, node = pod["metadata"], (pod.get("spec") or {}).get("nodeName")
            if node:
                current[meta["uid"]] = (meta["namespace"], meta["name"], node, meta.get("generateName", ""))
        for uid in set(self.pods) - set(current):
            ns, name, node, _ = self.pods[uid]
            for key in [k for k in self.files if k[0] == uid]:
                self.files.pop(key).close()
            delete_pod(node_root(self.state_dir, node), ns, name, uid)
        self.pods = current

    def write(self, namespace: str, workload: str, container: str, records: list[Any]) -> None:
        from sandbox.crilogs import ContainerLog, node_root

        for uid, (ns, name, node, _) in self.pods.items():
            if ns != namespace or not name.startswith(workload + "-"):
                continue
            log_file = self.files.get((uid, container))
            try:
                if log_file is None:
                    log_file = self.files[(uid, container)] = ContainerLog(
                        node_root(self.state_dir, node), ns, name, uid, container, max_size=self.max_size
                    )
                for rec in records:
                    log_file.write(rec.message, stream=rec.stream, t=rec.t)
            except OSError as exc:
                print(f"node logs: {exc!r}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", required=True)
    parser.add_argument("--pod-logs", help="directory of the seeded CRI log files to keep appending to")
    args = parser.parse_args(argv)

    sim = NodeSim(Path(args.state))
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body = sim.exposition().encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif self.path.startswith("/healthz"):
                body = b"ok" if sim.synced else b"waiting for the node list"
                ctype = "text/plain"
                if not sim.synced:
                    self.send_response(503)
                    self.send_header("Content-Type", ctype)
                    self.end_headers()
                    self.wfile.write(body)
                    return
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_nodes, args=(sim, args.kubeconfig, stop), daemon=True).start()
    threading.Thread(target=watch_statefulsets, args=(sim, args.kubeconfig, stop), daemon=True).start()

    def saver() -> None:
        while not stop.wait(15):
            with contextlib.suppress(OSError):
                sim.advance()
                sim.save()

    threading.Thread(target=saver, daemon=True).start()
    if args.pod_logs:
        # The per-node /var/log/pods trees live beside the state file (<state dir>/nodes/<node>/...).
        nodes = NodeLogs(args.kubeconfig, Path(args.state).parent)
        threading.Thread(target=append_logs, args=(Path(args.pod_logs), stop, 15.0, nodes), daemon=True).start()

    def _stop(*_: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"nodesim serving on {args.host}:{args.port} (pid {os.getpid()})", flush=True)
    server.serve_forever()
    with contextlib.suppress(OSError):
        sim.advance()
        sim.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
