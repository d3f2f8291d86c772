"""Support for the cluster integration tests: a hub wired to a real API server, a private control
plane that may be stopped without disturbing the shared sandbox, and a cuttable TCP proxy.

The private control plane is etcd + kube-apiserver from the cached engine binaries (no
controllers: the fault tests only need objects, watches and outages). It listens on its own
ports (31600+) and lives in a temporary directory.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask.testing import FlaskClient
from kubernetes import client as k8s

from hub.model import WORKSPACE_LABEL
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from sandbox.config import engines_dir
from tests import polling
from tests.conftest import world_database_url

ENGINES = engines_dir() / "bin"  # where the sandbox builds and caches them
PASSWORD = "Cluster-test-pass-7"
FAST_AUTH = {"password_hash_memory_kib": 1024, "password_hash_time_cost": 1}  # test-only argon2 cost
T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.5, what: str = "") -> T:
    """tests.polling.wait_until, polling twice a second by default (engines answer quickly)."""
    return polling.wait_until(check, timeout=timeout, interval=interval, what=what)


@dataclass
class HubUnderTest:
    hub: Hub
    client: FlaskClient

    @property
    def cluster(self) -> Any:
        return self.hub.cluster

    def get(self, path: str) -> Any:
        r = self.client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True))
        return r.get_json()

    def close(self) -> None:
        self.hub.close()


def hub_for(kubeconfig: Path, data_dir: Path, **kubernetes: Any) -> HubUnderTest:
    """A hub (and a test client holding a platform admin's token) whose cluster is ``kubeconfig``."""
    settings = Settings(data_dir=data_dir, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(kubeconfig), "request_timeout": 5.0, **kubernetes},
        logs={"ship": False},
        auth=dict(FAST_AUTH),
    )
    hub = build_hub(settings)
    from web import create_app

    app = create_app(hub=hub, testing=True)
    tenancy = hub.tenancy
    tenancy.create_user("admin", PASSWORD, platform_role="admin", email="admin@example.com")
    token = tenancy.issue_token("admin", kind="named", name="cluster-tests").token
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return HubUnderTest(hub, client)


def sandbox_kubeconfig(request: pytest.FixtureRequest) -> Path:
    """The sandbox's kubeconfig: the session ``sandbox`` fixture's when there is one, else the running
    sandbox's. KUBEHUB_TEST_KUBECONFIG points these tests at another cluster (e.g. a kwokctl one)."""
    override = os.environ.get("KUBEHUB_TEST_KUBECONFIG")
    if override:
        return Path(override)
    try:
        sb: Any = request.getfixturevalue("sandbox")
    except pytest.FixtureLookupError:
        from sandbox.core import Sandbox

        sb = Sandbox(quiet=True)
        up = {c["name"] for c in sb.status()["components"] if c["state"] == "up"}
        if not {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} <= up:
            pytest.fail("the sandbox's control plane and KWOK must be up: run `kubehub sandbox up`")
    return Path(sb["kubeconfig"] if isinstance(sb, dict) else sb.kubeconfig)


