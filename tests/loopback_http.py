"""A small HTTP server of our own on loopback, for tests that stand it in for a backend's HTTP
API (Elasticsearch's ``_search``, Prometheus's query API) or that listen for what a backend
sends (Alertmanager's webhook).

One place for the parts every such server repeats: a ``ThreadingHTTPServer`` on 127.0.0.1 with
a port the OS picks, served from a daemon thread (so a failing test cannot hang the run on it),
a handler that keeps quiet on stderr and answers with an exact ``Content-Length`` (keep-alive
clients need it to find the end of a body). What each server answers stays in its test.

Not collected by pytest (no ``test_`` prefix); importable from every test layer.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log each request to stderr and answers in one call."""

    def log_message(self, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        """The request's body (its Content-Length's worth; none without one)."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status: int, body: bytes = b"", content_type: str | None = "application/json") -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _CountingServer(ThreadingHTTPServer):
    """Counts the connections it accepts (a keep-alive test asks how many a client opened)."""

    connections = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1  # the serving thread alone accepts: no lock needed
        super().process_request(request, client_address)


class LoopbackServer:
    """Serves ``handler`` on 127.0.0.1 (a free port) from a daemon thread until ``close()``;
    ``connections`` is how many connections it has accepted so far."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = _CountingServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def connections(self) -> int:
        return self.httpd.connections

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
