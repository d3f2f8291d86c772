"""Renewals: the background threads that rebuild ranking tables ahead of their expiry."""

from __future__ import annotations

import threading

import pytest

from hub.runtime.monitoring import Renewals

pytestmark = pytest.mark.unit


def _workers(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}-")]


def test_no_thread_before_the_first_job_then_daemon_workers_that_outlive_a_failing_job() -> None:
    renewals = Renewals("test-renewals-a", workers=2)
    assert _workers("test-renewals-a") == []  # a hub that never ranks from a table starts none
    done = threading.Event()
    ran: list[int] = []

    def failing() -> None:
        raise RuntimeError("a job that did not handle its own error")

    renewals(failing)
    for i in range(4):
        renewals(lambda i=i: ran.append(i))
    renewals(done.set)
    assert done.wait(5)
    workers = _workers("test-renewals-a")
    assert len(workers) == 2 and all(t.daemon and t.is_alive() for t in workers)  # never hold up exit
    assert sorted(ran) == [0, 1, 2, 3]
    again = threading.Event()
    renewals(again.set)  # still served after the failure, by the same two threads
    assert again.wait(5) and len(_workers("test-renewals-a")) == 2
