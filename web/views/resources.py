"""Console page to create or edit an object from YAML: preview (dry run + diff), then apply.

Over the same service as ``POST /api/v1/namespaces/{ns}/apply`` (hub/collectors/apply.py): the
preview is a dry run whose diff and ``base_version`` the page keeps in the form, so the apply
that follows is refused with both versions shown if someone changed the object in between.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, request, url_for

from hub.collectors.apply import Applier, ApplyConflict, ManifestInvalid
from hub.collectors.inventory import ListQuery
from hub.collectors.quotas import Quotas
from hub.collectors.resources import AroundWorkloads
from hub.errors import BackendUnavailable, HubError, InvalidInput, NotFound
from web.access import audit, permission, scope
from web.util import hub
from web.views.common import _, attempt, can, done, failed, page, require_cluster

bp = Blueprint("resources", __name__)

WORKLOAD_PAGES = ("deployment", "statefulset", "daemonset", "job", "cronjob")
ALL = ListQuery(limit=5000, offset=0, label_selector="", name="")


def _applier() -> Applier:
    return Applier(require_cluster().api)


@bp.get("/projects/<ns>/apply")
@permission("workloads:write", namespace_arg="ns")
def apply_form(ns: str) -> Any:
    """The YAML editor: empty to create, or the object's current YAML (``?kind=&name=``) to edit."""
    kind, name = request.args.get("kind", ""), request.args.get("name", "")
    text = ""
    if kind and name:
        text = attempt(lambda: _applier().editable(scope(), ns, kind, name), "")
    return page("apply.html", ns=ns, text=text, result=None, problems=[], conflict=None, base="")


@bp.post("/projects/<ns>/apply")
@permission("workloads:write", namespace_arg="ns")
def apply_submit(ns: str) -> Any:
    """``step=preview``: dry run, show the diff. ``step=apply``: apply against the previewed versions."""
    text = request.form.get("yaml", "")
    step = request.form.get("step", "preview")
    try:
        base = json.loads(request.form.get("base") or "{}")
    except ValueError:
        base = {}
    if not isinstance(base, dict):
        base = {}
    problems: list[dict[str, str]] = []
    conflict: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    try:
        result = _applier().apply(
            scope(), ns, text, dry_run=step != "apply", base_versions=base, audit=hub().tenancy.audit
        )
    except ManifestInvalid as exc:
        problems = exc.problems
    except ApplyConflict as exc:
        conflict = {"message": exc.message, "current": exc.current, "submitted": exc.submitted}
    except (InvalidInput, HubError) as exc:
        if exc.status in (401, 404):
            raise
        problems = [{"field": exc.field or "yaml", "message": exc.message}]
    if result is not None and step == "apply":
        objects = result["objects"]
        first = objects[0]
        kind = first["kind"].lower()
        target = (
            url_for("views.cluster.workload", ns=ns, kind=kind, name=first["name"])
            if len(objects) == 1 and kind in WORKLOAD_PAGES
            else url_for("views.cluster.workloads", ns=ns)
        )
        names = ", ".join(f"{o['kind']}/{o['name']}" for o in objects)
        return done(_("apply.applied", names=names), target)
    versions = {
        f"{o['kind']}/{o['name']}": o["base_version"] for o in (result or {}).get("objects", []) if o["base_version"]
    }
    status = 409 if conflict else (422 if problems else 200)
    html, _status = page(
        "apply.html",
        ns=ns,
        text=text,
        result=result,
        problems=problems,
        conflict=conflict,
        base=json.dumps(versions),
    )
    return html, status


# -- project quotas ------------------------------------------------------------------------------------
@bp.app_context_processor
def _quota_helper() -> dict[str, Any]:
    """``project_quota(ns)`` for the project page: usage against quota, or None without a cluster
    or for a caller who may not read the project's workloads."""

    def project_quota(ns: str) -> dict[str, Any] | None:
        if not can("workloads:read", namespace=ns) or hub().cluster is None:
            return None
        # Read live from the API server while the template renders (after the page's banners):
        # an outage is said inside the panel and leaves the page's status alone; the rest of the
        # project page comes from the hub's own store and watch cache and still answers.
        try:
            usage: dict[str, Any] = Quotas(require_cluster().api).usage(ns)
        except BackendUnavailable as exc:
            return {"quotas": [], "unavailable": exc.message}
        return usage

    return {"project_quota": project_quota}


@bp.post("/workspaces/<ws>/projects/<ns>/quota")
@permission("quotas:write", namespace_arg="ns", workspace_arg="ws")
def set_quota(ws: str, ns: str) -> Any:
    """The quota form of the project page (workspace admins)."""
    target = url_for("views.tenancy.project", ns=ns)
    form = request.form
    body: dict[str, Any] = {k: form.get(k, "").strip() for k in ("cpu", "memory", "pods", "storage")}
    request_defaults = {"cpu": form.get("default_cpu", "").strip(), "memory": form.get("default_memory", "").strip()}
    body["default_request"] = {k: v for k, v in request_defaults.items() if v}
    try:
        project = hub().tenancy.project(ns)
        if project is None or project.workspace != ws:
            raise NotFound(f"no project {ns} in workspace {ws}")
        Quotas(require_cluster().api).set(ns, body)
    except HubError as exc:
        return failed(exc, target)
    audit("project.quota", f"namespace/{ns}", detail={k: v for k, v in body.items() if v})
    return done(_("quota.saved", ns=ns), target)


