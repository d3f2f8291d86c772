"""Prometheus answers -> frames, and the adapter's error translation and timeouts.

The adapter tests talk HTTP to a small server of our own that answers like the Prometheus
query API (no mock of prometheus_api_client: the real client makes real requests).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from hub.collectors.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    QuerySpec,
    Vector,
    _translate,
    frame_vector,
    label_names,
    matrix_frame,
    result_frame,
    vector_frame,
    vector_of,
)
from hub.errors import BackendUnavailable
from tests.loopback_http import LoopbackServer, QuietHandler

pytestmark = pytest.mark.unit


def test_a_vector_becomes_one_row_per_series_with_absent_labels_empty() -> None:
    frame = vector_frame(
        [
            {"metric": {"namespace": "a", "pod": "p1"}, "value": [100.5, "1.25"]},
            {"metric": {"namespace": "b"}, "value": [100.5, "NaN"]},
            {"metric": {"namespace": "c", "pod": "p3"}, "value": [100.5, "+Inf"]},
        ]
    )
    assert label_names(frame) == ["namespace", "pod"]
    assert frame["pod"].tolist() == ["p1", "", "p3"]
    assert frame["series"].tolist() == [0, 1, 2]
    assert frame["value"].dtype == np.float64
    assert frame["value"].iloc[0] == 1.25
    assert np.isnan(frame["value"].iloc[1])
    assert np.isposinf(frame["value"].iloc[2])
    assert frame["timestamp"].tolist() == [100.5, 100.5, 100.5]


def test_a_matrix_becomes_a_long_frame_with_series_ids() -> None:
    frame = matrix_frame(
        [
            {"metric": {"node": "n1"}, "values": [[10, "1"], [20, "2"], [30, "3"]]},
            {"metric": {"node": "n2"}, "values": [[20, "-Inf"]]},
        ]
    )
    assert frame["node"].tolist() == ["n1", "n1", "n1", "n2"]
    assert frame["series"].tolist() == [0, 0, 0, 1]
    assert frame["timestamp"].tolist() == [10.0, 20.0, 30.0, 20.0]
    assert frame["value"].tolist()[:3] == [1.0, 2.0, 3.0]
    assert np.isneginf(frame["value"].iloc[3])


def test_empty_and_scalar_answers() -> None:
    empty = result_frame([])
    assert empty.empty and list(empty.columns) == ["series", "timestamp", "value"]
    scalar = result_frame([5.0, "42"])
    assert scalar["value"].tolist() == [42.0] and label_names(scalar) == []


def test_an_instant_answer_as_a_vector_keeps_labels_times_and_special_values() -> None:
    answer = [
        {"metric": {"namespace": "a", "pod": "p1"}, "value": [100.5, "1.25"]},
        {"metric": {"namespace": "b"}, "value": [100, "NaN"]},
        {"metric": {"namespace": "c", "pod": "p3"}, "value": [100.5, "-Inf"]},
    ]
    vector = vector_of(answer)
    assert vector.metrics == ({"namespace": "a", "pod": "p1"}, {"namespace": "b"}, {"namespace": "c", "pod": "p3"})
    assert vector.timestamps == (100.5, 100.0, 100.5) and all(type(t) is float for t in vector.timestamps)
    assert vector.values[0] == 1.25 and np.isnan(vector.values[1]) and np.isneginf(vector.values[2])
    # the frame of a vector is the frame of the same answer
    frame, direct = vector.frame(), vector_frame(answer)
    assert list(frame.columns) == list(direct.columns)
    for column in frame.columns:
        assert frame[column].tolist() == direct[column].tolist() or column == "value"
    assert np.array_equal(frame["value"].to_numpy(), direct["value"].to_numpy(), equal_nan=True)
    # and back: a series' labels without the empty ones (absent in PromQL)
    back = frame_vector(direct)
    assert back.metrics == vector.metrics and back.timestamps == vector.timestamps
    assert vector_of([]) == Vector() and vector_of([]).empty
    scalar = vector_of([5.0, "42"])
    assert scalar.metrics == ({},) and scalar.values == (42.0,)
    with pytest.raises(ValueError):
        vector_of([{"metric": {}, "values": [[1, "1"]]}])  # a range answer is not an instant one


def test_a_large_matrix_converts_without_losing_samples() -> None:
    result = [{"metric": {"pod": f"p{i}"}, "values": [[t, str(i * 1000 + t)] for t in range(50)]} for i in range(400)]
    frame = matrix_frame(result)
    assert len(frame) == 20_000
    assert frame.loc[frame["pod"] == "p7", "value"].tolist() == [7000.0 + t for t in range(50)]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('HTTP Status Code 503 (b\'{"status":"error","errorType":"timeout","error":"query timed out"}\')', 503),
        (
            'HTTP Status Code 422 (b\'{"status":"error","errorType":"execution",'
            '"error":"query processing would load too many samples into memory"}\')',
            502,
        ),
        (
            'HTTP Status Code 400 (b\'{"status":"error","errorType":"bad_data",'
            '"error":"1:5: parse error: unexpected \\\\"}\\\\""}\')',
            502,
        ),
        ("HTTP Status Code 502 (b'<html>bad gateway</html>')", 503),
    ],
)
def test_prometheus_errors_are_translated(message: str, kind: int) -> None:
    error = _translate(message, "up")
    assert error.status == kind
    assert "prometheus" in error.message
    if kind == 502:
        assert isinstance(error, PrometheusQueryError)
        assert "HTTP Status Code" not in error.message  # Prometheus's own sentence, not the wrapper
    else:
        assert isinstance(error, BackendUnavailable) and error.backend == "prometheus"


# -- the adapter over HTTP -------------------------------------------------------------------


class _Api(QuietHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus's own server
    delay = 0.0
    seen: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self._answer(url.path, parse_qs(url.query))

    def do_POST(self) -> None:  # Prometheus takes the same parameters as a form body
        url = urlparse(self.path)
        form = self.rfile.read(int(self.headers["Content-Length"])).decode()
        assert self.headers["Content-Type"] == "application/x-www-form-urlencoded"
        self._answer(url.path, {**parse_qs(url.query), **parse_qs(form)})

    def _answer(self, path: str, params: dict[str, list[str]]) -> None:
        type(self).seen.append(params)
        time.sleep(type(self).delay)
        query = params.get("query", [""])[0]
        if query == "bad(":
            body = {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected end of input"}
            code = 400
        elif path.endswith("/query_range"):
            body = {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {"pod": "p"}, "values": [[1, "1"], [2, "2"]]}]},
            }
            code = 200
        else:
            body = {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {"pod": query}, "value": [1, "3"]}]},
            }
            code = 200
        try:
            self.answer(code, json.dumps(body).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test): nothing to answer


@pytest.fixture
def api() -> Iterator[str]:
    _Api.delay = 0.0
    _Api.seen = []
    with LoopbackServer(_Api) as server:
        yield server.url


def test_instant_and_range_queries_come_back_as_frames_and_are_counted(api: str) -> None:
    counted: list[tuple[str, str]] = []
    client = PrometheusClient(api, timeout=5, on_query=lambda k, o: counted.append((k, o)))
    try:
        frame = client.instant("up", time=1000)
        assert frame["pod"].tolist() == ["up"] and frame["value"].tolist() == [3.0]
        rng = client.range("up", start=0, end=60, step=15)
        assert rng["value"].tolist() == [1.0, 2.0]
        frames = client.many([QuerySpec("a"), QuerySpec("b"), QuerySpec("c", start=0, end=10, step=5)])
        assert [f["pod"].iloc[0] for f in frames] == ["a", "b", "p"]
        assert client.queries_sent == 5
        assert counted.count(("instant", "ok")) == 3 and counted.count(("range", "ok")) == 2
        vectors = client.vectors([QuerySpec("d", time=1000), QuerySpec("e")])
        assert [v.metrics for v in vectors] == [({"pod": "d"},), ({"pod": "e"},)] and vectors[0].values == (3.0,)
        assert client.queries_sent == 7 and counted.count(("instant", "ok")) == 5
        with pytest.raises(ValueError):
            client.vectors([QuerySpec("f", start=0, end=10, step=5)])
        first = _Api.seen[0]
        assert first["time"] == ["1000.000"]
        # Prometheus gets its own evaluation timeout, in whole milliseconds
        assert first["timeout"][0].endswith("ms") and first["timeout"][0][:-2].isdigit()
    finally:
        client.close()


def test_a_rejected_query_is_a_502_with_prometheus_words(api: str) -> None:
    client = PrometheusClient(api, timeout=5)
    try:
        with pytest.raises(PrometheusQueryError) as info:
            client.instant("bad(")
        assert "unexpected end of input" in info.value.message
    finally:
        client.close()


def test_a_slow_prometheus_is_a_503_naming_it_within_the_timeout(api: str) -> None:
    _Api.delay = 1.0
    client = PrometheusClient(api, timeout=0.2)
    try:
        with pytest.raises(BackendUnavailable) as info:
            client.instant("up")
        assert info.value.backend == "prometheus" and "within" in info.value.message
    finally:
        client.close()


def test_clients_of_ended_threads_are_closed(api: str) -> None:
    """Short-lived query threads (a pool per job) must not leave their connections open: the
    reference test once hung at Prometheus's connection limit after 81 cycles."""
    client = PrometheusClient(api, timeout=5)
    try:
        for _ in range(6):
            t = threading.Thread(target=client.instant, args=("up",))
            t.start()
            t.join()
        client.instant("up")  # the caller's own client; the ended threads' ones are closed now
        assert client.open_clients == 1
        assert client.instant("up")["value"].tolist() == [3.0]
    finally:
        client.close()
