"""What only the Elasticsearch backend does, against the sandbox's real Elasticsearch 8: its index
template, reading Fluent Bit (KubeSphere) indices in place, the compact scope clause, and the
whole API on top of it."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.collectors.logs.elasticsearch import ElasticsearchLogStore
from hub.collectors.logs.query import parse_keywords
from hub.collectors.logs.store import LogQuery, LogRecord
from hub.timeutil import FakeClock
from tests.integration.logs_support import elasticsearch_url, es_request, throwaway_es_store
from tests.unit.conftest_tenancy import TenancyWorld, assert_no_leak, build_world

pytestmark = pytest.mark.integration

DAY = 1_795_305_600.0  # 2026-11-22T00:00:00Z


@pytest.fixture
def es_url(request: pytest.FixtureRequest) -> str:
    return elasticsearch_url(request)


def test_the_hub_installs_a_template_with_explicit_mappings_and_writes_dated_indices(es_url: str) -> None:
    with throwaway_es_store(es_url) as store:
        store.write([LogRecord(time=DAY + 60, namespace="ns", pod="p", container="c", message="hello 世界")])
        store.refresh()
        tpl = es_request(es_url, "GET", f"/_index_template/kubehub-{store.prefix}")["index_templates"][0]
        mappings = tpl["index_template"]["template"]["mappings"]
        assert mappings["dynamic"] is False
        assert mappings["properties"]["namespace"] == {"type": "keyword", "ignore_above": 1024}
        assert mappings["properties"]["message"]["type"] == "text"
        assert mappings["properties"]["time"]["type"] == "date_nanos"
        assert [p.name for p in store.partitions()] == [f"{store.prefix}-2026.11.22"]
        index_mapping = es_request(es_url, "GET", f"/{store.prefix}-2026.11.22/_mapping")
        assert index_mapping[f"{store.prefix}-2026.11.22"]["mappings"]["properties"]["pod"]["type"] == "keyword"


def _index_of_an_older_hub(es_url: str, index: str, message: str) -> None:
    """An index as a hub before the word rule made it: message by the standard analyzer, no words."""
    keyword = {"type": "keyword"}
    mappings = {
        "dynamic": False,
        "properties": {
            "time": {"type": "date_nanos"},
            "message": {"type": "text", "analyzer": "standard"},
            **{name: keyword for name in ("namespace", "pod", "container")},
        },
    }
    es_request(es_url, "PUT", f"/{index}", {"settings": {"number_of_replicas": 0}, "mappings": mappings})
    doc = {"time": f"{index[-10:].replace('.', '-')}T10:00:00Z", "namespace": "ns", "pod": "p", "container": "c"}
    es_request(es_url, "POST", "/_bulk?refresh=true", [{"create": {"_index": index}}, {**doc, "message": message}])


def test_indices_of_an_older_hub_are_searched_by_their_old_words_until_upgraded_in_place(es_url: str) -> None:
    prefix = f"kh-test-{uuid.uuid4().hex[:10]}"
    old_index, older = f"{prefix}-2026.11.21", f"{prefix}-2026.11.20"
    _index_of_an_older_hub(es_url, old_index, "old: git:amd64")
    _index_of_an_older_hub(es_url, older, "older: git:arm64")
    with throwaway_es_store(es_url, index_prefix=prefix, upgrade_old_indices=False) as store:
        store.write(
            [LogRecord(time=DAY + 60, namespace="ns", pod="p", container="c", message="new: fetched git:amd64")]
        )
        store.refresh()
        assert store.old_word_indices == [older, old_index]
        assert "2 index(es) to upgrade" in store.probe()

        def messages(q: str) -> list[str]:
            return [i.message for i in store.search(LogQuery(visibility=None, text=parse_keywords(q))).items]

        assert messages("git:amd64") == ["new: fetched git:amd64", "old: git:amd64"]
        assert messages("amd64") == ["new: fetched git:amd64"]  # the old index keeps the standard analyzer's word
        new_index = f"{prefix}-2026.11.22"
        mapping = es_request(es_url, "GET", f"/{new_index}/_mapping")[new_index]["mappings"]
        assert mapping["properties"]["words"] == {"type": "text", "analyzer": "whitespace", "norms": False}
        assert mapping["properties"]["message"] == {"type": "text", "index": False}
        raw = es_request(es_url, "POST", f"/{new_index}/_search", {"query": {"match_all": {}}})
        assert "words" not in raw["hits"]["hits"][0]["_source"]  # derived, not stored twice

        assert store.upgrade_words(old_index) == 1  # rewritten in place, then marked
        assert store.old_word_indices == [older]
        assert messages("amd64") == ["new: fetched git:amd64", "old: git:amd64"]
        assert es_request(es_url, "GET", f"/{old_index}/_mapping")[old_index]["mappings"]["_meta"] == {
            "kubehub_words": 2
        }
        # A hub starting with an old index upgrades it in the background and answers meanwhile.
        again = ElasticsearchLogStore(es_url, index_prefix=prefix)
        try:
            found = [i.message for i in again.search(LogQuery(visibility=None, text=parse_keywords("git:arm64"))).items]
            assert found == ["older: git:arm64"]
            deadline = time.monotonic() + 30
            while again.old_word_indices and time.monotonic() < deadline:
                time.sleep(0.2)
            assert again.old_word_indices == [] and "upgrade" not in again.probe()
            found = [i.message for i in again.search(LogQuery(visibility=None, text=parse_keywords("arm64"))).items]
            assert found == ["older: git:arm64"]  # upgraded: arm64 is a word of git:arm64 there too
        finally:
            again.close()


def _fluent_bit_doc(ns: str, pod: str, container: str, log: str, t: str, host: str = "node-3") -> dict[str, Any]:
    return {
        "log": log,
        "time": t,
        "stream": "stdout",
        "kubernetes": {
            "pod_name": pod,
            "namespace_name": ns,
            "container_name": container,
            "host": host,
            "pod_id": f"uid-{pod}",
            "docker_id": uuid.uuid4().hex,
        },
    }


API_POD = "api-7d9f8c6b5-x1a2b"


def test_the_kubesphere_preset_reads_fluent_bit_indices_in_place(es_url: str) -> None:
    prefix = f"ks-logstash-log-{uuid.uuid4().hex[:8]}"
    index = f"{prefix}-2026.11.22"
    docs = [
        _fluent_bit_doc(
            "shop", "api-7d9f8c6b5-x1a2b", "app", "订单支付超时 order=17\n", "2026-11-22T01:00:00.123456789Z"
        ),
        _fluent_bit_doc(
            "shop", "api-7d9f8c6b5-x1a2b", "app", "\x1b[31mERROR\x1b[0m connection refused", "2026-11-22T02:00:00Z"
        ),
        _fluent_bit_doc("shop", "db-0", "postgres", "checkpoint complete", "2026-11-22T03:00:00Z"),
        _fluent_bit_doc("other", "api-5c4b3a291-q9w8e", "app", "超时 in another tenant", "2026-11-22T04:00:00Z"),
    ]
    bulk: list[Any] = []
    for d in docs:
        bulk += [{"index": {"_index": index}}, d]
    # Written the way Fluent Bit does: no template of ours, dynamic mapping (text + .keyword)
    resp = es_request(es_url, "POST", "/_bulk?refresh=true", bulk)
    assert not resp["errors"]
    store = ElasticsearchLogStore(es_url, index_prefix=prefix, field_preset="kubesphere")
    try:
        result = store.search(LogQuery(visibility={"shop": 0.0}, text=parse_keywords("超时")))
        assert [i.to_dict() for i in result.items] == [
            {
                "time": "2026-11-22T01:00:00.123457Z",
                "cluster": "",  # fluent-bit documents name no cluster: the implicit one's
                "namespace": "shop",
                "pod": "api-7d9f8c6b5-x1a2b",
                "container": "app",
                "workload": "api",
                "node": "node-3",
                "message": "订单支付超时 order=17\n",
            }
        ]
        by_workload = store.search(LogQuery(visibility={"shop": 0.0}, workloads=("api",)))
        assert {i.pod for i in by_workload.items} == {"api-7d9f8c6b5-x1a2b"}
        assert by_workload.items[0].message == "ERROR connection refused"  # colour codes stripped on the way out
        sts = store.search(LogQuery(visibility={"shop": 0.0}, workloads=("db",), containers=("postgres",)))
        assert [i.workload for i in sts.items] == ["db"]
        assert store.search(LogQuery(visibility={"shop": 0.0}, text=parse_keywords("another"))).total == 0
        assert [p.day for p in store.partitions()] == ["2026-11-22"]
    finally:
        es_request(es_url, "DELETE", f"/{index}")
        store.close()


WEB_POD = "web-5d8f7c9b6-abcde"


def test_the_hub_writes_kubesphere_shaped_documents_it_reads_back(es_url: str) -> None:
    with throwaway_es_store(es_url, field_preset="kubesphere") as store:
        store.write(
            [
                LogRecord(
                    time=DAY + 5, namespace="shop", pod="web-5d8f7c9b6-abcde", container="app", message="失败 once"
                ),
                LogRecord(time=DAY + 6, namespace="shop", pod="web-5d8f7c9b6-abcde", container="app", message="ok"),
            ]
        )
        store.refresh()
        raw = es_request(es_url, "POST", f"/{store.pattern}/_search", {"query": {"match_all": {}}, "size": 5})
        src = raw["hits"]["hits"][0]["_source"]
        assert set(src) == {"kubernetes", "log", "time"}
        assert src["kubernetes"]["namespace_name"] == "shop"
        hits = store.search(LogQuery(visibility={"shop": 0.0}, text=parse_keywords("失败"), workloads=("web",)))
        assert [i.message for i in hits.items] == ["失败 once"]


def test_a_scope_of_1500_old_namespaces_is_one_terms_clause(es_url: str) -> None:
    with throwaway_es_store(es_url) as store:
        store.write(
            [LogRecord(time=DAY + i, namespace=f"t-{i}", pod="p", container="c", message="x") for i in range(3)]
        )
        store.refresh()
        visibility = {f"t-{i}": DAY - 86_400 - i for i in range(1500)}  # created before any stored line
        visibility["t-2"] = DAY + 1.5  # recreated after its first line
        clause = store.compile_query(LogQuery(visibility=visibility))["bool"]["filter"][0]
        should = clause["bool"]["should"]
        assert len(should) == 2
        assert len(should[0]["terms"]["namespace"]) == 1499
        assert should[1]["bool"]["filter"][0] == {"terms": {"namespace": ["t-2"]}}
        assert len(json.dumps(clause)) < 30_000
        assert {i.namespace for i in store.search(LogQuery(visibility=visibility)).items} == {"t-0", "t-1", "t-2"}
        visibility["t-1"] = DAY + 1.5  # same floor as t-2: one group for both
        clause = store.compile_query(LogQuery(visibility=visibility))["bool"]["filter"][0]
        assert len(clause["bool"]["should"]) == 2
        assert {i.namespace for i in store.search(LogQuery(visibility=visibility)).items} == {"t-0", "t-2"}


@pytest.fixture
def es_world(tmp_path: Path, es_url: str) -> Iterator[TenancyWorld]:
    clock = FakeClock(DAY - 3600)
    prefix = f"kh-test-{uuid.uuid4().hex[:10]}"
    world = build_world(
        tmp_path,
        clock=clock,
        settings={
            "logs": {"backend": "elasticsearch", "export_cap": 3},
            "elasticsearch": {"url": es_url, "index_prefix": prefix},
        },
    )
    clock.set(DAY + 43_200)
    service = world.hub.logs
    lines = [
        LogRecord(
            time=DAY + 60 * i, namespace=ns, pod=f"{ns}-pod", container="app", workload="web", message=f"{ns} {msg}"
        )
        for i, (ns, msg) in enumerate(
            [
                ("ns-a1", "请求超时"),
                ("ns-a1", "payment ok"),
                ("ns-a2", "超时 too"),
                ("ns-b1", "超时 secret"),
                ("ns-a1", "超时 again"),
            ]
        )
    ]
    assert service.write(lines) == 5
    service.store.refresh()
    yield world
    try:
        service.store.drop_before("9999-12-31")
        es_request(es_url, "DELETE", f"/_index_template/kubehub-{prefix}")
    finally:
        world.hub.close()


def test_the_api_on_elasticsearch_keeps_tenants_apart(es_world: TenancyWorld) -> None:
    client = es_world.client("project-operator")
    body = client.get("/api/v1/logs", query_string={"q": "超时"}).get_json()
    assert [i["message"] for i in body["items"]] == ["ns-a1 超时 again", "ns-a1 请求超时"]
    assert body["total"] == 2
    for params in ({"q": "secret"}, {"namespaces": "", "q": "超时 OR secret"}):
        r = client.get("/api/v1/logs", query_string=params)
        assert_no_leak(r)
        assert all(i["namespace"] == "ns-a1" for i in r.get_json()["items"])
    assert client.get("/api/v1/logs", query_string={"namespaces": "ns-b1"}).status_code == 403
    hist = client.get(
        "/api/v1/logs/histogram", query_string={"start": DAY, "end": DAY + 600, "interval": "2m"}
    ).get_json()
    assert [b["count"] for b in hist["buckets"]] == [2, 0, 1, 0, 0]


def test_export_on_elasticsearch_walks_a_point_in_time_and_says_when_capped(es_world: TenancyWorld) -> None:
    admin = es_world.client("platform-admin")
    r = admin.get("/api/v1/logs/export", query_string={"format": "csv", "sort": "asc"})
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert [row[6] for row in rows[1:4]] == ["ns-a1 请求超时", "ns-a1 payment ok", "ns-a2 超时 too"]
    assert rows[-1][0].startswith("# export capped at 3 lines")
    tenant = es_world.client("workspace-admin")
    text = tenant.get("/api/v1/logs/export", query_string={"format": "jsonl", "q": "超时"}).get_data(as_text=True)
    assert [json.loads(x)["message"] for x in text.splitlines()] == [
        "ns-a1 超时 again",
        "ns-a2 超时 too",
        "ns-a1 请求超时",
    ]


def test_a_late_line_older_than_everything_stored_still_respects_the_floor(es_url: str) -> None:
    with throwaway_es_store(es_url) as store:
        store.write([LogRecord(time=DAY + 100, namespace="ns", pod="p", container="c", message="current")])
        store.refresh()
        visibility = {"ns": DAY + 50}  # recreated at DAY+50: before every stored line, so no range needed
        assert [i.message for i in store.search(LogQuery(visibility=visibility)).items] == ["current"]
        store.write([LogRecord(time=DAY + 10, namespace="ns", pod="old", container="c", message="predecessor")])
        store.refresh()
        assert [i.message for i in store.search(LogQuery(visibility=visibility)).items] == ["current"]
        assert {i.message for i in store.search(LogQuery(visibility={"ns": 0.0})).items} == {"current", "predecessor"}
