"""Sliding-window rate limits: how many events one key may have within a window.

One rule serves the whole hub, so that every limit answers the same way (429 with a
``Retry-After`` in whole seconds, :class:`hub.errors.RateLimited`): the login throttle of
``hub.tenancy`` counts failed logins per user name and per client address, and
:class:`hub.store.ratelimit.SharedRateLimiter` counts the expensive requests of each user (log
exports, backtests, long-range histograms and queries). Both keep their events in the state
store, so every replica of the hub sees the same window (a user cannot multiply a limit by
the number of replicas) and a restart does not reset it. The window arithmetic,
:func:`retry_after`, and the refusal, :func:`refusal`, are the same for both.

Pure: the clock is passed in; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.errors import RateLimited


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


def refusal(what: str, limit: int, window: float, wait: float) -> RateLimited:
    """The 429 of a request limit: what was refused, the limit, and when to try again."""
    return RateLimited(
        f"too many {what}: at most {limit} per {window:g} seconds; try again in {RateLimited.seconds(wait)} seconds",
        retry_after=wait,
    )
