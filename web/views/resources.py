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
from hub.errors import HubError, InvalidInput
from web.access import permission, scope
from web.util import hub
from web.views.common import _, attempt, done, page, require_cluster

bp = Blueprint("resources", __name__)

WORKLOAD_PAGES = ("deployment", "statefulset", "daemonset", "job", "cronjob")


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
