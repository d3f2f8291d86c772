"""Inventory benchmark: the hub's cached listings against a raw paginated LIST, in the same run.

    .venv/bin/python bench/inventory.py [--quick] [--kubeconfig PATH] [--nodes N --pods M] [--port-base P]

Without ``--kubeconfig`` it starts a private etcd + kube-apiserver from the cached engines
(never the shared sandbox) and fills it with N nodes and M pods whose status looks like a
running kubelet's (conditions, container statuses, IPs); a quarter of the pods go to one busy
namespace. With ``--kubeconfig`` (e.g. the sandbox after ``kubehub sandbox up --nodes 1000
--pods 20000``) it measures that cluster as it is.

Measured, each as the p95 of full listings (every page of 500):
  * hub: ``GET /api/v1/nodes`` and ``GET /api/v1/namespaces/<busy>/pods`` through the Flask app,
    answered from the watch cache;
  * raw: ``CoreV1Api.list_node`` / ``list_namespaced_pod`` with ``limit=500`` and ``_continue``
    through the official kubernetes client (what a hub without a cache would do per request),
    and the same LIST with the JSON left undecoded (the floor of any client).
  * the client's share of the hub's node listing: the same pages fetched once, then only decoded
    with ``json.loads`` (``nodes_decode_ratio`` = its p95 / the typed LIST's p95: the floor of the
    nodes ratio for this client, whatever the hub does, as long as the answer carries the same);
    and those pages cut to the fields the console's nodes page shows (name, readiness, cordoned,
    roles, requested vs allocatable), then decoded (``nodes_page_decode_ratio``: the floor of a
    listing that carries nothing more than that page reads).
Also: the cache's initial sync time (every kind the hub watches, as the hub starts), and its
memory per 10,000 pods: tracemalloc over decoding the pods' LIST pages the way the cache does
(``ResourceKind.decode_list``, from the bytes) and storing them, counting only what stays alive,
with the tables of shared parts emptied first so that those are counted too; then again with
every pod's timestamps made different (the worst case for sharing equal conditions and statuses).

The last line is ``inventory: ratio=<hub p95 / raw LIST p95> ... sync_s=… mem_mib_per_10k_pods=…
load=<1-min load average before>-><after>`` (ratio is the worse of the two listings). Issue 15's
goals at 1,000 nodes and 20,000 pods: ratio <= 0.03, sync <= 3 s, <= 15 MiB per 10,000 pods.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from hub.collectors.cluster import RESOURCE_KINDS  # noqa: E402
from hub.collectors.kube_decode import forget_shared  # noqa: E402
from hub.collectors.kubernetes import KubeApi, connect  # noqa: E402
from hub.collectors.watchcache import Store  # noqa: E402
from hub.settings import KubernetesSettings  # noqa: E402
from tests.integration.cluster_support import ControlPlane, hub_for  # noqa: E402

PAGE = 500  # kubectl's and client-go's page size, used on both sides
BUSY = "bench-busy"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], iterations: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


# -- filling a private cluster --------------------------------------------------------------------


def _node(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    name = f"bench-node-{i:04d}"
    body = {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/worker": "",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
            },
        },
        "spec": {"podCIDR": f"10.{i // 250}.{i % 250}.0/24"},
    }
    status = {
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "31500m", "memory": "126Gi", "pods": "110"},
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": r,
                    "lastHeartbeatTime": "2026-11-22T00:00:00Z",
                    "lastTransitionTime": "2026-11-22T00:00:00Z",
                }
                for t, s, r in (
                    ("Ready", "True", "KubeletReady"),
                    ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                    ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                    ("PIDPressure", "False", "KubeletHasSufficientPID"),
                )
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.250.{i // 250}.{i % 250}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.34.4",
                "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0",
                "architecture": "amd64",
                "operatingSystem": "linux",
                "machineID": f"{i:032x}",
                "systemUUID": f"{i:032x}",
                "bootID": f"{i:032x}",
                "kubeProxyVersion": "",
            },
        }
    }
    return body, status


def _pod(i: int, namespace: str, node: str) -> tuple[dict[str, Any], dict[str, Any]]:
    app = f"app-{i % 40}"
    rs = f"{app}-{(i % 40) * 7919 % 99991:05x}"
    name = f"{rs}-{i:06x}"
    containers = [
        {
            "name": "main",
            "image": f"registry.example.com/{app}:1.{i % 5}",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        },
    ]
    if i % 3 == 0:
        containers.append(
            {
                "name": "sidecar",
                "image": "registry.example.com/proxy:2.1",
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
            }
        )
    body = {
        "metadata": {
            "name": name,
            "labels": {"app": app, "pod-template-hash": rs.rsplit("-", 1)[1], "tier": "backend"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": f"00000000-0000-0000-0000-{i % 40:012d}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"nodeName": node, "containers": containers},
    }
    now = "2026-11-22T00:00:00Z"
    status = {
        "status": {
            "phase": "Running",
            "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
            "hostIP": "10.250.0.1",
            "startTime": now,
            "qosClass": "Burstable",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": f"sha256:{i:064x}",
                    "ready": True,
                    "started": True,
                    "restartCount": i % 4,
                    "containerID": f"containerd://{i:064x}",
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        }
    }
    return body, status


def populate(api: KubeApi, *, nodes: int, pods: int, say: Callable[[str], None]) -> None:
    def create(path: str, body: dict[str, Any], status: dict[str, Any] | None, resource: str) -> None:
        obj = api.request("POST", path, body=body, verb="create", resource=resource)
        if status is not None:
            md = obj["metadata"]
            where = f"{path}/{md['name']}/status"
            api.request(
                "PATCH",
                where,
                body=status,
                content_type="application/merge-patch+json",
                verb="patch",
                resource=resource,
            )

    namespaces = [BUSY] + [f"bench-ns-{k}" for k in range(9)]
    for ns in namespaces:
        api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}}, verb="create", resource="namespaces")
        # No controller-manager here: create the account the ServiceAccount admission expects.
        api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            body={"metadata": {"name": "default"}},
            verb="create",
            resource="serviceaccounts",
        )
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: create("/api/v1/nodes", *_node(i), "nodes"), range(nodes)))
        say(f"  {nodes} nodes in {time.perf_counter() - started:.1f}s")

        def one_pod(i: int) -> None:
            ns = BUSY if i % 4 == 0 else namespaces[1 + i % 9]
            create(f"/api/v1/namespaces/{ns}/pods", *_pod(i, ns, f"bench-node-{i % nodes:04d}"), "pods")

        list(pool.map(one_pod, range(pods)))
    say(f"  {nodes} nodes, {pods} pods in {time.perf_counter() - started:.1f}s")


# -- measurements ---------------------------------------------------------------------------------


def hub_listing(client: Any, path: str) -> int:
    """Every page of a hub listing; returns the number of items."""
    count, token = 0, ""
    while True:
        url = f"{path}?limit={PAGE}" + (f"&continue={token}" if token else "")
        r = client.get(url)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.get_data(as_text=True)[:200]}")
        body = json.loads(r.get_data())
        count += len(body["items"])
        token = body.get("continue")
        if not token:
            return count


def hub_pages(client: Any, path: str) -> list[bytes]:
    """The bytes of every page of a hub listing, fetched once (for timing the decoding alone)."""
    pages, token = [], ""
    while True:
        r = client.get(f"{path}?limit={PAGE}" + (f"&continue={token}" if token else ""))
        pages.append(r.get_data())
        token = json.loads(pages[-1]).get("continue")
        if not token:
            return pages


def raw_listing(list_fn: Callable[..., Any], *args: Any) -> int:
    """Every page of a LIST through the typed client (objects deserialised into models)."""
    count, token = 0, None
    while True:
        page = list_fn(*args, limit=PAGE, _continue=token)
        count += len(page.items)
        token = page.metadata._continue
        if not token:
            return count


def raw_json_listing(list_fn: Callable[..., Any], *args: Any) -> int:
    """The same LIST with the JSON decoded by json.loads only (no model classes)."""
    count, token = 0, None
    while True:
        resp = list_fn(*args, limit=PAGE, _continue=token, _preload_content=False)
        doc = json.loads(resp.data)
        count += len(doc["items"])
        token = doc["metadata"].get("continue")
        if not token:
            return count


# What the console's nodes page (web/templates/nodes.html) reads of each node.
NODES_PAGE_FIELDS = ("name", "ready", "unschedulable", "roles", "allocation")


def page_fields_only(pages: list[bytes]) -> list[bytes]:
    """The hub's node pages with each item cut to ``NODES_PAGE_FIELDS`` (the rest of the page as is)."""
    out = []
    for data in pages:
        doc = json.loads(data)
        doc["items"] = [{k: item[k] for k in NODES_PAGE_FIELDS} for item in doc["items"]]
        out.append(json.dumps(doc).encode())
    return out


