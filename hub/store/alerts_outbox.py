"""The outbox and notices of the alerting repository: a part of
:class:`~hub.store.alerts.AlertStore` (a mixin; the store holds the database).

A cycle's messages enter through :meth:`OutboxRows._enqueue` inside its one transaction
(:meth:`~hub.store.alerts.AlertStore.commit_cycle`); the dispatcher then claims, sends and
records them. A message that has left is never changed again, and an alert's ``sends`` counts
what reached a mail server, not what was decided.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.store.alerts_rows import in_clause
from hub.store.db import Row, StateStore


class OutboxRows:
    """Notices and outbox messages: enqueued by a cycle, claimed and settled by the dispatcher."""

    db: StateStore

    # -- notices and messages of a cycle -------------------------------------------------------
    def _enqueue(self, m: Mapping[str, Any], now: float) -> None:
        """Add notices to the waiting message ``mkey`` (held and digest messages accumulate),
        or create it. A message that already left is never touched again."""
        row = self.db.query_one("SELECT id, notices, status FROM alert_outbox WHERE mkey=?", (m["mkey"],))
        keys = list(m["notices"])
        if row is not None:
            if row["status"] != "waiting":
                # It left before this cycle committed (a group or held message whose release
                # came meanwhile): what it does not carry goes in a follow-up, never nowhere.
                rest = [k for k in keys if k not in json.loads(row["notices"])]
                if rest:
                    follow = {**m, "mkey": f"{m['mkey']}+", "notices": rest, "not_before": now}
                    follow["message_id"] = str(m["message_id"]).replace("@", ".1@", 1)  # its own Message-ID
                    self._enqueue(follow, now)
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

    def group_rows(self) -> list[Row]:
        """The notification groups (grouping across policies): last release per receiver and group."""
        return self.db.query("SELECT recipient, group_id, tenant, labels, flush_at FROM alert_groups")

    def existing_notice_keys(self, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            clause, vals = in_clause("key", wanted[i : i + 500])
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
        earlier message is backing off (so each recipient gets its notices in order).

        The backing-off messages are found once (their first id per recipient) and joined,
        rather than looked for under every waiting row: that correlated subquery scanned the
        waiting rows once per waiting row (72 ms per batch with 1,000 waiting, bench/alerts.py)."""
        return self.db.query(
            "WITH backing AS (SELECT recipient, MIN(id) AS first FROM alert_outbox"
            " WHERE status='waiting' AND attempts>0 AND next_attempt>? GROUP BY recipient)"
            " SELECT o.* FROM alert_outbox o LEFT JOIN backing b ON b.recipient=o.recipient"
            " WHERE o.status='waiting' AND o.not_before<=? AND o.next_attempt<=?"
            " AND (b.first IS NULL OR o.id<=b.first) ORDER BY o.id LIMIT ?",
            (now, now, now, limit),
        )

    def next_due_time(self) -> float | None:
        row = self.db.query_one(
            "SELECT MIN(CASE WHEN not_before > next_attempt THEN not_before ELSE next_attempt END) AS t"
            " FROM alert_outbox WHERE status='waiting'"
        )
        return float(row["t"]) if row and row["t"] is not None else None

    def mark_sending(self, ids: Sequence[int], now: float) -> int:
        return len(self.claim_sending(ids, now))

    def claim_sending(self, ids: Sequence[int], now: float) -> list[int]:
        """Mark waiting messages ``sending`` (committed, and fenced under a lease, before any of
        them goes out: a new leader then knows a send may have been in flight); returns the
        ids actually claimed, oldest first. One that is no longer waiting (a former leader's
        late sent-mark landed meanwhile) is not claimed and so not sent again."""
        if not ids:
            return []
        clause, vals = in_clause("id", list(ids))
        with self.db.transaction():
            self.db.execute(
                f"UPDATE alert_outbox SET status='sending', updated_at=? WHERE status='waiting' AND {clause}",
                [now, *vals],
            )
            rows = self.db.query(f"SELECT id FROM alert_outbox WHERE status='sending' AND {clause} ORDER BY id", vals)
        return [int(r["id"]) for r in rows]

    def record_sent(self, msg_id: int, *, now: float, subject: str) -> bool:
        """The mail server accepted the message: say so at once, in a commit of its own.

        The time from the server's answer to this commit is the window in which a crash sends
        the message twice, so nothing else rides along: one conditional row update, committed
        without waiting for the writers' lock (``execute_alone``) and not fenced (a fact, not a
        decision). The bookkeeping (notices delivered, ``sends``) follows in
        :meth:`count_sent`; ``counted = 0`` marks it as still to do."""
        return (
            self.db.execute_alone(
                "UPDATE alert_outbox SET status='sent', sent_at=?, updated_at=?, subject=?, attempts=attempts+1,"
                " last_error='', counted=0 WHERE id=? AND status IN ('waiting', 'sending')",
                (now, now, subject, msg_id),
            )
            > 0
        )

    def count_sent(self, now: float, ids: Sequence[int] | None = None) -> int:
        """The bookkeeping of messages :meth:`record_sent` marked (``ids``, or every one still
        uncounted: a leader may have died between the mark and this), in one transaction;
        returns how many were counted. Each notice counts once (``delivered_at``)."""
        if ids is None:
            found = [int(r["id"]) for r in self.db.query("SELECT id FROM alert_outbox WHERE counted=0 ORDER BY id")]
        else:
            found = list(ids)
        if not found:
            return 0
        counted: list[int] = []
        with self.db.transaction():
            for i in range(0, len(found), 500):
                clause, vals = in_clause("id", found[i : i + 500])
                counted += [
                    int(r["id"])
                    for r in self.db.query(f"SELECT id FROM alert_outbox WHERE counted=0 AND {clause}", vals)
                ]
            if counted:
                self._count_delivered(counted, now)
                self.db.executemany("UPDATE alert_outbox SET counted=1 WHERE id=?", [(i,) for i in counted])
        return len(counted)

    def mark_sent(self, msg_id: int, *, now: float, subject: str) -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_outbox SET status='sent', sent_at=?, updated_at=?, subject=?, attempts=attempts+1,"
                " last_error='' WHERE id=? AND status IN ('waiting', 'sending')",
                (now, now, subject, msg_id),
            )

    def mark_retry(self, msg_id: int, *, now: float, next_attempt: float, error: str, subject: str = "") -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_outbox SET status='waiting', attempts=attempts+1, next_attempt=?, last_error=?,"
                " subject=?, updated_at=? WHERE id=? AND status IN ('waiting', 'sending')",
                (next_attempt, error[:500], subject, now, msg_id),
            )

    def mark_failed(self, msg_id: int, *, now: float, error: str, subject: str = "") -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_outbox SET status='failed', attempts=attempts+1, last_error=?, subject=?, updated_at=?"
                " WHERE id=? AND status IN ('waiting', 'sending')",
                (error[:500], subject, now, msg_id),
            )

    def record_results(self, outcomes: Sequence[tuple[int, str, float, str, str]], *, now: float) -> None:
        """Outcomes of one delivery round in ONE transaction: (id, 'sent'|'retry'|'failed',
        next attempt, error, subject). A message that already left is not changed again."""
        sent = [(now, now, subject, msg_id) for msg_id, kind, _, _, subject in outcomes if kind == "sent"]
        retry = [
            (nxt, err[:500], subject, now, msg_id) for msg_id, kind, nxt, err, subject in outcomes if kind == "retry"
        ]
        failed = [(err[:500], subject, now, msg_id) for msg_id, kind, _, err, subject in outcomes if kind == "failed"]
        with self.db.transaction():
            if sent:
                self.db.executemany(
                    "UPDATE alert_outbox SET status='sent', sent_at=?, updated_at=?, subject=?, attempts=attempts+1,"
                    " last_error='' WHERE id=? AND status IN ('waiting', 'sending')",
                    sent,
                )
                self._count_delivered([msg_id for *_, msg_id in sent], now)
            if retry:
                self.db.executemany(
                    "UPDATE alert_outbox SET status='waiting', attempts=attempts+1, next_attempt=?, last_error=?,"
                    " subject=?, updated_at=? WHERE id=? AND status IN ('waiting', 'sending')",
                    retry,
                )
            if failed:
                self.db.executemany(
                    "UPDATE alert_outbox SET status='failed', attempts=attempts+1, last_error=?, subject=?,"
                    " updated_at=? WHERE id=? AND status IN ('waiting', 'sending')",
                    failed,
                )

    def _count_delivered(self, message_ids: Sequence[int], now: float) -> None:
        """Mark the notices of sent messages delivered and count each alert's firing notices
        (first, repeats, flap summaries) once, the first time any message carrying them went
        out: an alert's ``sends`` is what reached a mail server, not what was decided."""
        keys: set[str] = set()
        for i in range(0, len(message_ids), 500):
            clause, vals = in_clause("id", list(message_ids[i : i + 500]))
            for row in self.db.query(f"SELECT notices FROM alert_outbox WHERE {clause}", vals):
                keys.update(json.loads(row["notices"]))
        fresh: list[tuple[str, str]] = []
        ordered = sorted(keys)
        for i in range(0, len(ordered), 500):
            clause, vals = in_clause("key", ordered[i : i + 500])
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
            clause, vals = in_clause("key", list(keys[i : i + 500]))
            out += self.db.query(f"SELECT * FROM alert_notices WHERE {clause} ORDER BY id", vals)
        return out

    def outbox_depth(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) AS n FROM alert_outbox WHERE status IN ('waiting', 'sending')")
        return int(row["n"]) if row else 0

    def outbox(self, *, namespaces: Sequence[str] | None = None, limit: int = 100, offset: int = 0) -> list[Row]:
        sql, args = "SELECT * FROM alert_outbox", []
        if namespaces is not None:
            clause, vals = in_clause("tenant", list(namespaces))
            sql += f" WHERE {clause}"
            args += vals
        return self.db.query(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset])
