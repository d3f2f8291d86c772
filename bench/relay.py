"""A do-nothing HTTP relay in a process of its own: the floor of any service answered between a
client and its backend (bench/logs.py, ``--hub process``).

Why: a hub served as its own process puts one more process and one more HTTP exchange between
the client and Elasticsearch than the raw query has. On a 2-core machine that costs a share of a
millisecond-scale search no hub work can win back (a 1.5 ms search through this relay measured
p50 1.18-1.20x and p95 1.38-1.42x the direct one, load 0.4-0.7). Timing the relay beside the hub
and the raw query, interleaved, splits the served ratio into what any separate process costs
and what the hub adds on top of that.

The relay reads one request (``Content-Length`` body), sends it unchanged (method, path,
body, Content-Type) on one keep-alive ``http.client`` connection to the backend, and answers
the backend's status and bytes with ``TCP_NODELAY`` set, as the hub's server (waitress) does.
Standard library only; one thread, for one client connection at a time.

    python bench/relay.py BACKEND_URL PORT
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer


def serve(backend_url: str, port: int) -> None:
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


class Relay:
    """The relay to ``backend_url`` as a child process on a free loopback port."""

    def __init__(self, backend_url: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, __file__, backend_url, str(self.port)])
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


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
