"""The hub under test as its own process, as it is deployed: ``kubehub serve`` (waitress) on a
free loopback port, for the benches that compare the hub's answer time with the raw backend
query (bench/monitoring.py, bench/logs.py).

Why a process: a hub served from a thread of the bench shares the bench's interpreter (and its
GIL) with the load-generating client, so the client's own work is charged to the hub's column
and not to the raw one. In its own process the hub pays only for itself; the client then times
the hub and the raw backend from the same code path (same HTTP client, same connection reuse).

The data directory is prepared by the caller (users, tokens, projects) with an in-process hub
that is closed, or idle, while the served one runs; background work the bench does not measure
is switched off through the ordinary ``KUBEHUB_*`` settings.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop a bench's private processes, last started first: SIGTERM to all, then up to 20 s
    each to exit, then SIGKILL."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedHub:
    """``kubehub serve`` on ``data_dir`` with ``settings`` (``KUBEHUB_*`` names without the prefix,
    e.g. ``PROMETHEUS_URL``). ``preamble`` is Python run in the served process before the CLI
    (used only to turn answer sharing off for the monitoring bench's fresh path, as the in-process
    bench did by setting the TTL to 0). Its output goes to a temporary file, shown if it fails."""

    def __init__(self, data_dir: Path, settings: dict[str, str], *, preamble: str = "", role: str = "all") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEHUB_")}
        env.update(
            KUBEHUB_DATA_DIR=str(data_dir),
            KUBEHUB_HTTP_HOST="127.0.0.1",
            KUBEHUB_HTTP_PORT=str(self.port),
            KUBEHUB_KUBERNETES_KUBECONFIG="none",
            KUBEHUB_LOG_LEVEL="warning",
            KUBEHUB_LOGS_SHIP="false",
            KUBEHUB_ALERTS_EVALUATE="false",
        )
        env.update({f"KUBEHUB_{k}": v for k, v in settings.items()})  # the caller wins (inbox.py: evaluate)
        code = f"{preamble}\nimport sys\nfrom hub.cli import main\nsys.exit(main(['serve', '--role', {role!r}]))\n"
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._log.seek(0)
                output = self._log.read()[-2000:]  # before close() closes the file
                self.close()
                raise SystemExit(f"bench: kubehub serve did not answer /healthz:\n{output}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
