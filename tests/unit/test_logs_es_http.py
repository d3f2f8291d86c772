"""The log store's plain search connections (hub/collectors/logs/es_http.py) against a real
loopback HTTP server standing in for Elasticsearch's ``_search`` endpoint: keep-alive reuse, a
connection the server closed while idle, refusals and outages in the store's words."""

from __future__ import annotations

import json
import socket
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
    conn = conns._local.conn
    conn.sock.shutdown(socket.SHUT_RDWR)
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
