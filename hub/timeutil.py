"""Clock and time parsing shared by every layer.

The pure core never calls ``time.time()`` itself: it receives a ``Clock`` so that tests drive
time explicitly.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Protocol

from hub.errors import InvalidInput


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to; for tests and backtests."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = float(when)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Documented bounds of every time and duration the hub accepts (README "Input limits").
# Outside them arithmetic on epoch seconds overflows datetime, SQLite INTEGER or float range
# (a 400-digit duration is float infinity), so they are refused where they are parsed.
TIME_MIN = 0.0  # 1970-01-01T00:00:00Z
TIME_MAX = 4_102_444_800.0  # 2100-01-01T00:00:00Z
MAX_DURATION = 3650 * 86400.0  # ten years
_MAX_TEXT = 64  # characters of a duration or time string; longer ones are never valid


def parse_duration(text: str | int | float, *, field: str = "duration") -> float:
    """Parse ``30s``, ``5m``, ``1h30m``, ``2d`` into seconds.

    Plain numbers are seconds. Anything else (``5mins``, ``-1m``, empty, NaN, infinity, more
    than :data:`MAX_DURATION`) is an InvalidInput naming ``field`` so that users see which
    input is wrong.
    """
    if isinstance(text, bool):
        raise InvalidInput(f"{field}: expected a duration such as 30s, 5m or 1h, got {text!r}", field=field)
    if isinstance(text, int | float):
        total = math.inf if abs(text) >= 1e300 else float(text)  # an int beyond float range: too long
    else:
        s = str(text).strip()
        if not (s and len(s) <= 1000 and s[0].isdigit() and _DURATION_PART.sub("", s) == ""):
            raise InvalidInput(
                f"{field}: {_short(text)} is not a duration; use a number and one of ms, s, m, h, d, w "
                "(e.g. 30s, 5m, 1h30m)",
                field=field,
            )
        # A 400-digit count is float infinity: caught below with the too-long durations.
        total = (
            math.inf if len(s) > _MAX_TEXT else sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(s))
        )
    if math.isnan(total):
        raise InvalidInput(f"{field}: a duration must be a number, got NaN", field=field)
    if total > MAX_DURATION:
        raise InvalidInput(f"{field}: a duration may be at most {MAX_DURATION / 86400:.0f} days", field=field)
    if total <= 0:
        raise InvalidInput(f"{field}: duration must be positive, got {_short(text)}", field=field)
    return total


def _short(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error must never echo a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(seconds: float) -> str:
    """The shortest exact form: 90 -> '1m30s', 3600 -> '1h'."""
    seconds = round(seconds)
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


_LEAP_SECOND = re.compile(r"(T|t| )(\d{2}):(\d{2}):60(?=[.,+\-Zz]|$)")


def parse_time(text: str | int | float, *, field: str = "time") -> float:
    """Epoch seconds (int/float or numeric string) or RFC 3339 -> epoch seconds.

    Only finite times from :data:`TIME_MIN` (1970) to :data:`TIME_MAX` (2100) are accepted:
    beyond them the stores' day partitions and ``datetime`` overflow. A leap second
    (``23:59:60``, valid RFC 3339) is read as the first instant of the next minute, as POSIX
    time does.
    """
    if isinstance(text, bool):
        raise InvalidInput(f"{field}: expected epoch seconds or RFC 3339, got {text!r}", field=field)
    if isinstance(text, int | float):
        value = math.inf if abs(text) >= 1e300 else float(text)
    else:
        s = str(text).strip()
        if len(s) > _MAX_TEXT:
            raise InvalidInput(f"{field}: {_short(text)} is neither epoch seconds nor RFC 3339", field=field)
        try:
            value = float(s)
        except ValueError:
            value = _parse_rfc3339(s, text, field)
    if not math.isfinite(value) or not TIME_MIN <= value <= TIME_MAX:
        raise InvalidInput(
            f"{field}: {_short(text)} is outside the accepted times "
            f"(epoch seconds {TIME_MIN:.0f} to {TIME_MAX:.0f}, 1970-01-01 to 2100-01-01 UTC)",
            field=field,
        )
    return value + 0.0  # -0.0 -> 0.0


def _parse_rfc3339(s: str, original: object, field: str) -> float:
    leap = 0.0
    match = _LEAP_SECOND.search(s)
    if match:
        s, leap = s[: match.start()] + f"{match.group(1)}{match.group(2)}:{match.group(3)}:59" + s[match.end() :], 1.0
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{field}: {_short(original)} is neither epoch seconds nor RFC 3339", field=field) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp() + leap
    except (OverflowError, ValueError):  # year 1 or 9999 with an offset that leaves datetime's range
        return math.inf


_ISO_MIN = -62_135_596_800.0  # 0001-01-01T00:00:00Z, datetime's first instant
_ISO_MAX = 253_402_300_799.0  # 9999-12-31T23:59:59Z, its last whole second


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 in UTC with a Z, millisecond precision.

    Total: a time beyond datetime's range (or NaN) renders as the nearest end of it. The
    parsers above never let such a time in, but rows stored before they were bounded (a
    silence starting at 1e15 s) must not make every later listing fail.
    """
    if not _ISO_MIN <= ts <= _ISO_MAX:
        ts = _ISO_MIN if ts < 0 else _ISO_MAX  # NaN compares false both ways: the far end
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
