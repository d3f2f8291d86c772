"""The Prometheus adapter's plain path (instant queries as a form POST over a keep-alive
``http.client`` connection per thread, hub/collectors/keepalive_http.py) against a real loopback
HTTP server standing in for ``/api/v1/query``: which URLs take it, keep-alive reuse, a
connection closed while idle, and refusals and outages translated exactly as the vendor
client's path translates them (the same server answers both paths)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from hub.collectors.prometheus import PrometheusClient, PrometheusQueryError, QuerySpec
from hub.errors import BackendUnavailable
from tests.loopback_http import LoopbackServer, QuietHandler


class _Server(LoopbackServer):
    """Answers every query with the planned (status, body), GET or POST; records what came."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (200, b"")
        self.seen: list[tuple[str, str, dict[str, list[str]]]] = []
        outer = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                self._reply(url.path, parse_qs(url.query))

            def do_POST(self) -> None:
                form = self.body().decode()
                assert self.headers["Content-Type"] == "application/x-www-form-urlencoded"
                self._reply(urlsplit(self.path).path, parse_qs(form))

            def _reply(self, path: str, params: dict[str, list[str]]) -> None:
                outer.seen.append((self.command, path, params))
                self.answer(*outer.answer)

        super().__init__(Handler)


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as s:
        yield s


def _vector(*pods: str) -> bytes:
    result = [{"metric": {"pod": p}, "value": [1000.5, str(i + 0.5)]} for i, p in enumerate(pods)]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def _plain_and_vendor(url: str) -> tuple[PrometheusClient, PrometheusClient]:
    """Two clients of one server: the plain path, and the vendor client's (a URL with a user
    goes through requests, which sends the credentials the test server ignores)."""
    plain = PrometheusClient(url, timeout=5)
    vendor = PrometheusClient(url.replace("http://", "http://u:p@"), timeout=5)
    return plain, vendor


def test_only_plain_http_without_credentials_or_proxy_takes_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    assert PrometheusClient("http://prom:9090")._plain is not None
    assert PrometheusClient("https://prom:9090")._plain is None
    assert PrometheusClient("http://u:p@prom:9090")._plain is None
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    assert PrometheusClient("http://prom:9090")._plain is None  # the proxy is the vendor's to use
    assert PrometheusClient("http://localhost:9090")._plain is not None


def test_instant_queries_are_form_posts_on_one_kept_connection_with_the_vendor_answer(server: _Server) -> None:
    plain, vendor = _plain_and_vendor(server.url)
    server.answer = (200, _vector("a", "b"))
    try:
        first = plain.vector("topk(2, x)", time=1000.25)
        again = plain.vectors([QuerySpec("topk(2, x)", time=1000.25)])[0]
        assert server.connections == 1
        assert first.metrics == ({"pod": "a"}, {"pod": "b"}) and first.values == (0.5, 1.5)
        assert again == first
        method, path, params = server.seen[0]
        assert (method, path) == ("POST", "/api/v1/query")
        assert params["query"] == ["topk(2, x)"] and params["time"] == ["1000.250"]
        assert params["timeout"] == ["5000ms"]
        theirs = vendor.vector("topk(2, x)", time=1000.25)
        assert server.seen[-1][0] == "GET" and server.seen[-1][2] == params
        assert theirs == first
        assert plain.instant("topk(2, x)", time=1000.25).equals(vendor.instant("topk(2, x)", time=1000.25))
        assert plain.queries_sent == 3
    finally:
        plain.close()
        vendor.close()


