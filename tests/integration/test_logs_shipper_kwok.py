"""The shipper against the sandbox's real kube-apiserver, whose pod logs KWOK serves from CRI files
(ClusterLogs): every line the API serves lands in the store once, labelled, across a restart,
stamped with its namespace's UID, so a tenant sees the seeded day although it predates the
namespace."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.store import LogQuery
from hub.runtime import Hub, build_hub
from hub.settings import Settings
from tests.conftest import world_database_url
from tests.integration.logs_support import sandbox_status

pytestmark = pytest.mark.integration

NAMESPACE = "retail-api"  # seeded by the sandbox with logs in English and Chinese


@pytest.fixture
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    status = sandbox_status(request)
    kubeconfig = status.get("kubeconfig")
    if not kubeconfig:
        pytest.fail("the sandbox reports no kubeconfig")
    settings = Settings(data_dir=tmp_path / "data", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(kubeconfig), "request_timeout": 20.0},
        logs={"ship": True, "ship_namespaces": NAMESPACE, "retention_days": 3650},
    )
    the_hub = build_hub(settings)
    yield the_hub
    the_hub.close()


def served_lines(source: Any) -> Counter[tuple[str, str, str]]:
    """(pod, container, message) of every line the API serves for the namespace right now."""
    out: Counter[tuple[str, str, str]] = Counter()
    for pod in source.list_pods([NAMESPACE]):
        for c in pod.containers:
            text = source.read_log(namespace=NAMESPACE, pod=pod.name, container=c.name, since_time=None)
            for raw in text.splitlines():
                out[(pod.name, c.name, raw.split(" ", 1)[1] if " " in raw else "")] += 1
    return out


def stored_lines(hub: Hub) -> tuple[Counter[tuple[str, str, str]], list[Any]]:
    lines = list(hub.logs.store.export(LogQuery(visibility={NAMESPACE: 0.0}, sort="asc"), limit=10**7))
    return Counter((x.pod, x.container, x.message) for x in lines), lines


def assert_exactly_once(
    stored: Counter[tuple[str, str, str]],
    before: Counter[tuple[str, str, str]],
    after: Counter[tuple[str, str, str]],
) -> None:
    """Nothing lost and nothing stored twice, while the sandbox keeps logging (nodesim appends
    each container's next lines every 15 s, so the API may serve more at the end than at the
    start): every line served before the first read is stored, and no line is stored more
    often than the API serves it after the last read (a shipper that read a file again from
    its start would store its lines twice)."""
    missing = before - stored
    twice = stored - after
    assert not missing, f"{sum(missing.values())} served before the first read are not stored: {list(missing)[:3]}"
    assert not twice, f"{sum(twice.values())} lines stored more often than the API serves them: {list(twice)[:3]}"


def test_shipped_lines_match_the_pod_log_api_exactly_once_across_a_restart(hub: Hub, tmp_path: Path) -> None:
    service = hub.logs
    shipper = service.shipper
    assert shipper is not None, "a hub with a cluster and logs.ship builds a shipper"
    expected = served_lines(shipper.source)
    assert sum(expected.values()) > 1000, "the sandbox seeds a day of logs per container"

    # first process: reads everything, delivers one batch, then dies without a clean stop
    read_first = shipper.poll_once()
    assert shipper.deliver_once() > 0
    assert shipper.spooled_lines() > 0

    # second process on the same data directory
    from hub.collectors.logs.shipper import Shipper

    second = Shipper(
        source=shipper.source,
        sink=service.write,
        directory=hub.settings.data_dir / "logs",
        namespaces=lambda: [NAMESPACE],
        clock=hub.clock,
    )
    # Positions survived: the second process reads only what was appended since (nodesim's
    # rounds), never the lines the first one read; its spool held the first one's undelivered.
    read_second = second.poll_once()
    second.drain()
    assert second.spooled_lines() == 0
    got, lines = stored_lines(hub)
    served = served_lines(shipper.source)
    assert_exactly_once(got, expected, served)
    # The store keeps one copy of a line read twice, so the reads themselves are counted: the
    # two processes together read no more lines than the API serves.
    assert read_first + read_second <= sum(served.values()), (read_first, read_second, sum(served.values()))

    # labels come from the cluster: workload from the owner chain, node from the pod
    by_pod = {p.name: p for p in shipper.source.list_pods([NAMESPACE])}
    for line in lines[:: max(1, len(lines) // 50)]:
        pod = by_pod[line.pod]
        assert line.namespace == NAMESPACE
        assert line.node == pod.node and line.node
        assert line.workload == pod.workload and line.pod.startswith(line.workload)

    # Chinese keywords find the seeded Chinese lines
    from hub.collectors.logs.query import parse_keywords

    hits = service.store.search(LogQuery(visibility={NAMESPACE: 0.0}, text=parse_keywords("健康检查")))
    assert hits.total > 0 and all("健康检查" in item.message for item in hits.items)

    # Every line carries the namespace's UID as the API server has it: with that UID a tenant
    # sees every line, those logged before the namespace object was made included (the seeded
    # day); the time floor alone would hide those; another UID sees nothing.
    cluster = hub.cluster
    uid, created = cluster.namespace_uid(NAMESPACE), cluster.namespace_created(NAMESPACE)
    assert uid and created
    before = sum(1 for x in lines if x.time < created)
    assert before > 1000, "the seeded day predates the namespace"
    every = LogQuery(visibility={NAMESPACE: created}, namespace_uids={NAMESPACE: uid}, sort="asc")
    assert sum(1 for _ in service.store.export(every, limit=10**7)) == len(lines)
    floor_only = LogQuery(visibility={NAMESPACE: created}, sort="asc")
    assert sum(1 for _ in service.store.export(floor_only, limit=10**7)) == len(lines) - before
    other = LogQuery(visibility={NAMESPACE: 0.0}, namespace_uids={NAMESPACE: "not-" + uid})
    assert service.store.search(other).total == 0
    second.close()
