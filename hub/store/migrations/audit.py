"""The audit log: who did what, to what, when, with which result.

``namespaces`` repeats the namespaces an entry concerns as ``,a,b,`` so that the "which
tenant's logs were searched" filter is an indexed-enough LIKE without parsing JSON.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            result TEXT NOT NULL,
            namespaces TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_at ON audit_log(at);
        CREATE INDEX audit_log_actor ON audit_log(actor, at);
        CREATE INDEX audit_log_action ON audit_log(action, at);
        """,
    ),
]
