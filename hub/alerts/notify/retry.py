"""Stage: delivery retry with exponential back-off.

The notifier decides whether a failure is worth retrying (connection refused, timeout, 4xx:
yes; a 5xx refusal of the address: no) and the outbox waits ``backoff(attempts)`` before the
next try. There is no give-up for retryable failures: an SMTP outage of a day delivers a
day late, in order, rather than never.
"""

from __future__ import annotations


def backoff(attempts: int, *, initial: float, maximum: float) -> float:
    """Seconds to wait after ``attempts`` failed tries: initial, 2x, 4x ... capped."""
    if attempts <= 0:
        return 0.0
    return float(min(maximum, initial * 2 ** min(attempts - 1, 30)))
