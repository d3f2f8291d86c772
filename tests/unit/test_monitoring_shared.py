"""SharedAnswers: one evaluation for callers asking at once, a failure never kept or shared."""

from __future__ import annotations

import threading

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
