"""One monitoring table over several clusters (``GET /api/v1/monitoring/{level}?clusters=``).

A platform admin ranks the nodes of every cluster in one table: each cluster is asked the same
request as the view of its own scope (:meth:`MonitoringService.query` with
``Scope.for_cluster``, so its own Prometheus or its ``cluster`` label, its own permission check),
for the first ``page * limit`` entities, and the answers are merged here: every series and
missing entity gains a ``cluster`` label, the entities are ordered by the sort metric's value
(missing values last, ties by cluster then name) and paged. Each cluster's top ``page * limit``
contains every entity of the merged first ``page * limit``, so the merged page is exact.

A cluster whose Prometheus cannot answer does not fail the table: it is listed under
``unavailable`` with the reason and the answer is ``partial``; the other clusters' rows stand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hub.collectors.catalogue import ENTITY_LABELS
from hub.errors import BackendUnavailable
from hub.scope import Scope

if TYPE_CHECKING:
    from hub.collectors.monitoring import MonitoringRequest, MonitoringService

Entity = tuple[str, ...]  # (cluster, *the level's entity label values)


def query_across(
    service: MonitoringService, req: MonitoringRequest, scope: Scope, clusters: Sequence[str]
) -> dict[str, Any]:
    """``req`` answered over ``clusters`` as one table (see the module docstring)."""
    keys = ENTITY_LABELS[req.level]
    wanted = req.page * req.limit if req.limit is not None else None
    sub = replace(req, page=1, limit=wanted) if wanted is not None else req
    answers: dict[str, dict[str, Any]] = {}
    unavailable = []
    for name in clusters:
        try:
            answers[name] = service.query(sub, scope.for_cluster(name))
        except BackendUnavailable as exc:  # this cluster only: the others' rows stand
            unavailable.append({"cluster": name, "error": str(exc)})
    results: dict[str, dict[str, Any]] = {}
    series_of: dict[str, dict[Entity, dict[str, Any]]] = {m: {} for m in req.metrics}
    entities: dict[Entity, None] = {}
    for name, answer in answers.items():
        for result in answer["results"]:
            metric = result["metric"]
            results.setdefault(metric, {k: v for k, v in result.items() if k not in ("series", "missing")})
            for series in result["series"]:
                labels = {**series["labels"], "cluster": name}
                entity = (name, *(str(series["labels"].get(k, "")) for k in keys))
                series_of[metric].setdefault(entity, {**series, "labels": labels})
                entities[entity] = None
            for missing in result["missing"]:
                entities[(name, *(str(missing.get(k, "")) for k in keys))] = None
    ordered = _order(list(entities), series_of.get(req.sort_metric or "", {}), descending=req.descending)
    if not req.sort_metric:
        ordered = sorted(entities)
    total = sum(int(a.get("total", 0)) for a in answers.values())
    page = ordered
    if req.limit is not None:
        start = (req.page - 1) * req.limit
        page = ordered[start : start + req.limit]
    out_results = []
    partial = bool(unavailable) or any(a.get("partial") for a in answers.values())
    for metric in req.metrics:
        have = series_of[metric]
        shown = [have[e] for e in page if e in have]
        missing = [{"cluster": e[0], **dict(zip(keys, e[1:], strict=True))} for e in page if e not in have]
        partial = partial or bool(missing)
        base = results.get(metric) or {"metric": metric, "level": req.level}
        out_results.append({**base, "series": shown, "missing": missing})
    body: dict[str, Any] = {
        "results": out_results,
        "page": req.page,
        "total": total,
        "partial": partial,
        "clusters": list(clusters),
        "unavailable": unavailable,
    }
    for extra in ("limit", "window", "stat"):
        for answer in answers.values():
            if extra in answer:
                body[extra] = answer[extra]
    if req.limit is not None:
        body["limit"] = req.limit
    return body


def _order(entities: list[Entity], ranked: dict[Entity, dict[str, Any]], *, descending: bool) -> list[Entity]:
    """Entities by the sort metric's (last) value, missing or NaN values last, ties by name."""

    def value(entity: Entity) -> float | None:
        series = ranked.get(entity)
        points = series["values"] if series else []
        last = points[-1][1] if points else None
        return float(last) if last is not None and math.isfinite(float(last)) else None

    with_value = [(v, e) for e in entities if (v := value(e)) is not None]
    without = sorted(e for e in entities if value(e) is None)
    with_value.sort(key=lambda item: ((-item[0] if descending else item[0]), item[1]))
    return [e for _, e in with_value] + without
