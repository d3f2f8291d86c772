"""Per-user limits of the expensive requests, counted in the state store (``rate_events``).

Why in the store and not in memory: with several replicas behind a round-robin balancer a
per-process window would let a user make ``limit x replicas`` exports per window, and which
replica refused would be luck. The cost is one short write transaction per *limited* request
(exports, backtests, long-range queries — the ordinary requests are not counted at all), which
docs/operations.md measures: a millisecond or two beside requests that take tens of
milliseconds to seconds.

The window rule is :func:`hub.ratelimit.retry_after`, the same as the login throttle's.
"""

from __future__ import annotations

from hub.ratelimit import refusal, retry_after
from hub.store.db import StateStore
from hub.timeutil import Clock, SystemClock


class SharedRateLimiter:
    """At most ``limit`` events per (kind, subject) within ``window`` seconds, across replicas.

    ``hit`` records the event when it is allowed and raises :class:`hub.errors.RateLimited`
    (without recording) when it is not, so a refused request does not extend its own wait.
    The check and the insert are one write transaction, so two replicas counting the same
    user at once cannot both take the last place.
    """

    def __init__(self, db: StateStore, window: float, *, clock: Clock | None = None) -> None:
        self.db = db
        self.window = window
        self.clock = clock or SystemClock()
        self._swept = float("-inf")

    def hit(self, kind: str, subject: str, limit: int, *, what: str) -> None:
        """Count one event of ``subject``; ``what`` names it in the refusal ("log exports")."""
        if limit <= 0 or self.window <= 0:
            return
        now = self.clock.now()
        horizon = now - self.window
        with self.db.transaction():
            if now - self._swept >= self.window:
                # Users who stopped making requests: their rows would otherwise stay forever.
                self.db.execute("DELETE FROM rate_events WHERE at <= ?", (horizon,))
                self._swept = now
            rows = self.db.query(
                "SELECT at FROM rate_events WHERE kind = ? AND subject = ? AND at > ? ORDER BY at",
                (kind, subject, horizon),
            )
            wait = retry_after([float(r[0]) for r in rows], limit, self.window, now)
            if wait is None:
                self.db.execute("INSERT INTO rate_events(kind, subject, at) VALUES (?, ?, ?)", (kind, subject, now))
        if wait is not None:
            raise refusal(what, limit, self.window, wait)
