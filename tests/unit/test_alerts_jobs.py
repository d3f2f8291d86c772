"""Console backtest jobs: progress, results, errors, owners, limits, expiry, and replicas.

Two ``BacktestJobs`` over one store are two hub replicas (the store is SQLite here, this
test's PostgreSQL schema under ``make test-postgres``); tests/integration/
test_replicas_shared_state.py does the same with real ``kubehub serve`` processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.jobs import BacktestJob, BacktestJobs
from hub.errors import BackendUnavailable, InvalidInput, TooManyRequests
from hub.timeutil import FakeClock
from tests.conftest import open_test_store

TARGET = ("workload", "ns-a1", "pol-1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    db = open_test_store(tmp_path / "state.sqlite3")
    db.migrate()
    yield db
    db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def replicas(store: Any, clock: FakeClock) -> Iterator[tuple[BacktestJobs, BacktestJobs]]:
    # Heartbeats every 10 minutes of real time: within a test, a replica is silent unless it reports progress.
    made = [
        BacktestJobs(store, clock=clock, keep_seconds=60, heartbeat_seconds=600, replica=name)
        for name in ("one", "two")
    ]
    yield made[0], made[1]
    for jobs in made:
        jobs.stop()


@pytest.fixture
def jobs(replicas: tuple[BacktestJobs, BacktestJobs]) -> BacktestJobs:
    return replicas[0]


def finished(jobs: BacktestJobs, job: BacktestJob) -> BacktestJob:
    deadline = time.monotonic() + 10
    while True:
        seen = jobs.get(job.id, owner=job.owner, target=job.target)
        assert seen is not None
        if not seen.running:
            return seen
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.01)


def test_a_job_reports_progress_then_its_result_to_every_replica(
    replicas: tuple[BacktestJobs, BacktestJobs],
) -> None:
    one, two = replicas
    seen: list[tuple[int, int]] = []
    gate = threading.Event()

    def run(progress: Any) -> dict[str, Any]:
        progress(50, 200)
        seen.append((50, 200))
        gate.wait(5)
        progress(200, 200)
        return {"summary": {"emails": 3}}

    job = one.submit(run, owner="ann", target=TARGET, window="24h")
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    elsewhere = two.get(job.id, owner="ann", target=TARGET)  # polled on the other replica
    assert elsewhere is not None and elsewhere.running and elsewhere.percent == 25 and elsewhere.replica == "one"
    gate.set()
    done = finished(two, job)
    assert done.result == {"summary": {"emails": 3}} and done.percent == 100 and done.error is None


def test_only_its_owner_sees_a_job_and_only_under_its_policy(jobs: BacktestJobs) -> None:
    job = finished(jobs, jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))
    assert jobs.get(job.id, owner="ann", target=TARGET) == job
    assert jobs.get(job.id, owner="bob", target=TARGET) is None
    assert jobs.get(job.id, owner="ann", target=("workload", "ns-a1", "pol-2")) is None
    assert jobs.get(job.id, owner="ann", target=("workload", "ns-a2", "pol-1")) is None
    assert jobs.get("made-up", owner="ann", target=TARGET) is None
    node = ("node", None, "pol-1")
    node_job = finished(jobs, jobs.submit(lambda progress: {}, owner="ann", target=node, window="24h"))
    assert node_job.target == node  # no namespace comes back as None, not ""


def test_a_refused_replay_is_kept_as_the_jobs_error(replicas: tuple[BacktestJobs, BacktestJobs]) -> None:
    one, two = replicas

    def refused(progress: Any) -> dict[str, Any]:
        raise InvalidInput("end must be after start", field="end")

    def backend_down(progress: Any) -> dict[str, Any]:
        raise BackendUnavailable("Prometheus", "connection refused")

    job = finished(two, one.submit(refused, owner="ann", target=TARGET, window="24h"))
    assert job.result is None and job.error is not None
    assert (job.error.field, job.error.status, job.error.message) == ("end", 400, "end must be after start")
    down = finished(two, one.submit(backend_down, owner="ann", target=TARGET, window="24h")).error
    assert isinstance(down, BackendUnavailable) and down.backend == "Prometheus" and down.status == 503
    assert down.message == "Prometheus is unavailable: connection refused"


def test_a_user_runs_at_most_two_replays_at_once_across_replicas(
    replicas: tuple[BacktestJobs, BacktestJobs],
) -> None:
    one, two = replicas
    gate = threading.Event()
    running = [
        one.submit(lambda progress: gate.wait(5) and {}, owner="ann", target=TARGET, window="7d"),
        two.submit(lambda progress: gate.wait(5) and {}, owner="ann", target=TARGET, window="7d"),
    ]
    for jobs in replicas:
        with pytest.raises(TooManyRequests) as info:
            jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="7d")
        assert getattr(info.value, "retry_after", 0) >= 1  # answered with a Retry-After like every 429
    other = one.submit(lambda progress: {}, owner="bob", target=TARGET, window="7d")  # others are not held up
    gate.set()
    for job in [*running, other]:
        finished(one, job)
    finished(two, two.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))


def test_finished_jobs_are_dropped_after_a_while(jobs: BacktestJobs, clock: FakeClock) -> None:
    job = finished(jobs, jobs.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))
    clock.advance(59)
    assert jobs.get(job.id, owner="ann", target=TARGET) == job
    clock.advance(2)
    assert jobs.get(job.id, owner="ann", target=TARGET) is None


def test_a_job_whose_replica_went_silent_fails_with_the_reason_and_stays_failed(
    replicas: tuple[BacktestJobs, BacktestJobs], clock: FakeClock
) -> None:
    one, two = replicas
    gate = threading.Event()

    def run(progress: Any) -> dict[str, Any]:
        gate.wait(5)
        return {"summary": {"emails": 1}}

    job = one.submit(run, owner="ann", target=TARGET, window="7d")
    clock.advance(29)  # no heartbeat and no progress from replica one meanwhile: silence
    seen = two.get(job.id, owner="ann", target=TARGET)
    assert seen is not None and seen.running
    clock.advance(2)
    seen = two.get(job.id, owner="ann", target=TARGET)
    assert seen is not None and not seen.running and seen.result is None and seen.error is not None
    assert "stopped answering" in seen.error.message and seen.error.status == 503
    # A silent replica is not counted against the user any more.
    finished(two, two.submit(lambda progress: {}, owner="ann", target=TARGET, window="24h"))
    gate.set()  # the paused replica wakes up and finishes: its late result does not replace the failure
    time.sleep(0.3)
    late = two.get(job.id, owner="ann", target=TARGET)
    assert late is not None and late.result is None and late.error is not None


def test_a_replica_that_shuts_down_says_so_on_its_unfinished_jobs(store: Any, clock: FakeClock) -> None:
    leaving = BacktestJobs(store, clock=clock, workers=1, replica="leaving")
    staying = BacktestJobs(store, clock=clock, replica="staying")
    gate = threading.Event()
    try:
        started = leaving.submit(lambda progress: gate.wait(5) and {}, owner="ann", target=TARGET, window="7d")
        queued = leaving.submit(lambda progress: {}, owner="bob", target=TARGET, window="7d")
        leaving.stop()
        for job in (started, queued):
            seen = staying.get(job.id, owner=job.owner, target=TARGET)
            assert seen is not None and not seen.running and seen.error is not None
            assert "stopped" in seen.error.message
    finally:
        gate.set()
        staying.stop()


def test_the_heartbeat_keeps_a_long_job_alive(store: Any) -> None:
    """Real clock: a job longer than the silence limit stays running while its replica beats."""
    from hub.timeutil import SystemClock

    one = BacktestJobs(store, clock=SystemClock(), heartbeat_seconds=0.1, stale_seconds=0.5, replica="one")
    two = BacktestJobs(store, clock=SystemClock(), heartbeat_seconds=0.1, stale_seconds=0.5, replica="two")
    try:
        job = one.submit(lambda progress: time.sleep(1.5) or {"ok": 1}, owner="ann", target=TARGET, window="7d")
        for _ in range(10):
            time.sleep(0.1)
            seen = two.get(job.id, owner="ann", target=TARGET)
            assert seen is not None and seen.error is None
        assert finished(two, job).result == {"ok": 1}
    finally:
        one.stop()
        two.stop()
