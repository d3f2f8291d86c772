"""Log collection from the node at 20,000 containers: API-server load, lag, loss and duplicates.

What runs (all real processes, on loopback):

- a **generator** writes CRI log files for ``--containers`` containers spread over ``--nodes``
  simulated nodes (``<tmp>/nodes/<node>/pods/<ns>_<pod>_<uid>/app/0.log``, kubelet naming and
  rotation from sandbox/crilogs.py, files rotated at ``--max-size``), each container about
  ``--rate`` lines per second, every line numbered (``c<container> n<seq>``), plus a marker line
  every 0.25 s whose write time is known;
- the **node collectors** (hub/collectors/logs/nodecollector.py), one per node, as in a DaemonSet;
  to fit 1,000 nodes on two cores they run in ``--workers`` processes that step their nodes'
  collectors in turn (each node keeps its own files, positions, buffer and batches);
- the **hub** (`kubehub serve`, embedded store) taking the batches at ``POST /api/v1/logs/ingest``,
  connected to the sandbox's kube-apiserver like a production hub.

Measured:

- ``apiserver_rps``: GET and LIST requests on pods (``pods`` and ``pods/log``) per second at the
  sandbox's kube-apiserver (its own ``apiserver_request_total``) while the collection runs, minus
  the same rate over an equally long window just before it (the sandbox's other clients); watches
  aside. The poller design's figure is printed beside it: one ``pods/log`` GET per container
  per ``logs.ship_interval`` (10 s), i.e. containers / 10 requests per second, and the rate the
  sandbox's own hub poller causes in the baseline window.
- ``lag_p95_s``: from a marker line's write to the first hub search (``GET /api/v1/logs?q=…``)
  that finds it, p95 over every marker.
- ``lost`` / ``duplicated``: after the writers stop and the collectors drain, every numbered
  line of every container is looked up in the store: missing ones are lost, ones stored more
  than once duplicated.

Last line: ``collector: apiserver_rps=<…> lag_p95_s=<…> containers=<n> lost=<n> duplicated=<n>``.
Goals: apiserver_rps <= 5, lag_p95_s <= 5 (docs/logs.md "The node collector", measured table).
``--quick``: 1,000 containers on 20 nodes for 20 s (about 40 s in all).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KUBEHUB = [sys.executable, "-m", "hub.cli"]
NAMESPACES = 50
JAVA_FRAMES = "\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n\t... 3 more"
PASSWORD = "bench-collector-pw-7f3k"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def layout(containers: int, nodes: int) -> list[tuple[int, str, str, str, str]]:
    """(container id, node, namespace, pod, uid) of every simulated container (one per pod)."""
    out = []
    for cid in range(containers):
        ns = f"team-{cid % NAMESPACES:02d}"
        pod = f"svc{cid % 97}-7d9f8c6b5-{cid:05d}"
        uid = f"00000000-0000-4000-8000-{cid:012d}"
        out.append((cid, f"sim-node-{cid % nodes:04d}", ns, pod, uid))
    return out


# -- the generator ---------------------------------------------------------------------------------
def generator(base: str, spec: list[Any], rate: float, seconds: float, max_size: int, out: Any, marks: Any) -> None:
    from sandbox.crilogs import ContainerLog

    logs = {
        cid: ContainerLog(Path(base) / node / "pods", ns, pod, uid, "app", max_size=max_size, keep_open=False)
        for cid, node, ns, pod, uid in spec
    }
    seq = dict.fromkeys(logs, 0)
    rng = random.Random(7)
    ids = list(logs)
    per_second = rate * len(ids)
    start = time.time()
    written = 0
    next_mark, mark = start, 0
    while True:
        now = time.time()
        if now - start >= seconds:
            break
        due = int((now - start) * per_second) - written
        for _ in range(max(0, due)):
            cid = ids[written % len(ids)]
            stream = "stderr" if seq[cid] % 40 == 39 else "stdout"
            msg = f"c{cid} n{seq[cid]} GET /api/v1/items/{seq[cid]} 200 {seq[cid] % 97}ms"
            if stream == "stderr":  # a Java trace: one record of four lines
                msg = f"c{cid} n{seq[cid]} java.lang.IllegalStateException: boom\n" + JAVA_FRAMES
            logs[cid].write(msg, stream=stream)
            seq[cid] += 1
            written += 1
        if now >= next_mark:
            cid = rng.choice(ids)
            t = logs[cid].write(f"c{cid} n{seq[cid]} lagmark{mark:06d}")
            seq[cid] += 1
            marks.put((mark, t))
            mark += 1
            next_mark += 0.25
        time.sleep(0.02)
    out.put(seq)


# -- the collectors ------------------------------------------------------------------------------------
def collectors(
    base: str, state: str, nodes: list[str], sink_spec: tuple[str, str, str], batch_wait: float, stop: Any, stats: Any
) -> None:
    import logging

    from hub.collectors.logs.nodecollector import HubSink, NodeCollector, Sink, StoreSink
    from hub.collectors.logs.nodetail import NodeTail, PositionStore

    logging.basicConfig(level=logging.WARNING)
    kind, url, secret = sink_spec
    sink: Sink
    if kind == "elasticsearch":
        from hub.collectors.logs.elasticsearch import ElasticsearchLogStore

        sink = StoreSink(ElasticsearchLogStore(url, index_prefix=secret))  # secret: the index prefix
    else:
        sink = HubSink(url, secret)
    running = []
    for node in nodes:
        Path(state, node).mkdir(parents=True, exist_ok=True)
        tail = NodeTail(Path(base) / node / "pods", PositionStore(Path(state, node, "positions.json")))
        running.append(NodeCollector(tail, sink, node, batch_wait=batch_wait, discover_interval=2.0))
    cpu0 = time.process_time()
    # Each node's collector runs its own loop, as on its own node; its sends overlap the others'.
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in running]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats.put((sum(c.read for c in running), sum(c.failed for c in running), time.process_time() - cpu0))


# -- the hub ---------------------------------------------------------------------------------------------
class Hub:
    def __init__(self, data: Path, digest: str, kubeconfig: str, es: tuple[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
        self.env.update(
            KUBEHUB_DATA_DIR=str(data),
            KUBEHUB_HTTP_PORT=str(self.port),
            KUBEHUB_HTTP_THREADS="8",
            KUBEHUB_KUBERNETES_KUBECONFIG=kubeconfig,
            KUBEHUB_LOGS_SHIP="false",
            KUBEHUB_ALERTS_EVALUATE="false",
            KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256=digest,
            KUBEHUB_LOG_LEVEL="warning",
        )
        if es is not None:  # the hub searches the indices the collectors write
            self.env.update(
                KUBEHUB_LOGS_BACKEND="elasticsearch",
                KUBEHUB_ELASTICSEARCH_URL=es[0],
                KUBEHUB_ELASTICSEARCH_INDEX_PREFIX=es[1],
            )
        subprocess.run(
            [*KUBEHUB, "users", "create-admin", "admin", "--password-env=PW"],
            env={**self.env, "PW": PASSWORD},
            check=True,
            capture_output=True,
        )
        with open(data.parent / "hub.log", "ab") as log:  # waitress reports its queue depth there
            self.proc = subprocess.Popen([*KUBEHUB, "serve"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        body = json.dumps({"username": "admin", "password": PASSWORD, "expires_in": "8h"}).encode()
        req = urllib.request.Request(
            self.url + "/api/v1/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            self.token = json.loads(r.read())["token"]

    def get(self, path: str, **params: Any) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


# -- the API server's own counters ---------------------------------------------------------------------------
def pod_reads(kubeconfig: str) -> tuple[float, float]:
    """(GET+LIST on pods, reads of pods/log) so far, from the kube-apiserver's apiserver_request_total.
    The API server files a log read under the verb CONNECT (measured: the sandbox hub's poller),
    so that verb counts too."""
    from bench.apiserver import request_totals

    pods = logs = 0.0
    for (verb, resource, subresource), count in request_totals(kubeconfig).items():
        if resource != "pods" or verb not in ("GET", "LIST", "CONNECT"):
            continue
        if subresource == "log":
            logs += count
        elif not subresource:
            pods += count
    return pods + logs, logs


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 containers on 20 nodes for 20 s")
    parser.add_argument("--containers", type=int, default=20_000)
    parser.add_argument("--nodes", type=int, default=200, help="simulated nodes (kubelet default: 110 pods each)")
    parser.add_argument("--rate", type=float, default=0.1, help="lines per second per container")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2, help="processes running the nodes' collectors")
    parser.add_argument(
        "--batch-wait", type=float, default=1.0, help="seconds a node's records wait to fill a batch (requests/s)"
    )
    parser.add_argument(
        "--sink",
        choices=["hub", "elasticsearch"],
        default="hub",
        help="hub: POST /api/v1/logs/ingest (embedded store); elasticsearch: the sandbox's, straight from the nodes",
    )
    parser.add_argument("--max-size", type=int, default=64 * 1024, help="rotate a container's file at this size")
    args = parser.parse_args(argv)
    if args.quick:
        args.containers, args.nodes, args.seconds = 1_000, 20, 20.0

    from hub.collectors.logs.embedded import EmbeddedLogStore
    from hub.collectors.logs.nodewire import new_collector_token
    from hub.collectors.logs.store import LogQuery
    from sandbox.core import Sandbox

    kubeconfig = str(Sandbox().kubeconfig)  # the running shared sandbox (kubehub sandbox up)
    if not Path(kubeconfig).exists():
        raise SystemExit("the sandbox is not up: run `kubehub sandbox up` first")
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kubehub-bench-collector-"))
    spec = layout(args.containers, args.nodes)
    nodes = sorted({s[1] for s in spec})
    token, digest = new_collector_token()
    print(
        f"collector bench ({args.sink}): {args.containers} containers on {len(nodes)} nodes, {args.rate} lines/s each, "
        f"{args.seconds:.0f} s; load average {load0[0]:.2f}",
        flush=True,
    )
    es_url = Sandbox().elasticsearch_url
    prefix = f"kubehub-bench-collector-{os.getpid()}"
    es = (es_url, prefix) if args.sink == "elasticsearch" else None
    hub = Hub(tmp / "hub", digest, kubeconfig, es)
    sink_spec = ("elasticsearch", es_url, prefix) if es else ("hub", hub.url, token)
    try:
        # baseline: the API server's pod reads without this collection (other clients, the
        # sandbox hub's own poller)
        window = min(args.seconds, 30.0)
        b0, bl0 = pod_reads(kubeconfig)
        time.sleep(window)
        b1, bl1 = pod_reads(kubeconfig)
        base_rps, base_log_rps = (b1 - b0) / window, (bl1 - bl0) / window

        ctx = mp.get_context("spawn")
        out, marks_q, stats = ctx.Queue(), ctx.Queue(), ctx.Queue()
        stop = ctx.Event()
        gen = ctx.Process(
            target=generator,
            args=(str(tmp / "nodes"), spec, args.rate, args.seconds, args.max_size, out, marks_q),
        )
        for _cid, node, ns, pod, uid in spec:  # the kubelet made the directories when the pods started
            (tmp / "nodes" / node / "pods" / f"{ns}_{pod}_{uid}" / "app").mkdir(parents=True, exist_ok=True)
        shares = [nodes[i :: args.workers] for i in range(args.workers)]
        workers = [
            ctx.Process(
                target=collectors,
                args=(str(tmp / "nodes"), str(tmp / "state"), share, sink_spec, args.batch_wait, stop, stats),
            )
            for share in shares
        ]
        for w in workers:
            w.start()
        time.sleep(3)  # the collectors walk their nodes once
        a0, al0 = pod_reads(kubeconfig)
        t0 = time.time()
        gen.start()

        lags: list[float] = []
        pending: dict[int, float] = {}
        done_writing = threading.Event()

        def watch_marks() -> None:
            while not (done_writing.is_set() and not pending):
                while not marks_q.empty():
                    mark, t = marks_q.get()
                    pending[mark] = t
                if pending:
                    batch = sorted(pending)[:40]
                    q = " OR ".join(f"lagmark{m:06d}" for m in batch)
                    try:
                        found = hub.get("/api/v1/logs", q=q, size=100, start=int(t0) - 5)
                    except OSError:
                        found = {"items": []}
                    now = time.time()
                    for item in found["items"]:
                        m = re.search(r"lagmark(\d{6})", item["message"])
                        if m and int(m.group(1)) in pending:
                            lags.append(now - pending.pop(int(m.group(1))))
                    for mark in [m for m, t in pending.items() if now - t > 120]:
                        pending.pop(mark)
                        lags.append(float("inf"))
                time.sleep(0.1)

        watcher = threading.Thread(target=watch_marks, daemon=True)
        watcher.start()
        seq = out.get()
        gen.join()
        written_s = time.time() - t0
        expected = sum(seq.values())
        # drain: wait until the store holds every line (or a minute passes)
        deadline = time.time() + 60
        while time.time() < deadline:
            if hub.get("/api/v1/logs/stores")["total_lines"] >= expected:
                break
            time.sleep(1)
        a1, al1 = pod_reads(kubeconfig)
        during = time.time() - t0
        done_writing.set()
        watcher.join(timeout=130)
        stop.set()
        worker_stats = [stats.get() for _ in workers]
        for w in workers:
            w.join()
    finally:
        hub.stop()
    load1 = os.getloadavg()

    store: Any = EmbeddedLogStore(tmp / "hub" / "logs")
    if es is not None:
        from hub.collectors.logs.elasticsearch import ElasticsearchLogStore

        store.close()
        store = ElasticsearchLogStore(es_url, index_prefix=prefix)
        store.refresh()
    counts: dict[tuple[int, int], int] = {}
    for line in store.export(LogQuery(visibility=None, sort="asc"), limit=10**8):
        m = re.match(r"c(\d+) n(\d+) ", line.message)
        if m:
            key = (int(m.group(1)), int(m.group(2)))
            counts[key] = counts.get(key, 0) + 1
    if es is not None:
        store.drop_before("2100-01-01")  # the bench's own indices (its own prefix) only
    store.close()
    lost = sum(1 for cid, n in seq.items() for i in range(n) if (cid, i) not in counts)
    duplicated = sum(v - 1 for v in counts.values() if v > 1)
    apiserver_rps = max(0.0, (a1 - a0) / during - base_rps)
    log_rps = (al1 - al0) / during - base_log_rps
    lag_p95 = percentile(lags, 0.95)
    cpu = sum(s[2] for s in worker_stats)
    print(
        f"written {expected} lines in {written_s:.1f} s ({expected / written_s:.0f} lines/s); "
        f"collectors read {sum(s[0] for s in worker_stats)} records, {sum(s[1] for s in worker_stats)} failed batches, "
        f"{cpu:.1f} CPU-s ({cpu / during / len(nodes) * 1000:.2f} ms CPU per node per second)"
    )
    print(
        f"lag: {len(lags)} markers, p50 {percentile(lags, 0.5):.2f} s, p95 {lag_p95:.2f} s, "
        f"max {max(lags or [0]):.2f} s"
    )
    print(
        f"API server, GET/LIST on pods and pods/log: baseline {base_rps:.2f}/s "
        f"(of which pods/log {base_log_rps:.2f}/s), during the collection "
        f"+{apiserver_rps:.2f}/s (pods/log {log_rps:+.2f}/s)"
    )
    print(
        f"poller design at {args.containers} containers: {args.containers / 10:.0f} pods/log requests/s "
        f"(one per container per 10 s ship interval)"
    )
    print(f"load average {load0[0]:.2f} -> {load1[0]:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"collector: apiserver_rps={apiserver_rps:.2f} lag_p95_s={lag_p95:.2f} containers={args.containers} "
        f"lost={lost} duplicated={duplicated}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
