"""Kubernetes API helpers of the sandbox: a small REST client, KWOK's CRDs and configuration, nodes.

The sandbox talks to its API server with plain JSON over urllib3 rather than the ``kubernetes``
package's typed models: seeding thousands of objects needs no model validation or
deserialisation, and the sandbox must not break when that package's generated API changes.
Parallelism is bounded only by the connection pool; creates run on a thread pool of that size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

from sandbox import model
from sandbox.prereqs import kwok_kustomize

KWOK_GROUP = "kwok.x-k8s.io"
KWOK_VERSION_API = "v1alpha1"
KWOK_CRDS = ["Metric", "ClusterResourceUsage", "ResourceUsage", "Logs", "ClusterLogs"]
CADVISOR_PATH = "/metrics/nodes/{nodeName}/metrics/cadvisor"
PARALLELISM = 24


class KubeError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")


class KubeRest:
    """Just enough of the Kubernetes REST API, authenticated with the kubeconfig's client certificate."""

    def __init__(self, kubeconfig: Path, *, pool: int = PARALLELISM) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self.http = urllib3.PoolManager(
            num_pools=2,
            maxsize=pool,
            block=True,
            cert_reqs="CERT_REQUIRED",
            ca_certs=cluster["certificate-authority"],
            cert_file=user["client-certificate"],
            key_file=user["client-key"],
            retries=urllib3.Retry(total=3, connect=3, read=0, status=0, backoff_factor=0.2),
            timeout=urllib3.Timeout(connect=5, read=60),
        )

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                params: dict[str, Any] | None = None) -> Any:  # fmt: skip
        url = self.server + path + ("?" + urlencode(params) if params else "")
        data = None if body is None else json.dumps(body).encode()
        resp = self.http.request(method, url, body=data, headers={"Content-Type": content_type})
        if resp.status >= 400:
            raise KubeError(resp.status, method, path, resp.data.decode("utf-8", "replace"))
        return json.loads(resp.data) if resp.data else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a collection, fetched in pages (cheap even for 20,000 pods)."""
        items: list[dict[str, Any]] = []
        cont = ""
        while True:
            page = self.get(path, limit=5000, **params, **({"continue": cont} if cont else {}))
            items.extend(page["items"])
            cont = page["metadata"].get("continue") or ""
            if not cont:
                return items

    def create(self, path: str, body: dict[str, Any]) -> bool:
        """POST an object; an existing one is fine (idempotent seeding). True if created."""
        try:
            self.request("POST", path, body)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def patch_status(self, path: str, body: dict[str, Any]) -> Any:
        """A strategic merge patch (a status subresource's lists, such as a pod's conditions, are
        merged by their key rather than replaced)."""
        return self.request("PATCH", path, body, content_type="application/strategic-merge-patch+json")

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> bool:
        try:
            self.request("DELETE", path)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(self, path: str, resource_version: str, *, timeout: int = 240) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) of a collection from a resource version."""
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": str(timeout),
                  "allowWatchBookmarks": "true"}  # fmt: skip
        resp = self.http.request(
            "GET", self.server + path + "?" + urlencode(params), preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=timeout + 30),
        )  # fmt: skip
        try:
            if resp.status >= 400:
                raise KubeError(resp.status, "WATCH", path, resp.read().decode("utf-8", "replace"))
            buf = b""
            for chunk in resp.stream(65536):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()


def ns_path(namespace: str, plural: str, *, group: str = "", version: str = "v1", name: str = "") -> str:
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{quote(namespace)}/{plural}"
    return path + (f"/{quote(name)}" if name else "")


def parallel(
    fn: Callable[[Any], Any], items: Iterable[Any], *, on_done: Callable[[int], None] | None = None
) -> list[Any]:
    """Run ``fn`` over items on the thread pool; ``on_done(n)`` after each completion (progress)."""
    results: list[Any] = []
    with ThreadPoolExecutor(max_workers=PARALLELISM) as pool:
        for i, r in enumerate(pool.map(fn, items), 1):
            results.append(r)
            if on_done:
                on_done(i)
    return results


# ---- KWOK ---------------------------------------------------------------------------------------


CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def apply_kwok_crds(api: KubeRest) -> None:
    for f in sorted((kwok_kustomize() / "crd" / "bases").glob("*.yaml")):
        api.create(CRD_PATH, yaml.safe_load(f.read_text()))


def kwok_crds_established(api: KubeRest) -> bool:
    wanted = len(list((kwok_kustomize() / "crd" / "bases").glob("*.yaml")))
    ours = [c for c in api.list(CRD_PATH) if c["spec"]["group"] == KWOK_GROUP]
    established = [
        c
        for c in ours
        if any(
            x["type"] == "Established" and x["status"] == "True" for x in c.get("status", {}).get("conditions") or []
        )
    ]
    return len(established) >= wanted


