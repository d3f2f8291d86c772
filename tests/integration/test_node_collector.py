"""``kubehub collect-node`` as a real process on real CRI files, into a real hub and into the
sandbox's Elasticsearch, compared with what was written (the writer's own record of it).

The files are laid out for the sandbox's real KWOK pods (namespace, name, UID and node from the
kube-apiserver), written and rotated the way the kubelet does it (sandbox/crilogs.py: 0.log
renamed to 0.log.<stamp>, older ones gzipped and removed beyond max files). One run covers:
rotation (including files compressed while the collector was down), a pod deleted right after
its last lines, the collector killed with SIGKILL and started again, the hub (the store's only
door) down for several seconds, Java and Python stack traces and lines longer than one CRI piece.
The oracle is the writer: every logical record it wrote must be stored exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.nodewire import new_collector_token
from hub.collectors.logs.store import LogQuery
from sandbox.crilogs import ContainerLog, Oracle, compare, delete_pod, sample_record
from tests.integration.logs_support import sandbox_status

pytestmark = pytest.mark.integration

KUBEHUB = [sys.executable, "-m", "hub.cli"]
NAMESPACE = "retail-api"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kwok_pods(status: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(namespace, pod, uid, node) of the sandbox's scheduled pods of NAMESPACE."""
    from sandbox.kube import KubeRest

    api = KubeRest(Path(status["kubeconfig"]), pool=1)
    items = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    pods = [
        (p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"], p["spec"]["nodeName"])
        for p in items
        if p.get("spec", {}).get("nodeName")
    ]
    assert len(pods) >= 2, "the sandbox seeds several pods in retail-api"
    return pods


class Hub:
    """``kubehub serve`` with the embedded store in its own data directory."""

    def __init__(self, data: Path, digest: str, kubeconfig: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
        env.update(
            KUBEHUB_DATA_DIR=str(data),
            KUBEHUB_HTTP_PORT=str(self.port),
            KUBEHUB_KUBERNETES_KUBECONFIG=kubeconfig,
            KUBEHUB_LOGS_SHIP="false",
            KUBEHUB_ALERTS_EVALUATE="false",
            KUBEHUB_LOGS_RETENTION_DAYS="3650",
            KUBEHUB_LOGS_COLLECTOR_TOKEN_SHA256=digest,
            KUBEHUB_LOG_LEVEL="warning",
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_token = ""
        subprocess.run(
            [*KUBEHUB, "users", "create-admin", "admin", "--password-env=PW"],
            env={**env, "PW": "node-collector-test-pw"},
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*KUBEHUB, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("kubehub serve did not come up")
        if not self.admin_token:
            body = json.dumps({"username": "admin", "password": "node-collector-test-pw"}).encode()
            req = urllib.request.Request(
                self.url + "/api/v1/auth/token", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                self.admin_token = json.loads(r.read())["token"]

    def stored_lines(self) -> int:
        """Lines the hub's store holds (GET /api/v1/logs/stores, as its admin)."""
        req = urllib.request.Request(
            self.url + "/api/v1/logs/stores", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(json.loads(r.read())["total_lines"])
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


def collector(root: Path, state: Path, node: str, *sink: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    state.parent.mkdir(parents=True, exist_ok=True)
    args = [*KUBEHUB, "collect-node", f"--root={root}", f"--state-dir={state}", f"--node={node}"]
    args += ["--discover-interval=0.5", "--poll-interval=0.1", "--flush-after=1", *sink]
    with open(state.parent / f"{node}.log", "ab") as err:  # the collector's own log, read on failure
        return subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=err)


class Writer:
    """Writes sample records into every pod's container files, like the runtime does."""

    def __init__(self, base: Path, pods: list[tuple[str, str, str, str]], oracle: Oracle) -> None:
        self.oracle = oracle
        self.logs = {
            pod: ContainerLog(base / node / "pods", ns, pod, uid, "app", max_size=60_000, max_files=4, oracle=oracle)
            for ns, pod, uid, node in pods
        }
        self.n = 0

    def burst(self, count: int, pods: list[str] | None = None) -> None:
        for _ in range(count):
            for pod in pods or list(self.logs):
                stream, message = sample_record(self.n)
                self.logs[pod].write(message, stream=stream)
                self.n += 1


def stored_embedded(data: Path) -> list[tuple[str, str]]:
    store = EmbeddedLogStore(data / "logs")
    try:
        lines = store.export(LogQuery(visibility=None, sort="asc"), limit=10**7)
        return [(f"{x.namespace}/{x.pod}/{x.container}", x.message) for x in lines]
    finally:
        store.close()


def wait_until_quiet(get_count: Any, expected: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and get_count() < expected:
        time.sleep(0.5)


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    status = sandbox_status(request)
    pods = kwok_pods(status)
    yield {"status": status, "pods": pods, "tmp": tmp_path}


def test_collector_through_the_hub_loses_nothing_and_stores_nothing_twice(world: dict[str, Any]) -> None:
    tmp: Path = world["tmp"]
    pods = world["pods"]
    token, digest = new_collector_token()
    hub = Hub(tmp / "hub", digest, str(world["status"]["kubeconfig"]))
    hub.start()
    oracle = Oracle()
    writer = Writer(tmp / "nodes", pods, oracle)
    nodes = sorted({p[3] for p in pods})
    env = {"KUBEHUB_COLLECTOR_TOKEN": token}

    def start(node: str) -> subprocess.Popen:
        return collector(tmp / "nodes" / node / "pods", tmp / "state" / node, node, f"--hub-url={hub.url}", env=env)

    def started(count: int) -> None:
        """Wait until every node's collector logged its start ``count`` times (then it has
        walked its files once: the first step discovers before anything else)."""
        deadline = time.monotonic() + 60
        for node in nodes:
            log_file = tmp / "state" / f"{node}.log"
            while time.monotonic() < deadline:
                if log_file.exists() and log_file.read_text().count("collecting ") >= count:
                    break
                time.sleep(0.2)
        time.sleep(1.0)

    procs = {node: start(node) for node in nodes}
    try:
        started(1)
        writer.burst(30)
        time.sleep(2)
        # 1. the collector is killed mid-stream (no chance to save anything) and started again
        writer.burst(20)
        for proc in procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        writer.burst(10)
        procs = {node: start(node) for node in nodes}
        started(2)
        # 2. the hub is down: the collector holds its records, backs off, and delivers later
        hub.stop()
        writer.burst(40)  # rotations happen meanwhile (60 kB files)
        time.sleep(3)
        hub.start()
        # 3. the collector is down while files rotate twice: the older one is gzipped meanwhile
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
        writer.burst(120)
        procs = {node: start(node) for node in nodes}
        started(3)
        # 4. a pod is deleted right after its last lines; the collector still reads them
        gone_ns, gone_pod, gone_uid, gone_node = pods[0]
        writer.burst(5, pods=[gone_pod])
        writer.logs[gone_pod].close()
        delete_pod(tmp / "nodes" / gone_node / "pods", gone_ns, gone_pod, gone_uid)
        writer.burst(10, pods=[p[1] for p in pods[1:]])
        wait_until_quiet(hub.stored_lines, oracle.count(), timeout=90)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
        hub.stop()
    stored = stored_embedded(tmp / "hub")
    lost, duplicated, unexpected = compare(oracle, stored)
    traces = sum(1 for _, m in stored if m.startswith(("java.lang.", "Traceback")))
    print(f"node collector via hub: written={oracle.count()} stored={len(stored)} lost={lost} duplicated={duplicated}")
    missing = _missing(oracle, stored)
    assert (lost, duplicated, unexpected) == (0, 0, 0), missing[:5]
    assert traces == sum(1 for msgs in oracle.records.values() for m in msgs if m.startswith(("java.", "Traceback")))
    rotated = list((tmp / "nodes").rglob("*.log.*.gz"))
    assert rotated, "the run must have made the kubelet-style writer compress rotated files"


def test_collector_straight_to_elasticsearch(world: dict[str, Any]) -> None:
    from hub.collectors.logs.elasticsearch import ElasticsearchLogStore

    tmp: Path = world["tmp"]
    pods = world["pods"][:3]
    es_url = world["status"]["elasticsearch_url"]
    prefix = f"kubehub-nodetest-{uuid.uuid4().hex[:8]}"
    oracle = Oracle()
    writer = Writer(tmp / "nodes", pods, oracle)
    store = ElasticsearchLogStore(es_url, index_prefix=prefix)
    nodes = sorted({p[3] for p in pods})
    procs = [
        collector(
            tmp / "nodes" / n / "pods",
            tmp / "state" / n,
            n,
            f"--elasticsearch-url={es_url}",
            f"--index-prefix={prefix}",
        )
        for n in nodes
    ]
    try:
        writer.burst(60)

        def count() -> int:
            store.refresh()
            return len(list(store.export(LogQuery(visibility=None), limit=10**6)))

        wait_until_quiet(count, oracle.count(), timeout=60)
        time.sleep(1.5)
        lines = list(store.export(LogQuery(visibility=None, sort="asc"), limit=10**6))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        store.drop_before("2100-01-01")  # the test's own indices (its own prefix) only
        store.close()
    lost, duplicated, unexpected = compare(oracle, [(f"{x.namespace}/{x.pod}/{x.container}", x.message) for x in lines])
    assert (lost, duplicated, unexpected) == (0, 0, 0)
    assert {x.node for x in lines} == set(nodes)


def _missing(oracle: Oracle, stored: list[tuple[str, str]]) -> list[tuple[str, str]]:
    have = set(stored)
    return [(k, m[:60]) for k, msgs in oracle.records.items() for m in msgs if (k, m) not in have]
