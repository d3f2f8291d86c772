"""Versions, ports and paths of one sandbox instance.

Everything a sandbox needs to find again after the ``kubehub sandbox up`` process has exited is
derived from two things: its directory and its port base. Both are stored in the directory's
``sandbox.json`` on the first ``up`` so that later commands (``status``, ``down``, a second
``up``) act on the same ports without the user repeating the options.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.8.0"
KSM_VERSION = "v2.15.0"
HELM_VERSION = "v4.3.2"  # lints and renders deploy/helm/kubehub (tests/integration/test_helm_chart.py)
ES_VERSION = "8.19.0"

DEFAULT_PORT_BASE = 29000
DEFAULT_NODES = 10
DEFAULT_PODS = 60

# Offsets from the port base. They mirror each program's customary port (etcd 2379, Prometheus
# 9090, Elasticsearch 9200, SMTP 25, ...) so that the defaults are easy to remember: 29379, 29090.
PORT_OFFSETS: dict[str, int] = {
    "smtp": 25,
    "hub": 80,
    "prometheus": 90,
    "alertmanager": 93,  # Debian's prometheus-alertmanager (sandbox/alertmanager.py)
    "node-exporter": 100,
    "nodesim": 101,
    "kube-state-metrics": 102,
    "kube-state-metrics-telemetry": 103,
    "elasticsearch": 200,
    "kwok": 247,
    "postgresql": 432,
    "ldap": 389,  # slapd, StartTLS (sandbox/ldap.py)
    "ldaps": 636,
    "oidc": 844,  # oidc-provider (Node), HTTPS with the sandbox CA (sandbox/oidc.py)
    "kube-controller-manager": 257,
    "kube-scheduler": 259,
    "elasticsearch-transport": 300,
    "etcd": 379,
    "etcd-peer": 380,
    "kube-apiserver": 443,
}

# Scrape interval of every target: short, so that a change of a usage annotation shows in
# Prometheus within two intervals (the acceptance asks for that) without loading 2 cores.
SCRAPE_INTERVAL_SECONDS = 10


def cache_root() -> Path:
    """Where built engines and downloads are kept across checkouts (CI reuses it)."""
    base = os.environ.get("KUBEHUB_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base)
    return root if os.environ.get("KUBEHUB_CACHE_DIR") else root / "kubehub"


def engines_dir() -> Path:
    return cache_root() / f"engines-k8s-{K8S_VERSION}"


def default_sandbox_dir() -> Path:
    data = os.environ.get("KUBEHUB_DATA_DIR")
    if data:
        return Path(data).expanduser() / "sandbox"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kubehub" / "sandbox"


@dataclass
class SandboxConfig:
    """The options one sandbox directory was created with (kept in ``sandbox.json``)."""

    port_base: int = DEFAULT_PORT_BASE
    nodes: int = DEFAULT_NODES
    pods: int = DEFAULT_PODS
    hub: bool = True
    database: str = "sqlite"  # where the sandbox's hub keeps its state: sqlite | postgresql
    replicas: int = 1  # hub replicas; more than one runs them on PostgreSQL (ports hub, hub+1, ...)
    clusters: int = 1  # Kubernetes clusters (sandbox/clusters.py); the second one on ports BASE+1000+offset
    tenants: int = 0  # workspaces of the scale tenancy (sandbox/tenants.py); 0: the demo tenancy only
    extra: dict[str, str] = field(default_factory=dict)

    def port(self, name: str) -> int:
        return self.port_base + PORT_OFFSETS[name]

    @staticmethod
    def load(path: Path) -> SandboxConfig | None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        known = {
            k: raw[k]
            for k in ("port_base", "nodes", "pods", "hub", "database", "replicas", "clusters", "tenants", "extra")
            if k in raw
        }
        return SandboxConfig(**known)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        tmp.replace(path)
