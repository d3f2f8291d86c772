"""JSON errors for the API: ``{"error": sentence, "field": path}``; never a traceback."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from hub.errors import HubError

log = logging.getLogger("kubehub.web")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


# The last guard against an error that echoes its input (issue 20: a 307-byte YAML alias bomb
# drew a 3.85 MB answer): every string of an error body is cut to this many characters, and a
# problem list to MAX_PROBLEMS entries. Messages are written to be far shorter.
MAX_ERROR_CHARS = 1000
MAX_PROBLEMS = 101


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_ERROR_CHARS else value[: MAX_ERROR_CHARS - 1] + "…"
    if isinstance(value, list):
        return [_bounded(v) for v in value[:MAX_PROBLEMS]]
    if isinstance(value, dict):
        return {k: _bounded(v) for k, v in value.items()}
    return value


def register(app: Flask) -> None:
    @app.errorhandler(HubError)
    def hub_error(exc: HubError):
        if _wants_json() or exc.status not in (401, 403, 404):
            return jsonify(_bounded(exc.to_dict())), exc.status
        from web.views import render_error

        return render_error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if not _wants_json():
            from web.views import render_error

            return render_error(exc.code or 500, exc.description or exc.name)
        body = {"error": exc.description or exc.name}
        return jsonify(body), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error (ref %s) on %s %s", ref, request.method, request.path)
        return jsonify({"error": f"internal error; the hub's log has the details under reference {ref}"}), 500
