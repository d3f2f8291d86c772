"""The log store's search requests to Elasticsearch over a plain keep-alive HTTP connection
per thread (the standard library's ``http.client``), beside the ``elasticsearch`` client.

Why: a search is the hub's hottest call to Elasticsearch, and the client's layers (parameter
rewriting, per-call options, the transport's node pool, retry loop and tracing span, urllib3's
pool, the response wrapper) cost about 0.18 ms of CPU per search against 0.17 ms for the whole
request on a bare connection (measured in one process, load average 8 on 2 cores: 0.35 ms vs
0.17 ms). On the served hub that was a tenth of what it added to a search of the tenant of
1,200 namespaces (bench/logs.py). Everything else (mappings, bulk writes, points in time,
retention, probes) keeps using the client.

Only plain ``http://`` URLs without credentials take this path (:func:`usable`); HTTPS and
URLs with a user go through the client, which owns TLS and authentication settings. A
connection the server closed while idle is reopened and the request sent once more (a search
changes nothing); any other failure is the caller's to report, as the client's would be.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from hub.errors import BackendUnavailable

BACKEND = "elasticsearch"

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
# A keep-alive connection the server closed since its last use fails the next request in one
# of these ways before any answer arrives; the request is then sent again on a new one.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def usable(url: str) -> bool:
    """Whether ``url`` can be searched over a plain connection: http, a host, no credentials."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme == "http" and bool(parts.hostname) and not parts.username and not parts.password


class SearchConnections:
    """``POST`` requests to one Elasticsearch node, each thread on its own keep-alive connection."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 9200
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()

    def search(self, pattern: str, body: bytes) -> dict[str, Any]:
        """``POST /<pattern>/_search`` with a JSON body (missing indices are no error, as the
        client's calls say): the decoded answer. Failures are ``BackendUnavailable`` in the
        words the store's client calls use (``search failed ...``)."""
        path = f"/{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"
        try:
            status, data = self.post(path, body)
        except (OSError, http.client.HTTPException) as exc:
            detail = str(exc) or type(exc).__name__
            raise BackendUnavailable(BACKEND, f"search failed: {detail} ({self.url})") from exc
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if status >= 400 or not isinstance(answer, dict):
            raise BackendUnavailable(BACKEND, f"search failed with HTTP {status}: {_reason(answer, data)}")
        return answer

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send ``body`` to ``path`` (with its query string); the answer's status and bytes.
        Raises OSError or http.client.HTTPException when no answer came."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        reused = conn is not None
        while True:
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self._local.conn = conn
                with self._lock:
                    self._open.add(conn)
            try:
                conn.request("POST", self.base + path, body=body, headers=_HEADERS)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE:
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

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._open.discard(conn)

    def close(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            conn.close()


def _reason(answer: Any, data: bytes) -> str:
    """Elasticsearch's own reason for a refusal (``error.reason``), else the start of the body."""
    err = answer.get("error") if isinstance(answer, Mapping) else None
    if isinstance(err, Mapping):
        return str(err.get("reason") or err.get("type") or "")
    if err:
        return str(err)
    return data[:200].decode("utf-8", "replace") or "no answer body"
