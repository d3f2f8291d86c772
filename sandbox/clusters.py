"""The sandbox's Kubernetes clusters: where each one's processes, files and ports are.

``kubehub sandbox up --clusters 2`` runs a second control plane (etcd, kube-apiserver,
controller-manager, scheduler, KWOK, kube-state-metrics, nodesim) beside the first. Both are built
by the same code in :mod:`sandbox.core`, which takes a :class:`ClusterSite` instead of reading the
sandbox's own paths, so the second cluster is the first one's recipe with other ports and files,
not a copy of it.

The first cluster (``default``) keeps today's layout and ports exactly, so a one-cluster sandbox
is unchanged. Cluster *i* (counting from 0) gets its ports at ``port base + i * 1000 + offset``
(API server 30443 for the second cluster of the default base), its own CA, certificates and
kubeconfig under ``<dir>/clusters/<name>/``, and process names ``<component>@<name>`` (e.g.
``kube-apiserver@cluster-2``), which are also its pid and log file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.config import PORT_OFFSETS

PRIMARY = "default"  # the hub's implicit cluster has the same name
CLUSTER_PORT_STRIDE = 1000  # larger than every offset in PORT_OFFSETS
MAX_CLUSTERS = 3
# Components every cluster has of its own, in start order. The host's node-exporter, Prometheus,
# Elasticsearch, SMTP, PostgreSQL, LDAP, OIDC and the hub are the sandbox's, shared by clusters.
CLUSTER_COMPONENTS = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kube-state-metrics",
    "nodesim",
]
_PORT_NAMES = {
    "etcd": ("etcd", "etcd-peer"),
    "kube-state-metrics": ("kube-state-metrics", "kube-state-metrics-telemetry"),
}


def site_name(index: int) -> str:
    return PRIMARY if index == 0 else f"cluster-{index + 1}"


def split(component: str) -> tuple[str, str]:
    """``kube-apiserver@cluster-2`` -> (``kube-apiserver``, ``cluster-2``); plain names are the first cluster's."""
    base, _, cluster = component.partition("@")
    return base, cluster or PRIMARY


@dataclass(frozen=True)
class ClusterSite:
    """One cluster of the sandbox: its name, directory and port base."""

    name: str
    index: int
    dir: Path  # the sandbox directory itself for the first cluster
    port_base: int  # the sandbox's port base plus index * CLUSTER_PORT_STRIDE
    nodes: int
    pods: int

    @property
    def primary(self) -> bool:
        return self.index == 0

    def component(self, base: str) -> str:
        """The process name of one of this cluster's components."""
        return base if self.primary else f"{base}@{self.name}"

    def port(self, name: str) -> int:
        return self.port_base + PORT_OFFSETS[name]

    def ports_of(self, base: str) -> list[int]:
        return [self.port(n) for n in _PORT_NAMES.get(base, (base,))]

    @property
    def pki_dir(self) -> Path:
        return self.dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def pod_logs_dir(self) -> Path:
        return self.dir / "pod-logs"

    @property
    def kwok_config(self) -> Path:
        return self.dir / "kwok" / "kwok.yaml"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.port('kube-apiserver')}"

    @property
    def context(self) -> str:
        """The kubeconfig's context (and cluster) name."""
        return "kubehub-sandbox" if self.primary else f"kubehub-sandbox-{self.name}"


def sites(sandbox_dir: Path, port_base: int, count: int, *, nodes: int, pods: int) -> list[ClusterSite]:
    """The sandbox's clusters. The others are smaller than the first (half its nodes, a third of
    its pods, at least 2 and 12): they exist to be told apart, not to carry load."""
    out = [ClusterSite(PRIMARY, 0, sandbox_dir, port_base, nodes, pods)]
    for i in range(1, count):
        name = site_name(i)
        out.append(
            ClusterSite(
                name,
                i,
                sandbox_dir / "clusters" / name,
                port_base + i * CLUSTER_PORT_STRIDE,
                max(2, nodes // 2),
                max(12, pods // 3),
            )
        )
    return out


def max_port_offset(count: int) -> int:
    """The highest port offset a sandbox of ``count`` clusters uses (for the --port-base check)."""
    return max(PORT_OFFSETS.values()) + (count - 1) * CLUSTER_PORT_STRIDE
