"""The window tables' kept points across a restart of ``kubehub serve`` (hub/runtime/monitoring.py:
``keep_windows`` at the stop, ``restore_windows`` before serving): a file in the data directory,
written whole or not at all, and set aside with a warning when it cannot be read. The
snapshot's own rules are pinned in test_monitoring_window.py; the served process's stop and
start in tests/integration/test_serve_process.py."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from hub.collectors.catalogue import Catalogue
from hub.collectors.monitoring import MonitoringService
from hub.collectors.monitoring_view import WindowTableUse
from hub.errors import StillComputing
from hub.runtime import build_hub
from hub.runtime.monitoring import TABLES_FILE, WINDOWS_FILE, keep_windows, read_window_tables, restore_windows
from hub.settings import Settings
from hub.timeutil import FakeClock
from tests.unit.monitoring_fakes import FakeBackend
from tests.unit.test_monitoring_service import CPU, NOW, run, series_names
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


def _served_monitoring(hub: Any, backend: Any, jobs: list[Callable[[], None]]) -> MonitoringService:
    """The hub's monitoring service over a fake Prometheus, its table builds run when the test says."""
    hub.monitoring = MonitoringService(
        Catalogue(), backend, clock=FakeClock(NOW), timeout=0.05, max_points=1000, share_seconds=5.0, spawn=jobs.append
    )
    return hub.monitoring  # type: ignore[no-any-return]


def test_the_window_tables_in_use_at_the_stop_are_built_again_after_a_restart(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """At 20,000 pods the first ranking after a restart showed "being computed" while its
    tables were built (2.6-11.4 s under load): the tables kept at the stop are named in a file,
    and the restarted hub starts building them at once."""
    ask_24h = {"metrics": "pod_cpu_usage", "sort_metric": "pod_cpu_usage", "limit": 2, "window": "24h", "stat": "max"}
    values = {CPU: {("a", "p1"): 3.0, ("b", "q1"): 2.0}}
    pods = [("a", "p1"), ("b", "q1")]
    first = build_hub(settings)
    try:
        jobs: list[Callable[[], None]] = []
        svc = _served_monitoring(first, FakeBackend(values, pods), jobs)
        with pytest.raises(StillComputing):
            run(svc, "pods", **ask_24h)
        jobs.pop()()  # the table is built and kept
        assert series_names(run(svc, "pods", **ask_24h)) == ["a/p1", "b/q1"]
        keep_windows(first)
    finally:
        first.close()
    assert json.loads((settings.data_dir / TABLES_FILE).read_text()) == [
        {"level": "pods", "metric": "pod_cpu_usage", "window": 86400.0, "stat": "max", "cluster": ""}
    ]
    second = build_hub(settings)
    try:
        jobs = []
        backend = FakeBackend(values, pods)
        svc = _served_monitoring(second, backend, jobs)
        with caplog.at_level(logging.INFO, logger="hub.runtime.monitoring"):
            assert restore_windows(second) == 0  # no points (a pod level keeps none); a table to build
            deadline = time.monotonic() + 30
            while not jobs and time.monotonic() < deadline:
                time.sleep(0.02)
        assert len(jobs) == 1 and backend.sent == []  # its build started, on the restore's thread
        jobs.pop()()
        sent = len(backend.sent)
        assert series_names(run(svc, "pods", **ask_24h)) == ["a/p1", "b/q1"]  # the first caller: kept
        assert len(backend.sent) == sent and jobs == []
    finally:
        second.close()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"level": "pods"}',
        "["
        + ",".join(
            ['{"level": "pods", "metric": "pod_cpu_usage", "window": 86400, "stat": "max", "cluster": ""}'] * 3000
        )
        + "]",
    ],
)
def test_a_tables_file_that_is_not_a_short_list_is_ignored_with_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    hub = build_hub(settings)
    try:
        (settings.data_dir / TABLES_FILE).write_text(text)
        with caplog.at_level(logging.WARNING, logger="hub.runtime.monitoring"):
            assert read_window_tables(hub) == []
        assert "not rebuilt" in caplog.text and TABLES_FILE in caplog.text
    finally:
        hub.close()


def test_entries_of_the_wrong_shape_are_skipped_and_the_others_kept(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"level": "workloads", "metric": "workload_cpu_usage", "window": 3600, "stat": "p95", "cluster": "east"}
    bad = [
        {**good, "window": 0},
        {**good, "window": 10**9},
        {**good, "window": True},
        {**good, "window": "3600"},
        {**good, "metric": None},
        {**good, "level": "x" * 300},
        ["workloads"],
    ]
    hub = build_hub(settings)
    try:
        (settings.data_dir / TABLES_FILE).write_text(json.dumps([*bad, good]))
        with caplog.at_level(logging.WARNING, logger="hub.runtime.monitoring"):
            assert read_window_tables(hub) == [WindowTableUse("workloads", "workload_cpu_usage", 3600.0, "p95", "east")]
        assert "7 entries" in caplog.text
    finally:
        hub.close()