def kwok_config(path: Path, *, node_lease_seconds: int) -> None:
    """KWOK's configuration file: options plus the stages that play nodes and pods."""
    base = kwok_kustomize() / "stage"
    stage_files = [
        base / "node" / "fast" / "node-initialize.yaml",
        base / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        *sorted((base / "pod" / "fast").glob("pod-*.yaml")),
    ]
    docs: list[str] = [
        yaml.safe_dump(
            {
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokConfiguration",
                "options": {
                    "enableCRDs": KWOK_CRDS,
                    # Pod logs (KWOK's Logs/ClusterLogs) are served by the debugging handlers;
                    # with a configuration file they are off unless asked for.
                    "enableDebuggingHandlers": True,
                    "nodeLeaseDurationSeconds": node_lease_seconds,
                    # Large clusters: play stages and renew leases with more workers than the default.
                    "podPlayStageParallelism": 16,
                    "nodePlayStageParallelism": 8,
                    "nodeLeaseParallelism": 8,
                },
            }
        )
    ]
    docs.extend(f.read_text() for f in stage_files)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n---\n".join(d.strip() for d in docs) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _container_labels() -> list[dict[str, str]]:
    return [
        {"name": "container", "value": "container.name"},
        {"name": "namespace", "value": "pod.metadata.namespace"},
        {"name": "pod", "value": "pod.metadata.name"},
    ]


def cadvisor_metric() -> dict[str, Any]:
    """KWOK Metric serving the cAdvisor-named container series of docs/metrics-conventions.md."""
    pod_labels = [
        {"name": "container", "value": '"POD"'},
        {"name": "namespace", "value": "pod.metadata.namespace"},
        {"name": "pod", "value": "pod.metadata.name"},
    ]
    metrics = [
        {
            "name": "container_cpu_usage_seconds_total",
            "dimension": "container",
            "kind": "counter",
            "help": "Cumulative cpu time consumed by the container in core-seconds (simulated)",
            "labels": _container_labels(),
            "value": 'pod.CumulativeUsage("cpu", container.name)',
        },
        {
            "name": "container_memory_working_set_bytes",
            "dimension": "container",
            "kind": "gauge",
            "help": "Current working set of the container in bytes (simulated)",
            "labels": _container_labels(),
            "value": 'pod.Usage("memory", container.name)',
        },
        {
            "name": "container_memory_usage_bytes",
            "dimension": "container",
            "kind": "gauge",
            "help": "Current memory usage of the container including cache, in bytes (simulated)",
            "labels": _container_labels(),
            "value": f'pod.Usage("memory", container.name) * {model.MEMORY_USAGE_OVER_WORKING_SET}',
        },
        {
            "name": "container_network_receive_bytes_total",
            "dimension": "pod",
            "kind": "counter",
            "help": "Cumulative count of bytes received by the pod (simulated)",
            "labels": pod_labels,
            "value": 'pod.CumulativeUsage("network-rx")',
        },
        {
            "name": "container_network_transmit_bytes_total",
            "dimension": "pod",
            "kind": "counter",
            "help": "Cumulative count of bytes transmitted by the pod (simulated)",
            "labels": pod_labels,
            "value": 'pod.CumulativeUsage("network-tx")',
        },
    ]
    return {
        "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION_API}",
        "kind": "Metric",
        "metadata": {"name": "cadvisor"},
        "spec": {"path": CADVISOR_PATH, "metrics": metrics},
    }


def usage_object() -> dict[str, Any]:
    usage = {name: {"expression": expr} for name, expr in model.kwok_usage_cel().items()}
    return {
        "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION_API}",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": "kubehub-usage"},
        "spec": {"usages": [{"usage": usage}]},
    }


def kwok_path(plural: str, name: str = "") -> str:
    return f"/apis/{KWOK_GROUP}/{KWOK_VERSION_API}/{plural}" + (f"/{name}" if name else "")


def apply_cluster_object(api: KubeRest, obj: dict[str, Any]) -> None:
    """Create or replace a cluster-scoped KWOK object (so a changed formula takes effect on `up`)."""
    plural = obj["kind"].lower() + ("" if obj["kind"].endswith("s") else "s")
    name = obj["metadata"]["name"]
    try:
        current = api.get(kwok_path(plural, name))
    except KubeError as exc:
        if exc.status != 404:
            raise
        api.create(kwok_path(plural), obj)
        return
    if current.get("spec") != obj["spec"]:
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        api.put(kwok_path(plural, name), obj)


# ---- nodes ----------------------------------------------------------------------------------------

NODE_SHAPES = [(8, 32), (16, 64), (4, 16), (8, 32), (16, 64)]  # (cores, GiB) cycled over the nodes


def node_name(i: int) -> str:
    return f"kwok-node-{i}"


def node_manifest(i: int) -> dict[str, Any]:
    cores, gib = NODE_SHAPES[i % len(NODE_SHAPES)]
    name = node_name(i)
    zone = ["a", "b", "c"][i % 3]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/worker": "",
                "topology.kubernetes.io/zone": f"sandbox-{zone}",
                "type": "kwok",
            },
        },
        # KWOK gives pods IPs from their node's pod CIDR (without one, all nodes share one /24).
        "spec": {"podCIDR": f"10.{64 + i // 256}.{i % 256}.0/24", "podCIDRs": [f"10.{64 + i // 256}.{i % 256}.0/24"]},
        "status": {
            "allocatable": {"cpu": str(cores), "memory": f"{gib}Gi", "pods": "110"},
            "capacity": {"cpu": str(cores), "memory": f"{gib}Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0-kwok",
                "containerRuntimeVersion": "containerd://1.7.24",
            },
        },
    }


def ensure_nodes(api: KubeRest, count: int, *, on_done: Callable[[int], None] | None = None) -> int:
    """Create nodes kwok-node-0..count-1 that do not exist yet; returns how many were created."""
    existing = {n["metadata"]["name"] for n in api.list("/api/v1/nodes")}
    todo = [i for i in range(count) if node_name(i) not in existing]
    created = parallel(lambda i: api.create("/api/v1/nodes", node_manifest(i)), todo, on_done=on_done)
    return sum(1 for c in created if c)