@contextmanager
def project_namespace(h: HubUnderTest, kube: k8s.ApiClient, prefix: str) -> Iterator[str]:
    """A fresh namespace ``<prefix>-<random>`` of workspace ``<prefix>-ws``, created through the hub
    as a project's would be, and deleted at the end (a module's own, so the sandbox's seeded
    workloads are never touched)."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    h.cluster.ensure_namespace(name, {WORKSPACE_LABEL: f"{prefix}-ws"})
    try:
        yield name
    finally:
        try:
            k8s.CoreV1Api(kube).delete_namespace(name)
        except k8s.ApiException:  # never created (its test failed) or already gone
            pass


def free_port_block(start: int, count: int) -> int:
    """The first port from ``start`` (in steps of ``count``) whose block is entirely free."""
    for base in range(start, start + 50 * count, count):
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError(f"no free block of {count} ports from {start}")


class ControlPlane:
    """etcd + kube-apiserver of our own; ``stop_apiserver``/``start_apiserver`` make outages."""

    ADMIN_TOKEN = "kubehub-cluster-tests-admin"
    NOBODY_TOKEN = "kubehub-cluster-tests-nobody"

    def __init__(self, root: Path, *, port_base: int = 31600, watch_cache: bool = False) -> None:
        self.root = root
        # Off for the fault tests (watches then read etcd, so a compaction gives 410 at once);
        # on for the benchmark, as in any real cluster.
        self.watch_cache = watch_cache
        base = free_port_block(port_base, 4)
        self.etcd_port, self.peer_port, self.api_port = base, base + 1, base + 2
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kubeconfig = root / "kubeconfig"
        self.nobody_kubeconfig = root / "kubeconfig-nobody"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root / "sa.key"
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(self.root / "sa.pub")],
                check=True,
                capture_output=True,
            )
        (self.root / "tokens.csv").write_text(
            f'{self.ADMIN_TOKEN},admin,1,"system:masters"\n{self.NOBODY_TOKEN},nobody,2\n'
        )

    @property
    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate (with its CA), written at its first start."""
        return self.root / "certs" / "apiserver.crt"

    def kubeconfig_text(self, server: str, token: str) -> str:
        return (
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
            f"clusters: [{{name: c, cluster: {{server: '{server}', certificate-authority: '{self.ca_file}'}}}}]\n"
            f"users: [{{name: u, user: {{token: '{token}'}}}}]\n"
            "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start(self) -> None:
        self._prepare()
        self._spawn(
            "etcd",
            [
                str(ENGINES / "etcd"),
                "--name=t",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self.peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_port}",
                f"--initial-cluster=t=http://127.0.0.1:{self.peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        wait_until(self._etcd_healthy, timeout=30, what="etcd")
        self.start_apiserver()

    def start_apiserver(self) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(ENGINES / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.root / 'certs'}",
                f"--token-auth-file={self.root / 'tokens.csv'}",
                f"--service-account-key-file={self.root / 'sa.pub'}",
                f"--service-account-signing-key-file={self.root / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.97.0.0/16",
                "--authorization-mode=RBAC",
                f"--watch-cache={'true' if self.watch_cache else 'false'}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        wait_until(self.apiserver_healthy, timeout=90, interval=0.5, what="kube-apiserver /readyz")
        for path, token in ((self.kubeconfig, self.ADMIN_TOKEN), (self.nobody_kubeconfig, self.NOBODY_TOKEN)):
            path.write_text(self.kubeconfig_text(self.url, token))

    def stop_apiserver(self) -> None:
        proc = self.procs.pop("kube-apiserver")
        os.killpg(proc.pid, signal.SIGKILL)  # an abrupt outage, not a graceful drain
        proc.wait(30)

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")
        except OSError:
            return False

    def apiserver_healthy(self) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.ADMIN_TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                return r.status == 200
        except OSError:
            return False

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now (as the API server does every 5 minutes); returns the revision."""

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{self.etcd_port}{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                return dict(json.loads(r.read()))

        head = post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        revision = int(head["header"]["revision"])
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def close(self) -> None:
        # Whatever a test spawned beside the plane (a controller-manager, a scheduler) goes
        # first, then the API server, etcd last: a leftover child outlives the test otherwise.
        extras = [name for name in self.procs if name not in ("kube-apiserver", "etcd")]
        for name in [*extras, "kube-apiserver", "etcd"]:
            proc = self.procs.pop(name, None)
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        shutil.rmtree(self.root / "etcd", ignore_errors=True)


class CuttableProxy:
    """A TCP proxy in front of an API server; ``cut()`` drops every connection and refuses new
    ones (a network partition), ``heal()`` lets traffic through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cluster-test-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            conns = list(self._open)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def heal(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()
