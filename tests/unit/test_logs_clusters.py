"""Log reads over several clusters (LogService over a real embedded store; scopes from the real
tenancy rules). The same namespace name lives in two clusters for two tenants: each reads its own
cluster's lines only, by any parameter; a tenant of both clusters reads both, merged by time
exactly as a brute-force sort of the written lines says; lines written without a cluster are the
implicit cluster's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.embedded import EmbeddedLogStore
from hub.collectors.logs.service import LogService
from hub.collectors.logs.store import LogParams, LogQuery, LogRecord
from hub.errors import Forbidden, NotFound
from hub.settings import Settings
from hub.tenancy.roles import PlatformRole, ProjectRole
from hub.tenancy.scope import Principal, Project, scope_for
from hub.timeutil import FakeClock

T0 = 1_795_219_200.0  # 2026-11-21T00:00:00Z
CLUSTERS = ["default", "cluster-2"]
PROJECTS = [
    Project("team-a", "shop"),
    Project("cluster-2/team-a", "logistics"),  # the same namespace name, another tenant
    Project("cluster-2/team-b", "logistics"),
]


class Audit:
    """The AuditLog the service is given: keeps each entry (our own interface)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, dict[str, Any]]] = []

    def audit(self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None) -> int:
        self.entries.append((actor, action, result, dict(detail or {})))
        return len(self.entries)


def rec(i: int, cluster: str, ns: str, *, at: float | None = None) -> LogRecord:
    """Line ``i`` of ``ns`` in ``cluster`` (its pod and uid named after both), at ``at`` or i * 7 s."""
    return LogRecord(
        time=T0 + i * 7.0 if at is None else at,
        namespace=ns,
        pod=f"{ns}-pod",
        container="app",
        message=f"line{i:03d} {cluster or 'unlabelled'} {ns}",
        pod_uid=f"uid-{cluster or 'default'}-{ns}",
        cluster=cluster,
    )


LINES = [
    rec(i, cluster, ns)
    for i, (cluster, ns) in enumerate(
        [("", "team-a"), ("default", "team-a"), ("cluster-2", "team-a"), ("cluster-2", "team-b")] * 10
    )
]


@pytest.fixture
def service(tmp_path: Path) -> LogService:
    store = EmbeddedLogStore(tmp_path / "logs")
    store.write(LINES)  # straight to the store: "" stays unlabelled, as a single-cluster hub's lines
    return LogService(
        store=store,
        settings=Settings(data_dir=tmp_path),
        tenancy=Audit(),
        clock=FakeClock(T0 + 3600),
        cluster_names=lambda: CLUSTERS,
    )


def scope(name: str, projects: Mapping[str, ProjectRole] | None = None, admin: bool = False) -> Any:
    principal = Principal(
        name, platform_role=PlatformRole.ADMIN if admin else PlatformRole.REGULAR, projects=dict(projects or {})
    )
    return scope_for(principal, PROJECTS)


SHOP = {"team-a": ProjectRole.OPERATOR}
LOGISTICS = {"cluster-2/team-a": ProjectRole.VIEWER}
BOTH = {"team-a": ProjectRole.VIEWER, "cluster-2/team-b": ProjectRole.VIEWER}


def want(pairs: set[tuple[str, str]]) -> list[str]:
    """The oracle: every written line of these (cluster, namespace) pairs, newest first."""
    picked = [r for r in LINES if ((r.cluster or "default"), r.namespace) in pairs]
    return [r.message for r in sorted(picked, key=lambda r: r.time, reverse=True)]


def messages(body: dict[str, Any]) -> list[str]:
    return [item["message"] for item in body["items"]]


def test_a_tenant_reads_only_the_lines_of_their_cluster(service: LogService) -> None:
    shop = scope("shop", SHOP)
    body = service.search(shop, LogParams(size=1000))
    assert messages(body) == want({("default", "team-a")})
    assert {item["cluster"] for item in body["items"]} == {"default"}  # unlabelled lines too
    assert messages(service.search(shop, LogParams(clusters=("default",), namespaces=("team-a",), size=1000))) == want(
        {("default", "team-a")}
    )
    logistics = scope("logistics", LOGISTICS)
    body = service.search(logistics, LogParams(size=1000))
    assert messages(body) == want({("cluster-2", "team-a")})
    assert {item["cluster"] for item in body["items"]} == {"cluster-2"}


@pytest.mark.parametrize(
    "params",
    [
        LogParams(clusters=("cluster-2",)),
        LogParams(clusters=("cluster-2",), namespaces=("team-a",)),
        LogParams(clusters=("default", "cluster-2")),
        LogParams(clusters=("nope",)),
        LogParams(namespaces=("team-b",)),
        LogParams(clusters=("cluster-2",), namespaces=("team-b",)),
    ],
)
def test_the_same_named_namespace_of_another_cluster_is_refused_by_any_parameter(
    service: LogService, params: LogParams
) -> None:
    shop = scope("shop", SHOP)
    for read in (service.search, service.histogram, service.export):
        with pytest.raises(Forbidden):
            read(shop, params)


