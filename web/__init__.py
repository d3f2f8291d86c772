"""The Flask console and JSON API over the hub's services.

``create_app(settings=None, hub=None)`` is the application factory (as in Flask's tutorial):
tests pass their own settings or a ready hub; ``kubehub serve`` passes the one it built.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface

from hub.runtime import Hub, build_hub
from hub.settings import Settings
from hub.store.meta import get_or_create_secret
from web import access, errors, json_answers, params, ratelimit

# Blueprint modules, one per area; each exposes ``bp``.
BLUEPRINTS = [
    "web.api.ops",
    "web.api.auth",
    "web.api.sso",
    "web.api.tenancy",
    "web.api.identity",
    "web.api.roles",
    "web.api.cluster",
    "web.api.resources",
    "web.api.monitoring",
    "web.api.components",
    "web.api.logs",
    "web.api.logs_volume",
    "web.api.alerting",
    "web.api.alerting_inherited",
    "web.views",
]


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie marked Secure whenever the request came
    over HTTPS (or ``http.secure_cookies`` / an https ``http.public_url`` says so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request: Any) -> Any:
        # No session cookie (an API client with a bearer token): the empty session Flask would
        # give, without building its signing serializer first (~0.05 ms per API request).
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def create_app(settings: Settings | None = None, hub: Hub | None = None, *, testing: bool = False) -> Flask:
    hub = hub or build_hub(settings)
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=hub.settings.http.secret_key or get_or_create_secret(hub.db),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=hub.settings.http.secure_cookies or hub.settings.http.public_url.startswith("https:"),
        SESSION_COOKIE_NAME="kubehub_session",
        PERMANENT_SESSION_LIFETIME=int(hub.settings.auth.session_hours * 3600),
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=params.MAX_BODY_BYTES,
        TESTING=testing,
    )
    json_answers.install(app)
    app.session_interface = _SessionInterface()
    app.extensions["kubehub"] = hub
    errors.register(app)
    ratelimit.install(app, hub.settings.rate_limits, hub.clock, hub.db)
    for name in BLUEPRINTS:
        module = importlib.import_module(name)
        app.register_blueprint(module.bp)

    @app.before_request
    def _start_and_enforce() -> None:
        g.started = time.perf_counter()
        # The request's own shape first: a NUL in the path must not reach the permission
        # check's store lookups (PostgreSQL refuses NUL in text: a 500 instead of this 400).
        params.check_request()
        access.enforce()
        ratelimit.check()

    @app.after_request
    def _record(response: Any) -> Any:
        started = g.get("started")
        endpoint = request.endpoint or "unmatched"
        if started is not None:
            hub.metrics.http_latency.labels(endpoint).observe(time.perf_counter() - started)
        hub.metrics.http_requests.labels(request.method, endpoint, str(response.status_code)).inc()
        return security_headers(response)

    return app


# The console runs no inline script (templates hold only a JSON data block, read by
# static/console.js) and is never framed. Inline ``style=`` attributes (bar widths, timeline
# positions) are allowed through style-src-attr alone; <style> elements and style sheets
# must come from the hub.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def security_headers(response: Any) -> Any:
    """Headers every answer carries (README "Security headers"); a 204 loses any body and
    Content-Type, which Flask would otherwise send as an empty text/html page."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:  # only a response that came over HTTPS may pin HTTPS
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith("/api/"):
        headers.setdefault("Cache-Control", "no-store")
    if response.status_code == 204:
        response.set_data(b"")
        headers.pop("Content-Type", None)
        headers.pop("Content-Length", None)
    return response


def hub_of(app: Flask) -> Hub:
    return app.extensions["kubehub"]
