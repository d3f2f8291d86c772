"""The log store's plain search connections (hub/collectors/logs/es_http.py) against a real
loopback HTTP server standing in for Elasticsearch's ``_search`` endpoint: keep-alive reuse, a
connection the server closed while idle, refusals and outages in the store's words."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hub.collectors.logs.es_http import SearchConnections, usable
from hub.errors import BackendUnavailable
from tests.loopback_http import LoopbackServer, QuietHandler


class _Server(LoopbackServer):
    """Answers each POST with the next planned (status, body); records what it was sent."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, bytes]] = []
        self.seen: list[tuple[str, bytes, str]] = []
        outer = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.body()
                outer.seen.append((self.path, body, self.headers.get("Content-Type", "")))
                self.answer(*outer.plan.pop(0))

        super().__init__(Handler)


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as s:
        yield s


def _hits(total: int) -> bytes:
    return json.dumps({"hits": {"total": {"value": total, "relation": "eq"}, "hits": []}}).encode()


def test_usable_only_for_plain_http_without_credentials() -> None:
    assert usable("http://es:9200")
    assert usable("http://127.0.0.1:29200/")
    assert not usable("https://es:9200")
    assert not usable("http://elastic:secret@es:9200")
    assert not usable("http://es:notaport")
    assert not usable("es:9200")


def test_searches_reuse_one_connection_and_send_the_body_as_is(server: _Server) -> None:
    conns = SearchConnections(server.url, timeout=5)
    server.plan = [(200, _hits(3)), (200, _hits(4))]
    body = b'{"query":{"match_all":{}}}'
    assert conns.search("logs-*", body)["hits"]["total"]["value"] == 3
    assert conns.search("logs-*", body)["hits"]["total"]["value"] == 4
    assert server.connections == 1
    path, sent, content_type = server.seen[0]
    assert path == "/logs-*/_search?ignore_unavailable=true&allow_no_indices=true"
    assert sent == body and content_type == "application/json"
    conns.close()


def test_a_connection_closed_while_idle_is_reopened_once(server: _Server) -> None:
    conns = SearchConnections(server.url, timeout=5)
    server.plan = [(200, _hits(1)), (200, _hits(2))]
    conns.search("logs-*", b"{}")
    # The server side goes away between two searches (an idle keep-alive timeout): shut the
    # client's socket for reading and writing as a server close would look from here.
    conns._local.sock.shutdown(socket.SHUT_RDWR)
    assert conns.search("logs-*", b"{}")["hits"]["total"]["value"] == 2
    assert server.connections == 2
    conns.close()


def test_refusals_name_elasticsearch_and_its_reason(server: _Server) -> None:
    conns = SearchConnections(server.url, timeout=5)
    error = {"error": {"type": "search_phase_execution_exception", "reason": "all shards failed"}, "status": 503}
    server.plan = [(503, json.dumps(error).encode()), (200, b"<html>proxy</html>")]
    with pytest.raises(BackendUnavailable) as exc:
        conns.search("logs-*", b"{}")
    assert exc.value.backend == "elasticsearch"
    assert "search failed with HTTP 503: all shards failed" in exc.value.message
    with pytest.raises(BackendUnavailable) as exc:  # an answer that is not Elasticsearch's
        conns.search("logs-*", b"{}")
    assert "HTTP 200: <html>proxy</html>" in exc.value.message
    conns.close()


def test_no_server_is_an_outage_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    conns = SearchConnections(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(BackendUnavailable) as exc:
        conns.search("logs-*", b"{}")
    assert "is unavailable: search failed: " in exc.value.message
    assert f"(http://127.0.0.1:{port})" in exc.value.message


class _Scripted:
    """A loopback socket server that reads each request (head and Content-Length body) and
    answers with planned raw bytes, written in the pieces given (so an answer can arrive split
    anywhere), then closes the connection when the plan says so: the answers' framing
    (chunked, Content-Length, the connection's end, interim answers) byte for byte."""

    def __init__(self) -> None:
        self.plan: list[tuple[list[bytes], bool]] = []  # (pieces, close after)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while self.plan:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                while len(data) < length:
                    data += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + data[:length])
                data = data[length:]
                pieces, close = self.plan.pop(0)
                for piece in pieces:
                    conn.sendall(piece)
                    time.sleep(0.005)
                if close:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    s = _Scripted()
    yield s
    s.close()


