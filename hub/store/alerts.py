"""SQL of the alerting area, behind one small repository.

The store speaks plain rows and dicts (it sits below ``hub.alerts`` and may not import it).
Its one rule that matters: everything one engine cycle produces — engine states, alert
records, history events, notices and outbox messages, the evaluated slots — is written by
:meth:`AlertStore.commit_cycle` in ONE transaction, and only if no policy changed meanwhile.
A crash before the commit leaves nothing, so the re-run cycle evaluates the same slot again and
produces the same (deterministically keyed) notices; a crash after it loses nothing.

Its parts: policies and the engine's state here; the outbox and notices in
:mod:`hub.store.alerts_outbox`; alerts, history and comments in :mod:`hub.store.alerts_history`;
silences in :mod:`hub.store.alerts_silences`; the shared :class:`CycleWrite` and SQL helpers in
:mod:`hub.store.alerts_rows` (re-exported here, the import path of callers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from hub.errors import Conflict
from hub.store.alerts_history import AlertRows
from hub.store.alerts_inherited import InheritedRows
from hub.store.alerts_outbox import OutboxRows
from hub.store.alerts_rows import ACTIVE, ALERT_COLUMNS, CycleWrite, StaleCycle, in_clause
from hub.store.alerts_silences import SilenceRows
from hub.store.db import IntegrityError, Row, StateStore
from hub.store.leases import Fence, FencedStore

__all__ = ["ACTIVE", "AlertStore", "CycleWrite", "StaleCycle"]


class AlertStore(AlertRows, OutboxRows, SilenceRows, InheritedRows):
    """The alerting area's repository: policies and the engine's state (here), the outbox,
    alerts with their history, silences and workspace (inherited) policies (its mixins)."""

    def __init__(self, db: StateStore) -> None:
        self.db = db

    def bound_fence(self) -> Fence | None:
        """The fence this thread's unit of work acts under, when this is the engine's store (over
        a :class:`FencedStore`); None over the plain store (the console's, a backtest's)."""
        return self.db.bound() if isinstance(self.db, FencedStore) else None

    # -- policies ---------------------------------------------------------------------------
    def insert_policy(
        self,
        *,
        policy_id: str,
        level: str,
        namespace: str | None,
        name: str,
        document: Mapping[str, Any],
        enabled: bool,
        actor: str,
        now: float,
    ) -> None:
        try:
            with self.db.transaction():
                self.db.execute(
                    "INSERT INTO alert_policies(id, level, namespace, name, document, enabled, version,"
                    " created_by, created_at, updated_by, updated_at) VALUES (?,?,?,?,?,?,1,?,?,?,?)",
                    (
                        policy_id,
                        level,
                        namespace or "",
                        name,
                        json.dumps(document),
                        int(enabled),
                        actor,
                        now,
                        actor,
                        now,
                    ),
                )
                self._bump_generation()
        except IntegrityError as exc:
            raise Conflict(f"a {level}-level policy named {name!r} already exists here", field="name") from exc

    def update_policy(
        self,
        policy_id: str,
        *,
        name: str,
        document: Mapping[str, Any],
        enabled: bool,
        actor: str,
        now: float,
        write: CycleWrite | None = None,
    ) -> None:
        """Replace a policy's document and apply the edit's effect on its alerts, atomically."""
        try:
            with self.db.transaction():
                self.db.execute(
                    "UPDATE alert_policies SET name=?, document=?, enabled=?, version=version+1, updated_by=?,"
                    " updated_at=? WHERE id=?",
                    (name, json.dumps(document), int(enabled), actor, now, policy_id),
                )
                if write is not None:
                    self._apply(write, now)
                self._bump_generation()
        except IntegrityError as exc:
            raise Conflict(f"another policy here is already named {name!r}", field="name") from exc

    def delete_policy(self, policy_id: str, *, now: float, write: CycleWrite | None = None) -> None:
        with self.db.transaction():
            if write is not None:
                self._apply(write, now)
            self.db.execute("DELETE FROM alert_states WHERE policy_id=?", (policy_id,))
            self.db.execute("DELETE FROM alert_flaps WHERE policy_id=?", (policy_id,))
            self.db.execute("DELETE FROM alert_rule_health WHERE rule_id LIKE ?", (policy_id + "/%",))
            self.db.execute("DELETE FROM alert_policies WHERE id=?", (policy_id,))
            self._bump_generation()

    def policy(self, policy_id: str) -> Row | None:
        return self.db.query_one("SELECT * FROM alert_policies WHERE id=?", (policy_id,))

    def policies(self, *, level: str | None = None, namespaces: Sequence[str] | None = None) -> list[Row]:
        """Policies of a level, within ``namespaces`` (None: every namespace)."""
        sql, args = "SELECT * FROM alert_policies WHERE 1=1", []
        if level:
            sql += " AND level=?"
            args.append(level)
        if namespaces is not None:
            clause, vals = in_clause("namespace", list(namespaces))
            sql += f" AND {clause}"
            args += vals
        return self.db.query(sql + " ORDER BY level, namespace, name", args)

    def workload_policy_page(
        self, namespaces: Sequence[str] | None, *, offset: int, limit: int
    ) -> tuple[list[Row], int, list[str]]:
        """One page of the workload policies of the registered projects within ``namespaces``
        (None: every project), by namespace, name and id: ``limit`` of them from ``offset``,
        how many there are in all, and the projects within ``namespaces`` that have none."""
        where, args = "1=1", list[Any]()
        if namespaces is not None:
            where, args = in_clause("p.namespace", list(namespaces))
        counts = self.db.query(
            "SELECT p.namespace AS namespace, COUNT(a.id) AS n FROM projects p"
            " LEFT JOIN alert_policies a ON a.namespace = p.namespace AND a.level = 'workload'"
            f" WHERE {where} GROUP BY p.namespace ORDER BY p.namespace",
            args,
        )
        total = sum(int(r["n"]) for r in counts)
        empty = [str(r["namespace"]) for r in counts if not int(r["n"])]
        if offset >= total or limit <= 0:
            return [], total, empty
        rows = self.db.query(
            "SELECT a.* FROM alert_policies a JOIN projects p ON p.namespace = a.namespace"
            f" WHERE a.level = 'workload' AND {where} ORDER BY a.namespace, a.name, a.id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return rows, total, empty

    def enabled_policy_rows(self) -> list[Mapping[str, Any]]:
        """What the engine evaluates: the enabled policies, and every enabled workspace policy
        expanded into each project of its workspace (:mod:`hub.store.alerts_inherited`)."""
        own: list[Mapping[str, Any]] = [
            {"id": r["id"], "version": r["version"], "document": r["document"]}
            for r in self.db.query("SELECT id, version, document FROM alert_policies WHERE enabled=1 ORDER BY id")
        ]
        return own + self.inherited_policy_rows()

    def generation(self) -> int:
        """Changes whenever what :meth:`enabled_policy_rows` answers may change: a policy,
        workspace policy or override write (alert_meta), or a project added, moved or removed
        (the tenancy area's project generation). Both only grow, so their sum does too."""
        row = self.db.query_one("SELECT value FROM alert_meta WHERE key='generation'")
        return (int(row["value"]) if row else 0) + self.projects_generation()

    def _bump_generation(self) -> None:
        self.db.execute(
            "INSERT INTO alert_meta(key, value) VALUES ('generation', '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(alert_meta.value AS INTEGER) + 1"
        )

    def meta(self, key: str) -> str | None:
        row = self.db.query_one("SELECT value FROM alert_meta WHERE key=?", (key,))
        return str(row["value"]) if row else None

    # -- the engine's state -------------------------------------------------------------------
    def slots(self) -> dict[float, float]:
        return {float(r["period"]): float(r["slot"]) for r in self.db.query("SELECT period, slot FROM alert_slots")}

    def state_rows(self, policy_id: str | None = None) -> list[Row]:
        if policy_id is None:
            return self.db.query("SELECT * FROM alert_states")
        return self.db.query("SELECT * FROM alert_states WHERE policy_id=?", (policy_id,))

    def flap_rows(self) -> list[Row]:
        return self.db.query("SELECT * FROM alert_flaps")

    def health_rows(self) -> list[Row]:
        return self.db.query("SELECT * FROM alert_rule_health")

    def commit_cycle(self, write: CycleWrite, *, now: float, generation: int | None = None) -> None:
        """Apply a cycle's write in one transaction; StaleCycle if policies changed meanwhile."""
        with self.db.transaction():
            if generation is not None and self.generation() != generation:
                raise StaleCycle("a policy changed during the cycle")
            self._apply(write, now)

    def _apply(self, w: CycleWrite, now: float) -> None:
        db = self.db
        if w.slots:
            db.executemany(
                "INSERT INTO alert_slots(period, slot) VALUES (?, ?)"
                " ON CONFLICT(period) DO UPDATE SET slot=excluded.slot",
                list(w.slots.items()),
            )
        if w.delete_states:
            db.executemany("DELETE FROM alert_states WHERE policy_id=? AND rule=? AND entity=?", w.delete_states)
        if w.upsert_states:
            db.executemany(
                "INSERT INTO alert_states(policy_id, rule, entity, alert_id, state, data) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(policy_id, rule, entity) DO UPDATE SET alert_id=excluded.alert_id,"
                " state=excluded.state, data=excluded.data",
                w.upsert_states,
            )
        if w.delete_alerts:
            db.executemany("DELETE FROM alerts WHERE id=?", [(a,) for a in w.delete_alerts])
        if w.upsert_alerts:
            cols = ",".join(ALERT_COLUMNS)
            # ``sends`` is the delivery's to count (record_results), never the cycle's.
            updates = ",".join(f"{c}=excluded.{c}" for c in ALERT_COLUMNS if c not in ("id", "started_at", "sends"))
            db.executemany(
                f"INSERT INTO alerts({cols}) VALUES ({','.join('?' * len(ALERT_COLUMNS))})"
                f" ON CONFLICT(id) DO UPDATE SET {updates}",
                [tuple(map(a.get, ALERT_COLUMNS)) for a in w.upsert_alerts],  # map: C speed per row
            )
        if w.events:
            db.executemany(
                "INSERT INTO alert_events(alert_id, policy_id, namespace, at, from_state, to_state, value, reason)"
                " VALUES (:alert_id, :policy_id, :namespace, :at, :from_state, :to_state, :value, :reason)",
                w.events,
            )
        if w.notices:
            db.executemany(
                "INSERT INTO alert_notices(key, alert_id, policy_id, namespace, kind, at, status, payload)"
                " VALUES (:key, :alert_id, :policy_id, :namespace, :kind, :at, :status, :payload)"
                " ON CONFLICT DO NOTHING",
                w.notices,
            )
        for m in w.messages:
            self._enqueue(m, now)
        if w.delete_flaps:
            db.executemany("DELETE FROM alert_flaps WHERE policy_id=? AND rule=? AND entity=?", w.delete_flaps)
        if w.upsert_flaps:
            db.executemany(
                "INSERT INTO alert_flaps(policy_id, rule, entity, changes, holding, held, held_since)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT(policy_id, rule, entity) DO UPDATE SET"
                " changes=excluded.changes, holding=excluded.holding, held=excluded.held,"
                " held_since=excluded.held_since",
                w.upsert_flaps,
            )
        for rule_id, health in w.health.items():
            if health is None:
                db.execute("DELETE FROM alert_rule_health WHERE rule_id=?", (rule_id,))
            else:
                db.execute(
                    "INSERT INTO alert_rule_health(rule_id, status, detail, at) VALUES (?,?,?,?)"
                    " ON CONFLICT(rule_id) DO UPDATE SET status=excluded.status, detail=excluded.detail,"
                    " at=excluded.at",
                    (rule_id, *health),
                )
        if w.delete_groups:
            db.executemany("DELETE FROM alert_groups WHERE recipient=? AND group_id=?", w.delete_groups)
        if w.upsert_groups:
            db.executemany(
                "INSERT INTO alert_groups(recipient, group_id, tenant, labels, flush_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT(recipient, group_id) DO UPDATE SET tenant=excluded.tenant,"
                " labels=excluded.labels, flush_at=excluded.flush_at",
                w.upsert_groups,
            )
        for key, value in w.meta.items():
            db.execute(
                "INSERT INTO alert_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
