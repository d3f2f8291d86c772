"""Console pages for alerts: the active list, one alert with evidence and its chart, comments,
silences and history. Every read and write goes to the alerting service with the caller's scope.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from hub.errors import HubError
from web.access import current_principal, permission
from web.access import keyed_scope as scope  # alert rows are keyed by project (docs/tenancy.md)
from web.params import MAX_OFFSET, integer
from web.views import common
from web.views.alerting_common import ACTIVE_STATES, STATE_TABS, _none, _svc, bp
from web.views.common import _, attempt, back, can, done, failed, page


# -- alerts --------------------------------------------------------------------------------------
@bp.get("/alerting")
@permission(None)
def alerts() -> Any:
    """Alerts in the user's scope, by state (active by default)."""
    tab = request.args.get("state") or ""
    if tab not in STATE_TABS:
        tab = "active"
    states = list(ACTIVE_STATES) if tab == "active" else [tab]
    no_alerts: tuple[list[Any], int] = ([], 0)
    items, total = attempt(lambda: _svc().alerts(scope(), states=states, limit=200), no_alerts)
    return page("alerts.html", alerts=items, total=total, tab=tab, tabs=STATE_TABS)


@bp.get("/alerting/alerts/<aid>")
@permission(None)
def alert(aid: str) -> Any:
    """One alert's evidence: value against threshold, query, state changes, notices, comments,
    a chart of the metric around the breach, and the project's log lines of the same minutes."""
    detail = _svc().alert(aid, scope())
    chart = _chart_for(detail)
    return page(
        "alert.html",
        a=detail,
        chart=chart,
        silenced_by=attempt(lambda: _silences_of(detail), _none()),
        may_write=scope().may("alerts:write", detail.get("namespace")),
        logs_link=_logs_link(detail),
    )


