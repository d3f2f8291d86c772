"""The serve command's waitress dispatcher and its stop (web/serving.py): a real waitress server
on a loopback port, a WSGI app that says which worker thread answered."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from waitress import create_server

from web.serving import LastIdleFirstDispatcher, drain

pytestmark = pytest.mark.unit


SLOW_STARTED = threading.Event()  # set when a /slow or /slower request reaches the app


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") in ("/slow", "/slower"):
        SLOW_STARTED.set()
        time.sleep(0.5 if environ["PATH_INFO"] == "/slow" else 3)
    body = threading.current_thread().name.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def served() -> Iterator[tuple[str, LastIdleFirstDispatcher]]:
    dispatcher = LastIdleFirstDispatcher()
    dispatcher.set_thread_count(4)
    server = create_server(_app, host="127.0.0.1", port=0, threads=4, _dispatcher=dispatcher)
    closed = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:  # its loop polls the socket close() closed, as in `kubehub serve`
            if not closed.is_set():
                raise

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    yield f"http://127.0.0.1:{server.effective_port}", dispatcher
    closed.set()
    server.close()
    dispatcher.shutdown()
    runner.join(timeout=5)


def test_one_request_at_a_time_stays_on_one_warm_thread(served: tuple[str, LastIdleFirstDispatcher]) -> None:
    url, dispatcher = served
    answered = set()
    with requests.Session() as session:
        for _ in range(20):
            # each request starts when all four threads are idle again, so which one takes it
            # depends only on the wake order, not on how fast the last one got back (a loaded
            # machine once had a third thread answer while the first two were still finishing)
            all_idle_by = time.monotonic() + 10
            while len(dispatcher._idle) < 4 and time.monotonic() < all_idle_by:
                time.sleep(0.005)
            answered.add(session.get(url).text)
    # waitress's own dispatcher wakes the longest idle thread, passing these round all 4;
    # here the one that went idle last, the one that answered the previous request, takes it
    assert len(answered) == 1


def test_concurrent_requests_still_use_every_thread(served: tuple[str, LastIdleFirstDispatcher]) -> None:
    url, _ = served
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        names = list(pool.map(lambda _: requests.get(f"{url}/slow", timeout=10).text, range(4)))
    assert len(set(names)) == 4
    assert time.monotonic() - started < 1.5  # four 0.5 s requests side by side (one after another: 2 s)


def test_shutdown_stops_idle_threads() -> None:
    dispatcher = LastIdleFirstDispatcher()
    dispatcher.set_thread_count(3)
    time.sleep(0.1)  # let them go idle
    dispatcher.set_thread_count(1)
    deadline = time.monotonic() + 5
    while len(dispatcher.threads) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(dispatcher.threads) == 1
    dispatcher.shutdown(timeout=5)
    assert not dispatcher.threads


def _stopping_server() -> tuple[Any, threading.Thread, int]:
    """A waitress server whose loop runs on a thread; returns it, the thread and its port."""
    server = create_server(_app, host="127.0.0.1", port=0, threads=4)
    runner = threading.Thread(target=server.run, daemon=True)
    runner.start()
    return server, runner, int(server.effective_port)


def _stop(server: Any, within: float) -> None:
    """What `kubehub serve` does at SIGTERM: close the listener on the loop's own thread (its
    signal handler runs there), then drain on a thread of its own."""
    server.trigger.pull_trigger(server.close)
    threading.Thread(target=drain, args=(server,), kwargs={"within": within}, daemon=True).start()


def test_a_stop_closes_idle_keep_alive_connections_and_lets_requests_under_way_finish() -> None:
    server, runner, port = _stopping_server()
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/")
    assert idle.getresponse().read()  # answered; the connection stays open, idle
    busy = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    SLOW_STARTED.clear()
    busy.request("GET", "/slow")
    assert SLOW_STARTED.wait(10)  # the slow request is under way
    _stop(server, within=10)
    answer = busy.getresponse()
    assert answer.status == 200 and answer.read()  # finished, not cut off
    runner.join(timeout=5)
    # waitress's loop runs while any connection is open: without the drain the idle one kept it
    assert not runner.is_alive()
    assert idle.sock is not None and idle.sock.recv(1) == b""  # closed by the server
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # no longer listening


def test_a_stop_closes_a_request_still_under_way_after_the_drain_time() -> None:
    server, runner, port = _stopping_server()
    busy = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    SLOW_STARTED.clear()
    busy.request("GET", "/slower")  # 3 s
    assert SLOW_STARTED.wait(10)
    started = time.monotonic()
    _stop(server, within=0.3)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        busy.getresponse()
    runner.join(timeout=5)
    assert not runner.is_alive()
    assert time.monotonic() - started < 2.9  # it did not wait for the request's 3 s
