"""Backtests that run in the background for the console, with progress.

A week of 30 s slots replays 20,160 cycles and takes seconds; a page must not wait for it. The
console posts the backtest form, gets a job id at once (Post/Redirect/Get, so reloading the
result never runs the replay again), and its job page shows the progress until the result is
there. Jobs live in this process's memory only: they are a view of a computation, not state
worth keeping (the replay can simply be run again), and they are dropped ``keep_seconds``
after they finish.

Each job belongs to the user who started it and to one policy; the console checks both, and
the caller's permission on the policy, before it shows anything of a job.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hub.errors import HubError, RateLimited
from hub.timeutil import Clock

log = logging.getLogger("kubehub.alerts")

# progress(done_slots, total_slots) -> None; the run function returns the backtest answer
Run = Callable[[Callable[[int, int], None]], dict[str, Any]]


@dataclass
class BacktestJob:
    id: str
    owner: str
    target: tuple[str, str | None, str]  # (level, namespace, policy id)
    window: str
    started: float
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: HubError | None = None
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


class BacktestJobs:
    """A few backtests at a time, in worker threads; their progress and results by job id.

    (No ``start`` method: the hub starts every service that has one at boot.)
    """

    def __init__(self, *, clock: Clock, workers: int = 2, per_user: int = 2, keep_seconds: float = 900.0) -> None:
        self.clock = clock
        self.per_user = per_user
        self.keep_seconds = keep_seconds
        self._jobs: dict[str, BacktestJob] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubehub-backtest")

    def submit(self, run: Run, *, owner: str, target: tuple[str, str | None, str], window: str) -> BacktestJob:
        """Queue ``run``; refuses (429) a user who already has ``per_user`` replays running."""
        now = self.clock.now()
        with self._lock:
            self._expire(now)
            if sum(1 for j in self._jobs.values() if j.owner == owner and j.running) >= self.per_user:
                # A replay takes seconds (docs/alerting.md); Retry-After names a short wait, as every 429 does.
                raise RateLimited(
                    f"you already have {self.per_user} backtests running; wait for one to finish", retry_after=5
                )
            job = BacktestJob(id=secrets.token_urlsafe(12), owner=owner, target=target, window=window, started=now)
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, run)
        return job

    def get(self, job_id: str, *, owner: str, target: tuple[str, str | None, str]) -> BacktestJob | None:
        """The job, if it is this user's and this policy's (None otherwise: say nothing more)."""
        with self._lock:
            self._expire(self.clock.now())
            job = self._jobs.get(job_id)
        if job is None or job.owner != owner or job.target != target:
            return None
        return job

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: BacktestJob, run: Run) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.result = run(progress)
        except HubError as exc:
            job.error = exc
        except Exception as exc:  # a bug: the page says so instead of spinning forever
            log.exception("backtest %s failed", job.id)
            job.error = HubError(f"the backtest failed unexpectedly: {type(exc).__name__}: {exc}")
        finally:
            job.finished = self.clock.now()  # last: readers check it before result and error

    def _expire(self, now: float) -> None:
        old = [k for k, j in self._jobs.items() if j.finished is not None and now - j.finished > self.keep_seconds]
        for k in old:
            del self._jobs[k]
