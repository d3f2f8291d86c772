"""Kubernetes API failures -> the hub's error tree, with sentences a console user can act on.

Pure (no client import): the adapter hands in the HTTP status and the ``Status`` body the API
server sent, so the unit tests can cover every mapping with bodies written by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hub.errors import BackendUnavailable, Conflict, Forbidden, HubError, InvalidInput, NotFound, Unprocessable

API_SERVER = "kubernetes API server"


def _status_body(body: bytes | str | Mapping[str, Any] | None) -> dict[str, Any]:
    if body is None:
        return {}
    if isinstance(body, Mapping):
        return dict(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return {"message": text.strip()[:300]}
    return data if isinstance(data, dict) else {}


def _singular(resource: str) -> str:
    """``deployments`` -> ``deployment``, ``pods/log`` -> ``pod``: how a sentence names one object."""
    base = resource.split("/", 1)[0]
    return base[:-1] if base.endswith("s") else base


def _what(resource: str, namespace: str | None, name: str | None) -> str:
    if name:
        resource = _singular(resource)
        return f"{resource} {namespace}/{name}" if namespace else f"{resource} {name}"
    return f"{resource} in {namespace}" if namespace else resource


def _field_for(path: str, fields: Mapping[str, str]) -> str:
    """The request field behind a Kubernetes field path (``spec.replicas`` -> ``replicas``).

    The longest matching prefix wins; an unknown path is returned as the API server gave it,
    which still tells the user where the problem is.
    """
    best = ""
    for prefix in fields:
        if (path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")) and len(prefix) > len(
            best
        ):
            best = prefix
    return fields[best] if best else path


def error_from_status(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    verb: str,
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> HubError:
    """The HubError for a failed Kubernetes call.

    ``verb`` and ``resource`` are what the hub tried (``patch``, ``deployments``); they appear
    in 403 messages so an operator knows which RBAC rule the hub's account is missing.
    ``fields`` maps Kubernetes field paths to the request's own field names for 422s.
    """
    data = _status_body(body)
    message = str(data.get("message") or "").strip()
    reason = str(data.get("reason") or "")
    what = _what(resource, namespace, name)
    if status == 404:
        return NotFound(f"{what} was not found")
    if status == 409:
        if reason == "AlreadyExists":
            return Conflict(f"{what} already exists")
        return Conflict(
            f"{what} was changed by someone else while this request was in flight; "
            "reload it and retry (a retry is safe)"
        )
    if status == 403:
        where = f" in namespace {namespace}" if namespace else ""
        return Forbidden(
            f"the hub's Kubernetes account may not {verb} {resource}{where}; "
            "grant it that verb on that resource (RBAC)" + (f": {message}" if message else "")
        )
    if status == 422:
        causes = (data.get("details") or {}).get("causes") or []
        path = next((str(c.get("field")) for c in causes if c.get("field")), "")
        field = _field_for(path, fields or {}) if path else None
        detail = next((str(c.get("message")) for c in causes if c.get("message")), "") or message
        prefix = f"{path}: " if path and path not in detail else ""
        return Unprocessable(f"Kubernetes rejected the change to {what}: {prefix}{detail}", field=field)
    if status == 400:
        return InvalidInput(f"Kubernetes rejected the request for {what}: {message or 'bad request'}")
    if status == 410:
        return Conflict(f"{what}: the version asked for has expired; reload and retry")
    if status == 401:
        return BackendUnavailable(API_SERVER, "it rejected the hub's credentials (401); check the kubeconfig or token")
    if status == 429:
        return BackendUnavailable(API_SERVER, "it is throttling requests (429); retry in a moment")
    return BackendUnavailable(
        API_SERVER, f"{verb} {what} failed with HTTP {status}" + (f": {message}" if message else "")
    )


def connection_error(exc: BaseException, *, verb: str, resource: str) -> BackendUnavailable:
    """The 503 for a call that never got an HTTP answer (refused, reset, timed out, TLS)."""
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return BackendUnavailable(API_SERVER, f"{verb} {resource} got no answer ({type(exc).__name__}: {reason})")
