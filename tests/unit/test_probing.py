"""hub/runtime/probing.py: the backend probes are asked at the same time, answers in order."""

from __future__ import annotations

import threading

import pytest

from hub.runtime.probing import started, together

pytestmark = pytest.mark.unit


def test_the_calls_run_at_the_same_time_and_answer_in_their_order() -> None:
    # Each call waits until all three are running: one after the other they would break the
    # barrier (its timeout) instead of passing it.
    barrier = threading.Barrier(3, timeout=10)

    def probe(name: str) -> str:
        barrier.wait()
        return name

    assert together([lambda: probe("state"), lambda: probe("prometheus"), lambda: probe("smtp")]) == [
        "state",
        "prometheus",
        "smtp",
    ]


def test_a_started_call_runs_while_the_caller_works_and_its_error_comes_when_asked() -> None:
    running = threading.Event()

    def failing() -> int:
        running.set()
        raise RuntimeError("no answer")

    wait = started(failing)
    assert running.wait(10)  # it ran before anyone asked for its result
    with pytest.raises(RuntimeError, match="no answer"):
        wait()


def test_a_probe_still_waiting_does_not_hold_up_a_stopping_process() -> None:
    """A probe waiting out its timeout must not keep ``kubehub serve`` from exiting (with a
    ``ThreadPoolExecutor`` the interpreter joins the probe's thread at exit)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    code = (
        "import threading, time\n"
        "from hub.runtime.probing import started\n"
        "running = threading.Event()\n"
        "started(lambda: (running.set(), time.sleep(60)))\n"
        "assert running.wait(10)\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], timeout=50, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert time.monotonic() - began < 30  # not the probe's 60 s
