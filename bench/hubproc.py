"""The hub under test as its own process, as it is deployed: ``kubehub serve`` (waitress) on a
free loopback port, for the benches that compare the hub's answer time with the raw backend
query (bench/monitoring.py, bench/logs.py); and two do-nothing relay processes (:class:`Relay`)
that bench/logs.py times beside it: a bare one, and the same forwarding in Flask on waitress.

Why a process: a hub served from a thread of the bench shares the bench's interpreter (and its
GIL) with the load-generating client, so the client's own work is charged to the hub's column
and not to the raw one. In its own process the hub pays only for itself; the client then times
the hub and the raw backend from the same code path (same HTTP client, same connection reuse).

The data directory is prepared by the caller (users, tokens, projects) with an in-process hub
that is closed, or idle, while the served one runs; background work the bench does not measure
is switched off through the ordinary ``KUBEHUB_*`` settings.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
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


def serve_relay(backend_url: str, port: int) -> None:
    """A do-nothing HTTP relay: the floor of any service answered between a client and its
    backend (bench/logs.py, ``--hub process``). A hub served as its own process puts one more
    process and one more HTTP exchange between the client and the backend than the raw query
    has; timing this relay beside the hub and the raw query splits the served ratio into what
    any separate process costs and what the hub adds. It reads one request (``Content-Length``
    body), sends it unchanged (method, path, body, Content-Type) on one keep-alive
    ``http.client`` connection to the backend, and answers the backend's status and bytes with
    ``TCP_NODELAY`` set, as the hub's server (waitress) does. Standard library only; one
    thread, for one client connection at a time (``python bench/hubproc.py --relay URL PORT``)."""
    parts = urllib.parse.urlsplit(backend_url)
    backend = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients on both sides use it
        disable_nagle_algorithm = True  # else the answer's two writes meet the client's delayed ACK

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
            backend.request(self.command, self.path, body=body, headers=headers)
            answer = backend.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.getheader("Content-Type") or "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, format: str, *args: object) -> None:
            return None

    HTTPServer(("127.0.0.1", port), Forward).serve_forever()


def serve_framework_relay(backend_url: str, port: int, threads: int) -> None:
    """:func:`serve_relay`'s forwarding as a Flask view served by waitress with the hub's thread
    count: the floor of any hub built on the mandated web framework and served as its own
    process, before it does any work of its own (no authentication, scope, audit or JSON of its
    own: the backend's bytes are the answer). Timed beside the hub, it splits the served ratio
    into what the framework and server cost and what the hub's own code adds. One keep-alive
    ``http.client`` connection to the backend per worker thread."""
    import threading

    from flask import Flask, Response, request
    from waitress import serve

    parts = urllib.parse.urlsplit(backend_url)
    per_thread = threading.local()
    app = Flask("framework_relay")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def forward(path: str) -> Response:
        backend = getattr(per_thread, "backend", None)
        if backend is None:
            backend = per_thread.backend = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port or 80, timeout=60
            )
        query = request.query_string.decode("latin-1")
        backend.request(
            request.method,
            "/" + path + ("?" + query if query else ""),
            body=request.get_data() or None,
            headers={"Content-Type": request.content_type or "application/json"},
        )
        answer = backend.getresponse()
        data = answer.read()
        return Response(data, status=answer.status, content_type=answer.getheader("Content-Type") or "application/json")

    serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


class Relay:
    """:func:`serve_relay` to ``backend_url`` as a child process on a free loopback port; with
    ``framework=True`` :func:`serve_framework_relay` instead (``threads`` worker threads)."""

    def __init__(self, backend_url: str, *, framework: bool = False, threads: int = 8) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        mode = ["--relay", backend_url, str(self.port)]
        if framework:
            mode = ["--framework-relay", backend_url, str(self.port), str(threads)]
        self.proc = subprocess.Popen([sys.executable, __file__, *mode])
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit("bench: the relay did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


if __name__ == "__main__" and sys.argv[1:2] == ["--relay"]:  # `make bench` runs this file with --quick: no-op
    serve_relay(sys.argv[2], int(sys.argv[3]))
elif __name__ == "__main__" and sys.argv[1:2] == ["--framework-relay"]:
    serve_framework_relay(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
