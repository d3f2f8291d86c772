"""OpenAPI 3 document generated from the app's own route table.

Generating it (rather than writing it by hand) is what keeps it in step with the routes: every
``/api/v1`` and operations route appears, with its methods, path parameters, the permission it
declares and the first paragraph of its docstring.

Statuses: the success status is read from the view's own source (``return ..., 201``,
``return "", 204``), so a new view declares what it answers without extra bookkeeping; the
error statuses follow from what the request machinery can answer for the operation (400 for
any bad parameter, 401/403 unless public (public API logins: 401), 404 with a path parameter, 409/413 for bodies,
422/429/503 everywhere under /api/v1), each with the Error schema. 204 answers have no body.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

from flask import Flask

import hub
from hub.clusters.model import NAME_RE as CLUSTER_NAME_RE
from web.params import CLUSTER_LIST_ENDPOINTS, MAX_CLUSTERS


def _cluster_param() -> dict[str, Any]:
    """?cluster= of a route that acts on one cluster: a name by the registry's rule (web.params.clusters)."""
    return {
        "name": "cluster",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": CLUSTER_NAME_RE.pattern, "maxLength": 40},
        "description": "the cluster (default: the implicit cluster); an unknown one is 404 naming cluster",
    }


_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_DESCRIPTIONS = {
    "200": "success",
    "201": "created",
    "202": "accepted",
    "204": "done; no body",
    "400": "malformed input; `field` names it",
    "401": "not signed in, or the token is invalid",
    "403": "signed in but not allowed (or the CSRF token is missing)",
    "404": "no such object (or one the caller may not see)",
    "409": "conflicts with the current state",
    "413": "the request body is larger than the documented limit",
    "422": "well formed but not acceptable; `field` (and `problems`) say why",
    "429": "rate limited; Retry-After says when to try again",
    "503": "a backend the request needs is unavailable; `backend` names it",
}
# Routes that take a collector token (``khc_…``) instead of a user's session or API token.
_COLLECTOR_ROUTES = frozenset({"api_logs.ingest_logs"})
# Other routes of one project that take ?cluster= (the project of that name in that cluster).
_PROJECT_CLUSTER_ROUTES = frozenset(
    {"api_logs.get_log_collection", "api_logs.put_log_collection", "api_logs_volume.ingest_volume_files"}
)
# Content types of successful answers that are not JSON.
_MEDIA = {"ops.metrics": ("text/plain",), "api_logs.export_logs": ("text/csv", "application/x-ndjson")}


# Success bodies described here (the rest are documented in docs/api.md): /readyz's, because
# probes and load balancers read it without the docs at hand (503 answers carry the same body).
_LEADER = {
    "type": "object",
    "description": "which replica answered, whether it leads, who holds the background work's lease since when",
    "properties": {
        "replica": {"type": "string"},
        "leading": {"type": "boolean"},
        "leader": {"type": "string", "nullable": True},
        "leader_since": {"type": "number", "nullable": True},
        "token": {"type": "integer", "nullable": True},
        "lease_expires_at": {"type": "number", "nullable": True},
        "reason": {"type": "string"},
    },
    "required": ["replica", "leading"],
}
_READY = {
    "type": "object",
    "required": ["ready", "backends", "leader"],
    "properties": {
        "ready": {"type": "boolean"},
        "backends": {"type": "array", "items": {"type": "object"}},
        "leader": _LEADER,
    },
}
_BODIES: dict[str, dict[str, Any]] = {"ops.readyz": _READY, "ops.serving": _READY}
# Probes outside /api/ that the document lists, and those among them answering 503 when not ready.
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/readyz/serving", "/metrics"})
_READINESS = frozenset({"ops.readyz", "ops.serving"})


