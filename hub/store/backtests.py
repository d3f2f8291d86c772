"""The console's background backtests in the state store (table ``backtest_jobs``).

Why in the store: behind a round-robin balancer the job page is polled on any replica, so the
job, its progress and its result must be where every replica reads. A job runs in the worker
threads of the replica that accepted it; that replica writes its progress and, every few
seconds, a heartbeat. A running job whose heartbeat has stopped (its replica was killed,
paused or cut off) is marked failed, with that reason, by the next replica that reads it,
instead of showing a progress bar forever. Writes of a job's progress and end name the
replica, so a replica that comes back after its job was given up cannot overwrite the failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hub.store.db import Row, StateStore

Target = tuple[str, str | None, str]  # (level, namespace, policy id)


@dataclass(frozen=True)
class JobRow:
    """One job as stored; ``error`` is the JSON object written by :meth:`BacktestJobStore.finish`."""

    id: str
    owner: str
    target: Target
    window: str
    replica: str
    started: float
    heartbeat: float
    done: int
    total: int
    finished: float | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None


def _job(row: Row) -> JobRow:
    return JobRow(
        id=row["id"],
        owner=row["owner"],
        target=(row["level"], row["namespace"] or None, row["policy_id"]),
        window=row["span"],
        replica=row["replica"],
        started=float(row["started"]),
        heartbeat=float(row["heartbeat"]),
        done=int(row["done"]),
        total=int(row["total"]),
        finished=None if row["finished"] is None else float(row["finished"]),
        result=None if row["result"] is None else json.loads(row["result"]),
        error=None if row["error"] is None else json.loads(row["error"]),
    )


class BacktestJobStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

    def give_up_stale(self, *, heard_before: float, now: float, reason: dict[str, Any]) -> int:
        """Mark failed every running job not heard of since ``heard_before``; how many."""
        return self.db.execute(
            "UPDATE backtest_jobs SET finished = ?, error = ? WHERE finished IS NULL AND heartbeat < ?",
            (now, json.dumps(reason), heard_before),
        )

    def expire(self, *, finished_before: float) -> int:
        return self.db.execute(
            "DELETE FROM backtest_jobs WHERE finished IS NOT NULL AND finished < ?", (finished_before,)
        )

    def running_of(self, owner: str) -> int:
        row = self.db.query_one("SELECT COUNT(*) FROM backtest_jobs WHERE owner = ? AND finished IS NULL", (owner,))
        return int(row[0]) if row else 0

    def insert(self, *, id: str, owner: str, target: Target, window: str, replica: str, now: float) -> None:
        level, namespace, policy_id = target
        self.db.execute(
            "INSERT INTO backtest_jobs(id, owner, level, namespace, policy_id, span, replica, started, heartbeat)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (id, owner, level, namespace or "", policy_id, window, replica, now, now),
        )

    def get(self, job_id: str) -> JobRow | None:
        row = self.db.query_one("SELECT * FROM backtest_jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    def progress(self, job_id: str, *, replica: str, done: int, total: int, now: float) -> None:
        self.db.execute(
            "UPDATE backtest_jobs SET done = ?, total = ?, heartbeat = ?"
            " WHERE id = ? AND replica = ? AND finished IS NULL",
            (done, total, now, job_id, replica),
        )

    def heartbeat(self, *, replica: str, now: float) -> int:
        """This replica still runs its unfinished jobs; how many it has."""
        return self.db.execute(
            "UPDATE backtest_jobs SET heartbeat = ? WHERE replica = ? AND finished IS NULL", (now, replica)
        )

    def finish(
        self,
        job_id: str,
        *,
        replica: str,
        now: float,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Record the end of a job; False when it was already given up (nothing written)."""
        changed = self.db.execute(
            "UPDATE backtest_jobs SET finished = ?, result = ?, error = ?"
            " WHERE id = ? AND replica = ? AND finished IS NULL",
            (
                now,
                None if result is None else json.dumps(result),
                None if error is None else json.dumps(error),
                job_id,
                replica,
            ),
        )
        return changed > 0

    def give_up_mine(self, *, replica: str, now: float, reason: dict[str, Any]) -> int:
        """At shutdown: this replica's unfinished jobs will not finish."""
        return self.db.execute(
            "UPDATE backtest_jobs SET finished = ?, error = ? WHERE replica = ? AND finished IS NULL",
            (now, json.dumps(reason), replica),
        )
