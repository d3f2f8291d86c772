"""Alerting tables: policies, engine state, alert episodes and their history, comments,
silences, flap records, the notification log and the persisted outbox.

Why the engine state (``alert_states``) is separate from ``alerts``: the first is what the
engine reloads each cycle (sparse: only tracked (rule, entity) pairs, stored whole as JSON);
the second is the queryable record of every episode for the API, kept after it ends.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE alert_policies (
            id TEXT PRIMARY KEY,
            level TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            version INTEGER NOT NULL DEFAULT 1,
            created_by TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_by TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL,
            UNIQUE (level, namespace, name)
        );
        CREATE TABLE alert_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE alert_slots (
            period REAL PRIMARY KEY,
            slot REAL NOT NULL
        );
        CREATE TABLE alert_states (
            policy_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            entity TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            state TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (policy_id, rule, entity)
        );
        CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            policy_id TEXT NOT NULL,
            policy_name TEXT NOT NULL,
            level TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            entity TEXT NOT NULL,
            labels TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            started_at REAL NOT NULL,
            fired_at REAL,
            ended_at REAL,
            last_value REAL,
            threshold REAL,
            comparator TEXT NOT NULL DEFAULT '',
            unit TEXT NOT NULL DEFAULT '',
            metric TEXT NOT NULL DEFAULT '',
            query TEXT NOT NULL DEFAULT '',
            periods INTEGER NOT NULL DEFAULT 0,
            sends INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL
        );
        CREATE INDEX alerts_scope ON alerts (namespace, active, state);
        CREATE INDEX alerts_policy ON alerts (policy_id);
        CREATE TABLE alert_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            policy_id TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            at REAL NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            value REAL,
            reason TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX alert_events_scope ON alert_events (namespace, at);
        CREATE INDEX alert_events_alert ON alert_events (alert_id);
        CREATE TABLE alert_comments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            author TEXT NOT NULL,
            at REAL NOT NULL,
            text TEXT NOT NULL
        );
        CREATE INDEX alert_comments_alert ON alert_comments (alert_id);
        CREATE TABLE alert_silences (
            id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL DEFAULT '',
            matchers TEXT NOT NULL,
            starts_at REAL NOT NULL,
            ends_at REAL NOT NULL,
            comment TEXT NOT NULL DEFAULT '',
            created_by TEXT NOT NULL,
            created_at REAL NOT NULL,
            deleted_at REAL
        );
        CREATE TABLE alert_flaps (
            policy_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            entity TEXT NOT NULL,
            changes TEXT NOT NULL DEFAULT '[]',
            holding INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0,
            held_since REAL,
            PRIMARY KEY (policy_id, rule, entity)
        );
        CREATE TABLE alert_notices (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            alert_id TEXT NOT NULL,
            policy_id TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL,
            at REAL NOT NULL,
            status TEXT NOT NULL,
            payload TEXT NOT NULL
        );
        CREATE INDEX alert_notices_alert ON alert_notices (alert_id);
        CREATE TABLE alert_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            mkey TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            policy_id TEXT NOT NULL,
            recipient TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'en',
            notices TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            not_before REAL NOT NULL,
            next_attempt REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            resent INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            message_id TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            sent_at REAL
        );
        CREATE INDEX alert_outbox_due ON alert_outbox (status, not_before, next_attempt);
        CREATE INDEX alert_outbox_tenant ON alert_outbox (tenant, created_at);
        CREATE TABLE alert_rule_health (
            rule_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            at REAL NOT NULL
        );
        """,
    ),
    (
        2,
        # An alert's ``sends`` counts notices a mail server accepted (at least one message
        # carrying the notice was sent), so a notice that reached nobody is not a send.
        """
        ALTER TABLE alert_notices ADD COLUMN delivered_at REAL;
        """,
    ),
]
