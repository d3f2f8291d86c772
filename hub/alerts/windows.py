"""PURE: daily time windows in an IANA time zone (notification windows and quiet hours).

A window ``start..end`` is open when the local time of day is in ``[start, end)``; when
``end <= start`` it spans midnight (``22:00-06:00`` is open late evening and early morning).
Local times are computed with :mod:`zoneinfo`, so daylight-saving changes move the window with
the wall clock, as a person expects: ``09:00`` stays nine o'clock local time all year.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hub.alerts.policy import TimeWindow


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(t: float, tz: str) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC).astimezone(_zone(tz))


def _minute_of_day(local: datetime) -> float:
    return local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6


def _inside(start: int, end: int, minute: float) -> bool:
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def is_open(window: TimeWindow | None, t: float) -> bool:
    """Whether notices may go out at ``t`` (no window: always)."""
    if window is None:
        return True
    return _inside(window.start, window.end, _minute_of_day(_local(t, window.timezone)))


def _next_local_time(t: float, tz: str, minute_of_day: int) -> float:
    """The first instant after ``t`` whose local wall time is ``minute_of_day`` (or, inside a
    spring-forward gap that skips it, the first instant after the gap)."""
    local = _local(t, tz)
    day = local.date()
    for offset in range(0, 3):
        d = day + timedelta(days=offset)
        naive = datetime(d.year, d.month, d.day, minute_of_day // 60, minute_of_day % 60)
        ts = _first_instant_at_or_after(naive, _zone(tz))
        if ts > t:
            return ts
    raise AssertionError("a wall-clock time recurs within three days")  # pragma: no cover


def _first_instant_at_or_after(naive: datetime, zone: ZoneInfo) -> float:
    """The first instant whose local wall time is ``naive`` or, when a spring-forward gap skips
    ``naive``, the end of the gap (the first wall time after it).

    zoneinfo maps a wall time in a gap by the pre-gap offset (fold=0), which lands as far
    after the gap as the time was into it: a 02:30-03:15 window on New York's spring-forward
    day would open at 03:30, after it closed, and notices would wait a whole day.
    """
    before = naive.replace(tzinfo=zone, fold=0).timestamp()
    if datetime.fromtimestamp(before, tz=zone).replace(tzinfo=None) == naive:
        return before  # the wall time exists (in an overlap: its first occurrence)
    after = naive.replace(tzinfo=zone, fold=1).timestamp()  # the post-gap offset: before the gap
    lo, hi = min(before, after), max(before, after)
    offset_hi = datetime.fromtimestamp(hi, tz=zone).utcoffset()
    while hi - lo > 1:  # the transition instant, to the second (transitions are whole seconds)
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz=zone).utcoffset() == offset_hi:
            hi = mid
        else:
            lo = mid
    return float(hi)


def next_open(window: TimeWindow | None, t: float) -> float:
    """``t`` if the window is open then, else the instant it next opens."""
    if is_open(window, t):
        return t
    assert window is not None
    return _next_local_time(t, window.timezone, window.start)


def next_close(window: TimeWindow, t: float) -> float:
    """The instant an open window next closes (for quiet hours: when they end)."""
    return _next_local_time(t, window.timezone, window.end)


def quiet_until(quiet: TimeWindow | None, t: float) -> float:
    """When a receiver's quiet hours (open = quiet) let a notice through: ``t`` if not quiet."""
    if quiet is None or not is_open(quiet, t):
        return t
    return next_close(quiet, t)


def release_time(window: TimeWindow | None, quiet: TimeWindow | None, t: float) -> float:
    """The first instant at or after ``t`` that is inside the policy window and outside the
    receiver's quiet hours. Iterates because leaving one may enter the other."""
    when = t
    for _ in range(8):  # each step moves to a window edge; a week of edges is plenty
        opened = next_open(window, when)
        released = quiet_until(quiet, opened)
        if released == when:
            return when
        when = released
    return when
