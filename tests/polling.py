"""Waiting for something real to happen (a sandbox engine, a hub, a browser page) in tests.

One poller for every test that waits: the integration supports and the e2e journeys each had
their own copy. A check that raises ``AssertionError`` counts as "not yet" (so a check may be
written as asserts), and the failure at the deadline shows what the check said last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float = 60.0, interval: float = 1.0, what: str = "") -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy, and return that;
    after ``timeout`` seconds fail naming ``what`` and the last value (or assertion) it gave."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}: last {last!r}")
        time.sleep(interval)
