"""Process supervision of the sandbox, with ordinary shell processes (no engines)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from sandbox.procs import ComponentError, ProcSpec, Supervisor, group_members, port_in_use, process_snapshot

pytestmark = pytest.mark.unit


def test_stop_ends_the_whole_process_group_including_children(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "run")
    # A parent that forks a child, as Elasticsearch's launcher does.
    pid = sup.start(ProcSpec(name="demo", argv=["sh", "-c", "sleep 300 & sleep 300"], log=tmp_path / "demo.log"))
    deadline = time.monotonic() + 5
    while len(group_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(pid)) >= 2
    assert sup.pid("demo") == pid
    assert sup.stop("demo") is True
    assert group_members(pid) == []
    assert sup.pid("demo") is None
    assert sup.stop("demo") is False


def test_a_recorded_pid_with_another_start_time_is_not_ours(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "run")
    pid = sup.start(ProcSpec(name="demo", argv=["sleep", "300"], log=tmp_path / "demo.log"))
    try:
        record = json.loads((tmp_path / "run" / "demo.pid").read_text())
        record["ticks"] -= 1  # as if the pid had been recycled by another process
        (tmp_path / "run" / "demo.pid").write_text(json.dumps(record))
        assert sup.pid("demo") is None
        assert sup.stop("demo") is False  # never signals a process that is not ours
        assert group_members(pid) == [pid]
    finally:
        import os
        import signal

        os.killpg(pid, signal.SIGKILL)


def test_a_port_in_use_is_refused_with_the_port_and_the_way_out(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(ComponentError) as err:
            Supervisor(tmp_path / "run").start(
                ProcSpec(name="demo", argv=["true"], log=tmp_path / "x.log", ports=[port])
            )
    assert f"port {port}" in str(err.value) and "--port-base" in str(err.value)
    assert not port_in_use(port)


def test_a_component_that_runs_but_does_not_answer_is_described_by_what_it_does(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "run")
    spinning = sup.start(ProcSpec(name="spin", argv=["python3", "-c", "while True: pass"], log=tmp_path / "spin.log"))
    sleeping = sup.start(ProcSpec(name="nap", argv=["sleep", "30"], log=tmp_path / "nap.log"))
    try:
        deadline = time.monotonic() + 30

        def cpu_of(snapshot: str) -> float:
            return float(snapshot.rsplit(", ", 1)[1].split(" s of CPU")[0])

        while cpu_of(process_snapshot(spinning)) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.2)  # on a loaded machine it gets the CPU slowly
        busy, idle = process_snapshot(spinning), process_snapshot(sleeping)
        assert busy.startswith("state R") and "1 threads" in busy
        assert cpu_of(busy) >= 0.3
        assert idle.startswith("state S") and cpu_of(idle) < 0.1
    finally:
        sup.stop("spin")
        sup.stop("nap")
    assert process_snapshot(spinning) == "gone"


def test_a_process_whose_main_thread_exited_is_a_member_while_its_other_threads_run(tmp_path: Path) -> None:
    """Node's main thread can exit before its worker threads: the leader then reads as a zombie
    in /proc while the process still holds its files (its listening socket). ci12's OIDC restart
    test found its port taken because a stop counted such a process as gone."""
    import os
    import signal
    import subprocess
    import sys

    port_file = tmp_path / "port"
    code = (
        "import ctypes, socket, threading, time\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        f"open({str(port_file)!r}, 'w').write(str(s.getsockname()[1]))\n"
        "threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"  # the main thread ends; the sleeper keeps the process
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        state = ""
        while time.monotonic() < deadline:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
            state = stat[stat.rindex(")") + 2 :].split()[0]
            if state == "Z" and port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        assert state == "Z", "the leader never read as a zombie"
        port = int(port_file.read_text())
        assert port_in_use(port)  # the process still holds its socket ...
        assert group_members(proc.pid) == [proc.pid]  # ... so it is not gone
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert group_members(proc.pid) == []
