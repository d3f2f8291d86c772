"""OpenAPI 3 document generated from the app's own route table.

Generating it (rather than writing it by hand) is what keeps it in step with the routes: every
``/api/v1`` and operations route appears, with its methods, path parameters, the permission it
declares and the first paragraph of its docstring.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

import hub

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def build_openapi(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not (rule.rule.startswith("/api/") or rule.rule in {"/healthz", "/readyz", "/metrics"}):
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
        doc = (view.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": doc or rule.endpoint,
                "responses": {
                    "200": {"description": "success"},
                    "default": {
                        "description": "error",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
            if params:
                op["parameters"] = params
            if access is not None:
                op["x-kubehub-permission"] = "public" if access.public else (access.permission or "authenticated")
                if not access.public:
                    op["security"] = [{"bearer": []}, {"session": []}]
            if method in {"POST", "PUT", "PATCH"}:
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "kubehub API", "version": hub.__version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "kubehub_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                }
            },
        },
    }
