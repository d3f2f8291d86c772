"""The embedded log store's query planning: a part of
:class:`~hub.collectors.logs.embedded.EmbeddedLogStore` (a mixin). The caller's visibility
(namespace floors and UIDs, the tenants' predecessor rule) becomes a set of source ids; each day
file then gets the cheapest plan (a join on the sources, or full-text with source tags).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hub.collectors.logs.embedded_base import (
    MAX_TAGS,
    SLOT_BITS,
    TAG_SHARE,
    Source,
    _Day,
    _Plan,
    _Scope,
    fts_expr,
)
from hub.collectors.logs.store import (
    LogQuery,
)


class EmbeddedPlanning:
    """From a query and the caller's visibility to the sources and the SQL plan of each day file."""

    if TYPE_CHECKING:  # provided by EmbeddedLogStore (hub/collectors/logs/embedded.py)
        _by_ns: dict[str, list[int]]
        _ns_first: dict[str, float]
        _ns_ids: dict[str, int]
        _ns_uids: dict[str, frozenset[str]]
        _ns_clusters: dict[str, frozenset[str]]
        _sources: dict[int, Source]

    # -- scope ----------------------------------------------------------------------------------
    def _scope(self, q: LogQuery) -> _Scope:
        if q.visibility is None and q.clusters is None and not (q.workloads or q.pods or q.containers):
            return _Scope(unrestricted=True)
        clusters = frozenset(q.clusters) if q.clusters is not None else None
        workloads = set(q.workloads)
        pods = set(q.pods)
        containers = set(q.containers)
        if q.visibility is None:
            namespaces: Mapping[str, float] = {ns: 0.0 for ns in list(self._by_ns)}
        else:
            namespaces = q.visibility
        uids = q.namespace_uids if q.visibility is not None else {}
        full: set[int] = set()
        straddling: dict[int, float] = {}
        sources = self._sources
        filtered = bool(workloads or pods or containers)
        for ns, floor in namespaces.items():
            ids = self._by_ns.get(ns)
            if ids and clusters is not None and not self._ns_clusters.get(ns, frozenset()) <= clusters:
                # The same namespace name in another cluster is another tenant's: only the
                # asked clusters' sources, and never a whole-namespace tag (see _tags).
                ids = [i for i in ids if sources[i].cluster in clusters]
            if not ids:
                continue
            current = uids.get(ns, "")
            stamped = self._ns_uids.get(ns, frozenset())
            if not filtered and (
                (current and stamped == {current})
                or ((not current or stamped <= {"", current}) and floor <= self._ns_first.get(ns, float("inf")))
            ):
                full.update(ids)  # nothing of this namespace is a predecessor's
                continue
            for src_id in list(ids):
                src = sources[src_id]
                if workloads and src.workload not in workloads:
                    continue
                if pods and src.pod not in pods:
                    continue
                if containers and src.container not in containers:
                    continue
                if current and src.ns_uid:
                    if src.ns_uid == current:  # the current namespace's, whatever the time
                        full.add(src_id)
                    continue  # a predecessor's
                if src.first_t >= floor:
                    full.add(src_id)
                elif src.last_t >= floor:
                    straddling[src_id] = floor
        return _Scope(unrestricted=False, full=frozenset(full), straddling=straddling)

    def _plan(self, day: _Day, scope: _Scope, q: LogQuery) -> _Plan | None:
        """The cheapest exact way to ask one day, or None when nothing there is visible."""
        params: dict[str, Any] = {}
        lo, hi = _key_range(q)
        params["lo"], params["hi"] = lo, hi
        match = fts_expr(q.text) if q.text is not None else None
        stats = day.stats
        if scope.unrestricted:
            filter_sql = ""
            tags = None
        else:
            full = [s for s in scope.full if s in stats]
            straddling = {s: f for s, f in scope.straddling.items() if s in stats}
            visible = sum(stats[s] for s in full) + sum(stats[s] for s in straddling)
            if not visible:
                return None
            tags = None
            filter_sql = ""
            if not straddling and visible >= day.lines:
                pass  # every line of this day is visible: no filter at all
            elif not straddling and visible < TAG_SHARE * day.lines:
                tags = self._tags(full, stats)
            if tags is None and (straddling or visible < day.lines):
                clauses = ["l.src IN (SELECT value FROM json_each(:srcs))"]
                params["srcs"] = json.dumps(full)
                by_floor: dict[float, list[int]] = defaultdict(list)
                for s, f in straddling.items():
                    by_floor[f].append(s)
                for i, (floor, ids) in enumerate(sorted(by_floor.items())):
                    clauses.append(f"(l.src IN (SELECT value FROM json_each(:s{i})) AND l.id >= :k{i})")
                    params[f"s{i}"] = json.dumps(ids)
                    params[f"k{i}"] = round(floor * 1_000_000) << SLOT_BITS
                filter_sql = " AND (" + " OR ".join(clauses) + ")"
        if tags is not None:
            tag_expr = "tag : (" + " OR ".join(tags) + ")"
            params["m"] = f"body : ({match}) AND {tag_expr}" if match else tag_expr
            return _Plan("FROM logs_fts f WHERE logs_fts MATCH :m AND f.rowid BETWEEN :lo AND :hi", params, "f.rowid")
        if match is not None:
            params["m"] = f"body : ({match})"
            if filter_sql:
                return _Plan(
                    "FROM logs_fts f CROSS JOIN logs l ON l.id = f.rowid "
                    "WHERE logs_fts MATCH :m AND f.rowid BETWEEN :lo AND :hi" + filter_sql,
                    params,
                    "f.rowid",
                )
            return _Plan("FROM logs_fts f WHERE logs_fts MATCH :m AND f.rowid BETWEEN :lo AND :hi", params, "f.rowid")
        # NOT INDEXED: walking the key range stops early; the (src, id) index would make SQLite
        # collect and sort every line of the scope to return the newest fifty.
        return _Plan("FROM logs l NOT INDEXED WHERE l.id BETWEEN :lo AND :hi" + filter_sql, params, "l.id")

    def _tags(self, full: list[int], stats: Mapping[int, int]) -> list[str] | None:
        """Tag tokens covering exactly ``full`` on this day: whole namespaces where possible."""
        by_ns: dict[str, list[int]] = defaultdict(list)
        for s in full:
            by_ns[self._sources[s].namespace].append(s)
        tags: list[str] = []
        for ns, ids in by_ns.items():
            present = [s for s in self._by_ns.get(ns, ()) if s in stats]
            if len(ids) == len(present):
                tags.append(f"n{self._ns_ids[ns]}")
            else:
                tags.extend(f"s{s}" for s in ids)
            if len(tags) > MAX_TAGS:
                return None
        return tags


def _key_range(q: LogQuery) -> tuple[int, int]:
    lo = (round(q.start * 1_000_000) << SLOT_BITS) if q.start is not None else 0
    hi = ((round(q.end * 1_000_000) << SLOT_BITS) - 1) if q.end is not None else (1 << 63) - 1
    return lo, hi
