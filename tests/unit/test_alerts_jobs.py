"""Console backtest jobs: progress, results, errors, owners, limits and expiry."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hub.alerts.jobs import BacktestJob, BacktestJobs
from hub.errors import InvalidInput, TooManyRequests
from hub.timeutil import FakeClock

TARGET = ("workload", "ns-a1", "pol-1")


def finished(job: BacktestJob) -> BacktestJob:
    deadline = time.monotonic() + 10
    while job.running:
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.01)
    return job


@pytest.fixture
def jobs() -> Any:
    j = BacktestJobs(clock=FakeClock(1_800_000_000.0), keep_seconds=60)
    yield j
    j.stop()


def test_a_job_reports_progress_then_its_result(jobs: BacktestJobs) -> None:
    seen: list[tuple[int, int]] = []
    gate = threading.Event()

    def run(progress: Any) -> dict[str, Any]:
        progress(50, 200)
        seen.append((50, 200))
        gate.wait(5)
        progress(200, 200)
        return {"summary": {"emails": 3}}

    job = jobs.submit(run, owner="ann", target=TARGET, window="24h")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.running and job.percent == 25
    gate.set()
    assert finished(job).result == {"summary": {"emails": 3}} and job.percent == 100 and job.error is None


def test_only_its_owner_sees_a_job_and_only_under_its_policy(jobs: BacktestJobs) -> None:
    job = finished(jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))
    assert jobs.get(job.id, owner="ann", target=TARGET) is job
    assert jobs.get(job.id, owner="bob", target=TARGET) is None
    assert jobs.get(job.id, owner="ann", target=("workload", "ns-a1", "pol-2")) is None
    assert jobs.get("made-up", owner="ann", target=TARGET) is None


def test_a_refused_replay_is_kept_as_the_jobs_error(jobs: BacktestJobs) -> None:
    def run(progress: Any) -> dict[str, Any]:
        raise InvalidInput("end must be after start", field="end")

    job = finished(jobs.submit(run, owner="ann", target=TARGET, window="24h"))
    assert job.result is None and job.error is not None and job.error.field == "end"


def test_a_user_runs_at_most_two_replays_at_once(jobs: BacktestJobs) -> None:
    gate = threading.Event()
    running = [jobs.submit(lambda progress: gate.wait(5) and {}, owner="ann", target=TARGET, window="7d") for _ in "ab"]
    with pytest.raises(TooManyRequests) as info:
        jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="7d")
    assert getattr(info.value, "retry_after", 0) >= 1  # answered with a Retry-After like every 429
    other = jobs.submit(lambda progress: {}, owner="bob", target=TARGET, window="7d")  # others are not held up
    gate.set()
    for job in [*running, other]:
        finished(job)
    finished(jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))


def test_finished_jobs_are_dropped_after_a_while(jobs: BacktestJobs) -> None:
    job = finished(jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))
    clock = jobs.clock
    assert isinstance(clock, FakeClock)
    clock.advance(59)
    assert jobs.get(job.id, owner="ann", target=TARGET) is job
    clock.advance(2)
    assert jobs.get(job.id, owner="ann", target=TARGET) is None