def _restamped(data: bytes, first: int) -> bytes:
    """The page with every timestamp of every pod made different from all others: the worst
    case for the cache's sharing of equal conditions and statuses (the pods filled here were all
    written with one time)."""
    doc = json.loads(data)
    for n, pod in enumerate(doc["items"], start=first):

        def at(k: int, n: int = n) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_795_305_600 + 7 * n + k))

        pod["metadata"]["creationTimestamp"] = at(0)
        st = pod.get("status") or {}
        st["startTime"] = at(1)
        for k, cond in enumerate(st.get("conditions") or ()):
            cond["lastTransitionTime"] = at(2 + k)
        for cs in st.get("containerStatuses") or ():
            for state in (cs.get("state") or {}).values():
                if isinstance(state, dict) and "startedAt" in state:
                    state["startedAt"] = at(1)
    return json.dumps(doc).encode()


def cache_memory_per_10k(core: k8s.CoreV1Api, *, unique_times: bool = False) -> tuple[float, int]:
    """Bytes the cache keeps per 10,000 pods: decode (as the cache does) and store every pod of
    the cluster under tracemalloc, drop the raw JSON, and count what is still alive.
    ``unique_times``: the pods' timestamps are made all different first (see ``_restamped``)."""
    pages, token = [], None
    while True:
        resp = core.list_pod_for_all_namespaces(limit=PAGE, _continue=token, _preload_content=False)
        data = resp.data
        token = json.loads(data)["metadata"].get("continue")
        pages.append(_restamped(data, PAGE * len(pages)) if unique_times else data)
        if not token:
            break
    kind = next(k for k in RESOURCE_KINDS if k.name == "pods")
    forget_shared()  # the hub's sync filled them; what the pods share must be counted here
    gc.collect()
    tracemalloc.start()
    store = Store(kind)
    count = 0
    for data in pages:
        # decoded after start: strings the cache keeps are counted
        if kind.decode_list is not None:
            items = kind.decode_list(data)
        else:
            items = [kind.parse(item) for item in json.loads(data)["items"]]
        for obj in items:
            store.apply("ADDED", obj)
        count += len(items)
        del items
    gc.collect()
    kept, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.count() == count
    return kept / max(count, 1) * 10_000, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 nodes / 2,000 pods, fewer iterations (CI)")
    ap.add_argument("--kubeconfig", help="measure this cluster as it is instead of a private one")
    ap.add_argument("--nodes", type=int, help="nodes of the private cluster (default 1000; quick 100)")
    ap.add_argument("--pods", type=int, help="pods of the private cluster (default 20000; quick 2000)")
    ap.add_argument("--iterations", type=int, help="timed listings per measurement (default 30; quick 15)")
    ap.add_argument("--port-base", type=int, default=31700, help="ports of the private control plane (4 from here)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    nodes = args.nodes or (100 if args.quick else 1000)
    pods = args.pods or (2000 if args.quick else 20000)
    iterations = args.iterations or (15 if args.quick else 30)

    def say(msg: str) -> None:
        print(msg, flush=True)

    work = Path(tempfile.mkdtemp(prefix="kubehub-bench-inventory-"))
    plane = None
    try:
        if args.kubeconfig:
            kubeconfig = Path(args.kubeconfig)
            say(f"cluster: {kubeconfig} (as it is)")
        else:
            plane = ControlPlane(work / "plane", port_base=args.port_base, watch_cache=True)
            say(f"cluster: private etcd + kube-apiserver on :{plane.api_port}; filling {nodes} nodes, {pods} pods")
            plane.start()
            kubeconfig = plane.kubeconfig
            api = connect(KubernetesSettings(kubeconfig=str(kubeconfig), request_timeout=30.0))
            assert api is not None
            try:
                populate(api, nodes=nodes, pods=pods, say=say)
            finally:
                api.close()

        h = hub_for(kubeconfig, work / "hub", request_timeout=120.0)
        try:
            started = time.perf_counter()
            h.cluster.ensure_started()
            missing = h.cluster.cache.wait_synced(list(h.cluster.cache.stores), timeout=600)
            if missing:
                raise RuntimeError(f"the cache did not load {missing}")
            sync_s = time.perf_counter() - started
            pod_store = h.cluster.cache["pods"]
            busy = max(pod_store.namespaces(), key=pod_store.count)
            n_nodes, n_busy = h.cluster.cache["nodes"].count(), pod_store.count(busy)
            say(
                f"cache synced in {sync_s:.1f}s: {n_nodes} nodes, {pod_store.count()} pods; busy namespace "
                f"{busy} has {n_busy} pods"
            )

            # The hub and both clients share this process only here: freeze what the hub holds so
            # that neither side's samples pay for the cyclic GC walking the hub's cache (a client
            # of a real hub does not have that cache in its heap). Same for both sides.
            gc.collect()
            gc.freeze()
            api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
            core = k8s.CoreV1Api(api_client)
            try:
                assert hub_listing(h.client, "/api/v1/nodes") == raw_listing(core.list_node) == n_nodes
                nodes_path = "/api/v1/nodes"
                pods_path = f"/api/v1/namespaces/{busy}/pods"
                # The client's share of "hub nodes" alone: the same pages, only decoded as
                # hub_listing decodes them. No change inside the hub can bring its listing under
                # this without changing what the answer carries.
                node_pages = hub_pages(h.client, nodes_path)
                page_only = page_fields_only(node_pages)
                results = {
                    "hub nodes": timed(lambda: hub_listing(h.client, nodes_path), iterations),
                    "hub decode": timed(lambda: [json.loads(p) for p in node_pages], iterations),
                    "page decode": timed(lambda: [json.loads(p) for p in page_only], iterations),
                    "raw nodes": timed(lambda: raw_listing(core.list_node), iterations),
                    "json nodes": timed(lambda: raw_json_listing(core.list_node), iterations),
                    "hub pods": timed(lambda: hub_listing(h.client, pods_path), iterations),
                    "raw pods": timed(lambda: raw_listing(core.list_namespaced_pod, busy), iterations),
                    "json pods": timed(lambda: raw_json_listing(core.list_namespaced_pod, busy), iterations),
                }
                memory, counted = cache_memory_per_10k(core)
                memory_unique, _ = cache_memory_per_10k(core, unique_times=True)
            finally:
                api_client.close()
        finally:
            h.close()
    finally:
        if plane is not None:
            plane.close()

    say(f"{'listing':<12} {'p50 ms':>9} {'p95 ms':>9}   ({iterations} full listings each, pages of {PAGE})")
    for name, samples in results.items():
        say(f"{name:<12} {statistics.median(samples) * 1000:>9.1f} {p95(samples) * 1000:>9.1f}")
    say(
        f"cache memory: {memory / 2**20:.1f} MiB per 10,000 pods (tracemalloc over {counted} pods); "
        f"{memory_unique / 2**20:.1f} MiB with every pod's timestamps made different"
    )
    nodes_ratio = p95(results["hub nodes"]) / p95(results["raw nodes"])
    pods_ratio = p95(results["hub pods"]) / p95(results["raw pods"])
    decode_ratio = p95(results["hub decode"]) / p95(results["raw nodes"])
    page_decode_ratio = p95(results["page decode"]) / p95(results["raw nodes"])
    say(
        f"node answer: {sum(map(len, node_pages)) / n_nodes:.0f} bytes a node; cut to the nodes page's "
        f"fields {sum(map(len, page_only)) / n_nodes:.0f}"
    )
    json_ratio = max(
        p95(results["hub nodes"]) / p95(results["json nodes"]), p95(results["hub pods"]) / p95(results["json pods"])
    )
    say(
        f"inventory: ratio={max(nodes_ratio, pods_ratio):.3f} nodes_ratio={nodes_ratio:.3f} "
        f"pods_ratio={pods_ratio:.3f} json_ratio={json_ratio:.3f} nodes_decode_ratio={decode_ratio:.3f} "
        f"nodes_page_decode_ratio={page_decode_ratio:.3f} "
        f"nodes={n_nodes} busy_pods={n_busy} "
        f"sync_s={sync_s:.2f} mem_mib_per_10k_pods={memory / 2**20:.1f} "
        f"mem_unique_times_mib_per_10k_pods={memory_unique / 2**20:.1f} "
        f"load={load_before:.2f}->{os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
