"""Sliding-window rate limits: how many events one key may have within a window.

One rule serves the whole hub, so that every limit answers the same way (429 with a
``Retry-After`` in whole seconds, :class:`hub.errors.RateLimited`): the login throttle of
``hub.tenancy`` counts failed logins per user name and per client address in the state store
(so a restart does not unlock a guessed name), and :class:`RateLimiter` below counts the
expensive requests of each user (log exports, backtests, long-range histograms and queries)
in memory. The window arithmetic, :func:`retry_after`, is the same for both.

Pure: the clock is passed in; no I/O. The limiter is per process, which is the deployment the
hub supports today (one web process over SQLite; see docs/architecture.md).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from hub.errors import RateLimited
from hub.timeutil import Clock, SystemClock


def retry_after(events: Sequence[float], limit: int, window: float, now: float) -> float | None:
    """Seconds until one more event is allowed, or None if it is allowed now.

    ``events`` are the times (ascending) of the key's events within the window. With ``limit``
    of them already there, the next one must wait until enough have aged out: the
    ``limit``-th newest leaves the window at ``its time + window``. A limit of 0 or less means
    no limit.
    """
    if limit <= 0 or len(events) < limit:
        return None
    return max(0.0, events[len(events) - limit] + window - now)


class RateLimiter:
    """At most ``limit`` events per key within ``window`` seconds; thread-safe.

    ``hit`` records the event when it is allowed and raises :class:`RateLimited` (without
    recording) when it is not, so a refused request does not extend its own wait.
    """

    def __init__(self, window: float, *, clock: Clock | None = None, max_keys: int = 100_000) -> None:
        self.window = window
        self.clock = clock or SystemClock()
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys  # users x kinds; bounded so that made-up keys cannot grow it forever

    def hit(self, key: str, limit: int, *, what: str) -> None:
        """Count one event of ``key``; ``what`` names it in the refusal ("log exports")."""
        if limit <= 0 or self.window <= 0:
            return
        now = self.clock.now()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= self._max_keys:
                    self._prune(now)
                events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            wait = retry_after(events, limit, self.window, now)
            if wait is not None:
                raise RateLimited(
                    f"too many {what}: at most {limit} per {self.window:g} seconds; try again in "
                    f"{RateLimited.seconds(wait)} seconds",
                    retry_after=wait,
                )
            events.append(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]:
            del self._events[key]
