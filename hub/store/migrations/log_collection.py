"""Per-project log collection settings (issue 19, docs/logs.md "Per-project collection").

One row per project that changed the defaults; no row = collect everything for the platform's
retention. Patterns are JSON lists of container name patterns.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE log_collection (
            namespace TEXT PRIMARY KEY,
            enabled INTEGER NOT NULL DEFAULT 1,
            include TEXT NOT NULL DEFAULT '[]',
            exclude TEXT NOT NULL DEFAULT '[]',
            retention_days INTEGER,
            updated_by TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL
        );
        """,
    ),
]
