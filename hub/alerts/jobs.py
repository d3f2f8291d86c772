"""Backtests that run in the background for the console, with progress, on any replica.

A week of 30 s slots replays 20,160 cycles and takes seconds; a page must not wait for it. The
console posts the backtest form, gets a job id at once (Post/Redirect/Get, so reloading the
result never runs the replay again), and its job page shows the progress until the result is
there. The replay runs in a worker thread of the replica that accepted the form; the job, its
progress and its result live in the state store (:mod:`hub.store.backtests`), because the job
page may be polled on any replica. A job whose replica stopped saying it runs it (killed,
paused, cut off from the store) for ``stale_seconds`` is marked failed with that reason — the
page says so and the user runs it again — instead of spinning forever. Finished jobs are
dropped ``keep_seconds`` after they end: they are a view of a computation, not state worth
keeping.

Each job belongs to the user who started it and to one policy; the console checks both, and
the caller's permission on the policy, before it shows anything of a job.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hub.errors import BackendUnavailable, HubError, RateLimited
from hub.store.backtests import BacktestJobStore, JobRow, Target
from hub.store.db import StateStore
from hub.timeutil import Clock

log = logging.getLogger("kubehub.alerts")

# progress(done_slots, total_slots) -> None; the run function returns the backtest answer
Run = Callable[[Callable[[int, int], None]], dict[str, Any]]

PROGRESS_EVERY = 0.5  # seconds between progress writes of one job (the replay reports far more often)


@dataclass(frozen=True)
class BacktestJob:
    """A job as the job page shows it (a snapshot read from the store)."""

    id: str
    owner: str
    target: Target
    window: str
    started: float
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: HubError | None = None
    finished: float | None = None
    replica: str = ""

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


def error_record(exc: HubError) -> dict[str, Any]:
    """A job's error as stored: enough to answer it again as the same status and banner."""
    record: dict[str, Any] = {"status": exc.status, "message": exc.message, "field": exc.field}
    if isinstance(exc, BackendUnavailable):
        record["backend"] = exc.backend
    return record


def error_from(record: dict[str, Any]) -> HubError:
    message = str(record.get("message") or "the backtest failed")
    if record.get("backend"):
        exc: HubError = BackendUnavailable(str(record["backend"]), "")
        exc.message = message
        exc.args = (message,)
        return exc
    exc = HubError(message, field=record.get("field"))
    exc.status = int(record.get("status") or 500)
    return exc


