"""Input checks and small conversions of the tenancy service (user names, DNS labels, texts,
addresses, audit details), shared by its parts."""

from __future__ import annotations

import re
from typing import Any

from hub.errors import InvalidInput, Unprocessable
from hub.store.tenancy import ProjectRecord
from hub.tenancy.credentials import (
    DNS_LABEL_RE,
    USERNAME_RE,
)
from hub.tenancy.scope import Project

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\Z")  # \Z: "$" would let a trailing newline through
_SECRET_KEYS = re.compile(r"passw|passwd|token|secret|authorization|cookie|api.?key|^sid$", re.IGNORECASE)


# ========================================================================= helpers
def _as_project(record: ProjectRecord) -> Project:
    return Project(
        namespace=record.namespace, workspace=record.workspace, created=record.created, uid=record.namespace_uid
    )


def _valid_username(value: object, *, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required", field=field)
    name = value.strip().lower()
    if not USERNAME_RE.match(name):
        raise Unprocessable(
            f"{field}: user names are 1-64 characters of a-z, 0-9, '.', '_' and '-', starting and ending "
            "with a letter or digit",
            field=field,
        )
    return name


def _dns_label(value: object, field: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required", field=field)
    name = value.strip()
    if not DNS_LABEL_RE.match(name):
        raise Unprocessable(
            f"{field}: a {what} is 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
            field=field,
        )
    return name


def _text(value: object, field: str, *, limit: int = 200) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(value) > limit:
        raise Unprocessable(f"{field} must have at most {limit} characters", field=field)
    return value.strip()


def _email(value: object) -> str:
    text = _text(value, "email", limit=254)
    if text and not _EMAIL_RE.match(text):
        raise Unprocessable(f"email: {text!r} is not an email address", field="email")
    return text


def _scrub(detail: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if _SECRET_KEYS.search(str(key)):
            continue
        out[str(key)] = _scrub(value) if isinstance(value, dict) else value
    return out
