"""The console's background backtests (hub/alerts/jobs.py), visible from every replica.

A job's row holds its owner and policy (checked before anything of it is shown), its progress,
and when it finished its result or error as JSON. ``replica`` names the process that runs it
and ``heartbeat`` is the last time that process said it still does: a running job whose
heartbeat has stopped is marked failed by whichever replica reads it next.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE backtest_jobs (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            level TEXT NOT NULL,
            namespace TEXT NOT NULL DEFAULT '',
            policy_id TEXT NOT NULL,
            span TEXT NOT NULL,
            replica TEXT NOT NULL,
            started REAL NOT NULL,
            heartbeat REAL NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            finished REAL,
            result TEXT,
            error TEXT
        );
        CREATE INDEX backtest_jobs_by_owner ON backtest_jobs(owner, finished);
        CREATE INDEX backtest_jobs_by_finish ON backtest_jobs(finished);
        """,
    ),
]