def _silences_of(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The active silences that hold this alert's notices, matched by the pipeline's own rule."""
    from hub.alerts.notify.notice import Notice
    from hub.alerts.notify.silence import Silence

    notice = Notice(
        key="",
        kind="firing",
        at=0.0,
        alert_id=a["id"],
        policy_id=a["policy_id"],
        policy_name=a["policy"],
        level=a["level"],
        namespace=a.get("namespace"),
        tenant="",
        rule=a["rule"],
        severity=a["severity"],
        entity=a["entity"],
        labels=a.get("labels") or {},
        metric=a.get("metric") or "",
        aggregation="",
        comparator=a.get("comparator") or "",
        threshold=float(a.get("threshold") or 0.0),
        unit=a.get("unit") or "",
        value=a.get("value"),
        query="",
        period=0.0,
        consecutive=0,
        started_at=0.0,
    )
    out = []
    for s in _svc().silences(scope(), active_only=True):
        rule = Silence(id=s["id"], namespace=s.get("namespace"), matchers=s["matchers"], starts_at=0.0, ends_at=1e18)
        if rule.matches(notice):
            out.append(s)
    return out


def _chart_for(a: dict[str, Any]) -> dict[str, Any] | None:
    """The monitoring query that charts an alert's metric for its entity."""
    labels = a.get("labels") or {}
    metric = a.get("metric")
    if not metric:
        return None
    if a.get("level") == "node":
        node = labels.get("node") or a.get("entity")
        return {"level": "nodes", "metrics": metric, "filters": {"nodes": node}}
    ns = a.get("namespace") or labels.get("namespace")
    workload = labels.get("workload")
    filters: dict[str, str] = {"namespaces": ns or ""}
    if workload:
        filters["workloads"] = workload
    return {"level": "workloads", "metrics": metric, "filters": filters}


def _logs_link(a: dict[str, Any]) -> str | None:
    """Log search of the alert's workload over the minutes around the breach."""
    ns = a.get("namespace")
    if not ns:
        return None
    labels = a.get("labels") or {}
    args = {"namespaces": ns, "search": "1"}
    if labels.get("workload"):
        args["workloads"] = labels["workload"]
    started = a.get("fired_at") or a.get("started_at")
    if started:
        from hub.timeutil import parse_time

        at = parse_time(started, field="time")
        args |= {"start": str(int(at - 600)), "end": str(int(at + 600))}
    return common.url_with("views.logs.search", args)


@bp.post("/alerting/alerts/<aid>/comments")
@permission(None)
def comment(aid: str) -> Any:
    target = url_for(".alert", aid=aid)
    try:
        _svc().add_comment(aid, request.form.get("text", ""), scope=scope(), author=current_principal().username)
    except HubError as exc:
        if exc.status == 404:
            raise
        return failed(exc, target)
    return done(_("alert.commented"), target + "#comments")


@bp.post("/alerting/alerts/<aid>/silence")
@permission(None)
def silence_alert(aid: str) -> Any:
    """Silence this alert's rule on its entity for a while (matchers prefilled from the alert)."""
    target = url_for(".alert", aid=aid)
    detail = _svc().alert(aid, scope())
    matchers = {"policy": detail["policy"], "rule": detail["rule"], "entity": detail["entity"]}
    body = {
        "matchers": matchers,
        "duration": request.form.get("duration") or "2h",
        "comment": request.form.get("comment", ""),
    }
    if detail.get("namespace"):
        body["namespace"] = detail["namespace"]
    try:
        silence = _svc().create_silence(body, scope=scope(), actor=current_principal().username)
    except HubError as exc:
        return failed(exc, target)
    return done(_("silence.created", until=silence["ends_at"]), target)


@bp.get("/alerting/history")
@permission(None)
def history() -> Any:
    """State changes of the user's alerts, newest first."""
    offset = integer(request.args, "from", 0, lo=0, hi=MAX_OFFSET, lenient=True)
    no_events: tuple[list[Any], int] = ([], 0)
    items, total = attempt(
        lambda: _svc().history(
            scope(),
            since=request.args.get("since") or None,
            alert_id=request.args.get("alert") or None,
            limit=100,
            offset=offset,
        ),
        no_events,
    )
    return page("history.html", events=items, total=total, offset=offset, size=100)


@bp.get("/alerting/silences")
@permission(None)
def silences() -> Any:
    items = attempt(lambda: _svc().silences(scope()), _none())
    # The namespaces the scope grants alerts:write in (the service checks the one chosen).
    writable = common.visible_namespaces("alerts:write", projects_only=True)
    return page(
        "silences.html",
        silences=items,
        writable=writable,
        may_cluster=scope().all_namespaces,  # cluster-wide silences: platform admins
        may_delete=lambda s: scope().may("alerts:write", s.get("namespace")),
    )


@bp.post("/alerting/silences")
@permission(None)
def silence_create() -> Any:
    form = request.form
    target = url_for(".silences")
    matchers = {k: form.get(f"m_{k}", "").strip() for k in ("policy", "rule", "entity", "severity")}
    body: dict[str, Any] = {
        "matchers": {k: v for k, v in matchers.items() if v},
        "duration": form.get("duration") or "2h",
        "comment": form.get("comment", ""),
    }
    if form.get("namespace"):
        body["namespace"] = form["namespace"]
    try:
        silence = _svc().create_silence(body, scope=scope(), actor=current_principal().username)
    except HubError as exc:
        return failed(exc, target)
    return done(_("silence.created", until=silence["ends_at"]), target)


@bp.post("/alerting/silences/<sid>/delete")
@permission(None)
def silence_delete(sid: str) -> Any:
    target = back(url_for(".silences"))
    try:
        _svc().delete_silence(sid, scope=scope(), actor=current_principal().username)
    except HubError as exc:
        return failed(exc, target)
    return done(_("silence.deleted"), target)


# -- policies: list ---------------------------------------------------------------------------------
# Workload policies per page of /alerting/policies: 1,191 policies of 300 projects, read project
# by project and rendered whole, took 0.6 s of server time on the scale sandbox (docs/scale.md).
POLICIES_PAGE = 100


@bp.get("/alerting/policies")
@permission(None)
def policies() -> Any:
    """Node policies (admins, on the first page) and the workload policies of every project the
    user reads policies in, 100 a page by project and name (``?from=``), in one service call that
    applies the caller's scope; the projects without any are listed for a first one."""
    svc = attempt(_svc, None)
    offset = integer(request.args, "from", 0, lo=0, hi=MAX_OFFSET, lenient=True)
    node_policies = None
    listing: dict[str, Any] = {"items": [], "total": 0, "empty": []}
    if svc is not None:
        if can("node-policies:read") and offset == 0:
            node_policies = attempt(lambda: svc.list_policies(level="node"), _none())
        listing = attempt(lambda: svc.workload_policy_page(scope(), offset=offset, limit=POLICIES_PAGE), listing)
    caller = scope()
    groups: list[dict[str, Any]] = []
    for item in listing["items"]:  # by namespace: one section per project on this page
        if not groups or groups[-1]["namespace"] != item["namespace"]:
            ns = item["namespace"]
            groups.append({"namespace": ns, "policies": [], "may_write": caller.may("policies:write", ns)})
        groups[-1]["policies"].append(item)
    empty = [{"namespace": ns, "may_write": caller.may("policies:write", ns)} for ns in listing["empty"]]
    return page(
        "policies.html",
        node_policies=node_policies,
        groups=groups,
        empty=empty,
        offset=offset,
        size=POLICIES_PAGE,
        # "previous" from beyond the end (a hand-edited ?from=) is the last page, not an empty one
        previous=max(0, min(offset - POLICIES_PAGE, (max(listing["total"] - 1, 0) // POLICIES_PAGE) * POLICIES_PAGE)),
        shown=len(listing["items"]),
        total=listing["total"],
        may_node_write=can("node-policies:write"),
    )
