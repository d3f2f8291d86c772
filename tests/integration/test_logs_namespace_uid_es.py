"""Elasticsearch indices made before documents carried ``namespace_uid``: the hub maps the field
onto them when it installs its template, so lines it writes there today are told apart by UID at
once (a template only shapes indices created after it). Against the sandbox's real
Elasticsearch, in indices of this test's own prefix."""

from __future__ import annotations

from typing import Any

import pytest

from hub.collectors.logs.store import LogQuery, LogRecord
from tests.integration.logs_support import elasticsearch_url, es_request, throwaway_es_store

pytestmark = pytest.mark.integration

DAY = 1_796_342_400.0  # 2026-12-04T00:00:00Z


def test_an_index_from_before_namespace_uids_gets_the_field_and_the_rule_holds_there(
    request: pytest.FixtureRequest,
) -> None:
    url = elasticsearch_url(request)
    with throwaway_es_store(url) as store:
        index = store.index_for(DAY + 3600)
        # the index as an older hub made it: its labels mapped, no namespace_uid
        keyword = {"type": "keyword", "ignore_above": 1024}
        old_mapping: dict[str, Any] = {
            "dynamic": False,
            "properties": {
                "time": {"type": "date_nanos"},
                "message": {"type": "text", "analyzer": "standard"},
                **{k: keyword for k in ("namespace", "pod", "container", "node", "pod_uid", "workload")},
            },
        }
        es_request(url, "PUT", f"/{index}", {"settings": {"number_of_replicas": 0}, "mappings": old_mapping})
        assert "namespace_uid" not in es_request(url, "GET", f"/{index}/_mapping")[index]["mappings"]["properties"]

        # "shop" was recreated at DAY + 2h as namespace "second"; "first" logged a late line after it
        lines = [
            LogRecord(DAY + 3600, "shop", "web-0", "app", "seeded history", namespace_uid="second"),
            LogRecord(DAY + 3 * 3600, "shop", "web-1", "app", "late line of the first", namespace_uid="first"),
            LogRecord(DAY + 4 * 3600, "shop", "web-0", "app", "new line", namespace_uid="second"),
        ]
        assert store.write(lines) == 3  # installs the template and maps the field onto the index
        store.refresh()
        mapping = es_request(url, "GET", f"/{index}/_mapping")[index]["mappings"]["properties"]
        assert mapping["namespace_uid"]["type"] == "keyword"

        tenant = LogQuery(visibility={"shop": DAY + 2 * 3600}, namespace_uids={"shop": "second"}, sort="asc")
        assert [x.message for x in store.search(tenant).items] == ["seeded history", "new line"]
        floor_only = LogQuery(visibility={"shop": DAY + 2 * 3600}, sort="asc")
        assert [x.message for x in store.search(floor_only).items] == ["late line of the first", "new line"]
        assert store.search(LogQuery(visibility=None)).total == 3
