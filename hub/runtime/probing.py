"""The hub's backend probes asked at the same time, on one pool of threads the hub keeps.

Why: each probe is a round trip to its own backend (the state store, the API server,
Prometheus, the OIDC provider, the log store, SMTP). Asked one after the other, /readyz and
/components waited for the sum: at 20,000 pods under load 8, about half of /components' 200 ms
median was its probes, most of it Prometheus's answer with the others queued behind it. Asked
together, a caller waits for the slowest one only.

Why one long-lived pool: starting threads for each view cost ~12 ms at that load. Its size
bounds how many probes run at once across every caller; each probe has its own timeout. Only
leaf calls go to the pool (a call that waits on other pool work could take every thread and
wait forever), so :func:`together` must not be called from a probe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

PROBE_THREADS = 16

_pool = ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="probe")


def started(call: Callable[[], T]) -> Callable[[], T]:
    """``call`` started on the pool; calling what this returns waits for its result (or raises
    its exception)."""
    return _pool.submit(call).result


def together(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Each call's result, in the calls' order, all asked at once (a call's exception is raised
    when its turn comes; the probes turn their own failures into results)."""
    waits = [started(call) for call in calls]
    return [wait() for wait in waits]
