"""Workspace-level alert policies that every project of the workspace inherits, and the
per-project overrides of their rules (docs/alerting.md "Inherited policies").

Why two tables and not rows of ``alert_policies`` copied into each project: a copy per project
would drift (an edit of the workspace policy would have to rewrite every copy, and a project
added later would miss it). The engine expands the workspace policies per project when it
loads policies; only what a project changed (threshold, disabled) is stored per project.
``required`` is a JSON list of rule names a project may not disable.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE alert_workspace_policies (
            id TEXT PRIMARY KEY,
            workspace TEXT NOT NULL,
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            required TEXT NOT NULL DEFAULT '[]',
            enabled INTEGER NOT NULL DEFAULT 1,
            version INTEGER NOT NULL DEFAULT 1,
            created_by TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_by TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL,
            UNIQUE (workspace, name)
        );
        CREATE TABLE alert_policy_overrides (
            policy_id TEXT NOT NULL,
            namespace TEXT NOT NULL,
            rule TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            threshold REAL,
            updated_by TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL,
            PRIMARY KEY (policy_id, namespace, rule)
        );
        CREATE INDEX alert_policy_overrides_by_ns ON alert_policy_overrides(namespace);
        """,
    ),
]
