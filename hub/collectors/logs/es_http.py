"""The log store's search requests to Elasticsearch over a plain keep-alive socket per thread,
beside the ``elasticsearch`` client: HTTP/1.1 ``POST`` written and read by this module.

Why: a search is the hub's hottest call to Elasticsearch. The client's layers (parameter
rewriting, per-call options, the transport's node pool, retry loop and tracing span, urllib3's
pool, the response wrapper) cost about 0.18 ms of CPU per search over a bare ``http.client``
POST, and ``http.client`` itself costs about 0.3 ms of CPU more than this module for the same
request and answer (an 18 KB chunked answer of 50 hits: 0.43 vs 0.11 ms in one process,
2026-12-05, load average ~2.5 on 2 cores): it sends the head and the body in two writes and
reads the answer through a buffered file object, an ``email`` header parser and a read per
chunk, where this module sends one write and reads the answer with a few large ``recv`` calls.
On the served hub (bench/logs.py) that was a tenth of what the hub added to a search.
Everything else (mappings, bulk writes, points in time, retention, probes) keeps using the
client.

What is read: a status line and headers, then a body framed by ``Transfer-Encoding: chunked``
(what Elasticsearch sends), by ``Content-Length``, or by the connection's end; 1xx interim
answers are skipped. Anything else (a malformed status line, an oversized head, a connection
that ends mid-answer) is an error, and the connection is closed after any error or a
``Connection: close``. A connection the server closed while idle (no byte of an answer came)
is opened again once and the search sent again: a search changes nothing. Only plain
``http://`` URLs without credentials take this path (:func:`usable`); HTTPS and URLs with a
user go through the client, which owns TLS and authentication settings. A connection is
closed when its thread has ended.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from hub.collectors.keepalive_http import usable
from hub.errors import BackendUnavailable

__all__ = ["BadAnswer", "SearchConnections", "usable"]

BACKEND = "elasticsearch"

MAX_HEAD = 65_536  # bytes of a status line and headers before the answer is refused
_READ = 262_144  # bytes asked of each recv


class BadAnswer(http.client.HTTPException):
    """The server's bytes are not an HTTP/1.x answer this module can read."""


class _Idle(OSError):
    """The connection ended before any byte of the answer: the server closed it while idle."""


# A reused connection the server has closed fails in one of these ways before any answer.
_STALE = (_Idle, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class SearchConnections:
    """``POST`` requests to one Elasticsearch node, each thread on its own keep-alive socket."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 9200
        self.base = parts.path.rstrip("/")
        self.timeout = timeout
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = f"{host}:{self.port}"
        self._local = threading.local()
        self._open: dict[socket.socket, threading.Thread] = {}
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
        """Send ``body`` to ``path`` (with its query string) as JSON; the answer's status and
        bytes. Raises OSError (``TimeoutError`` for a timeout) or http.client.HTTPException when
        no whole answer came."""
        head = (
            f"POST {self.base}{path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        request = head + body
        sock: socket.socket | None = getattr(self._local, "sock", None)
        reused = sock is not None
        while True:
            if sock is None:
                sock = self._connect()
            try:
                sock.sendall(request)
                status, data, keep = _read_answer(sock)
            except _STALE:
                self._drop(sock)
                if not reused:
                    raise
                sock, reused = None, False  # once more, on a new connection
                continue
            except BaseException:
                self._drop(sock)
                raise
            if not keep:
                self._drop(sock)
            return status, data

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.sock = sock
        with self._lock:
            ended = [s for s, t in self._open.items() if not t.is_alive()]
            for old in ended:
                del self._open[old]
            self._open[sock] = threading.current_thread()
        for old in ended:
            old.close()
        return sock

    @property
    def open_connections(self) -> int:
        """Connections held (one per live thread that has sent a request); for tests."""
        with self._lock:
            return len(self._open)

    def _drop(self, sock: socket.socket) -> None:
        sock.close()
        if getattr(self._local, "sock", None) is sock:
            self._local.sock = None
        with self._lock:
            self._open.pop(sock, None)

    def close(self) -> None:
        with self._lock:
            socks, self._open = list(self._open), {}
        for sock in socks:
            sock.close()


def _read_answer(sock: socket.socket) -> tuple[int, bytes, bool]:
    """One answer from ``sock``: (status, body, whether the connection may be used again)."""
    buf = bytearray()
    pos = 0  # where the answer being read starts in buf (after any 1xx interim answers)
    while True:
        end = buf.find(b"\r\n\r\n", pos)
        while end < 0:
            if len(buf) - pos > MAX_HEAD:
                raise BadAnswer(f"an answer head over {MAX_HEAD} bytes")
            chunk = sock.recv(_READ)
            if not chunk:
                if not buf:
                    raise _Idle("the server closed the connection before answering")
                raise BadAnswer("the connection ended within an answer's head")
            buf += chunk
            end = buf.find(b"\r\n\r\n", max(pos, len(buf) - len(chunk) - 3))
        lines = bytes(buf[pos:end]).decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
        status = int(status_line[1])
        pos = end + 4
        if 100 <= status < 200 and status != 101:
            continue  # an interim answer (100 Continue): the real one follows
        break
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = status_line[0] == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, pos = _read_chunked(sock, buf, pos)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit():
            raise BadAnswer(f"Content-Length {length[:40]!r}")
        _fill(sock, buf, pos + int(length))
        body, pos = bytes(buf[pos : pos + int(length)]), pos + int(length)
    else:  # framed by the connection's end
        while chunk := sock.recv(_READ):
            buf += chunk
        body, pos, keep = bytes(buf[pos:]), len(buf), False
    if pos != len(buf):
        keep = False  # bytes after the answer that nobody asked for: do not trust the connection
    return status, body, keep


def _fill(sock: socket.socket, buf: bytearray, size: int) -> None:
    """Read until ``buf`` holds ``size`` bytes."""
    while len(buf) < size:
        chunk = sock.recv(_READ)
        if not chunk:
            raise BadAnswer("the connection ended within an answer's body")
        buf += chunk


def _line_end(sock: socket.socket, buf: bytearray, pos: int) -> int:
    """Where the line starting at ``pos`` ends (its CR), reading more as needed."""
    end = buf.find(b"\r\n", pos)
    while end < 0:
        if len(buf) - pos > 4096:
            raise BadAnswer("a chunk-size or trailer line over 4096 bytes")
        _fill(sock, buf, len(buf) + 1)
        end = buf.find(b"\r\n", pos)
    return end


def _read_chunked(sock: socket.socket, buf: bytearray, pos: int) -> tuple[bytes, int]:
    """A chunked body starting at ``pos``: the body and where the answer ends."""
    parts: list[bytes] = []
    while True:
        end = _line_end(sock, buf, pos)
        size_text = bytes(buf[pos:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadAnswer(f"a chunk size {size_text[:40]!r}") from None
        pos = end + 2
        if size == 0:
            while True:  # trailer lines, then the empty line that ends the answer
                end = _line_end(sock, buf, pos)
                empty, pos = end == pos, end + 2
                if empty:
                    return b"".join(parts), pos
        _fill(sock, buf, pos + size + 2)
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise BadAnswer("a chunk not followed by CRLF")
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


def _reason(answer: Any, data: bytes) -> str:
    """Elasticsearch's own reason for a refusal (``error.reason``), else the start of the body."""
    err = answer.get("error") if isinstance(answer, Mapping) else None
    if isinstance(err, Mapping):
        return str(err.get("reason") or err.get("type") or "")
    if err:
        return str(err)
    return data[:200].decode("utf-8", "replace") or "no answer body"
