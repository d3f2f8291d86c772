"""SQL of the alerting area, behind one small repository.

The store speaks plain rows and dicts (it sits below ``hub.alerts`` and may not import it).
Its one rule that matters: everything one engine cycle produces — engine states, alert
records, history events, notices and outbox messages, the evaluated slots — is written by
:meth:`AlertStore.commit_cycle` in ONE transaction, and only if no policy changed meanwhile.
A crash before the commit leaves nothing, so the re-run cycle evaluates the same slot again and
produces the same (deterministically keyed) notices; a crash after it loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.errors import Conflict
from hub.store.db import IntegrityError, Row, StateStore

ACTIVE = ("pending", "firing", "nodata", "error")


class StaleCycle(Exception):
    """A policy changed while the cycle ran; its results are discarded and it runs again."""


@dataclass
class CycleWrite:
    """Everything one cycle (or a policy edit) changes, applied atomically by commit_cycle."""

    slots: dict[float, float] = field(default_factory=dict)
    upsert_states: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    delete_states: list[tuple[str, str, str]] = field(default_factory=list)
    upsert_alerts: list[dict[str, Any]] = field(default_factory=list)
    delete_alerts: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    upsert_flaps: list[tuple[str, str, str, str, int, int, float | None]] = field(default_factory=list)
    delete_flaps: list[tuple[str, str, str]] = field(default_factory=list)
    health: dict[str, tuple[str, str, float] | None] = field(default_factory=dict)  # None: healthy again
    meta: dict[str, str] = field(default_factory=dict)

    def empty(self) -> bool:
        return not any(
            (
                self.slots,
                self.upsert_states,
                self.delete_states,
                self.upsert_alerts,
                self.delete_alerts,
                self.events,
                self.notices,
                self.messages,
                self.upsert_flaps,
                self.delete_flaps,
                self.health,
                self.meta,
            )
        )


_ALERT_COLUMNS = (
    "id",
    "policy_id",
    "policy_name",
    "level",
    "namespace",
    "rule",
    "severity",
    "entity",
    "labels",
    "state",
    "active",
    "started_at",
    "fired_at",
    "ended_at",
    "last_value",
    "threshold",
    "comparator",
    "unit",
    "metric",
    "query",
    "periods",
    "sends",
    "reason",
    "updated_at",
)


def _in(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    if not values:
        return "1=0", []
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


class AlertStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

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
            clause, vals = _in("namespace", list(namespaces))
            sql += f" AND {clause}"
            args += vals
        return self.db.query(sql + " ORDER BY level, namespace, name", args)

    def enabled_policy_rows(self) -> list[Row]:
        return self.db.query("SELECT id, version, document FROM alert_policies WHERE enabled=1 ORDER BY id")

    def generation(self) -> int:
        row = self.db.query_one("SELECT value FROM alert_meta WHERE key='generation'")
        return int(row["value"]) if row else 0

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
            cols = ",".join(_ALERT_COLUMNS)
            # ``sends`` is the delivery's to count (record_results), never the cycle's.
            updates = ",".join(f"{c}=excluded.{c}" for c in _ALERT_COLUMNS if c not in ("id", "started_at", "sends"))
            db.executemany(
                f"INSERT INTO alerts({cols}) VALUES ({','.join('?' * len(_ALERT_COLUMNS))})"
                f" ON CONFLICT(id) DO UPDATE SET {updates}",
                [tuple(a.get(c) for c in _ALERT_COLUMNS) for a in w.upsert_alerts],
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
        for key, value in w.meta.items():
            db.execute(
                "INSERT INTO alert_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def _enqueue(self, m: Mapping[str, Any], now: float) -> None:
        """Add notices to the waiting message ``mkey`` (held and digest messages accumulate),
        or create it. A message that already left is never touched again."""
        row = self.db.query_one("SELECT id, notices, status FROM alert_outbox WHERE mkey=?", (m["mkey"],))
        keys = list(m["notices"])
        if row is not None:
            if row["status"] != "waiting":
                return
            merged = json.loads(row["notices"])
            merged += [k for k in keys if k not in merged]
            self.db.execute(
                "UPDATE alert_outbox SET notices=?, updated_at=? WHERE id=?", (json.dumps(merged), now, row["id"])
            )
            return
        self.db.execute(
            "INSERT INTO alert_outbox(mkey, tenant, policy_id, recipient, language, notices, status, reason,"
            " not_before, next_attempt, attempts, message_id, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,'waiting',?,?,?,0,?,?,?)",
            (
                m["mkey"],
                m["tenant"],
                m["policy_id"],
                m["recipient"],
                m["language"],
                json.dumps(keys),
                m.get("reason", ""),
                m["not_before"],
                m["not_before"],
                m["message_id"],
                now,
                now,
            ),
        )

    def existing_notice_keys(self, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            clause, vals = _in("key", wanted[i : i + 500])
            found |= {r["key"] for r in self.db.query(f"SELECT key FROM alert_notices WHERE {clause}", vals)}
        return found

    def tenant_messages_since(self, tenant: str, since: float) -> int:
        """Messages created for a tenant since ``since``, digests excluded (the quota count)."""
        row = self.db.query_one(
            "SELECT COUNT(*) AS n FROM alert_outbox WHERE tenant=? AND created_at>=? AND reason!='quota'",
            (tenant, since),
        )
        return int(row["n"]) if row else 0

    # -- outbox delivery ----------------------------------------------------------------------
    def recover_sending(self, now: float) -> int:
        """After a crash, messages caught mid-send go back to the queue, flagged as possible
        duplicates (they keep their Message-ID, so a duplicate is recognisable)."""
        with self.db.transaction():
            return self.db.execute(
                "UPDATE alert_outbox SET status='waiting', resent=1, updated_at=?,"
                " last_error='interrupted while sending; sent again with the same Message-ID'"
                " WHERE status='sending'",
                (now,),
            )

    def due_messages(self, now: float, limit: int) -> list[Row]:
        """Waiting messages whose time has come, oldest first, skipping any recipient whose
        earlier message is backing off (so each recipient gets its notices in order)."""
        return self.db.query(
            "SELECT * FROM alert_outbox o WHERE o.status='waiting' AND o.not_before<=? AND o.next_attempt<=?"
            " AND NOT EXISTS (SELECT 1 FROM alert_outbox p WHERE p.recipient=o.recipient AND p.status='waiting'"
            " AND p.id<o.id AND p.attempts>0 AND p.next_attempt>?) ORDER BY o.id LIMIT ?",
            (now, now, now, limit),
        )

    def next_due_time(self) -> float | None:
        row = self.db.query_one(
            "SELECT MIN(CASE WHEN not_before > next_attempt THEN not_before ELSE next_attempt END) AS t"
            " FROM alert_outbox WHERE status='waiting'"
        )
        return float(row["t"]) if row and row["t"] is not None else None

    def mark_sending(self, ids: Sequence[int], now: float) -> int:
        if not ids:
            return 0
        clause, vals = _in("id", list(ids))
        with self.db.transaction():
            return self.db.execute(
                f"UPDATE alert_outbox SET status='sending', updated_at=? WHERE status='waiting' AND {clause}",
                [now, *vals],
            )

    def mark_sent(self, msg_id: int, *, now: float, subject: str) -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_outbox SET status='sent', sent_at=?, updated_at=?, subject=?, attempts=attempts+1,"
                " last_error='' WHERE id=?",
                (now, now, subject, msg_id),
            )

    def mark_retry(self, msg_id: int, *, now: float, next_attempt: float, error: str, subject: str = "") -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_outbox SET status='waiting', attempts=attempts+1, next_attempt=?, last_error=?,"
                " subject=?, updated_at=? WHERE id=?",
                (next_attempt, error[:500], subject, now, msg_id),
            )

    def mark_failed(self, msg_id: int, *, now: float, error: str, subject: str = "") -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_outbox SET status='failed', attempts=attempts+1, last_error=?, subject=?, updated_at=?"
                " WHERE id=?",
                (error[:500], subject, now, msg_id),
            )

    def record_results(self, outcomes: Sequence[tuple[int, str, float, str, str]], *, now: float) -> None:
        """Outcomes of one delivery round in ONE transaction: (id, 'sent'|'retry'|'failed',
        next attempt, error, subject)."""
        sent = [(now, now, subject, msg_id) for msg_id, kind, _, _, subject in outcomes if kind == "sent"]
        retry = [
            (nxt, err[:500], subject, now, msg_id) for msg_id, kind, nxt, err, subject in outcomes if kind == "retry"
        ]
        failed = [(err[:500], subject, now, msg_id) for msg_id, kind, _, err, subject in outcomes if kind == "failed"]
        with self.db.transaction():
            if sent:
                self.db.executemany(
                    "UPDATE alert_outbox SET status='sent', sent_at=?, updated_at=?, subject=?, attempts=attempts+1,"
                    " last_error='' WHERE id=?",
                    sent,
                )
                self._count_delivered([msg_id for *_, msg_id in sent], now)
            if retry:
                self.db.executemany(
                    "UPDATE alert_outbox SET status='waiting', attempts=attempts+1, next_attempt=?, last_error=?,"
                    " subject=?, updated_at=? WHERE id=?",
                    retry,
                )
            if failed:
                self.db.executemany(
                    "UPDATE alert_outbox SET status='failed', attempts=attempts+1, last_error=?, subject=?,"
                    " updated_at=? WHERE id=?",
                    failed,
                )

    def _count_delivered(self, message_ids: Sequence[int], now: float) -> None:
        """Mark the notices of sent messages delivered and count each alert's firing notices
        (first, repeats, flap summaries) once, the first time any message carrying them went
        out: an alert's ``sends`` is what reached a mail server, not what was decided."""
        keys: set[str] = set()
        for i in range(0, len(message_ids), 500):
            clause, vals = _in("id", list(message_ids[i : i + 500]))
            for row in self.db.query(f"SELECT notices FROM alert_outbox WHERE {clause}", vals):
                keys.update(json.loads(row["notices"]))
        fresh: list[tuple[str, str]] = []
        ordered = sorted(keys)
        for i in range(0, len(ordered), 500):
            clause, vals = _in("key", ordered[i : i + 500])
            fresh += [
                (r["key"], r["alert_id"])
                for r in self.db.query(
                    f"SELECT key, alert_id, kind FROM alert_notices WHERE delivered_at IS NULL AND {clause}", vals
                )
                if r["kind"] in ("firing", "repeat", "flap_summary") and ":back:" not in r["key"]
            ]
            self.db.execute(
                f"UPDATE alert_notices SET delivered_at=? WHERE delivered_at IS NULL AND {clause}", [now, *vals]
            )
        counts: dict[str, int] = {}
        for _, alert_id in fresh:
            counts[alert_id] = counts.get(alert_id, 0) + 1
        if counts:
            self.db.executemany("UPDATE alerts SET sends = sends + ? WHERE id=?", [(n, a) for a, n in counts.items()])

    def notices_by_keys(self, keys: Sequence[str]) -> list[Row]:
        out: list[Row] = []
        for i in range(0, len(keys), 500):
            clause, vals = _in("key", list(keys[i : i + 500]))
            out += self.db.query(f"SELECT * FROM alert_notices WHERE {clause} ORDER BY id", vals)
        return out

    def outbox_depth(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) AS n FROM alert_outbox WHERE status IN ('waiting', 'sending')")
        return int(row["n"]) if row else 0

    def outbox(self, *, namespaces: Sequence[str] | None = None, limit: int = 100, offset: int = 0) -> list[Row]:
        sql, args = "SELECT * FROM alert_outbox", []
        if namespaces is not None:
            clause, vals = _in("tenant", list(namespaces))
            sql += f" WHERE {clause}"
            args += vals
        return self.db.query(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset])

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
        where, args = self._scope_clause(namespaces, include_cluster)
        if states:
            clause, vals = _in("state", list(states))
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

    @staticmethod
    def _scope_clause(namespaces: Sequence[str] | None, include_cluster: bool) -> tuple[str, list[Any]]:
        if namespaces is None:
            return ("1=1", []) if include_cluster else ("namespace!=''", [])
        ns = [n for n in namespaces if n]
        if include_cluster:
            ns.append("")
        clause, vals = _in("namespace", ns)
        return clause, vals

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
        where, args = self._scope_clause(namespaces, include_cluster)
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
        where, args = self._scope_clause(namespaces, include_cluster)
        where += " AND deleted_at IS NULL"
        if active_at is not None:
            where += " AND starts_at<=? AND ends_at>?"
            args += [active_at, active_at]
        return self.db.query(f"SELECT * FROM alert_silences WHERE {where} ORDER BY starts_at DESC, id", args)

    def delete_silence(self, silence_id: str, *, now: float) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE alert_silences SET deleted_at=? WHERE id=?", (now, silence_id))