def test_a_connection_closed_while_idle_is_reopened_once(server: _Server) -> None:
    client = PrometheusClient(server.url, timeout=5)
    server.answer = (200, _vector("a"))
    try:
        client.vector("x")
        assert client._plain is not None
        client._plain._local.conn.sock.shutdown(socket.SHUT_RDWR)  # as a server's idle close looks
        assert client.vector("x").metrics == ({"pod": "a"},)
        assert server.connections == 2 and client.queries_sent == 2
    finally:
        client.close()


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected )"},
            PrometheusQueryError,
            "unexpected )",
        ),
        (
            422,
            {"status": "error", "errorType": "execution", "error": "many-to-many matching"},
            PrometheusQueryError,
            "many-to-many",
        ),
        (
            503,
            {"status": "error", "errorType": "unavailable", "error": "overloaded"},
            BackendUnavailable,
            "answered 503: overloaded",
        ),
        (502, "<html>bad gateway</html>", BackendUnavailable, "answered 502"),
    ],
)
def test_refusals_are_translated_as_on_the_vendor_path(
    server: _Server, status: int, body: Any, error: type[Exception], words: str
) -> None:
    server.answer = (status, body.encode() if isinstance(body, str) else json.dumps(body).encode())
    plain, vendor = _plain_and_vendor(server.url)
    try:
        with pytest.raises(error) as ours:
            plain.vector("x")
        with pytest.raises(error) as theirs:
            vendor.vector("x")
        assert str(ours.value) == str(theirs.value) and words in str(ours.value)
        assert getattr(ours.value, "status", None) in (502, 503)
    finally:
        plain.close()
        vendor.close()


def test_an_answer_that_is_not_the_query_api_is_a_503_naming_prometheus(server: _Server) -> None:
    server.answer = (200, b'{"status": "success"}')
    client = PrometheusClient(server.url, timeout=5)
    try:
        with pytest.raises(BackendUnavailable) as info:
            client.vector("x")
        assert (
            info.value.backend == "prometheus" and "did not answer like the Prometheus query API" in info.value.message
        )
    finally:
        client.close()


def test_no_server_and_a_silent_server_are_503s_naming_prometheus() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but never listening: connection refused
        client = PrometheusClient(f"http://127.0.0.1:{port}", timeout=2)
        try:
            with pytest.raises(BackendUnavailable) as info:
                client.probe()
            assert info.value.status == 503 and f"cannot connect to http://127.0.0.1:{port}" in info.value.message
        finally:
            client.close()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection, never answers
        client = PrometheusClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=5)
        try:
            with pytest.raises(BackendUnavailable) as info:
                client.vector("x", timeout=0.3)
            assert info.value.backend == "prometheus" and "within 0.3 s" in info.value.message
        finally:
            client.close()


def _matrix() -> bytes:
    result = [{"metric": {"pod": "a"}, "values": [[1000, "1"], [1015, "NaN"], [1030, "+Inf"]]}]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()


def test_range_queries_send_the_vendor_parameters_and_get_the_same_frame(server: _Server) -> None:
    plain, vendor = _plain_and_vendor(server.url)
    server.answer = (200, _matrix())
    try:
        ours = plain.range("rate(x[5m])", start=999.6, end=1030.4, step=15)
        theirs = vendor.range("rate(x[5m])", start=999.6, end=1030.4, step=15)
        (m1, path1, p1), (m2, path2, p2) = server.seen
        assert (m1, m2) == ("POST", "GET") and path1 == path2 == "/api/v1/query_range"
        assert p1 == p2 and p1["start"] == ["1000"] and p1["end"] == ["1030"] and p1["step"] == ["15"]
        assert ours.equals(theirs) and len(ours) == 3
    finally:
        plain.close()
        vendor.close()


def test_a_longer_timeout_asked_on_purpose_reaches_prometheus(server: _Server) -> None:
    """Work away from any request (a window ranking's table) may ask for more than the client's
    own timeout; a request's remaining budget is shorter and is sent as it is."""
    plain, _vendor = _plain_and_vendor(server.url)
    server.answer = (200, _vector("a"))
    plain.vector("x", timeout=120)
    plain.vector("x", timeout=2)
    assert [seen[2]["timeout"] for seen in server.seen[-2:]] == [["120000ms"], ["2000ms"]]
