"""Rate-limit windows of the expensive requests (web/ratelimit.py), shared by every replica.

One row per counted event: a user's export, backtest or long-range query. ``kind`` is what it
counts as, ``subject`` the user name. Rows older than the window are deleted as they are met.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE rate_events (
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX rate_events_by_key ON rate_events(kind, subject, at);
        CREATE INDEX rate_events_by_time ON rate_events(at);
        """,
    ),
]
