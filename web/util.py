"""Small request/response helpers shared by the API blueprints."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request

from hub.errors import InvalidInput


def hub() -> Any:
    """The hub of the current app."""
    return current_app.extensions["kubehub"]


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if not request.data:
        if required:
            raise InvalidInput("the request needs a JSON body")
        return {}
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidInput("the request body is not valid JSON (send Content-Type: application/json)")
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


def list_response(items: list[Any], total: int | None = None, **extra: Any) -> Any:
    return jsonify({"items": items, "total": len(items) if total is None else total, **extra})


def csv_param(name: str) -> list[str]:
    """A comma-list query parameter, trimmed, empties dropped."""
    raw = request.args.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def int_param(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a whole number, got {raw!r}", field=name) from exc
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and {maximum}" if maximum is not None else ""
        raise InvalidInput(f"{name} must be between {minimum}{bound}, got {value}", field=name)
    return value
