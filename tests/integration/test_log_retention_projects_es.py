"""A project's own log retention on the sandbox's real Elasticsearch 8: the retention job's
delete-by-query removes that namespace's documents from the dated indices before its cutoff and
nothing else (the indices stay for the other projects). The oracle is the records written,
filtered by hand; the answer is read back through the store's ordinary search."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.service import LogService
from hub.collectors.logs.store import LogQuery, LogRecord
from hub.settings import Settings
from hub.timeutil import FakeClock
from tests.conftest import world_database_url
from tests.integration.logs_support import elasticsearch_url, throwaway_es_store
from tests.unit.test_log_retention_projects import DAY, NOW, Audit  # the embedded store's test of the same job

pytestmark = pytest.mark.integration


def test_a_projects_retention_deletes_only_its_older_documents(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    es_url = elasticsearch_url(request)
    written = [
        LogRecord(time=NOW - age * DAY - i * 60, namespace=ns, pod=f"{ns}-0", container="app",
                  message=f"needle age{age} line{i} of {ns}", pod_uid=f"uid-{ns}")
        for age in range(4) for ns in ("short", "other") for i in range(3)
    ]  # fmt: skip
    with throwaway_es_store(es_url) as store:
        store.write(written)
        store.refresh()
        audit = Audit()
        settings = Settings(data_dir=tmp_path, database_url=world_database_url()).replace(
            logs={"backend": "elasticsearch", "retention_days": 30},
            elasticsearch={"url": es_url, "manage_retention": True},
        )
        service = LogService(
            store=store, settings=settings, tenancy=audit, clock=FakeClock(NOW), project_retention=lambda: {"short": 2}
        )
        service.apply_retention()
        store.refresh()
        horizon = NOW - 12 * 3600 - DAY  # 2026-11-20T00:00:00Z
        expected = sorted(r.message for r in written if r.namespace != "short" or r.time >= horizon)
        got = store.search(LogQuery(visibility=None, text=parse_keywords("needle"), size=1000))
        assert sorted(line.message for line in got.items) == expected and got.total == len(expected)
        assert len(store.partitions()) == 4  # whole indices stay: they hold the other project's lines
        (entry,) = [e for e in audit.entries if e[1] == "namespace/short"]
        assert entry[2]["lines"] == 6


def test_a_projects_retention_leaves_the_same_named_namespace_of_another_cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """``shop`` of cluster-2 and the implicit cluster's ``shop`` are two projects (possibly two
    tenants): each one's retention deletes its own cluster's documents only ("" is a line stored
    without a cluster, the implicit cluster's)."""
    es_url = elasticsearch_url(request)
    written = [
        LogRecord(time=NOW - age * DAY - i * 60, namespace="shop", pod="shop-0", container="app",
                  message=f"needle age{age} line{i} of {cluster or 'unlabelled'}", pod_uid=f"uid-{cluster}",
                  cluster=cluster)
        for age in range(4) for cluster in ("", "default", "cluster-2") for i in range(2)
    ]  # fmt: skip
    horizon = NOW - 12 * 3600 - DAY  # 2026-11-20T00:00:00Z
    with throwaway_es_store(es_url) as store:
        store.write(written)
        store.refresh()
        settings = Settings(data_dir=tmp_path, database_url=world_database_url()).replace(
            logs={"backend": "elasticsearch", "retention_days": 30},
            elasticsearch={"url": es_url, "manage_retention": True},
        )
        retention = {"cluster-2/shop": 2}
        service = LogService(
            store=store, settings=settings, tenancy=Audit(), clock=FakeClock(NOW), project_retention=lambda: retention
        )
        for rule, gone in (({"cluster-2/shop": 2}, {"cluster-2"}), ({"shop": 2}, {"cluster-2", "", "default"})):
            retention = rule
            service.apply_retention()
            store.refresh()
            expected = sorted(r.message for r in written if r.cluster not in gone or r.time >= horizon)
            got = store.search(LogQuery(visibility=None, text=parse_keywords("needle"), size=1000))
            assert sorted(line.message for line in got.items) == expected, rule
