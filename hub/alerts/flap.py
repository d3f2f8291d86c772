"""PURE: flap detection.

A (rule, entity) flaps when it changes state (fires or resolves) at least ``changes`` times
within ``window`` seconds. While it flaps its notices are held; once it has been stable for a
whole window, one summary goes out instead of the storm (PRODUCT.md "Flap damping").
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.alerts.policy import FlapDamping


def recent(changes: Sequence[float], now: float, cfg: FlapDamping) -> list[float]:
    """The change times still inside the window (older ones can be forgotten)."""
    return [t for t in changes if t > now - cfg.window]


def is_flapping(changes: Sequence[float], now: float, cfg: FlapDamping) -> bool:
    return cfg.enabled and len(recent(changes, now, cfg)) >= cfg.changes


def settled(changes: Sequence[float], now: float, cfg: FlapDamping) -> bool:
    """No change for a whole window: a held flap can be summarised and released."""
    return not changes or max(changes) <= now - cfg.window
