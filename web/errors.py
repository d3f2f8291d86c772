"""JSON errors for the API: ``{"error": sentence, "field": path}``; never a traceback."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from hub.errors import HubError

log = logging.getLogger("kubehub.web")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register(app: Flask) -> None:
    @app.errorhandler(HubError)
    def hub_error(exc: HubError):
        if _wants_json() or exc.status not in (401, 403, 404):
            return jsonify(exc.to_dict()), exc.status
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