def default_replica() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class BacktestJobs:
    """A few backtests at a time, in worker threads; their progress and results in the store.

    (No ``start`` method: the hub starts every service that has one at boot; the heartbeat
    thread starts with the first job and writes only while this replica has jobs of its own.)
    """

    def __init__(
        self,
        db: StateStore,
        *,
        clock: Clock,
        workers: int = 2,
        per_user: int = 2,
        keep_seconds: float = 900.0,
        heartbeat_seconds: float = 5.0,
        stale_seconds: float = 30.0,
        replica: str | None = None,
    ) -> None:
        self.store = BacktestJobStore(db)
        self.clock = clock
        self.per_user = per_user
        self.keep_seconds = keep_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        # Unique per process start: a restarted replica must not pick up its predecessor's jobs.
        self.replica = replica or f"{default_replica()}:{secrets.token_hex(3)}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubehub-backtest")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active = 0  # jobs of this replica queued or running
        self._beat: threading.Thread | None = None

    def submit(self, run: Run, *, owner: str, target: Target, window: str) -> BacktestJob:
        """Queue ``run``; refuses (429) a user who already has ``per_user`` replays running
        (on any replica)."""
        now = self.clock.now()
        job_id = secrets.token_urlsafe(12)
        with self.store.db.transaction():
            self._tidy(now)
            if self.store.running_of(owner) >= self.per_user:
                # A replay takes seconds (docs/alerting.md); Retry-After names a short wait, as every 429 does.
                raise RateLimited(
                    f"you already have {self.per_user} backtests running; wait for one to finish", retry_after=5
                )
            self.store.insert(id=job_id, owner=owner, target=target, window=window, replica=self.replica, now=now)
        with self._lock:
            self._active += 1
            if self._beat is None:
                self._beat = threading.Thread(target=self._heartbeat, name="kubehub-backtest-heartbeat", daemon=True)
                self._beat.start()
        self._pool.submit(self._run, job_id, run)
        return BacktestJob(id=job_id, owner=owner, target=target, window=window, started=now, replica=self.replica)

    def get(self, job_id: str, *, owner: str, target: Target) -> BacktestJob | None:
        """The job, if it is this user's and this policy's (None otherwise: say nothing more)."""
        with self.store.db.transaction():
            self._tidy(self.clock.now())
        row = self.store.get(job_id)
        if row is None or row.owner != owner or row.target != target:
            return None
        return _snapshot(row)

    def stop(self) -> None:
        """Shutdown: queued replays are dropped and this replica's unfinished jobs say why."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self.store.give_up_mine(
                replica=self.replica,
                now=self.clock.now(),
                reason={"status": 503, "message": "the hub replica running this backtest stopped; run it again"},
            )
        except Exception as exc:  # the store may be down too; then the other replicas give the jobs up
            log.warning("backtest jobs not marked stopped: %s", exc)

    # -- the replica's side -------------------------------------------------------------------
    def _tidy(self, now: float) -> None:
        self.store.give_up_stale(
            heard_before=now - self.stale_seconds,
            now=now,
            reason={
                "status": 503,
                "message": (
                    f"the hub replica running this backtest stopped answering for over {self.stale_seconds:g}"
                    " seconds (it was stopped or lost the state store); run it again"
                ),
            },
        )
        self.store.expire(finished_before=now - self.keep_seconds)

    def _run(self, job_id: str, run: Run) -> None:
        last = [float("-inf")]

        def progress(done: int, total: int) -> None:
            moment = time.monotonic()
            if done < total and moment - last[0] < PROGRESS_EVERY:
                return
            last[0] = moment
            try:
                self.store.progress(job_id, replica=self.replica, done=done, total=total, now=self.clock.now())
            except HubError as exc:  # the store is down: the replay goes on, the page catches up later
                log.warning("backtest %s progress not written: %s", job_id, exc.message)

        result: dict[str, Any] | None = None
        error: HubError | None = None
        try:
            result = run(progress)
        except HubError as exc:
            error = exc
        except Exception as exc:  # a bug: the page says so instead of spinning forever
            log.exception("backtest %s failed", job_id)
            error = HubError(f"the backtest failed unexpectedly: {type(exc).__name__}: {exc}")
        with self._lock:
            self._active -= 1
        try:
            self.store.finish(
                job_id,
                replica=self.replica,
                now=self.clock.now(),
                result=result,
                error=None if error is None else error_record(error),
            )
        except Exception as exc:  # the store is down: the job goes stale and another replica says so
            log.warning("backtest %s result not written: %s", job_id, exc)

    def _heartbeat(self) -> None:
        """Every few seconds while this replica has jobs: say it still runs them."""
        while not self._stop.wait(self.heartbeat_seconds):
            with self._lock:
                active = self._active
            if not active:
                continue
            try:
                self.store.heartbeat(replica=self.replica, now=self.clock.now())
            except HubError as exc:
                log.warning("backtest heartbeat not written: %s", exc.message)


def _snapshot(row: JobRow) -> BacktestJob:
    return BacktestJob(
        id=row.id,
        owner=row.owner,
        target=row.target,
        window=row.window,
        started=row.started,
        done=row.done,
        total=row.total,
        result=row.result,
        error=None if row.error is None else error_from(row.error),
        finished=row.finished,
        replica=row.replica,
    )
