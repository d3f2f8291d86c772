"""The serve command's waitress dispatcher (web/serving.py): a real waitress server on a
loopback port, a WSGI app that says which worker thread answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from waitress import create_server

from web.serving import LastIdleFirstDispatcher

pytestmark = pytest.mark.unit


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(0.5)
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
