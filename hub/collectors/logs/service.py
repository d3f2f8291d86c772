"""The logs area's service: tenant-scoped search, histogram and export over one log store, the
hub's write path into it, and retention; it runs the shipper the runtime hands it.

Every read takes the caller's :class:`hub.scope.Scope` and enforces it *before* the store is
asked (a named namespace outside it is the one 403; every query carries
``LogQuery.visibility`` and the predecessor rule), so no code path reaches the store unscoped;
every read is audited (``logs.search``, ``logs.histogram``, ``logs.export``) whatever its
outcome.

Several clusters: every line carries its cluster (``LogRecord.cluster``; lines written without
one are the implicit cluster's). A read names clusters with ``cluster=`` or asks about every
cluster the caller may pick; each cluster is asked with the caller's view of *that* cluster
(:meth:`Scope.for_cluster`: the same namespace name there may be another tenant's), one store
query per cluster, merged by time (:class:`ClusterPart`). A platform admin asking about every
cluster is one unfiltered query, as before. Built by ``hub/runtime/logs.py``, which also
adapts the cluster service for the shipper.

One store per cluster: a cluster configured with its own store (``logs.mode own``) has its
lines written there (:meth:`LogService.write` routes each line by its cluster) and read there;
a read over several stores runs through :mod:`hub.collectors.logs.fanout` (bounded, and a store
that is down either fails the read or is listed under ``unavailable``). Over 400 lines because
every read's scoping, fan-out and audit go through the one service that enforces the scope.
"""

from __future__ import annotations

import calendar
import heapq
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, Protocol

from hub.collectors.logs import export as export_mod
from hub.collectors.logs.fanout import FanOut, StorePart, Unavailable, merge_search
from hub.collectors.logs.shipper import Shipper
from hub.collectors.logs.store import (
    ClusterStores,
    LogLine,
    LogParams,
    LogQuery,
    LogRecord,
    LogStore,
    SearchResult,
    bucket_bounds,
    fill_buckets,
)
from hub.errors import BackendUnavailable, Forbidden, HubError, InvalidInput, NotFound
from hub.scope import LogFloors, Scope, refusal, split_key
from hub.settings import Settings
from hub.timeutil import Clock, format_duration, iso

log = logging.getLogger("kubehub.logs")

READ_PERMISSION = "logs:read"
RETENTION_EVERY = 3600.0  # seconds between retention runs; partitions are whole days anyway
# Histogram intervals picked when the caller gives none: about 60 buckets over the range.
_NICE_INTERVALS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400)


