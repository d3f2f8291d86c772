"""PURE: when a still-firing alert is sent again (repeat rules per severity).

``none`` sends once. ``fixed`` re-sends every ``interval``. ``exponential`` doubles the gap
after each send (interval, 2x, 4x, ... capped at ``max_interval`` when given). All modes stop
after ``max_sends`` sends in total, the first included, so a forgotten alert cannot mail
forever.
"""

from __future__ import annotations

from hub.alerts.policy import RepeatRule

# Exponent cap: 2**40 intervals is far beyond any real alert's life and keeps floats finite.
_MAX_DOUBLINGS = 40


def gap_after(rule: RepeatRule, sends: int) -> float | None:
    """The wait after the ``sends``-th send before the next one, or None for no more sends."""
    if rule.mode == "none" or sends >= rule.max_sends or sends < 1:
        return None
    if rule.mode == "fixed":
        return rule.interval
    gap = rule.interval * 2 ** min(sends - 1, _MAX_DOUBLINGS)
    if rule.max_interval:
        gap = min(gap, rule.max_interval)
    return gap


def next_send_at(rule: RepeatRule, *, sends: int, last_sent: float | None) -> float | None:
    """When the next repeat is due, given how many sends went out and when the last one did."""
    if last_sent is None:
        return None
    gap = gap_after(rule, sends)
    return None if gap is None else last_sent + gap


def schedule(rule: RepeatRule, first: float, until: float) -> list[float]:
    """Every send time from ``first`` up to ``until`` for an alert firing all along (docs, tests)."""
    out = [first]
    while True:
        nxt = next_send_at(rule, sends=len(out), last_sent=out[-1])
        if nxt is None or nxt > until:
            return out
        out.append(nxt)
