"""A Prometheus text-format endpoint for the benches' synthetic exporters (bench/alerts.py,
bench/inbox.py): every GET answers with what ``body()`` returns at that moment, so a private
Prometheus scrapes values the bench decides."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def exposition_server(port: int, body: Callable[[], bytes]) -> ThreadingHTTPServer:
    """The server on 127.0.0.1:``port``, not yet serving (call ``serve_forever``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)
