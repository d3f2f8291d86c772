"""The Elasticsearch store's scope clause is built once per scope and floor split, and never
served stale (hub/collectors/logs/es_query.py). No server: nothing listens on port 9, so the
oldest stored time is unknown and the cutoff is the query's start."""

from __future__ import annotations

import json

import pytest

from hub.collectors.logs.elasticsearch import ElasticsearchLogStore
from hub.collectors.logs.store import LogQuery

pytestmark = pytest.mark.unit

DAY = 1_795_219_200.0


def scope_of(store: ElasticsearchLogStore, query: LogQuery) -> dict:
    return store.compile_query(query)["bool"]["filter"][0]


def plain_and_grouped(clause: dict) -> tuple[set[str], dict[str, set[str]]]:
    """The namespaces of the shared ``terms`` and, per floor, those of the floor groups."""
    should = clause["bool"]["should"] if "should" in clause.get("bool", {}) else [clause]
    plain: set[str] = set()
    grouped: dict[str, set[str]] = {}
    for part in should:
        if "terms" in part:
            plain |= set(part["terms"]["namespace"])
        else:
            terms, floor = part["bool"]["filter"]
            (bound,) = floor["range"].values()
            grouped[bound["gte"]] = set(terms["terms"]["namespace"])
    return plain, grouped


def test_a_scope_clause_is_reused_until_the_cutoff_passes_a_floor_or_the_scope_changes() -> None:
    store = ElasticsearchLogStore("http://127.0.0.1:9", timeout=2.0)
    visibility = {f"ns-{i}": DAY - 86_400 for i in range(50)}
    visibility["late"] = DAY + 3600  # created an hour into the day
    first = scope_of(store, LogQuery(visibility=visibility, start=DAY))
    plain, grouped = plain_and_grouped(first)
    assert "late" not in plain and {"late"} in grouped.values() and len(plain) == 50
    # "the last hour" a minute later: the cutoff moved but passed no floor -> the same clause
    assert scope_of(store, LogQuery(visibility=visibility, start=DAY + 60)) is first
    # a start after the late floor: that floor hides nothing any more -> one terms for all
    after = scope_of(store, LogQuery(visibility=visibility, start=DAY + 7200))
    assert plain_and_grouped(after) == (set(visibility), {})
    # the mapping changed in place (a namespace recreated): never the cached clause
    visibility["ns-0"] = DAY + 1800
    changed = plain_and_grouped(scope_of(store, LogQuery(visibility=visibility, start=DAY)))
    assert "ns-0" not in changed[0] and {"ns-0"} in changed[1].values()
    # the same names and floors in another mapping: the same answer
    again = plain_and_grouped(scope_of(store, LogQuery(visibility=dict(visibility), start=DAY)))
    assert again == changed
    store.close()


def test_a_search_body_with_a_cached_scope_encodes_to_the_same_json() -> None:
    store = ElasticsearchLogStore("http://127.0.0.1:9", timeout=2.0)
    visibility = {f"ns-{i}": DAY - 86_400 for i in range(1200)}
    visibility["late"] = DAY + 3600
    for start in (None, DAY, DAY + 60):  # built, then reused from the cache
        body = store.compile_search(LogQuery(visibility=visibility, start=start))
        assert json.loads(store.encode_search(body)) == body
    assert json.loads(store.encode_search({"query": {"bool": {"filter": []}}})) == {"query": {"bool": {"filter": []}}}
    store.close()
