"""Query compilation of the Elasticsearch log store, without the client: a part of
:class:`~hub.collectors.logs.elasticsearch.ElasticsearchLogStore` (a mixin; the store asks the
server for the oldest stored time, which the scope clause uses).

The tenant scope is one clause: namespaces whose floor is older than anything stored share one
``terms``; the others are grouped by floor; known namespace UIDs admit their lines whatever
their time (the predecessor rule).

The clause is built once per scope and floor split and then reused (:meth:`_scope_clause`): a
tenant's scope arrives as the same frozen mapping on every search while it is unchanged, and
for 1,200 namespaces building the clause was about 0.2 ms of the 0.6 ms the hub added to a
4 ms Elasticsearch search (bench/logs.py's broad tenant, in process).
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.collectors.logs.es_fields import (
    WORDS_FIELD,
    FieldMap,
    _any_of,
    _pod_pattern,
    compile_text,
)
from hub.collectors.logs.store import (
    TOTAL_CAP,
    LogQuery,
    iso_micro,
)
from hub.collectors.logs.words import spaced_words

if TYPE_CHECKING:
    from hub.collectors.logs.es_fields import FieldMap


SCOPE_CLAUSES = 32  # scopes whose clauses are cached before the cache starts over
# Stands for a cached scope clause while the rest of a search body is encoded; random, so no
# value a caller sends can be taken for it.
_SCOPE_MARK = f"kubehub-scope-{uuid.uuid4().hex}"


class _ScopeClauses:
    """The compiled scope clauses of one visibility mapping, per floor split."""

    def __init__(self, visibility: Mapping[str, float]) -> None:
        self.visibility = visibility  # held, so its id is not reused while cached
        self.snapshot = dict(visibility)
        self.floors = sorted(self.snapshot.values())
        self.clauses: dict[int, tuple[dict[str, str], dict[str, Any], str]] = {}


class QueryCompiler:
    """A :class:`LogQuery` as Elasticsearch query DSL: the tenant scope clause, the floors, the
    keyword terms (new and old word indices), sort and fields."""

    if TYPE_CHECKING:  # provided by ElasticsearchLogStore (hub/collectors/logs/elasticsearch.py)

        def _find_old_word_indices(self) -> None: ...
        def _oldest_time(self) -> float | None: ...

        _words_checked: bool
        fields: FieldMap
        old_word_indices: list[str]
        preset: str

    def _scope_clause(self, q: LogQuery) -> dict[str, Any] | None:
        """The scope clause of ``q``, from a small cache when the same scope was compiled with
        the same split of floors (how many floors fall at or before the cutoff: a relative
        range such as "the last hour" moves the cutoff on every search without moving it past
        a floor). A cached clause is shared by searches: it is only serialized, never changed.
        An entry is used only when the visibility and UIDs equal the copies it was built from
        (a C-level comparison, ~40 us at 1,200 namespaces against ~250 us to build), so a
        mapping changed in place after a search is never answered from the cache."""
        if q.visibility is None:
            return None
        cutoff = self._cutoff(q)
        cache: dict[int, _ScopeClauses] = self.__dict__.setdefault("_scope_clauses", {})
        entry = cache.get(id(q.visibility))
        if entry is None or entry.visibility is not q.visibility or entry.snapshot != q.visibility:
            if len(cache) >= SCOPE_CLAUSES:
                cache.clear()
            entry = cache[id(q.visibility)] = _ScopeClauses(q.visibility)
        split = bisect_right(entry.floors, cutoff)
        hit = entry.clauses.get(split)
        if hit is not None and hit[0] == q.namespace_uids:
            return hit[1]
        clause = self._build_scope_clause(q)
        if clause is not None:
            text = json.dumps(clause, ensure_ascii=False, separators=(",", ":"))
            entry.clauses[split] = (dict(q.namespace_uids), clause, text)
            texts: dict[int, tuple[dict[str, Any], str]] = self.__dict__.setdefault("_scope_texts", {})
            if len(texts) >= SCOPE_CLAUSES * 4:
                texts.clear()
            texts[id(clause)] = (clause, text)
        return clause

    def encode_search(self, body: dict[str, Any]) -> bytes:
        """A search body as JSON, its scope clause (the first filter, when it came from the
        cache) written from the clause's cached text: at 1,200 namespaces the clause is most
        of a ~14 KB body, encoded again on every search otherwise (with the client's own
        machinery around it, about 0.1 ms of the hub's ~1 ms per search)."""
        filters = body.get("query", {}).get("bool", {}).get("filter") or []
        texts: dict[int, tuple[dict[str, Any], str]] = self.__dict__.get("_scope_texts", {})
        known = texts.get(id(filters[0])) if filters else None
        if known is None or known[0] is not filters[0]:
            return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        clause = filters[0]
        filters[0] = _SCOPE_MARK
        try:
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        finally:
            filters[0] = clause
        return text.replace(f'"{_SCOPE_MARK}"', known[1], 1).encode()

    def _cutoff(self, q: LogQuery) -> float:
        """Floors at or before this hide nothing: the query's start or the oldest stored line."""
        oldest = self._oldest_time()
        return max(q.start if q.start is not None else float("-inf"), oldest if oldest is not None else float("-inf"))

    def _build_scope_clause(self, q: LogQuery) -> dict[str, Any] | None:
        assert q.visibility is not None
        uid_field = self.fields.namespace_uid
        uids = {ns: q.namespace_uids[ns] for ns in q.visibility if q.namespace_uids.get(ns)} if uid_field else {}
        by_time = {ns: floor for ns, floor in q.visibility.items() if ns not in uids}
        should = self._floor_clauses(q, by_time)
        if uid_field and uids:
            field = self.fields.exact(self.fields.namespace)
            # Lines stamped with the current namespace's UID, whatever their time (a UID names
            # one namespace, the name is checked too so a clause never reaches outside the scope).
            should.append(
                {
                    "bool": {
                        "filter": [
                            {"terms": {field: sorted(uids)}},
                            {"terms": {uid_field: sorted(set(uids.values()))}},
                        ]
                    }
                }
            )
            # Lines without a UID (written before the field existed): the time floor.
            legacy = self._floor_clauses(q, {ns: q.visibility[ns] for ns in uids})
            should.append(
                {
                    "bool": {
                        "filter": [legacy[0] if len(legacy) == 1 else _any_of(legacy)],
                        "must_not": [{"exists": {"field": uid_field}}],
                    }
                }
            )
        if not should:
            return {"bool": {"must_not": [{"match_all": {}}]}}
        if len(should) == 1:
            return should[0]
        return _any_of(should)

    def _floor_clauses(self, q: LogQuery, visibility: Mapping[str, float]) -> list[dict[str, Any]]:
        """The time-floor rule over ``visibility``: one ``terms`` for the namespaces whose floor
        hides nothing, one ``terms`` + ``range`` per distinct floor for the others."""
        if not visibility:
            return []
        field = self.fields.exact(self.fields.namespace)
        cutoff = self._cutoff(q)
        plain: list[str] = []
        by_floor: dict[float, list[str]] = defaultdict(list)
        for ns, floor in visibility.items():
            if floor <= cutoff:
                plain.append(ns)
            else:
                by_floor[floor].append(ns)
        should: list[dict[str, Any]] = []
        if plain:
            should.append({"terms": {field: plain}})
        for floor, names in sorted(by_floor.items()):
            should.append(
                {
                    "bool": {
                        "filter": [
                            {"terms": {field: sorted(names)}},
                            {"range": {self.fields.time: {"gte": iso_micro(floor)}}},
                        ]
                    }
                }
            )
        return should

    def compile_query(self, q: LogQuery) -> dict[str, Any]:
        """The bool query for ``q`` (scope, filters, time range, keywords)."""
        f = self.fields
        filters: list[dict[str, Any]] = []
        scope = self._scope_clause(q)
        if scope is not None:
            filters.append(scope)
        if q.clusters is not None:
            filters.append(self._cluster_clause(q.clusters))
        if q.workloads:
            if f.workload:
                filters.append({"terms": {f.exact(f.workload): list(q.workloads)}})
            else:
                filters.append(
                    {
                        "bool": {
                            "should": [{"regexp": {f.exact(f.pod): _pod_pattern(w)}} for w in q.workloads],
                            "minimum_should_match": 1,
                        }
                    }
                )
        if q.pods:
            filters.append({"terms": {f.exact(f.pod): list(q.pods)}})
        if q.containers:
            filters.append({"terms": {f.exact(f.container): list(q.containers)}})
        if q.start is not None or q.end is not None:
            rng: dict[str, Any] = {}
            if q.start is not None:
                rng["gte"] = iso_micro(q.start)
            if q.end is not None:
                rng["lt"] = iso_micro(q.end)
            filters.append({"range": {f.time: rng}})
        if q.text is not None:
            filters.append(compile_text(q.text, self._term))
        return {"bool": {"filter": filters}}

    def _cluster_clause(self, clusters: tuple[str, ...]) -> dict[str, Any]:
        """Lines of these clusters; ``""`` is a line without the field (the implicit cluster's,
        or every line of a preset whose documents name no cluster)."""
        field = self.fields.cluster
        named = sorted({c for c in clusters if c})
        if field is None:
            return {"match_all": {}} if "" in clusters else {"bool": {"must_not": [{"match_all": {}}]}}
        should: list[dict[str, Any]] = []
        if named:
            should.append({"terms": {self.fields.exact(field): named}})
        if "" in clusters:
            should.append({"bool": {"must_not": [{"exists": {"field": field}}]}})
        if not should:
            return {"bool": {"must_not": [{"match_all": {}}]}}
        return should[0] if len(should) == 1 else _any_of(should)

    def _term(self, text: str) -> dict[str, Any]:
        """One term's clause: its words as a phrase of ``words`` (see spaced_words); on indices
        of an older hub, a phrase of ``message`` by their standard analyzer."""
        if self.preset != "kubehub":
            return {"match_phrase": {self.fields.message: {"query": text}}}
        if not self._words_checked:
            self._find_old_word_indices()
        clause = {"match_phrase": {WORDS_FIELD: {"query": spaced_words(text)}}}
        if not self.old_word_indices:
            return clause
        old = {
            "bool": {
                "filter": [
                    {"terms": {"_index": self.old_word_indices}},
                    {"match_phrase": {self.fields.message: {"query": text, "analyzer": "standard"}}},
                ]
            }
        }
        return {"bool": {"should": [clause, old], "minimum_should_match": 1}}

    def _sort(self, q: LogQuery) -> list[dict[str, Any]]:
        return [{self.fields.time: {"order": q.sort, "unmapped_type": "date_nanos"}}]

    def _source_fields(self) -> list[str]:
        f = self.fields
        return [x for x in (f.time, f.message, f.namespace, f.pod, f.container, f.node, f.workload, f.cluster) if x]

    def compile_search(self, q: LogQuery) -> dict[str, Any]:
        """The whole search body (for the store and for the benchmark's raw baseline)."""
        return {
            "query": self.compile_query(q),
            "sort": self._sort(q),
            "from": q.offset,
            "size": q.size,
            "track_total_hits": TOTAL_CAP,
            "_source": self._source_fields(),
        }
