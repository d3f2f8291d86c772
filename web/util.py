"""Small request/response helpers shared by the API blueprints."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify

from hub.runtime import Hub

# The request readers live in web.params (bounded, one copy); re-exported for the blueprints.
from web.params import csv_param, int_param, json_body  # noqa: F401


def hub() -> Hub:
    """The hub of the current app: its services are typed attributes (``hub().logs``...)."""
    hub_: Hub = current_app.extensions["kubehub"]
    return hub_


def list_response(items: list[Any], total: int | None = None, **extra: Any) -> Any:
    return jsonify({"items": items, "total": len(items) if total is None else total, **extra})
