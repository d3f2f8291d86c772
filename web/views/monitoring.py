"""Console pages for metrics: charts with level/metric/entity/time pickers, and rankings.

Charts are drawn in the browser from ``GET /api/v1/monitoring/<level>`` (the page only lays
out the pickers from the catalogue). Rankings are rendered here, from the same monitoring
service with the caller's scope, which the service enforces (``MonitoringService.scoped``), so
the tenant scope enters PromQL in exactly one place.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from hub.collectors.catalogue import ENTITY_LABELS, TENANT_LEVELS
from hub.errors import StillComputing
from web.access import permission, scope
from web.params import integer, monitoring_request
from web.util import hub
from web.views import common
from web.views.common import attempt, page

bp = Blueprint("monitoring", __name__)

RANGES = (("1h", 3600), ("6h", 6 * 3600), ("24h", 24 * 3600), ("7d", 7 * 86400))
RANKING_LEVELS = ("nodes", "workspaces", "namespaces", "workloads", "pods", "volumes")
# The columns of a ranking table: the level's everyday metrics, in this order.
RANKING_COLUMNS = {
    "nodes": (
        "node_cpu_utilisation",
        "node_memory_utilisation",
        "node_disk_size_utilisation",
        "node_load1",
        "node_pod_count",
        "node_net_bytes_received",
        "node_net_bytes_transmitted",
    ),
    "workspaces": (
        "workspace_cpu_usage",
        "workspace_memory_usage",
        "workspace_pod_count",
        "workspace_net_bytes_received",
        "workspace_net_bytes_transmitted",
    ),
    "namespaces": (
        "namespace_cpu_usage",
        "namespace_memory_usage",
        "namespace_cpu_usage_of_requests",
        "namespace_pod_count",
        "namespace_net_bytes_received",
        "namespace_net_bytes_transmitted",
    ),
    "workloads": (
        "workload_cpu_usage",
        "workload_memory_usage",
        "workload_cpu_usage_of_requests",
        "workload_pod_count",
        "workload_replicas_unavailable",
    ),
    "pods": ("pod_cpu_usage", "pod_memory_usage", "pod_cpu_usage_of_limits", "pod_container_restarts"),
    "volumes": (
        "volume_utilisation",
        "volume_used_bytes",
        "volume_capacity_bytes",
        "volume_inodes_utilisation",
        "volume_available_in_6h_bytes",
    ),
}
WINDOWS = ("", "1h", "24h", "7d")
# A window statistic is a subquery over the whole window per metric (about 100 ms each at
# default scale, several times that under load), so window rankings compute the first two
# columns, plus the sort column when it is another one, to stay well inside a second.
WINDOW_COLUMNS = 2
# Seconds a window ranking's page waits for a table still being built (at 20,000 pods the first
# one takes minutes, docs/scale.md); then it says the ranking is being computed and reloads
# itself every RELOAD_SECONDS, instead of holding the browser for the request's whole timeout
# and then showing Prometheus as down.
WINDOW_PAGE_WAIT = 2.0
RELOAD_SECONDS = 10
STATS = ("avg", "max", "min", "p50", "p90", "p95", "p99")


def _levels_for_user() -> list[str]:
    from hub.collectors.catalogue import LEVELS

    admin = scope().may_cluster("monitoring:cluster")  # cluster levels: the scope says
    return [lv for lv in LEVELS if admin or lv in TENANT_LEVELS]


@bp.get("/monitoring")
@permission(None)
def charts() -> Any:
    """Pick a level, metrics, entities and a time range; the browser draws the charts."""
    levels = _levels_for_user()
    level = request.args.get("level") or ("cluster" if "cluster" in levels else "namespaces")
    if level not in levels:
        level = levels[0]
    catalogue: dict[str, Any] = {}
    svc = hub().monitoring
    if svc is not None:
        for entry in svc.catalogue.to_dict()["levels"]:
            if entry["level"] in levels:
                catalogue[entry["level"]] = entry
    metrics = request.args.getlist("metric") or [m for m in request.args.get("metrics", "").split(",") if m]
    if not metrics and level in catalogue:
        metrics = [m["name"] for m in catalogue[level]["metrics"][:2]]
    return page(
        "monitoring.html",
        levels=levels,
        level=level,
        catalogue=catalogue,
        metrics=metrics,
        namespaces=common.visible_namespaces("monitoring:read"),
        ranges=RANGES,
        range=request.args.get("range") or "1h",
        # Custom ranges are wall-clock times in the viewer's zone (datetime-local); the browser
        # turns them into epoch seconds when it asks for the chart data.
        custom_from=request.args.get("from", ""),
        custom_to=request.args.get("to", ""),
        filters={k: request.args.get(k, "") for k in ("nodes", "namespaces", "workloads", "pods", "workspace")},
    )


@bp.get("/rankings")
@permission(None)
def rankings() -> Any:
    """A sortable ranking table, instant or as a statistic over a window (p95 over 24 h...)."""
    admin = scope().may_cluster("monitoring:cluster")  # cluster levels: the scope says
    levels = [lv for lv in RANKING_LEVELS if admin or lv in TENANT_LEVELS]
    args = request.args
    requested_level = args.get("level") or ""
    level: str = requested_level if requested_level in levels else levels[0]
    all_columns = RANKING_COLUMNS[level]
    requested_sort = args.get("sort") or ""
    sort: str = requested_sort if requested_sort in all_columns else all_columns[0]
    order = "asc" if args.get("order") == "asc" else "desc"
    window = args.get("window") if args.get("window") in WINDOWS else ""
    columns = all_columns
    if window:
        columns = tuple(c for i, c in enumerate(all_columns) if i < WINDOW_COLUMNS or c == sort)
    stat = args.get("stat") if args.get("stat") in STATS else "p95"
    page_no = integer(args, "page", 1, lo=1, hi=1_000_000, lenient=True)
    limit = 10
    query = {
        "metrics": ",".join(columns),
        "sort_metric": sort,
        "sort_type": order,
        "page": str(page_no),
        "limit": str(limit),
    }
    if window:
        query |= {"window": window, "stat": stat or "p95"}
    if args.get("namespaces") and level in TENANT_LEVELS and level != "workspaces":
        query["namespaces"] = args["namespaces"]

    def ranked() -> tuple[dict[str, Any] | None, bool]:  # (the answer, still being computed)
        try:
            return _query(level, query, table_wait=WINDOW_PAGE_WAIT if window else None), False
        except StillComputing:
            return None, True

    nothing: tuple[dict[str, Any] | None, bool] = (None, False)
    body, computing = attempt(ranked, nothing)
    rows, units = _rows(level, body, sort)
    return page(
        "rankings.html",
        levels=levels,
        level=level,
        columns=columns,
        more_columns=[c for c in all_columns if c not in columns],
        units=units,
        sort=sort,
        order=order,
        window=window,
        stat=stat,
        windows=WINDOWS,
        stats=STATS,
        rows=rows,
        total=(body or {}).get("total", 0),
        page_no=page_no,
        limit=limit,
        partial=(body or {}).get("partial", False),
        keys=ENTITY_LABELS[level],
        namespaces=common.visible_namespaces("monitoring:read"),
        ns_filter=args.get("namespaces", ""),
        computing=computing,
        reload_seconds=RELOAD_SECONDS,
    )


def _query(level: str, args: dict[str, str], *, table_wait: float | None = None) -> dict[str, Any]:
    """The same path as ``GET /api/v1/monitoring/<level>``: parse, then the service answers
    within the caller's scope (waiting at most ``table_wait`` for a table still being built)."""
    svc = hub().monitoring
    result: dict[str, Any] = svc.query(monitoring_request(svc, level, args), scope(), table_wait=table_wait)
    return result


def _rows(level: str, body: dict[str, Any] | None, sort: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Turn per-metric series into one row per entity, in the ranking's order."""
    if not body:
        return [], {}
    keys = ENTITY_LABELS[level]
    order: list[tuple[str, ...]] = []
    values: dict[tuple[str, ...], dict[str, Any]] = {}
    units: dict[str, str] = {}
    # The sort metric's series come in ranking order (entities without a value last); the
    # other metrics only fill in the page's entities.
    results = sorted(body.get("results", []), key=lambda r: r["metric"] != sort)
    for result in results:
        units[result["metric"]] = result.get("unit", "")
        for series in result.get("series", []):
            key = tuple(series["labels"].get(k, "") for k in keys)
            if key not in values:
                values[key] = {}
                order.append(key)
            points = series.get("values") or []
            values[key][result["metric"]] = points[-1][1] if points else None
        for labels in result.get("missing", []):
            key = tuple(labels.get(k, "") for k in keys)
            if key not in values:
                values[key] = {}
                order.append(key)
    rows = [{"entity": dict(zip(keys, key, strict=True)), "values": values[key]} for key in order]
    return rows, units
