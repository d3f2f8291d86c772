"""Silences in the alerting repository: a part of :class:`~hub.store.alerts.AlertStore` (a
mixin; the store holds the database). Deleting a silence marks it, so history keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from hub.store.alerts_rows import scope_clause
from hub.store.db import Row, StateStore


class SilenceRows:
    """Silences within a scope; the alerting service decides the scope and checks writes."""

    db: StateStore

    # -- silences ------------------------------------------------------------------------------
    def insert_silence(
        self,
        *,
        silence_id: str,
        namespace: str | None,
        matchers: Mapping[str, str],
        starts_at: float,
        ends_at: float,
        comment: str,
        actor: str,
        now: float,
    ) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO alert_silences(id, namespace, matchers, starts_at, ends_at, comment, created_by,"
                " created_at) VALUES (?,?,?,?,?,?,?,?)",
                (silence_id, namespace or "", json.dumps(dict(matchers)), starts_at, ends_at, comment, actor, now),
            )

    def silence(self, silence_id: str) -> Row | None:
        return self.db.query_one("SELECT * FROM alert_silences WHERE id=? AND deleted_at IS NULL", (silence_id,))

    def silences(
        self, *, namespaces: Sequence[str] | None, include_cluster: bool, active_at: float | None = None
    ) -> list[Row]:
        where, args = scope_clause(namespaces, include_cluster)
        where += " AND deleted_at IS NULL"
        if active_at is not None:
            where += " AND starts_at<=? AND ends_at>?"
            args += [active_at, active_at]
        return self.db.query(f"SELECT * FROM alert_silences WHERE {where} ORDER BY starts_at DESC, id", args)

    def delete_silence(self, silence_id: str, *, now: float) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE alert_silences SET deleted_at=? WHERE id=?", (now, silence_id))
