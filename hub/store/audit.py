"""Audit log repository: append entries and read them back with filters.

The log is append-only through this interface (no update, no delete), so a tenant admin with
write access to policies cannot also tidy away the record of what they did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hub.store.db import StateStore


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    result: str
    namespaces: tuple[str, ...]
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditFilter:
    """Every field optional; ``action`` matches a prefix (``user.`` finds every user change)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    result: str | None = None
    namespace: str | None = None
    start: float | None = None
    end: float | None = None


class AuditStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

    def append(
        self,
        *,
        at: float,
        actor: str,
        action: str,
        target: str,
        result: str,
        namespaces: list[str],
        detail: dict[str, Any],
    ) -> int:
        packed = "," + ",".join(namespaces) + "," if namespaces else ""
        return self.db.execute(
            "INSERT INTO audit_log(at, actor, action, target, result, namespaces, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, action, target, result, packed, json.dumps(detail, ensure_ascii=False, default=str)),
        )

    def search(self, flt: AuditFilter, *, offset: int = 0, limit: int = 100) -> tuple[list[AuditEntry], int]:
        """Entries matching ``flt``, newest first, and how many match in all."""
        where: list[str] = []
        params: list[Any] = []
        if flt.actor:
            where.append("actor = ?")
            params.append(flt.actor)
        if flt.action:
            where.append("action LIKE ? ESCAPE '\\'")
            params.append(_like_prefix(flt.action))
        if flt.target:
            where.append("target = ?")
            params.append(flt.target)
        if flt.result:
            where.append("result = ?")
            params.append(flt.result)
        if flt.namespace:
            where.append("namespaces LIKE ? ESCAPE '\\'")
            params.append("%," + _escape_like(flt.namespace) + ",%")
        if flt.start is not None:
            where.append("at >= ?")
            params.append(flt.start)
        if flt.end is not None:
            where.append("at < ?")
            params.append(flt.end)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total_row = self.db.query_one(f"SELECT COUNT(*) AS n FROM audit_log{clause}", params)
        rows = self.db.query(
            f"SELECT * FROM audit_log{clause} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        entries = [
            AuditEntry(
                id=r["id"],
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                result=r["result"],
                namespaces=tuple(n for n in r["namespaces"].split(",") if n),
                detail=json.loads(r["detail"] or "{}"),
            )
            for r in rows
        ]
        return entries, int(total_row["n"]) if total_row else 0


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(text: str) -> str:
    return _escape_like(text) + "%"
