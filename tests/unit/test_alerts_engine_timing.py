"""When the live engine's cycles and delivery rounds run (hub/runtime/alerting.py), against
APScheduler's own triggers and a running BackgroundScheduler.

Why it matters: the alert-to-inbox delay (bench/inbox.py) is the slot's end to the cycle that
evaluates it, plus group_wait, plus the wait for a delivery round. Cycles used to run at the
process's own phase (up to a whole tick after a slot's end) and a released message waited for
the next regular round (up to ``alerts.delivery_seconds``).
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.alerts.notify.outbox import DeliveryReport
from hub.metrics import HubMetrics
from hub.runtime.alert_schedule import TICK_OFFSET, WAKE_MARGIN, cycle_trigger, delivery_wake
from hub.runtime.alerting import AlertEngine

pytestmark = pytest.mark.unit


def fire_times(tick: float, after: float, count: int) -> list[float]:
    """The next ``count`` fire times of the cycles' trigger after ``after``, as APScheduler computes them."""
    trigger = cycle_trigger(tick)
    out: list[float] = []
    previous = None
    now = datetime.fromtimestamp(after, UTC)
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        out.append(nxt.timestamp())
        previous, now = nxt, nxt
    return out


@pytest.mark.parametrize("after", [1_796_514_150.0, 1_796_514_163.37, 1_796_514_164.999, 1_796_514_151.0])
@pytest.mark.parametrize("tick", [15.0, 10.0, 60.0])
def test_cycles_run_just_after_each_multiple_of_the_tick(tick: float, after: float) -> None:
    times = fire_times(tick, after, 6)
    assert after <= times[0] < after + tick
    for t in times:
        # on the epoch's grid of the tick, TICK_OFFSET past it (to the microsecond APScheduler keeps)
        assert abs((t - TICK_OFFSET) / tick - round((t - TICK_OFFSET) / tick)) < 1e-6
    assert all(abs(b - a - tick) < 1e-6 for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("period", [15, 30, 60, 300])
def test_every_slot_of_a_period_on_the_tick_grid_is_evaluated_the_offset_after_it_ends(period: int) -> None:
    """Slots end at the multiples of the period (epoch-aligned); each has a cycle TICK_OFFSET later."""
    start = 1_796_514_007.0
    times = fire_times(15.0, start, 40)
    slot_ends = [t for t in range(int(start) + 1, int(times[-1])) if t % period == 0]
    assert slot_ends
    for end in slot_ends:
        assert any(abs(t - (end + TICK_OFFSET)) < 1e-6 for t in times), end


def test_delivery_wake_is_the_due_time_on_the_wall_clock_unless_the_regular_round_comes_first() -> None:
    # the hub's clock may be another clock (a test's): only the wait until due carries over
    assert delivery_wake(1030.0, hub_now=1000.0, wall_now=5000.0, regular_next=None) == 5030.0 + WAKE_MARGIN
    assert delivery_wake(1030.0, hub_now=1000.0, wall_now=5000.0, regular_next=5034.0) == 5030.0 + WAKE_MARGIN
    assert delivery_wake(1030.0, hub_now=1000.0, wall_now=5000.0, regular_next=5029.0) is None
    assert delivery_wake(990.0, hub_now=1000.0, wall_now=5000.0, regular_next=5004.0) == 5000.0 + WAKE_MARGIN
    assert delivery_wake(None, hub_now=1000.0, wall_now=5000.0, regular_next=5004.0) is None


class OutboxStub:
    """The store's outbox as the engine reads it: one message due ``due_in`` seconds from now."""

    def __init__(self, due_in: float) -> None:
        self.due = time.time() + due_in

    def next_due_time(self) -> float | None:
        return self.due

    def outbox_depth(self) -> int:
        return 1


class CountingDispatcher:
    def __init__(self) -> None:
        self.rounds: list[float] = []
        self.event = threading.Event()

    def recover(self) -> int:
        return 0

    def deliver_all_due(self) -> DeliveryReport:
        self.rounds.append(time.time())
        self.event.set()
        return DeliveryReport()


class WallClock:
    def now(self) -> float:
        return time.time()


def test_a_cycle_that_queues_a_message_wakes_a_delivery_round_at_its_due_time() -> None:
    dispatcher = CountingDispatcher()
    store: Any = OutboxStub(due_in=0.5)
    engine = AlertEngine(
        runner=None,
        dispatcher=dispatcher,  # type: ignore[arg-type]
        store=store,
        metrics=HubMetrics(),
        tick_seconds=15.0,
        delivery_seconds=3600.0,  # the regular round would be an hour away
        clock=WallClock(),
    )
    engine.start()
    try:
        assert engine.scheduler is not None
        engine._wake_delivery()
        assert dispatcher.event.wait(10), "no delivery round at the message's due time"
        assert dispatcher.rounds[0] >= store.due
        assert dispatcher.rounds[0] - store.due < 2.0
    finally:
        engine.stop()


def test_the_engine_runs_a_first_cycle_at_once_and_then_cycles_on_the_grid() -> None:
    class Runner:  # records the cycles; raising makes the engine log a failed cycle and go on
        def __init__(self) -> None:
            self.calls: list[float] = []
            self.event = threading.Event()

        def run_once(self) -> Any:
            self.calls.append(time.time())
            self.event.set()
            raise RuntimeError("no cycle in this test")

    runner = Runner()
    engine = AlertEngine(
        runner=runner,  # type: ignore[arg-type]
        dispatcher=CountingDispatcher(),  # type: ignore[arg-type]
        store=OutboxStub(3600.0),  # type: ignore[arg-type]
        metrics=HubMetrics(),
        tick_seconds=15.0,
        delivery_seconds=5.0,
        clock=WallClock(),
    )
    started = time.time()
    engine.start()
    try:
        assert runner.event.wait(10), "no first cycle"
        assert runner.calls[0] - started < 5.0  # about a second after start, whatever the grid
        assert engine.scheduler is not None
        deadline = time.monotonic() + 5
        while True:  # the scheduler thread moves the job on right after handing it to the executor
            job = engine.scheduler.get_job("alert-cycle")
            assert job is not None
            t = job.next_run_time.timestamp()
            if t > runner.calls[0] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert runner.calls[0] < t <= runner.calls[0] + 15.0 + 1e-6
        assert abs((t - TICK_OFFSET) / 15.0 - round((t - TICK_OFFSET) / 15.0)) < 1e-6
    finally:
        engine.stop()
