"""Starting, finding and stopping the sandbox's processes.

Every component runs in its own session (so its process group id is its pid) and is recorded in
``run/<name>.pid`` together with the kernel's start time of that pid. A recorded pid only counts
as ours while the start time still matches, so a recycled pid is never signalled. ``stop`` signals
the whole process group (Elasticsearch's launcher forks the server JVM; setpriv execs) and waits
until no member of the group is left.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ComponentError(RuntimeError):
    """A component could not be started; the message is the one line the user sees."""

    def __init__(self, component: str, reason: str, log: Path | None = None) -> None:
        self.component = component
        self.reason = reason
        self.log = log
        where = f" (log: {log})" if log else ""
        super().__init__(f"{component}: {reason}{where}")


@dataclass
class ProcSpec:
    name: str
    argv: Sequence[str]
    log: Path
    cwd: Path | None = None
    env: dict[str, str] | None = None
    user: str | None = None  # run as this system user via setpriv (Elasticsearch refuses root)
    ports: Sequence[int] = field(default_factory=tuple)
    stamp: str = ""  # e.g. a digest of the code it runs: a different stamp means "restart me"
    # The signal `stop` sends first. PostgreSQL needs SIGINT (its "fast" shutdown): on SIGTERM it
    # waits for every client to disconnect, and its backends are in sessions of their own.
    stop_signal: str = "SIGTERM"


def _start_ticks(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(rest[19])


def _pgrp(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2 :].split()
    if rest[0] == "Z" and int(rest[17]) <= 1:
        # A zombie holds no resources; its parent reaps it. But a multi-threaded process whose
        # main thread has exited shows its leader as a zombie while the other threads still run
        # their exit, and its files (a listening socket) close only when the last one ends:
        # counted as gone then, a stop returned early and the next start found the port taken.
        return None
    return int(rest[2])


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pgrp(int(entry)) == pgid:
            members.append(int(entry))
    return members


def rss_bytes(pgid: int) -> int:
    """Resident memory of every process of a group (what the component costs the machine)."""
    total = 0
    for pid in group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_owner(port: int) -> str:
    """Best-effort name of the program listening on a port, for the error message."""
    if not shutil.which("ss"):
        return "another program"
    try:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "another program"
    if 'users:(("' in out:
        name = out.split('users:(("', 1)[1].split('"', 1)[0]
        pid = out.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in out else "?"
        return f"{name} (pid {pid})"
    return "another program"


def wait_for(
    check: Callable[[], bool], *, timeout: float, interval: float = 0.25, alive: Callable[[], bool] | None = None
) -> bool:
    """Poll ``check`` until it is true; give up at ``timeout`` or as soon as ``alive`` says the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return True
        if alive is not None and not alive():
            return False
        time.sleep(interval)
    return False


class Supervisor:
    """The pid files of one sandbox directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The component's pid if the recorded process is still the one we started."""
        try:
            rec = json.loads(self._pidfile(name).read_text())
        except (OSError, ValueError):
            return None
        pid = int(rec["pid"])
        ticks = _start_ticks(pid)
        if ticks is None or ticks != rec.get("ticks") or _pgrp(pid) is None:
            return None
        return pid

    def alive(self, name: str) -> bool:
        return self.pid(name) is not None

    def names(self) -> list[str]:
        if not self.run_dir.exists():
            return []
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))

    def recorded_argv(self, name: str) -> list[str] | None:
        try:
            return list(json.loads(self._pidfile(name).read_text())["argv"])
        except (OSError, ValueError, KeyError):
            return None

    def outdated(self, spec: ProcSpec) -> bool:
        """Whether the running component was started with another command line or code stamp."""
        try:
            rec = json.loads(self._pidfile(spec.name).read_text())
        except (OSError, ValueError):
            return False
        return bool(rec.get("argv") != self.final_argv(spec) or rec.get("stamp", "") != spec.stamp)

    @staticmethod
    def final_argv(spec: ProcSpec) -> list[str]:
        argv = list(spec.argv)
        if spec.user and os.geteuid() == 0:
            argv = ["setpriv", f"--reuid={spec.user}", f"--regid={spec.user}", "--init-groups", "--", *argv]
        return argv

    def start(self, spec: ProcSpec) -> int:
        for port in spec.ports:
            if port_in_use(port):
                raise ComponentError(
                    spec.name,
                    f"port {port} is in use by {port_owner(port)}; choose another port base with "
                    "`kubehub sandbox up --port-base N` (ports are N+offset) or stop that program",
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        argv = self.final_argv(spec)
        env = dict(os.environ)
        if spec.env:
            env.update(spec.env)
        with open(spec.log, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=str(spec.cwd) if spec.cwd else None,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise ComponentError(spec.name, f"cannot execute {argv[0]}: {exc.strerror}", spec.log) from exc
        ticks = _start_ticks(proc.pid)
        tmp = self._pidfile(spec.name).with_suffix(".tmp")
        record = {"pid": proc.pid, "ticks": ticks, "argv": argv, "stamp": spec.stamp, "stop_signal": spec.stop_signal}
        tmp.write_text(json.dumps(record))
        tmp.replace(self._pidfile(spec.name))
        # The Popen object is dropped on purpose: the process outlives this command. Mark it
        # reaped-by-someone-else so Python does not warn about it at exit.
        proc.returncode = 0
        return proc.pid

    def stop(self, name: str, *, timeout: float = 15.0) -> bool:
        """Stop the component's whole process group; True if something was running."""
        pid = self.pid(name)
        pidfile = self._pidfile(name)
        if pid is None:
            pidfile.unlink(missing_ok=True)
            return False
        pgid = pid
        try:
            first = signal.Signals[json.loads(pidfile.read_text()).get("stop_signal", "SIGTERM")]
        except (OSError, ValueError, KeyError):
            first = signal.SIGTERM
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, first)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_members(pgid):
            _reap()
            time.sleep(0.1)
        if group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and group_members(pgid):
                _reap()
                time.sleep(0.1)
        # A child of this very process stays a zombie until reaped, and a zombie's pid still
        # "exists": PostgreSQL would take it for a running postmaster on the next start.
        _reap()
        pidfile.unlink(missing_ok=True)
        return True


def process_snapshot(pid: int) -> str:
    """What a process that runs but does not answer is doing, in a few words: its state, the
    kernel function it waits in, its threads and the CPU time it has used (a component spinning
    on the CPU and one waiting on a lock or the network look alike from outside otherwise)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return "gone"
    rest = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(rest[11]) + int(rest[12])) / ticks
    waits = f", waiting in {wchan}" if wchan not in ("", "0") else ""  # "0": hidden in containers
    return f"state {rest[0]}{waits}, {rest[17]} threads, {cpu:.1f} s of CPU"


def _reap() -> None:
    """Collect exited children of this process (components started by this same command)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def tail(path: Path, lines: int = 5) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
