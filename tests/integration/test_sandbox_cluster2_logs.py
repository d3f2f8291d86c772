"""``up --clusters 2`` seeds cluster-2's pod logs: the same ``Seeder.seed_logs`` as the first
cluster's, run for cluster-2's site against cluster-2's own API server (the run's private pair,
``private_two_clusters``). The reference is what cluster-2's API server serves for a pod's log
(KWOK reading the CRI file): the lines written under cluster-2's own pod-logs directory, for
cluster-2's workloads (``courier-api``), and none under the first cluster's directory. The module
removes its ClusterLogs objects, files and marker again (the pair is shared)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from sandbox import kube, seed
from sandbox.clusters import ClusterSite
from sandbox.core import Sandbox
from tests.integration.cluster_support import wait_until
from tests.integration.private_clusters import ensure_live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def seeded(private_two_clusters: Sandbox) -> Iterator[tuple[Sandbox, ClusterSite, seed.Seeder]]:
    sb = ensure_live(private_two_clusters)
    second = sb.site("cluster-2")
    seeder = seed.Seeder(sb, kube.KubeRest(second.kubeconfig), site=second)
    try:
        seeder.seed_logs()
        yield sb, second, seeder
    finally:
        for obj in seeder.cluster_logs():
            seeder.api.delete(kube.kwok_path("clusterlogs", obj["metadata"]["name"]))
        for ns in {w.namespace for w in seed.OTHER_WORKLOADS}:
            shutil.rmtree(second.pod_logs_dir / ns, ignore_errors=True)
        (sb.state_dir / "logs-seeded-cluster-2.json").unlink(missing_ok=True)


def test_cluster_2_serves_its_own_seeded_pod_logs(seeded: tuple[Sandbox, ClusterSite, seed.Seeder]) -> None:
    sb, second, seeder = seeded
    logfile = second.pod_logs_dir / "retail-api" / "api.log"  # courier-api's container
    assert logfile.exists() and not (sb.pod_logs_dir / "retail-api" / "api.log").exists()
    written = {line.split(" ", 3)[3] for line in logfile.read_text(encoding="utf-8").splitlines()}
    assert len(written) > 100  # a day of lines
    pods = [
        p
        for p in seeder.api.list("/api/v1/namespaces/retail-api/pods")
        if p["metadata"]["name"].startswith("courier-api") and p["spec"].get("nodeName")
    ]
    assert pods, "no scheduled courier-api pod in cluster-2"
    name = pods[0]["metadata"]["name"]

    def served() -> list[str]:
        path = f"/api/v1/namespaces/retail-api/pods/{name}/log?container=api&tailLines=20"
        text = seeder.api.http.request("GET", seeder.api.server + path).data.decode("utf-8", "replace")
        return [line for line in text.splitlines() if line]

    lines = wait_until(served, timeout=30, what="cluster-2's API server serving the seeded log")
    assert set(lines) <= written, set(lines) - written
    # Once: a second run keeps the file (its marker says it is seeded) and re-applies the objects.
    before = logfile.stat().st_mtime_ns
    seeder.seed_logs()
    assert logfile.stat().st_mtime_ns == before
    names = {o["metadata"]["name"] for o in seeder.cluster_logs()}
    assert names == {"sandbox-retail-api", "sandbox-logistics-routing", f"sandbox-{seed.SYSTEM_NAMESPACE}"}
    for n in names:
        assert seeder.api.get(kube.kwok_path("clusterlogs", n))["spec"]["logs"][0]["logsFile"].startswith(
            str(second.pod_logs_dir)
        )
