"""Clock and time parsing shared by every layer.

The pure core never calls ``time.time()`` itself: it receives a ``Clock`` so that tests drive
time explicitly.
"""

from __future__ import annotations

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


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float, *, field: str = "duration") -> float:
    """Parse ``30s``, ``5m``, ``1h30m``, ``2d`` into seconds.

    Plain numbers are seconds. Anything else (``5mins``, ``-1m``, empty) is an InvalidInput
    naming ``field`` so that users see which input is wrong.
    """
    if isinstance(text, bool):
        raise InvalidInput(f"{field}: expected a duration such as 30s, 5m or 1h, got {text!r}", field=field)
    if isinstance(text, int | float):
        if text <= 0:
            raise InvalidInput(f"{field}: duration must be positive, got {text!r}", field=field)
        return float(text)
    s = str(text).strip()
    if s and _DURATION_PART.sub("", s) == "" and s[0].isdigit():
        total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(s))
        if total > 0:
            return total
    raise InvalidInput(
        f"{field}: {text!r} is not a duration; use a number and one of ms, s, m, h, d, w (e.g. 30s, 5m, 1h30m)",
        field=field,
    )


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


def parse_time(text: str | int | float, *, field: str = "time") -> float:
    """Epoch seconds (int/float or numeric string) or RFC 3339 -> epoch seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{field}: {text!r} is neither epoch seconds nor RFC 3339", field=field) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 in UTC with a Z, millisecond precision."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
