"""The sandbox seed's Elasticsearch documents carry their namespaces' UIDs, so tenants see the
seeded history although it predates the namespaces.

The seed's own indexing function (``Seeder.index_logs``) writes into indices of this test's own
prefix, with the namespace UIDs the sandbox's real API server has now; the hub's Elasticsearch
store then reads them with the tenants' rule (``hub.tenancy.scope.LogFloors``) as the
tenancy service builds it from the real namespaces. The expected counts come from the records
the seed generated (a brute-force scan of their messages), not from another hub path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hub.collectors.inventory import parse_timestamp
from hub.collectors.logs.elasticsearch import ElasticsearchLogStore
from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.store import LogQuery
from hub.tenancy.scope import Project, log_floors
from sandbox import kube, seed
from sandbox.core import Sandbox
from tests.integration.logs_support import es_request

pytestmark = pytest.mark.integration

# Each demo tenant's projects and a Chinese term and an English phrase the seed writes there.
TENANT_TERMS = {
    "retail-api": ("超时", '"connection refused"'),
    "analytics-etl": ("任务", '"consumed batch"'),
}
WINDOW = 86_400  # the seeded day before each namespace's creation, generated again for the test


def _pods_per_workload(seeder: seed.Seeder) -> dict[tuple[str, str], int]:
    """Scheduled seeded pods per (namespace, workload), as the seed's indexing sees them."""
    out: dict[tuple[str, str], int] = {}
    for pod in seeder.pods():
        wl = (pod["metadata"].get("labels") or {}).get(seed.WORKLOAD_LABEL)
        if wl and pod.get("spec", {}).get("nodeName"):
            key = (pod["metadata"]["namespace"], wl)
            out[key] = out.get(key, 0) + 1
    return out


@pytest.fixture
def seeded(sandbox: Sandbox) -> Iterator[dict[str, Any]]:
    api = kube.KubeRest(sandbox.kubeconfig)
    seeder = seed.Seeder(sandbox, api)
    namespaces = {ns: api.get(f"/api/v1/namespaces/{ns}")["metadata"] for ns in TENANT_TERMS}
    records: dict[tuple[str, str], list[Any]] = {}
    for w in seed.WORKLOADS:
        # CronJob pods come and go while the test runs; every other seeded pod stays
        if w.namespace in namespaces and w.kind != "CronJob":
            created = parse_timestamp(namespaces[w.namespace]["creationTimestamp"])
            assert created is not None
            for c in w.containers:
                # the seeded history: lines from before the namespace object was made
                records[(w.namespace, c)] = list(seed.generate_logs(w, c, created - WINDOW, created - 1))
    prefixes: list[str] = []
    try:
        for _ in range(3):  # a pod that came or went while indexing: index again
            prefixes.append(f"kh-it-seed-{uuid.uuid4().hex[:8]}")
            pods = _pods_per_workload(seeder)
            docs = seeder.index_logs(records, prefix=prefixes[-1] + "-")
            if _pods_per_workload(seeder) == pods:
                break
        yield {"prefix": prefixes[-1], "namespaces": namespaces, "records": records, "docs": docs, "pods": pods}
    finally:
        for prefix in prefixes:
            es_request(sandbox.elasticsearch_url, "DELETE", f"/{prefix}-*")
            es_request(sandbox.elasticsearch_url, "DELETE", f"/_index_template/kubehub-sandbox-{prefix}")
            try:  # the hub store's own template (ensure_template in the test)
                es_request(sandbox.elasticsearch_url, "DELETE", f"/_index_template/kubehub-{prefix}")
            except OSError:
                pass  # not installed: the test stopped before the store was made


def _expected(seeded: dict[str, Any], ns: str, match: Any) -> int:
    """Documents the seed indexed for ``ns`` whose message ``match`` admits: each record once per
    indexed pod of its workload (the seed indexes at most three pods per workload)."""
    total = 0
    for w in seed.WORKLOADS:
        for c in w.containers:
            if w.namespace == ns and (ns, c) in seeded["records"]:
                hits = sum(1 for r in seeded["records"][(ns, c)] if match(r.message))
                total += hits * min(3, seeded["pods"].get((ns, w.name), 0))
    return total


def test_seeded_documents_carry_namespace_uids_and_tenants_see_the_history(
    sandbox: Sandbox, seeded: dict[str, Any]
) -> None:
    store = ElasticsearchLogStore(sandbox.elasticsearch_url, index_prefix=seeded["prefix"])
    # As a hub does before its first write: its template, and a look at the indices already there.
    store.ensure_template()
    try:
        for ns, (chinese, phrase) in TENANT_TERMS.items():
            meta = seeded["namespaces"][ns]
            created = parse_timestamp(meta["creationTimestamp"])
            assert created is not None
            # the tenants' rule for this project, as the tenancy service builds it
            floors = log_floors([Project(namespace=ns, workspace="", created=created, uid=meta["uid"])])
            start, end = created - WINDOW - 60, created
            words = re.compile(r"(?<![\w])" + re.escape(phrase.strip('"')) + r"(?![\w])", re.IGNORECASE)
            for text, match in ((chinese, lambda m, t=chinese: t in m), (phrase, words.search)):
                expected = _expected(seeded, ns, match)
                assert expected > 0, f"the seed writes {text} into {ns}"
                query = LogQuery(
                    visibility=floors.created,
                    namespace_uids=floors.uids,
                    text=parse_keywords(text),
                    start=start,
                    end=end,
                    size=5,
                )
                buckets = store.histogram(query, interval=600)
                assert sum(b.count for b in buckets) == expected, (ns, text)
                result = store.search(query)
                assert result.items and all(line.namespace == ns and line.time < created for line in result.items)
                # the time floor alone hides all of it (this is what tenants saw before)
                floor_only = LogQuery(visibility=floors.created, text=parse_keywords(text), start=start, end=end)
                assert store.search(floor_only).total == 0
                # and another namespace's UID admits none of it
                other = next(m["uid"] for n, m in seeded["namespaces"].items() if n != ns)
                foreign = LogQuery(visibility=floors.created, namespace_uids={ns: other}, text=parse_keywords(text))
                assert store.search(foreign).total == 0
        assert seeded["docs"] == sum(
            len(recs) * min(3, seeded["pods"].get((ns, w.name), 0))
            for w in seed.WORKLOADS
            for (ns, c), recs in seeded["records"].items()
            if w.namespace == ns and c in w.containers
        )
    finally:
        store.close()
