"""Pure timing rules: notification windows, quiet hours, repeat schedules, flap detection."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hub.alerts import flap, repeat, windows
from hub.alerts.policy import FlapDamping, RepeatRule, TimeWindow

pytestmark = pytest.mark.unit


def at(text: str, tz: str) -> float:
    """Epoch seconds of a local wall time, e.g. at('2026-11-22 23:30', 'Asia/Shanghai')."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def local(t: float, tz: str) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


SHANGHAI_NIGHT = TimeWindow(start=22 * 60, end=6 * 60, timezone="Asia/Shanghai")
NEW_YORK_NIGHT = TimeWindow(start=22 * 60, end=6 * 60, timezone="America/New_York")


@pytest.mark.parametrize(
    ("when", "tz", "open_"),
    [
        ("2026-11-22 21:59", "Asia/Shanghai", False),
        ("2026-11-22 22:00", "Asia/Shanghai", True),
        ("2026-11-22 23:59", "Asia/Shanghai", True),
        ("2026-11-23 00:00", "Asia/Shanghai", True),
        ("2026-11-23 05:59", "Asia/Shanghai", True),
        ("2026-11-23 06:00", "Asia/Shanghai", False),
        ("2026-11-23 12:00", "Asia/Shanghai", False),
    ],
)
def test_a_window_across_midnight_is_open_late_and_early(when: str, tz: str, open_: bool) -> None:
    assert windows.is_open(SHANGHAI_NIGHT, at(when, tz)) is open_


def test_the_same_window_in_two_time_zones_opens_at_different_instants() -> None:
    # 23:00 in Shanghai is 10:00 in New York (winter): open there, closed here.
    t = at("2026-11-22 23:00", "Asia/Shanghai")
    assert windows.is_open(SHANGHAI_NIGHT, t)
    assert not windows.is_open(NEW_YORK_NIGHT, t)
    opens = windows.next_open(NEW_YORK_NIGHT, t)
    assert local(opens, "America/New_York") == "2026-11-22 22:00"
    assert local(opens, "Asia/Shanghai") == "2026-11-23 11:00"


def test_a_held_notice_is_released_when_the_window_next_opens() -> None:
    window = TimeWindow(start=9 * 60, end=2 * 60, timezone="Asia/Shanghai")  # API.md's example
    t = at("2026-11-23 03:15", "Asia/Shanghai")
    assert not windows.is_open(window, t)
    assert local(windows.next_open(window, t), "Asia/Shanghai") == "2026-11-23 09:00"
    t2 = at("2026-11-23 01:59", "Asia/Shanghai")
    assert windows.next_open(window, t2) == t2


def test_windows_follow_the_wall_clock_across_daylight_saving() -> None:
    window = TimeWindow(start=9 * 60, end=17 * 60, timezone="Europe/Berlin")
    # Saturday 2026-03-28 20:00 CET; the clocks spring forward that night.
    t = at("2026-03-28 20:00", "Europe/Berlin")
    opens = windows.next_open(window, t)
    assert local(opens, "Europe/Berlin") == "2026-03-29 09:00"
    assert opens - t == 12 * 3600  # 13 wall-clock hours, one of which does not exist


def test_quiet_hours_hold_until_they_end_in_the_receivers_zone() -> None:
    quiet = TimeWindow(start=22 * 60, end=7 * 60, timezone="Europe/Berlin")
    t = at("2026-11-22 23:30", "Europe/Berlin")
    assert local(windows.quiet_until(quiet, t), "Europe/Berlin") == "2026-11-23 07:00"
    noon = at("2026-11-22 12:00", "Europe/Berlin")
    assert windows.quiet_until(quiet, noon) == noon


def test_release_time_satisfies_both_the_policy_window_and_the_quiet_hours() -> None:
    window = TimeWindow(start=6 * 60, end=23 * 60, timezone="UTC")
    quiet = TimeWindow(start=22 * 60, end=8 * 60, timezone="Europe/Berlin")  # 21:00-07:00 UTC in winter
    t = at("2026-11-22 23:30", "UTC")
    released = windows.release_time(window, quiet, t)
    assert local(released, "UTC") == "2026-11-23 07:00"
    assert windows.is_open(window, released) and not windows.is_open(quiet, released)


def test_no_repeat_sends_once() -> None:
    assert repeat.schedule(RepeatRule(mode="none"), 0, 10**6) == [0]


def test_fixed_repeats_every_interval_up_to_max_sends() -> None:
    rule = RepeatRule(mode="fixed", interval=300, max_sends=4)
    assert repeat.schedule(rule, 1000, 10**6) == [1000, 1300, 1600, 1900]
    assert repeat.schedule(rule, 1000, 1500) == [1000, 1300]


def test_exponential_back_off_doubles_the_gap_and_respects_the_cap() -> None:
    rule = RepeatRule(mode="exponential", interval=120, max_sends=5)
    assert repeat.schedule(rule, 0, 10**6) == [0, 120, 360, 840, 1800]
    capped = RepeatRule(mode="exponential", interval=120, max_sends=6, max_interval=300)
    assert repeat.schedule(capped, 0, 10**6) == [0, 120, 360, 660, 960, 1260]


@pytest.mark.parametrize(
    ("severity_rule", "expected"),
    [
        (RepeatRule(mode="fixed", interval=300, max_sends=10), 10),
        (RepeatRule(mode="exponential", interval=120, max_sends=5), 5),
        (RepeatRule(mode="none"), 1),
    ],
)
def test_max_sends_caps_every_mode_however_long_it_fires(severity_rule: RepeatRule, expected: int) -> None:
    assert len(repeat.schedule(severity_rule, 0, 10**9)) == expected


def test_next_send_is_none_before_the_first_send() -> None:
    assert repeat.next_send_at(RepeatRule(mode="fixed", interval=60, max_sends=3), sends=0, last_sent=None) is None


def test_flap_detection_counts_changes_within_the_window() -> None:
    cfg = FlapDamping(changes=4, window=3600)
    changes = [0, 600, 1200]
    assert not flap.is_flapping(changes, 1300, cfg)
    assert flap.is_flapping([*changes, 1800], 1900, cfg)
    assert not flap.is_flapping([*changes, 1800], 3700, cfg)  # the first change left the window
    assert not flap.settled([*changes, 1800], 5000, cfg)
    assert flap.settled([*changes, 1800], 5400, cfg)
    assert not flap.is_flapping([0, 1, 2, 3, 4], 5, FlapDamping(enabled=False))
