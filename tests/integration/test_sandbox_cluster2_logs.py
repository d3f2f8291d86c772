"""``up --clusters 2`` seeds cluster-2's pod logs: the same ``Seeder.seed_logs`` as the first
cluster's, run for cluster-2's site against cluster-2's own API server (the run's private pair,
``private_two_clusters``). The reference is what cluster-2's API server serves for a pod's log
(KWOK reading the CRI file): the lines written under cluster-2's own pod-logs directory, for
cluster-2's workloads (``courier-api``), and none under the first cluster's directory. The module
removes its ClusterLogs objects, files and marker again (the pair is shared).

End to end: a private hub (its own data directory and embedded store) with the API poller on and
cluster-2 registered ships those files, as the node simulator keeps them, under cluster-2: a
search scoped to cluster-2 finds exactly the lines of the file (counted hour by hour, and line by
line over the last minutes), one scoped to the implicit cluster finds none of them."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.store import LogQuery, parse_rfc3339_ns
from hub.runtime import build_hub
from hub.settings import Settings
from sandbox import kube, seed
from sandbox.clusters import ClusterSite
from sandbox.core import Sandbox
from tests.integration.cluster_support import PASSWORD, wait_until
from tests.integration.private_clusters import add_cluster_two, ensure_live, shipping_settings

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


def file_lines(logfile: Path, before: float) -> list[tuple[int, str]]:
    """The oracle: (time in microseconds, message) of every whole CRI line of the file older than
    ``before``, read from the file itself."""
    out = []
    for raw in logfile.read_text(encoding="utf-8").split("\n")[:-1]:  # a line still being written is left out
        stamp, _stream, _tag, message = raw.split(" ", 3)
        ns = parse_rfc3339_ns(stamp)
        assert ns is not None, raw
        if ns < before * 1e9:
            out.append((round(ns / 1000), message))
    return out


def test_the_hub_ships_cluster_2s_pod_log_files_under_cluster_2_only(
    seeded: tuple[Sandbox, ClusterSite, seed.Seeder], tmp_path: Path
) -> None:
    """The node simulator's files of cluster-2 (seeded a day back, appended every 15 s), served by
    cluster-2's KWOK, reach a hub that follows both clusters: found under cluster-2, never under
    the implicit cluster."""
    sb, second, seeder = seeded
    logfile = second.pod_logs_dir / "retail-api" / "api.log"
    pods = sorted(
        p["metadata"]["name"]
        for p in seeder.api.list("/api/v1/namespaces/retail-api/pods")
        if p["spec"].get("nodeName") and any(c["name"] == "api" for c in p["spec"]["containers"])
    )
    assert pods, "no scheduled pod with an api container in cluster-2's retail-api"
    pod = pods[0]
    hub = build_hub(shipping_settings(tmp_path / "hub", sb.kubeconfig), background=True)
    try:
        add_cluster_two(hub, second.kubeconfig)
        from web import create_app

        app = create_app(hub=hub, testing=True)
        hub.tenancy.create_user("admin", PASSWORD, platform_role="admin", email="admin@example.com")
        admin = app.test_client()
        admin.environ_base["HTTP_AUTHORIZATION"] = (
            f"Bearer {hub.tenancy.issue_token('admin', kind='named', name='e2e').token}"
        )

        def get(path: str, **query: Any) -> dict[str, Any]:
            r = admin.get(path, query_string={"namespaces": "retail-api", "containers": "api", **query})
            assert r.status_code == 200, r.get_data(as_text=True)
            body: dict[str, Any] = r.get_json()
            return body

        # Lines older than a minute ago are all in the file now (the simulator appends the last
        # 15 s at each round); whole hours from the first line to that minute.
        cutoff = int(time.time()) - 60
        oracle = file_lines(logfile, cutoff)
        assert len(oracle) > 100, len(oracle)
        start = int(oracle[0][0] // 3_600_000_000 * 3600)
        counts = Counter(int(t // 3_600_000_000 * 3600) for t, _ in oracle)
        want = [counts.get(h, 0) for h in range(start, cutoff, 3600)]

        def hourly(cluster: str) -> list[int]:
            body = get("/api/v1/logs/histogram", cluster=cluster, pods=pod, start=start, end=cutoff, interval="1h")
            return [b["count"] for b in body["buckets"]]

        wait_until(lambda: hourly("cluster-2") == want, timeout=50, what="cluster-2's file shipped up to the cutoff")
        # line by line over the last ten minutes before the cutoff (fewer than a page)
        recent = [(t, m) for t, m in oracle if t >= (cutoff - 600) * 1_000_000]
        body = get("/api/v1/logs", cluster="cluster-2", pods=pod, start=cutoff - 600, end=cutoff, size=1000)
        assert body["total"] == len(recent) and body["total_relation"] == "eq"
        assert Counter(i["message"] for i in body["items"]) == Counter(m for _, m in recent)
        assert {(i["cluster"], i["pod"]) for i in body["items"]} <= {("cluster-2", pod)}
        # the implicit cluster: none of these lines, by the same filters or by a line's own words
        assert hourly("default") == [0] * len(want)
        newest = oracle[-1][1].replace("\\", "\\\\").replace('"', '\\"')
        for cluster, found in (("cluster-2", True), ("default", False)):
            items = get("/api/v1/logs", cluster=cluster, q=f'"{newest}"', start=start, end=cutoff, size=1000)["items"]
            assert any(i["message"] == oracle[-1][1] for i in items) is found, (cluster, items[:3])
            assert all(i["cluster"] == "cluster-2" for i in items)
    finally:
        hub.close()


def test_a_cluster_2_project_with_collection_off_ships_nothing_while_its_namesake_ships(
    seeded: tuple[Sandbox, ClusterSite, seed.Seeder], tmp_path: Path
) -> None:
    """``retail-api`` is workspace logistics' project in cluster-2 and workspace retail's in the
    implicit cluster. Logistics' admin turns collection off through the settings route with
    ``?cluster=cluster-2`` (before the settings were keyed by project, that switched off
    retail's project instead, and cluster-2's lines kept coming). A hub following both
    clusters then ships the implicit cluster's retail-api lines (a CRI file of this test's,
    served by the implicit cluster's KWOK) and none of cluster-2's (its seeded files), though
    its poller has gone over cluster-2's containers (their positions are there)."""
    sb, second, _seeder = seeded
    first = kube.KubeRest(sb.kubeconfig)
    now = time.time()
    marker = f"implicit-collection-{int(now)}"
    logfile = tmp_path / "implicit-api.log"
    seed.write_cri(logfile, [seed.LogRecord(t=now - 30 + i, level="INFO", message=f"{marker} {i}") for i in range(20)])
    logs_obj = {
        "apiVersion": f"{kube.KWOK_GROUP}/{kube.KWOK_VERSION_API}",
        "kind": "ClusterLogs",
        "metadata": {"name": "kubehub-test-collection"},
        "spec": {
            "selector": {"matchNamespaces": ["retail-api"]},
            "logs": [{"containers": ["api"], "logsFile": str(logfile), "follow": True}],
        },
    }

    def settings(ship: bool) -> Settings:
        return shipping_settings(tmp_path / "hub", sb.kubeconfig, ship=ship)

    from web import create_app

    kube.apply_cluster_object(first, logs_obj)
    try:
        # The tenants and the setting, through the route, before any line is shipped.
        hub = build_hub(settings(False), background=True)
        try:
            add_cluster_two(hub, second.kubeconfig)
            t = hub.tenancy
            t.create_user("courier", PASSWORD, email="courier@example.com")
            t.create_workspace("retail")
            t.create_workspace("logistics", admin="courier")
            t.grant_cluster("logistics", "cluster-2", actor="test")
            t.create_project("retail", "retail-api", actor="test")
            t.create_project("logistics", "retail-api", actor="test", cluster="cluster-2")
            client = create_app(hub=hub, testing=True).test_client()
            client.environ_base["HTTP_AUTHORIZATION"] = (
                f"Bearer {t.issue_token('courier', kind='named', name='t').token}"
            )
            path = "/api/v1/namespaces/retail-api/log-collection"
            assert client.put(path, json={"enabled": False}).status_code == 403  # retail's, not theirs
            r = client.put(f"{path}?cluster=cluster-2", json={"enabled": False})
            assert r.status_code == 200 and r.get_json()["cluster"] == "cluster-2", r.get_data(as_text=True)
        finally:
            hub.close()

        hub = build_hub(settings(True), background=True)
        try:
            shipper = hub.logs.shipper
            assert shipper is not None

            def count(cluster: str, **query: Any) -> int:
                q = LogQuery(visibility={"retail-api": 0.0}, clusters=hub.logs.labels(cluster), **query)
                return hub.logs.store_of(cluster).search(q).total

            pods = [
                p
                for p in first.list("/api/v1/namespaces/retail-api/pods")
                if p["spec"].get("nodeName") and any(c["name"] == "api" for c in p["spec"]["containers"])
            ]
            assert pods, "no scheduled pod with an api container in the implicit cluster's retail-api"
            wait_until(
                lambda: count("default", text=parse_keywords(marker)) == 20 * len(pods),
                timeout=60,
                what="the implicit cluster's retail-api lines shipped",
            )
            wait_until(
                lambda: any(k.startswith("cluster-2/") for k in shipper.positions()),
                timeout=30,
                what="cluster-2's poller going over its retail-api containers",
            )
            shipper.poll_once("cluster-2")  # one more whole round of cluster-2 after that
            shipper.drain()
            assert count("cluster-2") == 0
            assert shipper.cluster_status()["cluster-2"]["followed_containers"] == 0
        finally:
            hub.close()
    finally:
        first.delete(kube.kwok_path("clusterlogs", "kubehub-test-collection"))