def test_unknown_and_foreign_clusters_get_the_same_words(service: LogService) -> None:
    shop = scope("shop", SHOP)
    words = []
    for name in ("cluster-2", "nope"):
        with pytest.raises(Forbidden) as refused:
            service.search(shop, LogParams(clusters=(name,)))
        words.append(refused.value.message.replace(name, "X"))
    assert words[0] == words[1]


def test_a_tenant_of_two_clusters_reads_both_merged_by_time(service: LogService) -> None:
    both = scope("both", BOTH)
    oracle = want({("default", "team-a"), ("cluster-2", "team-b")})
    assert messages(service.search(both, LogParams(size=1000))) == oracle
    for offset, size in ((0, 5), (3, 4), (17, 6)):
        page = service.search(both, LogParams(offset=offset, size=size))
        assert messages(page) == oracle[offset : offset + size] and page["total"] == len(oracle)
    asc = service.search(both, LogParams(sort="asc", offset=2, size=5))
    assert messages(asc) == list(reversed(oracle))[2:7]
    hist = service.histogram(both, LogParams(start=T0, end=T0 + 300, interval=60))
    assert hist["total"] == len(oracle)
    per_bucket = [b["count"] for b in hist["buckets"]]
    times = [
        r.time
        for r in LINES
        if (r.cluster or "default", r.namespace) in {("default", "team-a"), ("cluster-2", "team-b")}
    ]
    assert per_bucket == [sum(1 for t in times if T0 + 60 * k <= t < T0 + 60 * (k + 1)) for k in range(5)]
    exported = "".join(service.export(both, LogParams(), fmt="jsonl").chunks)
    assert [line for line in oracle if line in exported] == oracle and exported.count("\n") == len(oracle)
    # team-a of cluster-2 is not theirs even though team-a of default is
    only_a = service.search(both, LogParams(namespaces=("team-a",), size=1000))
    assert messages(only_a) == want({("default", "team-a")})


def test_a_platform_admin_reads_every_cluster_or_one_and_an_unknown_one_is_404(service: LogService) -> None:
    admin = scope("root", admin=True)
    assert service.search(admin, LogParams(size=1000))["total"] == len(LINES)
    two = service.search(admin, LogParams(clusters=("cluster-2",), size=1000))
    assert messages(two) == want({("cluster-2", "team-a"), ("cluster-2", "team-b")})
    one = service.search(admin, LogParams(clusters=("default",), namespaces=("team-a",), size=1000))
    assert messages(one) == want({("default", "team-a")})
    with pytest.raises(NotFound) as missing:
        service.search(admin, LogParams(clusters=("nope",)))
    assert missing.value.field == "cluster"


def test_the_write_path_labels_unlabelled_lines_with_the_implicit_cluster(service: LogService) -> None:
    service.write([LogRecord(time=T0 + 1000, namespace="team-a", pod="p", container="c", message="fresh")])
    admin = scope("root", admin=True)
    (line,) = service.search(admin, LogParams(size=5, start=T0 + 999))["items"]
    assert line["cluster"] == "default"
    labels = {src.cluster for src in service.store._sources.values()}  # type: ignore[attr-defined]
    assert "default" in labels and "" in labels  # the new line labelled, the old ones kept as written


def test_a_catalog_from_before_the_cluster_level_opens_with_its_lines_the_implicit_clusters(tmp_path: Path) -> None:
    store = EmbeddedLogStore(tmp_path / "logs")
    old = [r for r in LINES if not r.cluster]
    store.write(old)
    store.close()
    # The catalog as hubs before the cluster level wrote it: sources without the cluster column.
    cat = sqlite3.connect(tmp_path / "logs" / "catalog.sqlite3")
    cat.executescript(
        "ALTER TABLE sources RENAME TO s_new;"
        "CREATE TABLE sources (id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, workload TEXT NOT NULL, "
        "pod TEXT NOT NULL, container TEXT NOT NULL, node TEXT NOT NULL, pod_uid TEXT NOT NULL, "
        "first_t REAL NOT NULL, last_t REAL NOT NULL, ns_uid TEXT NOT NULL DEFAULT '', "
        "UNIQUE (ns, pod, container, pod_uid, workload, node, ns_uid));"
        "INSERT INTO sources SELECT id, ns, workload, pod, container, node, pod_uid, first_t, last_t, ns_uid "
        "FROM s_new; DROP TABLE s_new;"
    )
    cat.close()
    reopened = EmbeddedLogStore(tmp_path / "logs")
    try:
        columns = {row[1] for row in reopened._catalog.execute("PRAGMA table_info(sources)")}
        assert "cluster" in columns
        for clusters, expected in ((("", "default"), len(old)), (("cluster-2",), 0), (None, len(old))):
            result = reopened.search(LogQuery(visibility={"team-a": 0.0}, clusters=clusters, size=100))
            assert result.total == expected, clusters
        # new lines of the same pod in another cluster are another source, never merged into the old
        reopened.write([replace(old[0], cluster="cluster-2", uid="x")])
        assert reopened.search(LogQuery(visibility=None, clusters=("cluster-2",))).total == 1
    finally:
        reopened.close()
