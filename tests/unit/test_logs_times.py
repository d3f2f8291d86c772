"""Log timestamps read and printed by hand (hub/collectors/logs/store.py) agree with Python's
datetime, the outside reference, on every instant and every malformed calendar date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.collectors.logs.store import iso_micro, parse_rfc3339_ns

pytestmark = pytest.mark.unit


@settings(max_examples=500, deadline=None)
@given(micros=st.integers(min_value=0, max_value=4_102_444_800 * 1_000_000))  # 1970 .. 2100
def test_printing_matches_datetime(micros: int) -> None:
    ts = micros / 1_000_000
    seconds, rest = divmod(round(ts * 1_000_000), 1_000_000)
    expected = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:06d}Z"
    assert iso_micro(ts) == expected


@settings(max_examples=500, deadline=None)
@given(
    year=st.integers(min_value=1970, max_value=2100),
    month=st.integers(min_value=1, max_value=12),
    day=st.integers(min_value=1, max_value=31),
    hour=st.integers(min_value=0, max_value=24),
    minute=st.integers(min_value=0, max_value=60),
    second=st.integers(min_value=0, max_value=60),
    frac=st.text(alphabet="0123456789", min_size=0, max_size=9),
    zone=st.sampled_from(["Z", "z", "+00:00", "+05:30", "-08:00", "+0130", "-1200"]),
)
def test_parsing_matches_datetime(
    year: int, month: int, day: int, hour: int, minute: int, second: int, frac: str, zone: str
) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    text += (f".{frac}" if frac else "") + zone
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # Feb 30, hour 24, minute or second 60: not an instant
        assert parse_rfc3339_ns(text) is None
        return
    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        base -= offset if zone[0] == "+" else -offset
    expected = int(base.timestamp()) * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
    assert parse_rfc3339_ns(text) == expected
