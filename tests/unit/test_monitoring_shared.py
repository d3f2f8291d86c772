"""SharedAnswers: one evaluation for callers asking at once, a failure never kept or shared."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from hub.collectors.monitoring_shared import SharedAnswers
from hub.errors import BackendUnavailable
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit


def test_a_waiter_whose_first_caller_failed_evaluates_for_itself() -> None:
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(FakeClock(1000.0), ttl=5.0)
    first_started, release_first = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def failing() -> dict[str, int]:
        first_started.set()
        release_first.wait(5)
        raise BackendUnavailable("prometheus", "down")

    def first() -> None:
        try:
            shared.get("k", failing, wait=5)
        except BackendUnavailable as exc:
            results["first"] = exc

    def second() -> None:
        results["second"] = shared.get("k", lambda: {"n": 2}, wait=5)

    a = threading.Thread(target=first)
    a.start()
    assert first_started.wait(5)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.2)
    assert b.is_alive()  # waiting for the first caller's evaluation
    release_first.set()
    a.join(5)
    b.join(5)
    assert isinstance(results["first"], BackendUnavailable)
    assert results["second"] == {"n": 2}
    assert shared.get("k", lambda: {"n": 3}, wait=5) == {"n": 2}  # the second's answer is kept


def test_an_answer_is_kept_for_ttl_seconds_and_handed_out_as_a_copy() -> None:
    clock = FakeClock(1000.0)
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0)
    body = shared.get("k", lambda: {"n": 1}, wait=1)
    body["n"] = 99  # a caller changing its copy does not change the kept answer
    assert shared.get("k", lambda: {"n": 2}, wait=1) == {"n": 1}
    clock.advance(6)
    assert shared.get("k", lambda: {"n": 2}, wait=1) == {"n": 2}


def test_expired_answers_are_dropped_when_another_is_stored() -> None:
    clock = FakeClock(1000.0)
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0)
    shared.get("old", lambda: {"n": 1}, wait=1)
    clock.advance(6)
    shared.get("new", lambda: {"n": 2}, wait=1)
    assert list(shared._items) == ["new"]  # the expired one no longer holds its memory


def test_when_full_the_oldest_answer_goes_not_all_of_them() -> None:
    clock = FakeClock(1000.0)
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, size=2)
    shared.get("a", lambda: {"n": 1}, wait=1)
    clock.advance(1)
    shared.get("b", lambda: {"n": 2}, wait=1)
    clock.advance(1)
    shared.get("c", lambda: {"n": 3}, wait=1)
    assert sorted(shared._items) == ["b", "c"]


class _Jobs:
    """A spawn that keeps the jobs, run when the test says (a background thread, made visible)."""

    def __init__(self) -> None:
        self.jobs: list[object] = []

    def __call__(self, job: object) -> None:
        self.jobs.append(job)

    def run_all(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()  # type: ignore[operator]


def test_an_answer_in_use_is_renewed_ahead_once_and_never_handed_out_past_its_ttl() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)
    built = iter(range(1, 100))

    def fresh() -> dict[str, float]:
        return {"n": next(built), "at": clock.now()}

    assert shared.get("k", fresh, wait=1, renew=fresh)["n"] == 1
    clock.advance(4.4)  # it took no time to compute: renewed only in the last tenth of its life
    assert shared.get("k", fresh, wait=1, renew=fresh)["n"] == 1 and jobs.jobs == []
    clock.advance(0.2)  # 4.6 s old: handed out at once, and one renewal starts
    assert shared.get("k", fresh, wait=1, renew=fresh)["n"] == 1
    assert shared.get("k", fresh, wait=1, renew=fresh)["n"] == 1
    assert len(jobs.jobs) == 1  # one renewal for any number of callers meanwhile
    clock.advance(0.2)
    jobs.run_all()  # the renewal, evaluated 4.8 s after the first
    answer = shared.get("k", fresh, wait=1, renew=fresh)
    assert answer == {"n": 2, "at": pytest.approx(1004.8)} and jobs.jobs == []
    clock.advance(5.5)  # unused until past its ttl: never handed out, the caller evaluates
    assert shared.get("k", fresh, wait=1, renew=fresh)["n"] == 3


def test_an_answer_slow_to_compute_is_renewed_earlier_but_never_before_half_its_ttl() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)

    def slow(n: int, seconds: float) -> Callable[[], dict[str, int]]:
        def compute() -> dict[str, int]:
            clock.advance(seconds)
            return {"n": n}

        return compute

    shared.get("k", slow(1, 1.0), wait=5, renew=slow(2, 1.0))  # took 1 s: lead 1.5 s
    clock.advance(3.4)
    shared.get("k", slow(9, 0), wait=5, renew=slow(2, 1.0))
    assert jobs.jobs == []
    clock.advance(0.2)  # 1.4 s left
    shared.get("k", slow(9, 0), wait=5, renew=slow(2, 4.0))
    assert len(jobs.jobs) == 1
    jobs.run_all()  # took 4 s: its lead would be 6 s, held to half the ttl
    clock.advance(2.4)
    shared.get("k", slow(9, 0), wait=5, renew=slow(3, 0))
    assert jobs.jobs == []
    clock.advance(0.2)
    assert shared.get("k", slow(9, 0), wait=5, renew=slow(3, 0)) == {"n": 2}
    assert len(jobs.jobs) == 1


def test_without_renew_or_spawn_nothing_is_renewed_ahead() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    plain: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0)
    with_spawn: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)
    plain.get("k", lambda: {"n": 1}, wait=1, renew=lambda: {"n": 2})
    with_spawn.get("k", lambda: {"n": 1}, wait=1)
    clock.advance(4.9)
    assert plain.get("k", lambda: {"n": 9}, wait=1, renew=lambda: {"n": 2}) == {"n": 1}
    assert with_spawn.get("k", lambda: {"n": 9}, wait=1) == {"n": 1}
    assert jobs.jobs == []


def test_a_failed_renewal_is_not_kept_and_callers_past_the_ttl_evaluate_for_themselves() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)

    def failing() -> dict[str, int]:
        raise BackendUnavailable("prometheus", "down")

    shared.get("k", lambda: {"n": 1}, wait=1, renew=failing)
    clock.advance(4.6)
    assert shared.get("k", lambda: {"n": 9}, wait=1, renew=failing) == {"n": 1}
    jobs.run_all()  # fails: the kept answer stays until its ttl
    assert shared.get("k", lambda: {"n": 9}, wait=1, renew=failing) == {"n": 1}
    assert len(jobs.jobs) == 1  # the next use after the failure tries again
    jobs.run_all()  # and fails again
    clock.advance(1)  # past the ttl: the caller evaluates, nothing failed is handed out
    assert shared.get("k", lambda: {"n": 9}, wait=1, renew=failing) == {"n": 9}


def test_a_caller_past_the_ttl_waits_for_the_renewal_in_flight_instead_of_evaluating_again() -> None:
    clock = FakeClock(1000.0)
    started, release = threading.Event(), threading.Event()
    evaluations: list[str] = []

    def slow_renewal() -> dict[str, int]:
        evaluations.append("renewal")
        started.set()
        release.wait(5)
        return {"n": 2}

    def spawn(job: object) -> None:
        threading.Thread(target=job).start()  # type: ignore[arg-type]

    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=spawn)
    shared.get("k", lambda: {"n": 1}, wait=1, renew=slow_renewal)
    clock.advance(4.6)
    assert shared.get("k", lambda: {"n": 9}, wait=1, renew=slow_renewal) == {"n": 1}
    assert started.wait(5)
    clock.advance(1)  # expired while the renewal runs
    got: dict[str, object] = {}
    waiter = threading.Thread(target=lambda: got.setdefault("v", shared.get("k", lambda: {"n": 9}, wait=5)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()
    release.set()
    waiter.join(5)
    assert got["v"] == {"n": 2} and evaluations == ["renewal"]


def test_a_background_computation_outliving_its_caller_goes_on_and_is_kept_for_the_next() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)
    asked: list[str] = []

    def in_request() -> dict[str, int]:
        asked.append("request")
        return {"n": 9}

    def built() -> dict[str, int]:
        asked.append("background")
        clock.advance(30)  # longer than any request may wait
        return {"n": 1}

    with pytest.raises(BackendUnavailable, match="goes on"):
        shared.get("k", in_request, wait=0.01, ttl=300, background=built)
    with pytest.raises(BackendUnavailable):  # a caller meanwhile waits for it, starts nothing
        shared.get("k", in_request, wait=0.01, ttl=300, background=built)
    assert len(jobs.jobs) == 1
    jobs.run_all()
    assert shared.get("k", in_request, wait=0.01, ttl=300, background=built) == {"n": 1}
    assert asked == ["background"]
    # kept until 300 s after it started (1000 + 300), not after it ended
    clock.advance(1300.0 - clock.now() - 0.5)
    assert shared.get("k", in_request, wait=0.01, ttl=300, background=built) == {"n": 1}
    clock.advance(1.0)
    with pytest.raises(BackendUnavailable):
        shared.get("k", in_request, wait=0.01, ttl=300, background=built)
    assert len(jobs.jobs) == 1 and asked == ["background"]


def test_callers_waiting_for_a_failed_background_computation_get_its_error_and_nothing_is_kept() -> None:
    clock = FakeClock(1000.0)
    release = threading.Event()
    runs: list[int] = []

    def failing() -> dict[str, int]:
        runs.append(1)
        release.wait(5)
        raise BackendUnavailable("prometheus", "query timed out after 60 s")

    def spawn(job: Callable[[], None]) -> None:
        threading.Thread(target=job).start()

    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=spawn)
    errors: list[str] = []

    def caller() -> None:
        try:
            shared.get("k", lambda: {"n": 9}, wait=5, ttl=300, background=failing)
        except BackendUnavailable as exc:
            errors.append(exc.message)

    callers = [threading.Thread(target=caller) for _ in range(3)]
    for c in callers:
        c.start()
    for c in callers:
        c.join(0.2)
    release.set()
    for c in callers:
        c.join(5)
    assert runs == [1]  # one computation for the three
    assert errors == ["prometheus is unavailable: query timed out after 60 s"] * 3
    with pytest.raises(BackendUnavailable):  # not kept: the next caller starts another
        shared.get("k", lambda: {"n": 9}, wait=5, ttl=300, background=failing)
    assert runs == [1, 1]


def test_without_spawn_a_background_computation_is_made_in_the_request() -> None:
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(FakeClock(1000.0), ttl=5.0)
    assert shared.get("k", lambda: {"n": 1}, wait=1, ttl=300, background=lambda: {"n": 2}) == {"n": 1}


def test_a_background_computation_ending_past_its_life_is_kept_for_kept_after_seconds_from_its_end() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)

    def built() -> dict[str, int]:
        clock.advance(30)  # its step ended 10 s after it started
        return {"n": 1}

    with pytest.raises(BackendUnavailable):
        shared.get("k", lambda: {"n": 9}, wait=0.01, ttl=10, background=built, kept_after=300)
    jobs.run_all()
    clock.advance(299)  # 1,329: 300 s after its end less one
    assert shared.get("k", lambda: {"n": 9}, wait=0.01, ttl=10, background=built, kept_after=300) == {"n": 1}
    clock.advance(2)
    with pytest.raises(BackendUnavailable):  # gone: the next one is started
        shared.get("k", lambda: {"n": 9}, wait=0.01, ttl=10, background=built, kept_after=300)
    assert len(jobs.jobs) == 1


def test_past_its_life_an_answer_with_stale_time_is_handed_out_while_the_next_is_computed() -> None:
    """Issue 15: the first caller of a window table's next step got nothing until the next
    build ended (at scale 7-16 s, sometimes past the request's timeout). With ``stale_for`` it
    gets the previous step's table at once, the next one is built once meanwhile, and nothing
    is handed out past ``stale_for`` after its expiry."""
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)
    builds = iter(range(1, 10))

    def built() -> dict[str, int]:
        return {"n": next(builds)}

    def ask() -> dict[str, int]:
        return shared.get("k", lambda: {"n": -1}, wait=0.01, ttl=300, background=built, stale_for=300)

    with pytest.raises(BackendUnavailable):  # nothing kept yet: the first caller waits
        ask()
    jobs.run_all()
    assert ask() == {"n": 1}
    clock.advance(300.5)  # its step ended: the next caller starts the next build and is not kept waiting
    assert ask() == {"n": 1} and len(jobs.jobs) == 1
    assert ask() == {"n": 1} and len(jobs.jobs) == 1  # one build for every caller meanwhile
    jobs.run_all()
    assert ask() == {"n": 2} and not jobs.jobs
    clock.advance(300 + 300 + 1)  # past its life and its stale time: never handed out again
    with pytest.raises(BackendUnavailable):
        ask()
    jobs.run_all()
    assert ask() == {"n": 3}


def test_a_stale_answer_whose_next_build_failed_is_still_handed_out_and_the_build_retried_once_per_caller() -> None:
    clock, jobs = FakeClock(1000.0), _Jobs()
    shared: SharedAnswers[dict[str, int]] = SharedAnswers(clock, ttl=5.0, spawn=jobs)
    outcomes: list[dict[str, int] | Exception] = [{"n": 1}, BackendUnavailable("prometheus", "timed out"), {"n": 2}]

    def built() -> dict[str, int]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def ask() -> dict[str, int]:
        return shared.get("k", lambda: {"n": -1}, wait=0.01, ttl=10, background=built, stale_for=60)

    with pytest.raises(BackendUnavailable):
        ask()
    jobs.run_all()
    clock.advance(11)
    assert ask() == {"n": 1}
    jobs.run_all()  # the next build fails: the previous answer still serves, its error is not kept
    assert ask() == {"n": 1} and len(jobs.jobs) == 1  # and the next caller starts another
    jobs.run_all()
    assert ask() == {"n": 2}