_HITS = _hits(7)


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, rest = b"", body
    for size in sizes:
        out += f"{size:x}\r\n".encode() + rest[:size] + b"\r\n"
        rest = rest[size:]
    return out + f"{len(rest):x};ext=1\r\n".encode() + rest + b"\r\n0\r\nX-Trailer: t\r\n\r\n"


def test_a_chunked_answer_split_anywhere_is_read_whole_and_the_connection_kept(scripted: _Scripted) -> None:
    conns = SearchConnections(scripted.url, timeout=5)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    whole = head + _chunked(_HITS, [5, 11])
    # the same answer twice, the second cut into pieces inside the head, a size line and a chunk
    scripted.plan = [
        ([whole], False),
        ([whole[:20], whole[20 : len(head) + 2], whole[len(head) + 2 : -30], whole[-30:]], False),
    ]
    assert conns.search("logs-*", b'{"size":1}')["hits"]["total"]["value"] == 7
    assert conns.search("logs-*", b'{"size":2}')["hits"]["total"]["value"] == 7
    assert scripted.connections == 1
    first = scripted.requests[0]
    assert first.startswith(b"POST /logs-*/_search?ignore_unavailable=true&allow_no_indices=true HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json\r\n" in first and first.endswith(b'\r\n\r\n{"size":1}')
    conns.close()


def test_content_length_close_and_interim_answers(scripted: _Scripted) -> None:
    conns = SearchConnections(scripted.url, timeout=5)
    length = f"Content-Length: {len(_HITS)}\r\n".encode()
    scripted.plan = [
        ([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + length + b"\r\n" + _HITS], False),
        ([b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + length + b"\r\n", _HITS], True),
        ([b"HTTP/1.0 200 OK\r\n\r\n" + _HITS], True),  # framed by the connection's end
    ]
    for _ in range(3):
        assert conns.search("logs-*", b"{}")["hits"]["total"]["value"] == 7
    assert scripted.connections == 2  # a new one after the Connection: close
    assert conns.open_connections == 0  # and none kept after an answer ended by the close
    conns.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a chunk size that is not hex
        b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + _HITS,  # the connection ends mid-body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdXY",  # a chunk without its CRLF
    ],
)
def test_a_broken_answer_is_an_outage_and_its_connection_is_dropped(scripted: _Scripted, answer: bytes) -> None:
    conns = SearchConnections(scripted.url, timeout=5)
    scripted.plan = [
        ([answer], True),
        ([b"HTTP/1.1 200 OK\r\n" + f"Content-Length: {len(_HITS)}\r\n\r\n".encode() + _HITS], False),
    ]
    with pytest.raises(BackendUnavailable) as exc:
        conns.search("logs-*", b"{}")
    assert exc.value.backend == "elasticsearch" and "search failed: " in exc.value.message
    assert conns.open_connections == 0
    assert conns.search("logs-*", b"{}")["hits"]["total"]["value"] == 7  # a fresh connection works
    conns.close()


def test_no_answer_in_time_is_an_outage(scripted: _Scripted) -> None:
    conns = SearchConnections(scripted.url, timeout=0.3)
    scripted.plan = [([b"HTTP/1.1 200 OK\r\n"], False), ([], True)]  # the head never ends
    with pytest.raises(BackendUnavailable) as exc:
        conns.search("logs-*", b"{}")
    assert "search failed: timed out" in exc.value.message
    conns.close()


def test_a_connection_of_an_ended_thread_is_closed(scripted: _Scripted) -> None:
    conns = SearchConnections(scripted.url, timeout=5)
    ok = [b"HTTP/1.1 200 OK\r\n" + f"Content-Length: {len(_HITS)}\r\n\r\n".encode() + _HITS]
    scripted.plan = [(ok, False), (ok, False)]
    worker = threading.Thread(target=conns.search, args=("logs-*", b"{}"))
    worker.start()
    worker.join()
    assert conns.open_connections == 1
    conns.search("logs-*", b"{}")  # this thread's first: the ended thread's is closed meanwhile
    assert conns.open_connections == 1 and scripted.connections == 2
    conns.close()
