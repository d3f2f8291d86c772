"""The run's private two-cluster sandbox: one pair of real clusters (``Sandbox.up_clusters_only``:
etcd, kube-apiserver, controller-manager, scheduler, KWOK, kube-state-metrics and nodesim per
cluster, seeded) shared by every multi-cluster module of the run, integration and e2e alike.

Why shared: each pair costs about a minute of a 2-core CI machine to start and seed, and three
modules used to start their own. Why private (not the shared sandbox): tests stop its API
servers, and its second cluster is seeded with other workloads than the first.

What a module may do with it: read both clusters; add objects it removes again at its end; stop a
component and call :func:`ensure_live` afterwards (it restarts whatever is not running, so the
next module finds the pair whole whichever test broke it and however the run is ordered); start
a Prometheus and an SMTP catcher over it for its own time (:func:`monitoring`). Nothing of it is
registered in any hub: each module registers cluster-2 in its own hub.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub.settings import Settings
from sandbox.clusters import CLUSTER_PORT_STRIDE
from sandbox.config import PORT_OFFSETS
from sandbox.core import Sandbox
from sandbox.procs import port_in_use

NODES, PODS = 3, 16  # per cluster


def free_two_cluster_base() -> int:
    """A port base whose two clusters' ports are all free (below the ephemeral range)."""
    for base in range(21000, 30000, 500):
        ports = [base + i * CLUSTER_PORT_STRIDE + off for i in (0, 1) for off in PORT_OFFSETS.values()]
        if max(ports) < 32768 and not any(port_in_use(p) for p in ports):
            return base
    raise RuntimeError("no free port base for two clusters")


@contextmanager
def two_clusters(directory: Path) -> Iterator[Sandbox]:
    """Two seeded clusters in ``directory`` on free ports, stopped on the way out."""
    sb = Sandbox(directory, port_base=free_two_cluster_base(), quiet=True)
    sb.config.nodes, sb.config.pods = NODES, PODS
    t0 = time.monotonic()
    try:
        sb.up_clusters_only(2)
        print(f"private two clusters up and seeded in {time.monotonic() - t0:.1f}s")
        yield sb
    finally:
        sb.down()


def ensure_live(sb: Sandbox) -> Sandbox:
    """Restart any component of either cluster that is not running (a test stopped cluster-2's
    API server); quick when all run. The clusters keep their data: etcd was never stopped."""
    with sb._locked():
        for site in sb.sites:
            sb._up_cluster(site, [])
    return sb


@contextmanager
def monitoring(sb: Sandbox) -> Iterator[Sandbox]:
    """A Prometheus scraping both clusters apart by a ``cluster`` label (as ``sandbox up
    --clusters 2`` configures it) and an SMTP catcher, for one module: stopped again at its end
    so the rest of the run does not pay for their scraping."""
    started: list[str] = []
    try:
        sb._ensure("prometheus", sb._spec_prometheus(), started, timeout=120)
        sb._ensure("smtp", sb._spec_smtp(), started)
        yield sb
    finally:
        for name in reversed(started):
            sb.sup.stop(name)


def shipping_settings(data_dir: Path, kubeconfig: Path, *, ship: bool = True) -> Settings:
    """A hub of the implicit cluster that ships retail-api's lines every half second, keeps them
    (retention far beyond the seeded history) and has no Prometheus (an unused port)."""
    from tests.conftest import world_database_url
    from tests.integration.cluster_support import FAST_AUTH

    return Settings(data_dir=data_dir, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(kubeconfig), "request_timeout": 5.0},
        logs={"ship": ship, "ship_namespaces": "retail-api", "ship_interval": 0.5, "retention_days": 3650},
        prometheus={"url": "http://127.0.0.1:9", "timeout": 1.0},
        auth=dict(FAST_AUTH),
    )


def add_cluster_two(hub: Any, kubeconfig: Path, metrics: dict[str, Any] | None = None) -> None:
    """Register the pair's second cluster with ``hub`` (no metrics source unless given)."""
    hub.clusters.add(
        {
            "name": "cluster-2",
            "connection": {"mode": "kubeconfig", "kubeconfig_path": str(kubeconfig)},
            "metrics": metrics or {"mode": "none"},
        },
        actor="test",
    )
