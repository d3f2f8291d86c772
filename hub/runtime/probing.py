"""The hub's backend probes asked at the same time, on a few threads the hub keeps.

Why: each probe is a round trip to its own backend (the state store, the API server,
Prometheus, the OIDC provider, the log store, SMTP). Asked one after the other, /readyz and
/components waited for the sum: at 20,000 pods under load 8, about half of /components' 200 ms
median was its probes, most of it Prometheus's answer with the others queued behind it. Asked
together, a caller waits for the slowest one only.

Why kept threads: starting threads for each view cost ~12 ms at that load. Why daemon threads
of our own rather than a ``ThreadPoolExecutor``: the executor's threads are joined when the
interpreter exits, so a probe waiting out its timeout (up to 10 s) would hold up a stopping
``kubehub serve``, which must be gone well inside Kubernetes's 30 s grace period. At most
:data:`PROBE_THREADS` probes run at once across every caller; each has its own timeout. Only
leaf calls come here (a call that waits on other probes could take every thread and wait
forever), so :func:`together` must not be called from a probe.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

# A /components view asks 10 probes; more threads would also mean more state-store connections
# (one per thread that ran a state probe, closed with the store).
PROBE_THREADS = 8

_work: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_threads_lock = threading.Lock()


def _serve() -> None:
    while True:
        call, future = _work.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the caller, as a pool would
            future.set_exception(exc)


def started(call: Callable[[], T]) -> Callable[[], T]:
    """``call`` started on a probe thread; calling what this returns waits for its result (or
    raises its exception)."""
    with _threads_lock:
        while len(_threads) < PROBE_THREADS:  # all started at the first use; idle, they only wait
            _threads.append(threading.Thread(target=_serve, name=f"probe-{len(_threads)}", daemon=True))
            _threads[-1].start()
    future: Future[T] = Future()
    _work.put((call, future))
    return future.result


def together(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in the calls' order, all asked at once (a call's exception is raised
    when its turn comes; the probes turn their own failures into results)."""
    waits = [started(call) for call in calls]
    return [wait() for wait in waits]