def _success_statuses(view: Callable[..., Any]) -> list[str]:
    """Success statuses a view answers, read from the ``return`` statements of its source:
    ``return body, 201`` is a 201, any other return a 200 (errors are raised, not returned)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(view))))
    except (OSError, TypeError, SyntaxError):
        return ["200"]
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        value = node.value
        if isinstance(value, ast.Tuple) and len(value.elts) >= 2:
            status = value.elts[1]
            if isinstance(status, ast.Constant) and isinstance(status.value, int) and 200 <= status.value < 300:
                found.add(str(status.value))
                continue
        found.add("200")
    return sorted(found) or ["200"]


def _responses(endpoint: str, view: Callable[..., Any], method: str, *, public: bool, has_params: bool) -> dict:
    error = {"content": {"application/json": {"schema": _ERROR_REF}}}
    out: dict[str, Any] = {}
    for status in _success_statuses(view):
        if status == "204":
            out[status] = {"description": _DESCRIPTIONS[status]}
        else:
            media = _MEDIA.get(endpoint, ("application/json",))
            schema: dict[str, Any] = {"type": "string"} if media[0] != "application/json" else {}
            schema = _BODIES.get(endpoint, schema)
            content = {m: {"schema": schema} for m in media}
            out[status] = {"description": _DESCRIPTIONS.get(status, "success"), "content": content}
    errors = ["400"]
    api = endpoint not in ("ops.healthz", "ops.metrics") and endpoint not in _READINESS
    if not public:
        errors += ["401", "403"]
    elif api:  # public API operations: logins answer 401 for bad credentials
        errors += ["401"] + (["403"] if method != "GET" else [])  # 403: a session's write without CSRF
    if has_params:
        errors.append("404")
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        errors.append("409")
    if method in ("POST", "PUT", "PATCH"):
        errors.append("413")
    if api:
        errors += ["422", "429", "503"]
    elif endpoint in _READINESS:
        errors.append("503")
    for status in errors:
        out[status] = {"description": _DESCRIPTIONS[status], **error}
    out["default"] = {"description": "unexpected error (a reference to the hub's log)", **error}
    return out


def build_openapi(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not (rule.rule.startswith("/api/") or rule.rule in _OPS_PATHS):
            continue
        view = app.view_functions[rule.endpoint]
        access = getattr(view, "__kubehub_access__", None)
        path = _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        params = [
            {
                "name": m.group("name"),
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if m.group("conv") == "int" else "string"},
            }
            for m in _CONVERTER.finditer(rule.rule)
        ]
        if rule.endpoint in CLUSTER_LIST_ENDPOINTS:
            # The log search reads several clusters (web.params.clusters: names, at most MAX_CLUSTERS).
            params.append({"name": "cluster", "in": "query", "required": False,
                           "schema": {"type": "string", "maxLength": MAX_CLUSTERS * 41},
                           "description": f"a comma list of at most {MAX_CLUSTERS} cluster names "
                                          "(default: every cluster the caller may pick)"})  # fmt: skip
        elif (
            (rule.endpoint.startswith("api_cluster.") and not rule.rule.startswith("/api/v1/clusters"))
            or (rule.endpoint.startswith("api_tenancy.") and ("<ns>" in rule.rule or rule.rule.endswith("/projects")))
            or rule.endpoint in _PROJECT_CLUSTER_ROUTES
        ):
            # Several clusters: every cluster route addresses one cluster (docs/cluster.md "Several
            # clusters"); so do a project's tenancy routes (the project of that name in it).
            params.append(_cluster_param())
        elif rule.endpoint.startswith(("api_monitoring.", "api_alerting")) and "catalogue" not in rule.rule:
            # Monitoring and alerting take the cluster too (docs/multi-cluster.md); monitoring
            # also a table over several clusters.
            params.append(_cluster_param())
            if rule.endpoint.startswith("api_monitoring."):
                params.append({"name": "clusters", "in": "query", "required": False, "schema": {"type": "string"},
                               "description": "* or a comma list: one table over these clusters"})  # fmt: skip
        doc = (view.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": doc or rule.endpoint,
                "responses": _responses(
                    rule.endpoint,
                    view,
                    method,
                    public=access is not None and access.public,
                    has_params=bool(params),
                ),
            }
            if params:
                op["parameters"] = params
            if access is not None:
                op["x-kubehub-permission"] = "public" if access.public else (access.permission or "authenticated")
                if not access.public:
                    op["security"] = [{"bearer": []}, {"session": []}]
            if rule.endpoint in _COLLECTOR_ROUTES:  # its own credential, not a user's (docs/logs.md)
                op["x-kubehub-permission"] = "collector token"
                op["security"] = [{"collector": []}]
            if method in {"POST", "PUT", "PATCH"}:
                content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
                if "/alerting/policies" in path:  # policy documents may also be sent as YAML
                    content["application/yaml"] = {"schema": {"type": "string"}}
                op["requestBody"] = {"required": False, "content": content}
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "kubehub API", "version": hub.__version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "collector": {"type": "http", "scheme": "bearer", "description": "a node collector's token (khc_…)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "kubehub_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string"},
                        "backend": {"type": "string"},
                        "position": {"type": "integer"},
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "error": {"type": "string"},
                                    "line": {"type": "integer"},
                                },
                            },
                        },
                    },
                }
            },
        },
    }
