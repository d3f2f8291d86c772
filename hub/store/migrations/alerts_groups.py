"""The notification groups of grouping across policies (hub/alerts/notify/grouping.py).

One row per (receiver, group): when the group's latest message is or was released. Why in the
state store and not in memory: a restart or a new leader must neither re-open a group as new
(an extra message before ``group_interval``) nor lose a group still waiting for ``group_wait``
(its waiting message is in ``alert_outbox``; this row says notices of the next cycles join it).
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE alert_groups (
            recipient TEXT NOT NULL,
            group_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            labels TEXT NOT NULL,
            flush_at REAL NOT NULL,
            PRIMARY KEY (recipient, group_id)
        );
        CREATE INDEX alert_groups_by_tenant ON alert_groups(tenant);
        """,
    ),
]
