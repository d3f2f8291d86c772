"""One keep-alive ``http.client`` connection per thread to one plain-HTTP backend, reopened
once when the server closed it while idle: the part the hub's hot read paths share
(Elasticsearch searches in ``hub/collectors/logs/es_http.py``, Prometheus instant queries in
``hub/collectors/prometheus.py``).

Why not the vendor clients there: their layers (requests' sessions and adapters, urllib3's
pool, the Elasticsearch transport) cost more CPU per call than the whole request on a bare
connection (one keep-alive GET measured in-process: requests 0.53-0.59 ms, urllib3 0.17-0.19
ms, http.client 0.08-0.09 ms). Only the standard library is used here, so each adapter keeps
its one vendor library for everything else; each adapter translates failures itself.

Only plain ``http://`` URLs without credentials are :func:`usable`; TLS, authentication and
proxies stay with the vendor clients, which own those settings. A connection is closed when
its thread has ended (a pool per job would otherwise leave sockets open until the backend's
connection limit).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Mapping

# A keep-alive connection the server closed since its last use fails the next request in one
# of these ways before any answer arrives; the request is then sent again on a new one.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def usable(url: str) -> bool:
    """Whether ``url`` can be reached over a plain connection: http, a host, no credentials."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme == "http" and bool(parts.hostname) and not parts.username and not parts.password


class KeepAliveConnections:
    """Requests to one backend, each thread on its own keep-alive connection (thread-safe)."""

    def __init__(self, url: str, timeout: float, *, default_port: int = 80) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or default_port
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self._open: dict[http.client.HTTPConnection, threading.Thread] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """Send one request to ``path`` (below the URL's path, with its query string); the
        answer's status and bytes. ``timeout`` (seconds, default the connection's) bounds the
        connect and each read. Raises OSError (``TimeoutError`` for a timeout) or
        http.client.HTTPException when no answer came. Only for requests that change nothing:
        one that met a connection closed while idle is sent again."""
        budget = self.timeout if timeout is None else timeout
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        reused = conn is not None
        while True:
            if conn is None:
                conn = self._connection(budget)
            elif conn.sock is not None and conn.timeout != budget:
                conn.sock.settimeout(budget)
            conn.timeout = budget
            try:
                conn.request(method, self.base + path, body=body, headers=dict(headers))
                resp = conn.getresponse()
                data = resp.read()
            except STALE:
                self._drop(conn)
                if not reused:
                    raise
                conn, reused = None, False  # once more, on a new connection
                continue
            except BaseException:
                self._drop(conn)
                raise
            if resp.will_close:
                self._drop(conn)
            return resp.status, data

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self._local.conn = conn
        with self._lock:
            ended = [c for c, t in self._open.items() if not t.is_alive()]
            for old in ended:
                del self._open[old]
            self._open[conn] = threading.current_thread()
        for old in ended:
            old.close()
        return conn

    @property
    def open_connections(self) -> int:
        """Connections held (one per live thread that has sent a request); for tests."""
        with self._lock:
            return len(self._open)

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._open.pop(conn, None)

    def close(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), {}
        for conn in conns:
            conn.close()
