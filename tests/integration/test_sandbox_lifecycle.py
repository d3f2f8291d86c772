"""Faults and teardown of a sandbox, on a second small instance (never the shared one).

The second instance lives in a temporary directory on its own port base, with 2 nodes and a
dozen pods; the module removes it at the end (``reset``: processes and state).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.config import PORT_OFFSETS
from sandbox.core import Sandbox
from sandbox.procs import ComponentError, group_members, port_in_use

pytestmark = pytest.mark.integration


def free_port_base() -> int:
    # Below the kernel's ephemeral range (32768+), where outgoing connections could take a port.
    for base in range(21000, 28000, 1000):
        if not any(port_in_use(base + off) for off in PORT_OFFSETS.values()):
            return base
    raise RuntimeError("no free port base")


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and int(entry) != os.getpid():
            found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("second-sandbox"), port_base=free_port_base(), quiet=True)
    yield sb
    sb.reset()
    assert processes_mentioning(str(sb.dir)) == []


def test_a_port_in_use_fails_up_naming_the_port_and_stops_what_it_started(second: Sandbox) -> None:
    port = second.port("smtp")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(ComponentError) as err:
            second.up(nodes=2, pods=12, hub=False)
    message = str(err.value)
    assert f"port {port}" in message and "--port-base" in message
    # Elasticsearch was launched before the SMTP catcher failed: it was stopped again.
    assert [n for n in second.sup.names() if second.sup.alive(n)] == []
    assert processes_mentioning(str(second.dir)) == []
    assert processes_mentioning(str(second.es_dir)) == []


def test_up_after_a_crash_recovers(second: Sandbox) -> None:
    second.up(nodes=2, pods=12, hub=False)
    assert second.is_up()
    for name in ("kwok", "etcd", "nodesim"):
        pid = second.sup.pid(name)
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
    assert not second.is_up()
    # SIGKILL is delivered asynchronously: wait until the dead processes' ports are free, as
    # they would be by the time anyone runs `up` after a real crash.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(port_in_use(second.port(n)) for n in ("kwok", "etcd", "nodesim")):
        time.sleep(0.2)
    second.up()
    status = second.status()
    assert all(c["state"] == "up" for c in status["components"]), status["components"]
    assert status["nodes"] == 2


def test_down_leaves_no_sandbox_process(second: Sandbox) -> None:
    if not second.is_up():
        second.up()
    groups = [pid for name in second.sup.names() if (pid := second.sup.pid(name)) is not None]
    assert len(groups) >= 10
    stopped = second.down()
    assert len(stopped) == len(groups)
    assert all(group_members(g) == [] for g in groups)
    assert processes_mentioning(str(second.dir)) == []
    assert processes_mentioning(str(second.es_dir)) == []  # Elasticsearch's data may live elsewhere
    assert processes_mentioning(str(second.pg_dir)) == []  # so may PostgreSQL's
    assert not any(port_in_use(second.port(name)) for name in PORT_OFFSETS)
    assert second.status()["components"] and all(c["state"] == "down" for c in second.status()["components"])
