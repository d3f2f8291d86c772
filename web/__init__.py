"""The Flask console and JSON API over the hub's services.

``create_app(settings=None, hub=None)`` is the application factory (as in Flask's tutorial):
tests pass their own settings or a ready hub; ``kubehub serve`` passes the one it built.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from flask import Flask, g, request

from hub.runtime import Hub, build_hub
from hub.settings import Settings
from hub.store.meta import get_or_create_secret
from web import access, errors

# Blueprint modules, one per area; each exposes ``bp``.
BLUEPRINTS = [
    "web.api.ops",
    "web.api.auth",
    "web.api.tenancy",
    "web.api.cluster",
    "web.api.monitoring",
    "web.api.logs",
    "web.api.alerting",
    "web.views",
]


def create_app(settings: Settings | None = None, hub: Hub | None = None, *, testing: bool = False) -> Flask:
    hub = hub or build_hub(settings)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=hub.settings.http.secret_key or get_or_create_secret(hub.db),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=hub.settings.http.secure_cookies,
        SESSION_COOKIE_NAME="kubehub_session",
        PERMANENT_SESSION_LIFETIME=int(hub.settings.auth.session_hours * 3600),
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
        TESTING=testing,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["kubehub"] = hub
    errors.register(app)
    for name in BLUEPRINTS:
        module = importlib.import_module(name)
        app.register_blueprint(module.bp)

    @app.before_request
    def _start_and_enforce() -> None:
        g.started = time.perf_counter()
        access.enforce()

    @app.after_request
    def _record(response: Any) -> Any:
        started = g.get("started")
        endpoint = request.endpoint or "unmatched"
        if started is not None:
            hub.metrics.http_latency.labels(endpoint).observe(time.perf_counter() - started)
        hub.metrics.http_requests.labels(request.method, endpoint, str(response.status_code)).inc()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app


def hub_of(app: Flask) -> Hub:
    return app.extensions["kubehub"]
