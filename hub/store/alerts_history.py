"""Alerts, their history and comments in the alerting repository: a part of
:class:`~hub.store.alerts.AlertStore` (a mixin; the store holds the database).

Every list takes the caller's namespaces (None: all) and whether cluster-level rows are
visible; the alerting service decides both from the caller's scope and this only applies them
in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.store.alerts_rows import in_clause, scope_clause
from hub.store.db import Row, StateStore


class AlertRows:
    """Alerts, history events, notices of an alert and comments, listed within a scope."""

    db: StateStore

    # -- alerts, history, comments ------------------------------------------------------------
    def alert(self, alert_id: str) -> Row | None:
        return self.db.query_one("SELECT * FROM alerts WHERE id=?", (alert_id,))

    def alerts(
        self,
        *,
        namespaces: Sequence[str] | None,
        include_cluster: bool,
        states: Sequence[str] = (),
        active: bool | None = None,
        policy_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Row], int]:
        """Alerts visible in a scope: ``namespaces`` (None: all) plus node-level ones when
        ``include_cluster``."""
        where, args = scope_clause(namespaces, include_cluster)
        if states:
            clause, vals = in_clause("state", list(states))
            where += f" AND {clause}"
            args += vals
        if active is not None:
            where += " AND active=?"
            args.append(int(active))
        if policy_id:
            where += " AND policy_id=?"
            args.append(policy_id)
        total = self.db.query_one(f"SELECT COUNT(*) AS n FROM alerts WHERE {where}", args)
        rows = self.db.query(
            f"SELECT * FROM alerts WHERE {where} ORDER BY updated_at DESC, id LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        return rows, int(total["n"]) if total else 0

    def events(
        self,
        *,
        namespaces: Sequence[str] | None,
        include_cluster: bool,
        alert_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Row], int]:
        where, args = scope_clause(namespaces, include_cluster)
        if alert_id:
            where += " AND alert_id=?"
            args.append(alert_id)
        if since is not None:
            where += " AND at>=?"
            args.append(since)
        if until is not None:
            where += " AND at<?"
            args.append(until)
        total = self.db.query_one(f"SELECT COUNT(*) AS n FROM alert_events WHERE {where}", args)
        rows = self.db.query(
            f"SELECT e.*, a.policy_name, a.rule, a.entity, a.severity, a.level FROM alert_events e"
            f" LEFT JOIN alerts a ON a.id = e.alert_id WHERE {where.replace('namespace', 'e.namespace')}"
            " ORDER BY e.at DESC, e.id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return rows, int(total["n"]) if total else 0

    def notices_of(self, alert_id: str) -> list[Row]:
        return self.db.query("SELECT * FROM alert_notices WHERE alert_id=? ORDER BY id", (alert_id,))

    def add_comment(self, *, alert_id: str, namespace: str, author: str, text: str, now: float) -> int:
        with self.db.transaction():
            return self.db.execute(
                "INSERT INTO alert_comments(alert_id, namespace, author, at, text) VALUES (?,?,?,?,?)",
                (alert_id, namespace, author, now, text),
            )

    def comments(self, alert_id: str) -> list[Row]:
        return self.db.query("SELECT * FROM alert_comments WHERE alert_id=? ORDER BY at, id", (alert_id,))

    def latest_comments(self, alert_ids: Sequence[str]) -> dict[str, tuple[int, Row]]:
        """Per alert: how many comments it has and its latest one (for a history page's rows)."""
        ids = sorted(set(alert_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.query(
            f"SELECT *, COUNT(*) OVER (PARTITION BY alert_id) AS n FROM alert_comments"
            f" WHERE alert_id IN ({marks}) ORDER BY at, id",
            ids,
        )
        return {r["alert_id"]: (r["n"], r) for r in rows}  # ordered by time: the last one stays
