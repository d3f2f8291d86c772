"""The window tables' kept points across a restart of ``kubehub serve`` (hub/runtime/monitoring.py:
``keep_windows`` at the stop, ``restore_windows`` before serving): a file in the data directory,
written whole or not at all, and set aside with a warning when it cannot be read. The
snapshot's own rules are pinned in test_monitoring_window.py; the served process's stop and
start in tests/integration/test_serve_process.py."""

from __future__ import annotations

import logging
import time

import pytest

from hub.runtime import build_hub
from hub.runtime.monitoring import WINDOWS_FILE, keep_windows, restore_windows
from hub.settings import Settings
from hub.timeutil import FakeClock
from tests.unit.test_monitoring_window import SERIES, T0, RangeBackend, ask, value

pytestmark = pytest.mark.unit


def test_the_points_a_stopped_hub_kept_come_back_in_the_next_one(settings: Settings) -> None:
    first = build_hub(settings)
    try:
        assert restore_windows(first) == 0  # no file yet: nothing, and no complaint
        ask(first.monitoring.windows, RangeBackend(SERIES, value), T0 + 200.0)
        keep_windows(first)
    finally:
        first.close()
    path = settings.data_dir / WINDOWS_FILE
    assert path.is_file() and not path.with_name(WINDOWS_FILE + ".new").exists()
    second = build_hub(settings)
    try:
        assert restore_windows(second) == 288
        backend = RangeBackend(SERIES, value)
        ask(second.monitoring.windows, backend, T0 + 200.0)
        assert backend.calls == []
    finally:
        second.close()


def test_a_file_that_cannot_be_read_is_set_aside_with_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    hub = build_hub(settings)
    try:
        path = settings.data_dir / WINDOWS_FILE
        path.write_bytes(b"half a file")
        with caplog.at_level(logging.WARNING, logger="hub.runtime.monitoring"):
            assert restore_windows(hub) == 0
        assert "not restored" in caplog.text and "not a window snapshot" in caplog.text
        assert not path.exists() and path.with_name(WINDOWS_FILE + ".unreadable").read_bytes() == b"half a file"
        keep_windows(hub)  # an empty set of windows is still a readable file
        assert restore_windows(hub) == 0 and path.exists()
    finally:
        hub.close()


def test_a_restored_hub_asks_at_once_for_the_points_since_its_stop(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """restore_windows starts the catch-up (SteppedWindows.catch_up) on a thread of its own, so
    the first ranking after a restart finds the points since the stop already kept."""
    first = build_hub(settings)
    try:
        ask(first.monitoring.windows, RangeBackend(SERIES, value), T0 + 200.0)
        keep_windows(first)
    finally:
        first.close()
    second = build_hub(settings, clock=FakeClock(T0 + 800.0))  # restarted two steps later
    try:
        backend = RangeBackend(SERIES, value)
        second.monitoring.backend_of = lambda cluster="": backend  # type: ignore[method-assign]
        with caplog.at_level(logging.INFO, logger="hub.runtime.monitoring"):
            assert restore_windows(second) == 288
            deadline = time.monotonic() + 30
            while "caught up" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.02)
        assert "caught up 1 restored window point sets" in caplog.text
        assert backend.calls == [(T0 + 300, T0 + 600, 300)]
        backend.calls.clear()
        ask(second.monitoring.windows, backend, T0 + 800.0)
        assert backend.calls == []
    finally:
        second.close()
