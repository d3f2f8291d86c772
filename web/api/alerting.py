"""alerting endpoints under /api/v1 (see docs/api.md)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_alerting", __name__, url_prefix="/api/v1")
