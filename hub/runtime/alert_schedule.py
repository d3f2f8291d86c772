"""When the live alert engine runs (pure: no I/O; wall-clock times are passed in): the cycles'
trigger on the epoch grid of ``alerts.tick_seconds`` and the extra delivery round for a message
that a group releases between two regular rounds. Apart from :mod:`hub.runtime.alerting` so
that module stays the engine's wiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger

# Seconds after each multiple of alerts.tick_seconds (counted from the epoch) at which a cycle
# starts: period slots end at multiples of their period, so with ticks on that grid a slot whose
# period is a multiple of the tick is evaluated this long after it closed, instead of anywhere up
# to a whole tick later depending on when the process started (bench/inbox.py measured 10 s of a
# 40 s alert-to-inbox delay that way). One second leaves a scrape that began just before the
# slot's end time to land in Prometheus.
TICK_OFFSET = 1.0
WAKE_MARGIN = 0.05  # seconds after a message's due time its own delivery round starts


class _GridTrigger(IntervalTrigger):
    """APScheduler's interval trigger, but every fire time is on its grid (``start_date`` + k x
    interval), also after a run off the grid (the first cycle at start) or a late one: the
    stock trigger counts the next run from the previous one and would keep the start's phase."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = now if previous_fire_time is None else max(now, previous_fire_time + timedelta(microseconds=1))
        return super().get_next_fire_time(None, after)


def cycle_trigger(tick_seconds: float, offset: float = TICK_OFFSET) -> IntervalTrigger:
    """The cycles' schedule: every ``tick_seconds``, at ``offset`` past each multiple of it."""
    return _GridTrigger(seconds=tick_seconds, start_date=datetime.fromtimestamp(offset, UTC), timezone="UTC")


def delivery_wake(due: float | None, *, hub_now: float, wall_now: float, regular_next: float | None) -> float | None:
    """When (wall clock) to run an extra delivery round for the outbox's next due message:
    ``due`` is on the hub's clock, the scheduler runs on the wall clock. None when nothing waits
    or the regular round comes first. Why: a message released ``group_wait`` after its cycle
    otherwise waits for the next ``alerts.delivery_seconds`` round, up to a whole interval
    (bench/inbox.py saw 5 s when a round ran a few ms before the release)."""
    if due is None:
        return None
    at = wall_now + max(0.0, due - hub_now) + WAKE_MARGIN
    if regular_next is not None and regular_next <= at:
        return None
    return at
