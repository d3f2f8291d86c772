"""How ``kubehub serve`` hands requests to waitress's worker threads: the thread that went idle
last takes the next request.

Why: waitress's own dispatcher wakes its idle threads in turn (first idle, first woken), so a
hub answering one request at a time still passes them round all ``http.threads`` threads (8 by
default). Each thread keeps its own connections (the Prometheus client's session, the store's
connection), so the first request on every thread pays for opening them, and the threads take
turns getting the CPU caches cold. Measured on the sandbox (2 cores): a ranking's first request
on a thread costs ~1.5 ms more for its Prometheus connection and ~0.9 ms more for its store
connection, against a ~2.5 ms raw ``topk``. Waking the most recently idle thread keeps a lightly
loaded hub on one or two warm threads; under load every thread still works, as before.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from flask import Flask
from waitress.task import ThreadedTaskDispatcher


class LastIdleFirstDispatcher(ThreadedTaskDispatcher):
    """waitress's ThreadedTaskDispatcher with idle threads woken last-in, first-out.

    Each worker waits on its own condition (sharing the dispatcher's lock) and pushes it on a
    stack when it goes idle; :meth:`add_task` wakes the top of the stack. Stopping threads
    (:meth:`set_thread_count`, :meth:`shutdown`) wakes every idle one, as waitress does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[threading.Condition] = []

    def handler_thread(self, thread_no: int) -> None:
        wake = threading.Condition(self.lock)
        while True:
            with self.lock:
                while not self.queue and self.stop_count == 0:
                    self.active_count -= 1
                    self._idle.append(wake)
                    wake.wait()
                    if wake in self._idle:  # woken to stop, not popped by add_task
                        self._idle.remove(wake)
                    self.active_count += 1
                if self.stop_count > 0:
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
                task = self.queue.popleft()
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)

    def add_task(self, task: object) -> None:
        with self.lock:
            self.queue.append(task)
            if self._idle:
                self._idle.pop().notify()
            queue_size = len(self.queue)
            idle_threads = len(self.threads) - self.stop_count - self.active_count
            if queue_size > idle_threads:
                self.queue_logger.warning("Task queue depth is %d", queue_size - idle_threads)

    def set_thread_count(self, count: int) -> None:
        super().set_thread_count(count)
        with self.lock:
            if self.stop_count > 0:
                for wake in self._idle:
                    wake.notify()


def compile_templates(app: Flask) -> int:
    """Compile every console template once, before the server takes requests; returns how many.

    Why: Jinja compiles a template to Python on its first use in a process, so after each restart
    the first visit of every page paid for its template and the base templates it extends (the
    overview's three: ~0.2 s on a quiet machine, 0.4 s at load 8, found as the first overview of
    the scale sandbox's tour, docs/scale.md). Compiled here, they are also frozen with the rest
    of the start's objects by :func:`settle_collector`.
    """
    env = app.jinja_env
    names = env.list_templates(filter_func=lambda name: name.endswith(".html"))
    for name in names:
        env.get_template(name)
    return len(names)


def settle_collector() -> None:
    """Move the objects made at start out of the cyclic garbage collector's sight, once the
    server has started.

    Why: a full collection walks every tracked object, and a started hub holds ~141,000 of them
    (modules, the app, the services, the caches' first contents) that live as long as the
    process. Measured on a served hub over an empty data directory: a full collection took
    84 ms, during which every request waits for the interpreter; after ``gc.freeze()`` it took
    0.1 ms. Full collections are rare (the youngest generations, collected every 700 net
    allocations, cost 0.1-1.1 ms: 15 and 2 of them during 526 log searches of bench/logs.py),
    but one that runs while requests are in flight delays all of them. Cycles among the objects
    made at start are collected just before they are frozen; the collector's thresholds stay
    CPython's.
    """
    gc.collect()
    gc.freeze()


# Seconds a stopping hub lets the requests under way finish before it closes every connection.
# Below Kubernetes's default grace period (30 s), so the hub still keeps its window points and
# closes its stores before it would be killed.
DRAIN_SECONDS = 10.0


def drain(server: Any, *, within: float = DRAIN_SECONDS, pause: float = 0.1) -> None:
    """After ``server.close()``: close each of waitress's connections once it has no request
    under way and nothing left to send, and every one still open after ``within`` seconds.

    Why: waitress's loop runs while any connection is open, and a closed server no longer
    times idle ones out (its maintenance runs from the listening socket). So one idle keep-alive
    client (a browser, Prometheus scraping ``/metrics``) kept ``kubehub serve`` running after
    SIGTERM for as long as it stayed connected: 34 s on the scale sandbox, for ever in a test
    with one idle connection. The loop closes a marked connection on its next pass (within
    waitress's one-second loop timeout). Runs on a thread of its own; returns when no
    connection is left or after marking the late ones."""
    deadline = time.monotonic() + within
    while True:
        channels = list(server.active_channels.values())
        if not channels:
            return
        late = time.monotonic() >= deadline
        for channel in channels:
            if late or (not channel.requests and not channel.total_outbufs_len):
                channel.will_close = True
        if late:
            return
        time.sleep(pause)