# -- cronjobs, jobs and autoscalers on the workload page ----------------------------------------------
def _around() -> AroundWorkloads:
    service = require_cluster()
    return AroundWorkloads(service.api, pods_of=lambda ns: service.pods([ns]), owner_of=service.pod_workload)


@bp.app_context_processor
def _autoscaler_helper() -> dict[str, Any]:
    """``workload_autoscaler(ns, kind, name)`` for the workload page: the HPA that scales it
    (current vs target), or None."""

    def workload_autoscaler(ns: str, kind: str, name: str) -> dict[str, Any] | None:
        if kind not in ("deployment", "statefulset") or not can("workloads:read", namespace=ns):
            return None
        items: list[dict[str, Any]] = attempt(lambda: _around().autoscalers(ns), [])
        return next(
            (a for a in items if (a["target"]["kind"] or "").lower() == kind and a["target"]["name"] == name), None
        )

    return {"workload_autoscaler": workload_autoscaler}


@bp.post("/projects/<ns>/workloads/<kind>/<name>/<any(run, suspend, resume):op>")
@permission("workloads:write", namespace_arg="ns")
def workload_job_action(ns: str, kind: str, name: str, op: str) -> Any:
    """Run a cronjob now, or suspend/resume a cronjob or job."""
    target = url_for("views.cluster.workload", ns=ns, kind=kind, name=name)
    try:
        if op == "run":
            if kind != "cronjob":
                raise InvalidInput(_("jobs.only_cronjobs"), field="kind")
            out = _around().run_cronjob(ns, name)
            audit("cluster.run", f"{ns}/{kind}/{name}", detail={"job": out["job"]})
            return done(_("jobs.started", job=out["job"]), target)
        _around().suspend(ns, kind, name, op == "suspend")
        audit(f"cluster.{op}", f"{ns}/{kind}/{name}")
    except HubError as exc:
        return failed(exc, target)
    return done(_("jobs." + ("suspended" if op == "suspend" else "resumed"), name=name), target)


@bp.post("/projects/<ns>/workloads/<kind>/<name>/autoscaler")
@permission("workloads:write", namespace_arg="ns")
def workload_autoscaler_set(ns: str, kind: str, name: str) -> Any:
    """The autoscaler form: min, max and CPU utilisation target, applied at once."""
    target = url_for("views.cluster.workload", ns=ns, kind=kind, name=name)
    form = request.form
    try:
        body: dict[str, Any] = {"dry_run": False}
        for field in ("min_replicas", "max_replicas", "cpu_utilization"):
            raw = (form.get(field) or "").strip()
            if not raw.isdigit() or len(raw) > 6:
                raise InvalidInput(_("workload.whole_number", field=field), field=field)
            body[field] = int(raw)
        _around().set_autoscaler(scope(), ns, kind, name, body, audit=hub().tenancy.audit)
    except HubError as exc:
        return failed(exc, target)
    return done(_("autoscaler.saved", name=name), target)


# -- services and ingresses --------------------------------------------------------------------------
@bp.get("/projects/<ns>/services")
@permission("workloads:read", namespace_arg="ns")
def services(ns: str) -> Any:
    """A project's Services and Ingresses, and its ConfigMaps and Secrets by name (to edit)."""
    none: list[dict[str, Any]] = []
    listed: dict[str, Any] = attempt(lambda: require_cluster().list_services(ns, ALL).to_dict(), {"items": none})
    ingresses: list[dict[str, Any]] = attempt(lambda: _around().ingresses(ns), none)
    config: dict[str, Any] = {
        "configmap": attempt(lambda: require_cluster().list_configmaps(ns, ALL).to_dict()["items"], none),
        "secret": attempt(lambda: require_cluster().list_secrets(ns, ALL).to_dict()["items"], none),
    }
    return page(
        "services.html",
        ns=ns,
        services=listed["items"],
        ingresses=ingresses,
        config=config,
        service=None,
        ingress=None,
    )


@bp.get("/projects/<ns>/services/<name>")
@permission("workloads:read", namespace_arg="ns")
def service(ns: str, name: str) -> Any:
    """One Service and the pods behind it."""
    detail = attempt(lambda: _around().service(ns, name), None)
    return page("services.html", ns=ns, services=[], ingresses=[], service=detail, ingress=None)


@bp.get("/projects/<ns>/ingresses/<name>")
@permission("workloads:read", namespace_arg="ns")
def ingress(ns: str, name: str) -> Any:
    """One Ingress, its rules, and the pods behind each backend Service."""
    detail = attempt(lambda: _around().ingress(ns, name), None)
    return page("services.html", ns=ns, services=[], ingresses=[], service=None, ingress=detail)