def auto_interval(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return 3600.0
    target = (end - start) / 60
    for step in _NICE_INTERVALS:
        if step >= target:
            return float(step)
    return float(_NICE_INTERVALS[-1])


class AuditLog(Protocol):
    """What the logs area needs of the tenancy service: the audit log. The caller's scope
    arrives with each read."""

    def audit(
        self, actor: str, action: str, target: str, result: str, detail: Mapping[str, Any] | None = None
    ) -> int: ...


# One cluster's share of a read: its name, its store and the query the caller's view allows.
ClusterPart = StorePart


class LogService:
    """Tenant-scoped reads, the write path, retention and the shipper of the logs area."""

    def __init__(
        self,
        *,
        store: LogStore,
        settings: Settings,
        tenancy: AuditLog,
        clock: Clock,
        metrics: Any = None,
        shipper: Shipper | None = None,
        cluster_names: Callable[[], Sequence[str]] | None = None,
        project_retention: Callable[[], Mapping[str, int]] | None = None,
        cluster_stores: ClusterStores | None = None,
    ) -> None:
        self.store = store
        # cluster name -> its own store (logs.mode own); every other cluster's lines are in ``store``
        self._cluster_stores = cluster_stores
        self._fanout = FanOut()
        # namespace -> its project's own retention in days (log collection settings), when set
        self._project_retention = project_retention
        # Every cluster the hub knows (the registry's names); a hub without the registry knows
        # only its implicit cluster.
        self._cluster_names = cluster_names
        self.settings = settings
        self.tenancy = tenancy
        self.clock = clock
        self.metrics = metrics
        self.shipper = shipper
        self._stop = threading.Event()
        self._retention_thread: threading.Thread | None = None

    @property
    def backend(self) -> str:
        return self.settings.logs.backend

    # -- scope and audit --------------------------------------------------------------------------
    def visibility(self, scope: Scope, params: LogParams) -> LogFloors | None:
        """What the caller may read among the namespaces asked for, with the predecessor rule
        (each namespace's floor and current UID, :class:`~hub.scope.LogFloors`).

        Naming a namespace outside the scope is refused whole (the one 403 of
        :meth:`Scope.check`, the same words whether the namespace exists or not) rather than
        silently narrowed. Platform admins see every namespace with no floor: the rule hides a
        predecessor's lines from tenants, while admins investigate the cluster as a whole.
        None: every namespace, no floor.
        """
        restricted = scope.named(READ_PERMISSION, params.namespaces)
        if restricted is None:
            return None
        floors: LogFloors = scope.log_floors(restricted)
        return floors

    @property
    def implicit_cluster(self) -> str:
        return self.settings.clusters.default_name

    def cluster_names(self) -> list[str]:
        names = list(self._cluster_names()) if self._cluster_names is not None else []
        return names if self.implicit_cluster in names else [self.implicit_cluster, *names]

    def own_stores(self) -> Mapping[str, LogStore]:
        """The clusters with a store of their own, each with it (none on a one-store hub)."""
        return self._cluster_stores() if self._cluster_stores is not None else {}

    def store_of(self, cluster: str) -> LogStore:
        """Where ``cluster``'s lines are written and read ("" is the implicit cluster)."""
        return self.own_stores().get(cluster or self.implicit_cluster, self.store)

    def labels(self, cluster: str) -> tuple[str, ...]:
        """The stored cluster labels of ``cluster``'s lines ("" too for the implicit one)."""
        return ("", cluster) if cluster == self.implicit_cluster else (cluster,)

    def _cluster_parts(self, scope: Scope, params: LogParams) -> list[ClusterPart]:
        """The read's clusters, each with the store query the caller's view of it allows.

        A cluster named by a caller who may not pick it (or one that does not exist) is the
        one refusal, the same words for both; platform admins get 404 naming ``cluster`` for
        an unknown one. A named namespace must be readable in at least one of the clusters
        asked (else the one 403 of :meth:`Scope.check`); a cluster where it is not is simply
        not asked. With no cluster named, the clusters the caller may pick are asked.
        """
        known = self.cluster_names()
        if params.clusters:
            for name in params.clusters:
                if name in known and scope.may_read_cluster(name):
                    continue
                if scope.all_namespaces:
                    raise NotFound(f"no cluster {name!r}", field="cluster")
                raise Forbidden(f"you lack the permission {READ_PERMISSION} in cluster {name}", field="cluster")
            asked = list(params.clusters)
        else:
            own = self.own_stores()
            if scope.all_namespaces and not params.namespaces:
                # Every line of the shared store (lines of removed clusters too) in one query,
                # and each cluster's own store.
                return [
                    ClusterPart("", self.store, params.to_query(None)),
                    *(
                        ClusterPart(c, own[c], params.to_query(None, clusters=self.labels(c)))
                        for c in known
                        if c in own
                    ),
                ]
            asked = [c for c in known if scope.may_read_cluster(c)]
        parts: list[ClusterPart] = []
        readable: set[str] = set()
        for name in asked:
            view = scope.for_cluster(name)
            wanted = [ns for ns in params.namespaces if view.may(READ_PERMISSION, ns)]
            if params.namespaces and not wanted:
                continue
            readable.update(wanted)
            restricted = view.named(READ_PERMISSION, wanted)
            labels = self.labels(name)
            store = self.store_of(name)
            if restricted is None:
                parts.append(ClusterPart(name, store, params.to_query(None, clusters=labels)))
                continue
            if not restricted:
                continue
            floors: LogFloors = view.log_floors(restricted)
            parts.append(ClusterPart(name, store, params.to_query(floors.created, floors.uids, clusters=labels)))
        for ns in params.namespaces:
            if ns not in readable:
                raise refusal(READ_PERMISSION, ns)  # the same words as Scope.check
        return parts

    def _audit(self, scope: Scope, action: str, result: str, params: LogParams | None, **extra: Any) -> None:
        detail: dict[str, Any] = dict(extra)
        if params is not None:
            detail.update(
                {
                    "q": params.q,
                    "start": iso(params.start) if params.start is not None else None,
                    "end": iso(params.end) if params.end is not None else None,
                    "workloads": list(params.workloads),
                    "pods": list(params.pods),
                    "containers": list(params.containers),
                }
            )
        actor = scope.username
        try:
            self.tenancy.audit(actor, action, "logs", result, detail)
        except Exception:  # an audit failure is logged loudly but must not hide the answer's error
            log.exception("auditing %s by %s failed", action, actor)

    def _scoped(
        self, scope: Scope, args: LogParams | Mapping[str, Any], action: str
    ) -> tuple[LogParams, list[ClusterPart]]:
        if not isinstance(args, LogParams):  # query strings are read by web.params.log_params (bounded)
            raise TypeError(f"the logs service takes LogParams, got {type(args).__name__}")
        params = args
        try:
            parts = self._cluster_parts(scope, params)
        except (Forbidden, NotFound) as exc:
            self._audit(
                scope,
                action,
                "denied",
                params,
                namespaces=list(params.namespaces),
                clusters=list(params.clusters),
                reason=exc.message,
            )
            raise
        return params, parts

    def _part_detail(
        self, params: LogParams, parts: Sequence[ClusterPart], shown: Sequence[LogLine] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """The audit detail's reach over every cluster asked (see :meth:`_scope_detail`)."""
        if len(parts) == 1:
            detail = self._scope_detail(params, parts[0].query, shown, **kw)
        else:
            detail = {"clusters_detail": {p.name: self._scope_detail(params, p.query, None, **kw) for p in parts}}
            if shown is not None:
                detail["namespaces"] = sorted({line.namespace for line in shown})
        # "*": a platform admin's read of the whole shared store beside the clusters' own stores
        names = [p.name or "*" for p in parts if p.name or len(parts) > 1]
        if names or params.clusters:
            detail["clusters"] = names
        return detail

    def _named(self, line: LogLine) -> LogLine:
        """A line as answered: its cluster by name (lines stored without one are the implicit's)."""
        return line if line.cluster else replace(line, cluster=self.implicit_cluster)

    def _item(self, line: LogLine, implicit: str) -> dict[str, Any]:
        """``_named(line).to_dict()`` without copying the line (a frozen copy costs as much as
        the whole dict: ~0.1 ms of a 50-line page)."""
        item = line.to_dict()
        if not item["cluster"]:
            item["cluster"] = implicit
        return item

    def _search_parts(self, parts: Sequence[ClusterPart]) -> tuple[SearchResult, list[Unavailable]]:
        if not parts:
            return SearchResult(items=[], total=0), []
        if len(parts) == 1:
            return parts[0].store.search(parts[0].query), []
        # Each cluster's first from+size lines, merged by time, then the page cut from them.
        first = parts[0].query
        window = first.offset + first.size
        got = self._fanout.run(parts, lambda p: p.store.search(replace(p.query, offset=0, size=window)))
        result = merge_search(got.answers, offset=first.offset, size=first.size, desc=first.sort == "desc")
        return result, got.unavailable

    @staticmethod
    def _left_out(unavailable: Sequence[Unavailable]) -> dict[str, Any]:
        """The audit detail of a partial answer: which clusters were left out."""
        return {"unavailable": [u.cluster for u in unavailable]} if unavailable else {}

    @staticmethod
    def _scope_detail(
        params: LogParams, query: LogQuery, shown: Sequence[LogLine] | None = None, *, every: bool = False
    ) -> dict[str, Any]:
        """The audit detail's reach: the namespaces the caller named (checked, so all in the
        scope), or for a read over the whole scope its size (``scope_namespaces``) and the
        namespaces whose lines the answer holds (``shown``; an export lists the whole scope,
        ``every``, as it may stream any of it). Not the whole scope on every search: at 1,200
        namespaces that list made each search's audit row ~26 KB, and the hub's own cost per
        search (bench/logs.py, median of hub - raw) was 3.0-5.3 ms with it against 1.5-1.6 ms
        with the count, under load average 5-12. What the scope held at the time follows from
        the membership and project entries of the same audit log."""
        if query.visibility is None:
            return {"all_namespaces": True}
        if params.namespaces or every:
            return {"namespaces": list(query.visibility)}  # the audit log sorts them
        detail: dict[str, Any] = {"scope_namespaces": len(query.visibility)}
        if shown is not None:
            detail["namespaces"] = sorted({line.namespace for line in shown})
        return detail

    # -- reads ------------------------------------------------------------------------------------
    def search(self, scope: Scope, args: LogParams | Mapping[str, Any]) -> dict[str, Any]:
        """``GET /api/v1/logs``: ``{"items": [...], "total": N, "total_relation": "eq"|"gte"}``."""
        params, parts = self._scoped(scope, args, "logs.search")
        try:
            result, unavailable = self._search_parts(parts)
        except HubError as exc:
            self._audit(scope, "logs.search", "failed", params, reason=exc.message, **self._part_detail(params, parts))
            raise
        detail = {**self._part_detail(params, parts, result.items), **self._left_out(unavailable)}
        self._audit(scope, "logs.search", "ok", params, total=result.total, **detail)
        return {
            "items": [self._item(line, self.implicit_cluster) for line in result.items],
            "total": result.total,
            "total_relation": "eq" if result.total_exact else "gte",
            "from": params.offset,
            "size": params.size,
            "partial": bool(unavailable),
            "unavailable": [u.to_dict() for u in unavailable],
        }

    def histogram(self, scope: Scope, args: LogParams | Mapping[str, Any]) -> dict[str, Any]:
        """``GET /api/v1/logs/histogram``: ``{"interval": "1m", "buckets": [{"time", "count"}], "total"}``."""
        params, parts = self._scoped(scope, args, "logs.histogram")
        interval = params.interval or auto_interval(params.start, params.end)
        unavailable: list[Unavailable] = []
        try:
            if len(parts) == 1:
                buckets = parts[0].store.histogram(parts[0].query, interval=interval)
            else:
                query = parts[0].query if parts else params.to_query({})
                bounds = bucket_bounds(query, interval)  # a 400 before any store is asked
                got = self._fanout.run(parts, lambda p: p.store.histogram(p.query, interval=interval))
                unavailable = got.unavailable
                counts: dict[int, int] = defaultdict(int)
                for _part, answer in got.answers:
                    for b in answer:
                        counts[round(b.time / interval)] += b.count
                buckets = fill_buckets(counts, interval, bounds)
        except InvalidInput:
            raise
        except HubError as exc:
            self._audit(
                scope, "logs.histogram", "failed", params, reason=exc.message, **self._part_detail(params, parts)
            )
            raise
        total = sum(b.count for b in buckets)
        detail = {**self._part_detail(params, parts), **self._left_out(unavailable)}
        self._audit(scope, "logs.histogram", "ok", params, total=total, **detail)
        return {
            "interval": format_duration(interval),
            "buckets": [{"time": iso(b.time), "count": b.count} for b in buckets],
            "total": total,
            "partial": bool(unavailable),
            "unavailable": [u.to_dict() for u in unavailable],
        }

    def export(
        self, scope: Scope, args: LogParams | Mapping[str, Any], *, fmt: str = "csv", limit: int | None = None
    ) -> export_mod.Export:
        """``GET /api/v1/logs/export``: a streamed CSV or JSON-lines file, capped at ``logs.export_cap``.

        The first page is read before this returns, so an outage is a 503, not a broken file.
        Over several stores, any store that is down is a 503: a file has no place to say that a
        cluster's lines are missing.
        """
        if fmt not in export_mod.FORMATS:
            raise InvalidInput(f"format must be 'csv' or 'jsonl', got {fmt!r}", field="format")
        cap = self.settings.logs.export_cap
        limit = cap if limit is None else limit
        if not 1 <= limit <= cap:
            raise InvalidInput(f"limit must be between 1 and {cap}, got {limit}", field="limit")
        params, parts = self._scoped(scope, args, "logs.export")
        streams = [p.store.export(p.query, limit=limit + 1) for p in parts]
        merged: Iterator[LogLine] = (
            streams[0]
            if len(streams) == 1
            else heapq.merge(*streams, key=lambda line: line.time, reverse=params.sort == "desc")
        )
        lines = (self._named(line) for line in islice(merged, limit + 1))
        try:
            first = next(lines, None)
        except HubError as exc:
            detail = self._part_detail(params, parts, every=True)
            self._audit(scope, "logs.export", "failed", params, reason=exc.message, **detail)
            raise
        detail = self._part_detail(params, parts, every=True)
        self._audit(scope, "logs.export", "ok", params, format=fmt, limit=limit, **detail)
        stream: Iterator[LogLine] = chain([first], lines) if first is not None else iter(())
        stamp = datetime.fromtimestamp(self.clock.now(), tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        return export_mod.Export(
            filename=f"kubehub-logs-{stamp}.{fmt}",
            content_type=export_mod.FORMATS[fmt],
            chunks=export_mod.render(stream, fmt=fmt, limit=limit),
        )

    # -- writes and lifecycle ---------------------------------------------------------------------
    def retention_cutoff(self) -> str:
        """The first UTC day kept: today and the ``retention_days - 1`` days before it."""
        keep = max(1, self.settings.logs.retention_days)
        return time.strftime("%Y-%m-%d", time.gmtime(self.clock.now() - (keep - 1) * 86_400))

    def write(self, records: Sequence[LogRecord]) -> int:
        """The hub's write path (the shipper's sink): drops lines already past retention, labels
        lines that name no cluster with the implicit one (the hub's own shipper follows it),
        then writes each line to its cluster's store; returns the number of new lines.

        A store that is down fails the whole batch after the other stores took their lines: the
        shipper keeps the batch spooled and sends it again, and the stores that took it skip the
        lines they hold (each line's uid)."""
        cutoff = self.retention_cutoff()
        horizon = calendar.timegm(time.strptime(cutoff, "%Y-%m-%d"))
        projects = {ns: calendar.timegm(time.strptime(c, "%Y-%m-%d")) for ns, c in self.project_cutoffs().items()}
        implicit = self.implicit_cluster
        kept = [
            r if r.cluster else replace(r, cluster=implicit)
            for r in records
            if r.time >= horizon and r.time >= projects.get(r.namespace, horizon)
        ]
        written = self._write_routed(kept) if kept else 0
        if self.metrics is not None and written:
            self.metrics.log_lines_shipped.inc(written)
        return written

    def _write_routed(self, records: Sequence[LogRecord]) -> int:
        own = self.own_stores()
        if not own:
            return self.store.write(records)
        by_store: dict[int, tuple[LogStore, list[LogRecord]]] = {}
        for r in records:
            store = own.get(r.cluster, self.store)
            by_store.setdefault(id(store), (store, []))[1].append(r)
        written, failure = 0, None
        for store, batch in by_store.values():
            try:
                written += store.write(batch)
            except BackendUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return written

    def project_cutoffs(self) -> dict[str, str]:
        """project key -> first UTC day its project keeps, for projects whose own retention is
        shorter than the platform's (a longer one cannot be set: 422 at the settings route)."""
        if self._project_retention is None:
            return {}
        platform = max(1, self.settings.logs.retention_days)
        now = self.clock.now()
        return {
            ns: time.strftime("%Y-%m-%d", time.gmtime(now - (max(1, days) - 1) * 86_400))
            for ns, days in self._project_retention().items()
            if days and days < platform
        }

    def apply_retention(self, *, actor: str = "system") -> list[str]:
        """The platform's retention (whole partitions), then each project's shorter one (its
        lines in the partitions before its own cutoff); both audited ``logs.retention``."""
        if self.backend == "elasticsearch" and not self.settings.elasticsearch.manage_retention:
            return []
        dropped = self.store.drop_before(self.retention_cutoff())
        if dropped:
            self.tenancy.audit(actor, "logs.retention", "logs", "ok", {"dropped": dropped})
        for name, store in sorted(self.own_stores().items()):
            try:
                gone = store.drop_before(self.retention_cutoff())
            except BackendUnavailable as exc:  # that cluster's store only; the next run tries again
                log.warning("log retention of cluster %s: %s", name, exc.message)
                continue
            if gone:
                self.tenancy.audit(actor, "logs.retention", f"cluster/{name}", "ok", {"dropped": gone})
            dropped = dropped + gone
        for key, cutoff in sorted(self.project_cutoffs().items()):
            # The project's own lines only: its cluster's store, its cluster's labels (the same
            # name in another cluster is another project, possibly another tenant's).
            cluster, ns = split_key(key)
            name = cluster or self.implicit_cluster
            try:
                lines = self.store_of(name).drop_namespace_before(ns, cutoff, clusters=self.labels(name))
            except BackendUnavailable as exc:
                log.warning("log retention of project %s: %s", key, exc.message)
                continue
            if lines:
                detail: dict[str, Any] = {"before": cutoff, "lines": lines}
                if cluster:
                    detail.update(cluster=cluster, namespace=ns)
                self.tenancy.audit(actor, "logs.retention", f"namespace/{key}", "ok", detail)
        return dropped

    def stores(self) -> dict[str, Any]:
        """Sizes for admins: every partition (day file or dated index) with lines and bytes."""
        parts = self.store.partitions()
        return {
            "backend": self.backend,
            "retention_days": self.settings.logs.retention_days,
            "keeps_from": self.retention_cutoff(),
            "manages_retention": self.backend != "elasticsearch" or self.settings.elasticsearch.manage_retention,
            "partitions": [p.to_dict() for p in parts],
            "total_lines": sum(p.lines for p in parts),
            "total_bytes": sum(p.bytes for p in parts),
            "shipper": self.shipper.status().to_dict() if self.shipper is not None else None,
            "cluster_stores": {name: self._own_sizes(store) for name, store in sorted(self.own_stores().items())},
        }

    @staticmethod
    def _own_sizes(store: LogStore) -> dict[str, Any]:
        """A cluster's own store for the sizes view: its partitions, or why it cannot say."""
        try:
            parts = store.partitions()
        except BackendUnavailable as exc:
            return {"error": exc.message}
        return {
            "partitions": [p.to_dict() for p in parts],
            "total_lines": sum(p.lines for p in parts),
            "total_bytes": sum(p.bytes for p in parts),
        }

    def probe(self) -> str:
        detail = self.store.probe()
        if self.shipper is not None:
            st = self.shipper.status()
            detail += f"; shipper: {st.followed} containers, {st.spooled_lines} lines spooled"
            if st.paused:
                detail += " (paused: spool full)"
        return detail

    def start(self) -> None:
        if self.shipper is not None:
            self.shipper.start()
        if self._retention_thread is None:
            self._stop.clear()
            self._retention_thread = threading.Thread(target=self._retention_loop, name="log-retention", daemon=True)
            self._retention_thread.start()

    def _retention_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.apply_retention()
            except HubError as exc:
                log.warning("log retention: %s", exc.message)
            except Exception:
                log.exception("log retention failed")
            self._stop.wait(RETENTION_EVERY)

    def pause(self) -> None:
        """Stop shipping and retention but keep the store open (another replica took the
        lease; searches still run here). ``start`` resumes."""
        self._stop.set()
        if self.shipper is not None:
            self.shipper.stop()
        if self._retention_thread is not None:
            self._retention_thread.join(timeout=10)
            self._retention_thread = None

    def stop(self) -> None:
        self._stop.set()
        if self.shipper is not None:
            self.shipper.close()
        if self._retention_thread is not None:
            self._retention_thread.join(timeout=10)
            self._retention_thread = None
        self._fanout.close()
        if self._cluster_stores is not None:  # the clusters' own stores
            self._cluster_stores.close()
        self.store.close()
