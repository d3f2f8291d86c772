"""The Elasticsearch 8 log store (the only importer of the ``elasticsearch`` client).

- **Dated indices** ``<prefix>-YYYY.MM.DD`` (UTC day of the line) under one index template with
  explicit mappings; retention deletes whole indices.
- **Reads indices it did not write.** Field names come from a preset: ``kubehub`` (flat keyword
  fields, what the hub writes) or ``kubesphere`` (what Fluent Bit's kubernetes filter writes:
  ``kubernetes.namespace_name`` etc. with ``.keyword`` sub-fields from dynamic mapping, ``log``,
  ``time``). That preset has no workload field, so a workload filter matches the pod names a
  Deployment, StatefulSet, DaemonSet or Job gives its pods, as KubeSphere does.
- **Words.** Documents the hub writes carry, next to ``message`` (stored, not indexed), a field
  ``words``: the message's words cut by ``hub.collectors.logs.words``, the rule the embedded
  store indexes by, which the template's ``kubehub_words`` analyzer only splits at spaces. Each
  CJK character is a word and a marker stands between a CJK run and its neighbours, so a term
  (cut the same way, one ``match_phrase``) matches inside one run only. ``words`` is left out
  of ``_source``. Indices of older versions (``message`` by the standard analyzer) are found at
  start and searched the old way, by ``_index``, until reindexed. Indices read in place
  (``kubesphere`` preset) keep the standard analyzer.
- **Tenant scope** is one clause: namespaces whose floor is older than anything stored (or than
  the query's start) share a single ``terms``; the others are grouped by floor, each group a
  ``terms`` plus a ``range``. A tenant with 1,500 namespaces created long ago costs one clause.
  The hub's own documents carry ``namespace_uid``: for namespaces whose current UID is known,
  one ``terms`` on the UIDs admits their lines whatever their time, and the floor clauses apply
  only to documents without the field (written before it existed). The ``kubesphere`` preset
  has no such field, so indices read in place keep the time floor alone.
- **Idempotent bulk writes:** each line's ``_id`` is the hash of its uid and the op is
  ``create``, so a re-sent batch adds nothing (409 per line, counted as already stored).
- **Export** opens a point in time and walks it with ``search_after`` (no deep from/size).

Every client or server failure becomes ``BackendUnavailable("elasticsearch", ...)``.

The parts that need no client sit beside it: ``es_fields.py`` (field presets, documents,
keyword DSL) and ``es_query.py`` (query compilation, a mixin). Still over 400 lines because it
is the one module that imports the ``elasticsearch`` client (one vendor library per adapter):
mapping, writing, searching, export and the upgrade of older indices all talk to it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from hub.collectors.logs.es_fields import (  # noqa: F401  (re-exported: hub.collectors.logs.es_fields holds them)
    _DATED,
    _POD_SUFFIX,
    _REGEXP_RESERVED,
    BACKEND,
    EXPORT_PAGE,
    OLDEST_TTL,
    PIT_KEEP_ALIVE,
    PRESETS,
    WORDS_ANALYZER,
    WORDS_FIELD,
    FieldMap,
    T,
    _any_of,
    _get,
    _parse_stamp,
    _pod_pattern,
    _put,
    bulk_item_reason,
    compile_text,
    index_template,
    workload_of_pod,
)
from hub.collectors.logs.es_http import SearchConnections, usable
from hub.collectors.logs.es_query import QueryCompiler
from hub.collectors.logs.store import (
    MAX_MESSAGE_CHARS,
    Bucket,
    LogLine,
    LogQuery,
    LogRecord,
    Partition,
    SearchResult,
    bucket_bounds,
    fill_buckets,
    iso_micro,
    strip_ansi,
    uid_hash,
)
from hub.collectors.logs.words import WORDS_VERSION, spaced_words
from hub.errors import BackendUnavailable, ConfigError

__all__ = [
    "BACKEND",
    "EXPORT_PAGE",
    "OLDEST_TTL",
    "PIT_KEEP_ALIVE",
    "PRESETS",
    "WORDS_ANALYZER",
    "WORDS_FIELD",
    "ElasticsearchLogStore",
    "FieldMap",
    "T",
    "compile_text",
    "log",
    "workload_of_pod",
]


log = logging.getLogger("kubehub.logs.elasticsearch")
# The client's transport logs every failed connection at WARNING with the whole exception
# chain (dozens of tracebacks per outage); the hub reports an outage once, as a 503 naming
# Elasticsearch and in /readyz, so the transport's own reports are kept to real errors.
logging.getLogger("elastic_transport").setLevel(logging.ERROR)


class ElasticsearchLogStore(QueryCompiler):
    name = BACKEND

    def __init__(
        self,
        url: str,
        *,
        index_prefix: str = "kubehub-logs",
        field_preset: str = "kubehub",
        timeout: float = 10.0,
        replicas: int = 0,
        client: Elasticsearch | None = None,
        upgrade_old_indices: bool = True,
    ) -> None:
        if field_preset not in PRESETS:
            raise ConfigError("KUBEHUB_ELASTICSEARCH_FIELD_PRESET", f"unknown preset {field_preset!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", index_prefix):
            raise ConfigError("KUBEHUB_ELASTICSEARCH_INDEX_PREFIX", f"not a valid index name prefix: {index_prefix!r}")
        self.url = url
        self.prefix = index_prefix
        self.pattern = f"{index_prefix}-*"
        self.fields = PRESETS[field_preset]
        self.preset = field_preset
        f = self.fields
        # Every field an answer line reads is a top-level key, workload and cluster included (_line).
        self._flat = all(n and "." not in n for n in (f.time, f.message, f.namespace, f.pod, f.container,
                                                      f.node, f.workload, f.cluster))  # fmt: skip
        self.replicas = replicas
        self._es = client or Elasticsearch(url, request_timeout=timeout, max_retries=1, retry_on_timeout=False)
        # Searches of a plain http URL skip the client's layers (hub/collectors/logs/es_http.py).
        self._plain = SearchConnections(url, timeout) if client is None and usable(url) else None
        self._template_ready = False
        self.old_word_indices: list[str] = []  # written before the word rule (see _find_old_word_indices)
        self.upgrade_old_indices = upgrade_old_indices
        self._upgrader: threading.Thread | None = None
        self._closing = threading.Event()
        self._words_checked = False  # old_word_indices is known (asked once, on first write or search)
        self._lock = threading.Lock()
        self._oldest: tuple[float, float | None] = (0.0, None)  # (asked at, oldest stored time)

    # -- plumbing ---------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(**kwargs)
        except ApiError as exc:
            reason = _reason(exc)
            raise BackendUnavailable(BACKEND, f"{what} failed with HTTP {exc.meta.status}: {reason}") from exc
        except TransportError as exc:
            detail = exc.message or type(exc).__name__
            raise BackendUnavailable(BACKEND, f"{what} failed: {detail} ({self.url})") from exc

    def index_for(self, ts: float) -> str:
        return f"{self.prefix}-{time.strftime('%Y.%m.%d', time.gmtime(ts))}"

    def template(self) -> dict[str, Any]:
        """The index template body: explicit mappings for the preset's fields."""
        return index_template(self.preset, self.fields, self.pattern, self.replicas)

    def ensure_template(self) -> None:
        if self._template_ready:
            return
        body = self.template()
        self._call(
            "installing the index template",
            self._es.indices.put_index_template,
            name=f"kubehub-{self.prefix}",
            index_patterns=body["index_patterns"],
            priority=body["priority"],
            template=body["template"],
            meta=body["_meta"],
        )
        # Fields newer than some indices: mapped there too (a template only shapes new indices).
        for added in (self.fields.namespace_uid, self.fields.cluster):
            if added:
                self._map_namespace_uid(added, body["template"]["mappings"]["properties"][added])
        if self.preset == "kubehub" and not self._words_checked:
            self._find_old_word_indices()
        self._template_ready = True

    def _find_old_word_indices(self) -> None:
        """Note indices written before the word rule (older hub versions indexed ``message``
        with the standard analyzer and had no ``words``; a template only shapes new indices).
        Searches there run the old way (see _term); docs/logs.md gives the reindex that brings
        them in line, and probe() counts them until then."""
        try:
            resp = self._es.indices.get_mapping(index=self.pattern, ignore_unavailable=True, allow_no_indices=True)
        except (ApiError, TransportError) as exc:
            log.warning("could not check the word rule of existing log indices (asked again later): %s", exc)
            return
        self._words_checked = True
        body: Any = resp.body if hasattr(resp, "body") else resp
        old = sorted(
            name
            for name, index in body.items()
            if (index.get("mappings", {}).get("_meta") or {}).get("kubehub_words") != WORDS_VERSION
        )
        self.old_word_indices = old
        if old:
            log.warning(
                "%d log index(es) predate the word rule and match words the old way until "
                "upgraded (docs/logs.md, 'Indices from older versions'): %s",
                len(old),
                ", ".join(old[:10]),
            )
            if self.upgrade_old_indices and self._upgrader is None:
                self._upgrader = threading.Thread(target=self._upgrade_all, name="es-words-upgrade", daemon=True)
                self._upgrader.start()

    def _upgrade_all(self) -> None:
        for index in sorted(self.old_word_indices, reverse=True):  # the days searched most first
            if self._closing.is_set():
                return
            try:
                self.upgrade_words(index)
            except BackendUnavailable as exc:
                log.warning("upgrading %s to the word rule failed (searched the old way meanwhile): %s", index, exc)
                return

    def upgrade_words(self, index: str) -> int:
        """Bring an index of an older hub under the word rule, in place: add the ``words``
        field to its mapping, rewrite every document with its words (same ``_id``), then mark
        the mapping. Searches treat the index the old way until the mark is set, so the answer
        never misses lines half-way. Returns the documents rewritten."""
        props = {WORDS_FIELD: self.template()["template"]["mappings"]["properties"][WORDS_FIELD]}
        self._call("mapping words", self._es.indices.put_mapping, index=index, properties=props)
        started = time.monotonic()
        opened = self._call("opening a point in time", self._es.open_point_in_time, index=index, keep_alive="5m")
        pit_id = opened["id"]
        done = 0
        after: list[Any] | None = None
        try:
            while not self._closing.is_set():
                body: dict[str, Any] = {
                    "size": EXPORT_PAGE,
                    "sort": [{"_shard_doc": "asc"}],
                    "track_total_hits": False,
                    "pit": {"id": pit_id, "keep_alive": "5m"},
                }
                if after is not None:
                    body["search_after"] = after
                resp = self._call("reading an index to upgrade", self._es.search, body=body)
                pit_id = resp.get("pit_id", pit_id)
                hits = resp.get("hits", {}).get("hits", [])
                if not hits:
                    break
                ops: list[dict[str, Any]] = []
                for h in hits:
                    doc = dict(h.get("_source", {}))
                    doc[WORDS_FIELD] = spaced_words(str(_get(doc, self.fields.message) or ""))
                    ops += [{"index": {"_index": h["_index"], "_id": h["_id"]}}, doc]
                result = self._call("rewriting documents", self._es.bulk, operations=ops, refresh=False)
                if result.get("errors"):
                    raise BackendUnavailable(BACKEND, f"rewriting {index} for the word rule: some documents failed")
                done += len(hits)
                after = hits[-1]["sort"]
        finally:
            try:
                self._es.close_point_in_time(id=pit_id)
            except (ApiError, TransportError):
                pass
        if self._closing.is_set():
            return done
        self._call("refresh", self._es.indices.refresh, index=index)
        self._call(
            "marking the index", self._es.indices.put_mapping, index=index, meta={"kubehub_words": WORDS_VERSION}
        )
        self.old_word_indices = [i for i in self.old_word_indices if i != index]
        log.info("upgraded %s to word rule %d: %d documents in %.1f s", index, WORDS_VERSION, done,
                 time.monotonic() - started)  # fmt: skip
        return done

    def _map_namespace_uid(self, uid_field: str, mapping: dict[str, Any]) -> None:
        """Add the namespace UID field (or the cluster field) to indices made before the
        template had it, so lines written there today are told apart by UID (by cluster) at
        once (a template only shapes new indices). Best effort: an index that cannot take it
        keeps the time floor for them; a cluster field that cannot be mapped there leaves those
        lines unfindable by cluster, never visible to another cluster's tenant (the filter
        asks for the field)."""
        try:
            self._es.indices.put_mapping(
                index=self.pattern,
                properties={uid_field: mapping},
                allow_no_indices=True,
                ignore_unavailable=True,
            )
        except (ApiError, TransportError) as exc:
            log.warning("could not map %s on existing indices %s: %s", uid_field, self.pattern, exc)

    # -- writing ----------------------------------------------------------------------------------
    def document(self, rec: LogRecord) -> dict[str, Any]:
        f = self.fields
        message = strip_ansi(rec.message)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " …[truncated]"
        doc: dict[str, Any] = {}
        _put(doc, f.time, iso_micro(rec.time))
        _put(doc, f.namespace, rec.namespace)
        _put(doc, f.pod, rec.pod)
        _put(doc, f.container, rec.container)
        _put(doc, f.node, rec.node)
        _put(doc, f.pod_uid, rec.pod_uid)
        if f.namespace_uid and rec.namespace_uid:
            _put(doc, f.namespace_uid, rec.namespace_uid)
        if f.cluster and rec.cluster:
            _put(doc, f.cluster, rec.cluster)
        if f.workload:
            _put(doc, f.workload, rec.workload)
        _put(doc, f.message, message)
        if self.preset == "kubehub":
            doc[WORDS_FIELD] = spaced_words(message)
        return doc

    def write(self, records: Sequence[LogRecord]) -> int:
        if not records:
            return 0
        self.ensure_template()
        ops: list[dict[str, Any]] = []
        for rec in records:
            ops.append({"create": {"_index": self.index_for(rec.time), "_id": f"{uid_hash(rec.identity()):016x}"}})
            ops.append(self.document(rec))
        # A line older than what the scope clause believes is the oldest stored would make a
        # floor look irrelevant; lower the belief before the line becomes searchable.
        asked, oldest = self._oldest
        earliest = min(r.time for r in records)
        if asked and (oldest is None or earliest < oldest):
            self._oldest = (asked, earliest)
        resp = self._call("bulk write", self._es.bulk, operations=ops, refresh=False)
        if not resp.get("errors"):
            return len(records)
        created = 0
        rejected: list[str] = []
        for item in resp["items"]:
            result = item.get("create", {})
            status = int(result.get("status", 500))
            if 200 <= status < 300:
                created += 1
            elif status == 409:
                continue  # this line is already stored
            elif status == 429 or status >= 500:
                # the cluster is overloaded or a shard is down: let the caller retry the batch
                raise BackendUnavailable(BACKEND, f"bulk write rejected with HTTP {status}: {bulk_item_reason(result)}")
            else:
                rejected.append(bulk_item_reason(result))
        if rejected:
            log.warning("elasticsearch refused %d log line(s), e.g. %s", len(rejected), rejected[0])
        return created

    def refresh(self) -> None:
        self._call(
            "refresh", self._es.indices.refresh, index=self.pattern, ignore_unavailable=True, allow_no_indices=True
        )

    # -- queries ----------------------------------------------------------------------------------
    def _oldest_time(self) -> float | None:
        asked, value = self._oldest
        now = time.monotonic()
        if now - asked < OLDEST_TTL and asked:
            return value
        try:
            resp = self._es.search(
                index=self.pattern,
                body={"size": 0, "aggs": {"oldest": {"min": {"field": self.fields.time}}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            )
            raw = resp.get("aggregations", {}).get("oldest", {}).get("value")
            value = float(raw) / 1000.0 if raw is not None else None
        except (ApiError, TransportError):
            value = None  # unknown: every recent floor then gets its own range (still exact)
        self._oldest = (now, value)
        return value

    def _line(self, src: Mapping[str, Any]) -> LogLine:
        f = self.fields
        if self._flat and type(src) is dict:
            # The hub's own preset: every field read is a top-level key, so plain lookups give
            # _get's values at a fraction of its cost (50 hits a page, on every search).
            get = src.get
            seconds, stamp = _parse_stamp(get(f.time))
            return LogLine(
                time=seconds,
                namespace=str(get(f.namespace) or ""),
                pod=str(get(f.pod) or ""),
                container=str(get(f.container) or ""),
                message=strip_ansi(str(get(f.message) or "")),
                workload=str(get(f.workload or "") or ""),
                node=str(get(f.node) or ""),
                cluster=str(get(f.cluster or "") or ""),
                stamp=stamp,
            )
        pod = str(_get(src, f.pod) or "")
        workload = str(_get(src, f.workload) or "") if f.workload else workload_of_pod(pod)
        seconds, stamp = _parse_stamp(_get(src, f.time))
        return LogLine(
            time=seconds,
            namespace=str(_get(src, f.namespace) or ""),
            pod=pod,
            container=str(_get(src, f.container) or ""),
            message=strip_ansi(str(_get(src, f.message) or "")),
            workload=workload,
            node=str(_get(src, f.node) or ""),
            cluster=str(_get(src, f.cluster) or "") if f.cluster else "",
            stamp=stamp,
        )

    def search(self, query: LogQuery) -> SearchResult:
        if query.sees_nothing:
            return SearchResult(items=[], total=0)
        body = self.encode_search(self.compile_search(query))
        if self._plain is not None:
            resp: Any = self._plain.search(self.pattern, body)
        else:
            resp = self._call(
                "search", self._es.search, index=self.pattern, body=body, ignore_unavailable=True, allow_no_indices=True
            )
        hits = resp.get("hits", {})
        total = hits.get("total", {"value": 0, "relation": "eq"})
        return SearchResult(
            items=[self._line(h.get("_source", {})) for h in hits.get("hits", [])],
            total=int(total.get("value", 0)),
            total_exact=total.get("relation", "eq") == "eq",
        )

    def histogram(self, query: LogQuery, *, interval: float) -> list[Bucket]:
        bounds = bucket_bounds(query, interval)
        counts: dict[int, int] = {}
        if not query.sees_nothing:
            body = {
                "size": 0,
                "track_total_hits": False,
                "query": self.compile_query(query),
                "aggs": {
                    "h": {
                        "date_histogram": {
                            "field": self.fields.time,
                            "fixed_interval": f"{int(interval)}s",
                            "min_doc_count": 1,
                        }
                    }
                },
            }
            resp = self._call(
                "histogram",
                self._es.search,
                index=self.pattern,
                body=body,
                ignore_unavailable=True,
                allow_no_indices=True,
            )
            for b in resp.get("aggregations", {}).get("h", {}).get("buckets", []):
                counts[round(b["key"] / 1000.0 / interval)] = int(b["doc_count"])
        return fill_buckets(counts, interval, bounds)

    def export(self, query: LogQuery, *, limit: int) -> Iterator[LogLine]:
        if query.sees_nothing or limit <= 0:
            return
        opened = self._call(
            "opening a point in time",
            self._es.open_point_in_time,
            index=self.pattern,
            keep_alive=PIT_KEEP_ALIVE,
            ignore_unavailable=True,
        )
        pit_id = opened["id"]
        try:
            sent = 0
            after: list[Any] | None = None
            sort = [*self._sort(query), {"_shard_doc": query.sort}]
            compiled = self.compile_query(query)
            while sent < limit:
                body: dict[str, Any] = {
                    "query": compiled,
                    "sort": sort,
                    "size": min(EXPORT_PAGE, limit - sent),
                    "track_total_hits": False,
                    "_source": self._source_fields(),
                    "pit": {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
                }
                if after is not None:
                    body["search_after"] = after
                resp = self._call("export page", self._es.search, body=body)
                pit_id = resp.get("pit_id", pit_id)
                hits = resp.get("hits", {}).get("hits", [])
                if not hits:
                    return
                for h in hits:
                    yield self._line(h.get("_source", {}))
                sent += len(hits)
                after = hits[-1]["sort"]
        finally:
            try:
                self._es.close_point_in_time(id=pit_id)
            except (ApiError, TransportError):
                pass  # it expires by itself after the keep-alive

    # -- lifecycle --------------------------------------------------------------------------------
    def partitions(self) -> list[Partition]:
        rows = self._call(
            "listing indices",
            self._es.cat.indices,
            index=self.pattern,
            format="json",
            bytes="b",
            h="index,docs.count,store.size",
            expand_wildcards="open",
        )
        out = []
        listed: Any = rows.body if hasattr(rows, "body") else rows
        for row in listed:
            name = row.get("index", "")
            m = _DATED.search(name)
            if not m or not name.startswith(self.prefix + "-"):
                continue
            out.append(
                Partition(
                    name=name,
                    day=f"{m.group(1)}-{m.group(2)}-{m.group(3)}",
                    lines=int(row.get("docs.count") or 0),
                    bytes=int(row.get("store.size") or 0),
                )
            )
        return sorted(out, key=lambda p: p.day)

    def drop_namespace_before(self, namespace: str, day: str, *, clusters: tuple[str, ...] | None = None) -> int:
        """A project's retention: delete its namespace's documents in the dated indices before
        ``day`` (whole indices stay: they hold the other projects' lines). By ids found with a
        search and deleted in bulk, not ``_delete_by_query``: that needs the reindex module,
        which slim Elasticsearch builds (the sandbox's among them) leave out. ``clusters``: only
        the documents of these cluster labels (the search's own cluster clause)."""
        older = ",".join(p.name for p in self.partitions() if p.day < day)
        query: dict[str, Any] = {"term": {self.fields.namespace: namespace}}
        if clusters is not None:
            query = {"bool": {"filter": [query, self._cluster_clause(clusters)]}}
        removed = 0
        while older:
            resp: Any = self._call(
                "finding a project's old lines",
                self._es.search,
                index=older,
                query=query,
                size=1000,
                source=False,
                sort=["_doc"],
                ignore_unavailable=True,
            )
            hits = (resp.body if hasattr(resp, "body") else resp)["hits"]["hits"]
            if not hits:
                break
            ops = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
            done: Any = self._call("deleting a project's old lines", self._es.bulk, operations=ops, refresh=True)
            if (done.body if hasattr(done, "body") else done).get("errors"):  # else the same ids come back forever
                raise BackendUnavailable(BACKEND, "deleting a project's old lines: some deletes were refused")
            removed += len(hits)
        return removed

    def drop_before(self, day: str) -> list[str]:
        doomed = [p.name for p in self.partitions() if p.day < day]
        if doomed:
            self._call("deleting old indices", self._es.indices.delete, index=",".join(doomed))
            self._oldest = (0.0, None)
        return doomed

    def probe(self) -> str:
        health = self._call("cluster health", self._es.cluster.health)
        status = health.get("status", "unknown")
        text = f"elasticsearch at {self.url}: cluster {status}, preset {self.preset}, indices {self.pattern}"
        if self.old_word_indices:
            text += f"; {len(self.old_word_indices)} index(es) to upgrade to the word rule (docs/logs.md)"
        return text

    def close(self) -> None:
        self._closing.set()
        if self._upgrader is not None:
            self._upgrader.join(timeout=30)
        if self._plain is not None:
            self._plain.close()
        self._es.close()


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    err = body.get("error")
    if isinstance(err, Mapping):
        return str(err.get("reason") or err.get("type") or exc.message)
    return str(err or exc.message)
