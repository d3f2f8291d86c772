"""Short-lived answers the monitoring service keeps between requests (pure, clock passed in):
a live ranking's entity count per level, filters and scope, and whole live answers shared by
callers whose scoped request is the same; and the one time budget (:class:`Deadline`) that a
request's queries and its waits for those answers share. Apart from
:mod:`hub.collectors.monitoring` so that module stays a pipeline of one request."""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from hub.errors import BackendUnavailable, StillComputing
from hub.timeutil import Clock

# Seconds a live ranking's entity count is reused: the inventory changes on the scale of
# scrape intervals, and paging or refreshing a ranking then costs one PromQL query, not two.
TOTAL_TTL = 15.0


class TtlCache:
    """A tiny thread-safe cache of entity counts per (level, filters incl. scope)."""

    def __init__(self, clock: Clock, ttl: float, size: int = 256) -> None:
        self._clock, self._ttl, self._size = clock, ttl, size
        self._items: dict[Any, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> int | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] < self._clock.now():
                return None
            return found[1]

    def put(self, key: Any, value: int) -> None:
        with self._lock:
            if len(self._items) >= self._size:
                now = self._clock.now()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                if len(self._items) >= self._size:
                    self._items.clear()
            self._items[key] = (self._clock.now() + self._ttl, value)


# Seconds a live answer (no ``time=``, not a range) is shared by every caller whose scoped
# request is the same (issue 15: a dashboard refreshed by many users of one scope costs
# Prometheus one evaluation per few seconds, not one per user). Values carry their evaluation
# time, so a shared answer says how old it is. 0 turns sharing off (the unit tests' default).
SHARE_SECONDS = 5.0
# Seconds a live ranking's table (one evaluation of a metric over every entity of a level,
# hub.collectors.monitoring_view) answers every caller's ranking, whatever their scope, page or
# order: the same age a shared answer may have. 0 turns tables off (rankings then send a topk).
TABLE_SECONDS = SHARE_SECONDS
# Ranking tables kept at once (the most recently stored; a 20,000-pod table is about 12 MiB).
TABLES_KEPT = 16


T = TypeVar("T")
log = logging.getLogger(__name__)


class SharedAnswers(Generic[T]):
    """Live answers per scoped request for ``ttl`` seconds, computed once when several callers
    ask at the same moment (the others wait for the first one's answer, at most the request
    timeout; a failure is not kept and each waiter then asks for itself). The key is the
    request after :meth:`~hub.collectors.monitoring.MonitoringService.scoped`, whose filters
    hold the caller's namespaces, so two callers share an answer only when it would be the
    same for both: tenants never see each other's."""

    def __init__(
        self,
        clock: Clock,
        ttl: float,
        size: int = 512,
        *,
        spawn: Callable[[Callable[[], None]], object] | None = None,
        renew_margin: float | None = None,
    ) -> None:
        self._clock, self.ttl, self._size = clock, ttl, size
        # Refresh ahead (issue 15): an answer used when its remaining life is shorter than its
        # lead -- 1.5 times as long as it last took to compute, at least ``renew_margin``
        # (a tenth of the ttl unless told), at most half the ttl -- is computed again by
        # ``spawn`` (which runs a job on another thread) while it is still handed out, so a key
        # in use is renewed before it expires and no caller waits for it. The age limit stays
        # ``ttl``: a renewal slower than the time left is waited for as before. A key nobody
        # uses is not renewed. No ``spawn``: no refresh ahead (the unit tests' default).
        self._spawn = spawn
        self._margin = ttl / 10 if renew_margin is None else renew_margin
        self._items: dict[Hashable, tuple[float, T]] = {}
        # Until when an expired answer may still be handed out while its next one is computed
        # in the background (``get``'s ``stale_for``); kept answers without it are gone at expiry.
        self._stale_until: dict[Hashable, float] = {}
        self._took: dict[Hashable, float] = {}  # seconds each kept answer took to compute
        self._pending: dict[Hashable, threading.Event] = {}
        # the last background computation's error per key, for the callers that waited for it
        self._failures: dict[Hashable, Exception] = {}
        self._lock = threading.Lock()

    def kept_keys(self) -> list[Hashable]:
        """The keys whose answers are kept now (still handed out, fresh or stale), the latest
        to expire first."""
        with self._lock:
            now = self._clock.now()
            kept = [(max(v[0], self._stale_until.get(k, 0.0)), k) for k, v in self._items.items()]
        return [k for until, k in sorted(kept, key=lambda uk: -uk[0]) if until >= now]

    def get(
        self,
        key: Hashable,
        compute: Callable[[], T],
        wait: float,
        *,
        renew: Callable[[], T] | None = None,
        ttl: float | None = None,
        background: Callable[[], T] | None = None,
        kept_after: float = 1.0,
        stale_for: float = 0.0,
    ) -> T:
        """The answer for ``key``: a kept one at most ``ttl`` old, or ``compute()``'s (computed
        once for every caller asking meanwhile). ``renew`` computes it away from any request
        (its own clock and timeout) for a refresh ahead; without it none is made. ``ttl``
        (seconds, when given) is how long this computation is kept instead of the instance's,
        counted from when it started (a window statistic is right until its step ends however
        long it took; sharing off still computes every time).

        ``background`` (with ``spawn``) computes a missing answer away from the request, with
        its own longer budget, instead of ``compute``: the caller waits for it at most ``wait``
        like any other caller, and when that is not enough the computation goes on and is kept
        for the next caller (issue 15: a 24 h window ranking over 20,000 pods took Prometheus
        longer than one request's timeout, so built inside the request it was abandoned every
        time and never answered). A background computation that fails is not kept; the callers
        waiting for it get its error rather than starting another one each. One that ends after
        its ``ttl`` is kept ``kept_after`` seconds from its end all the same (its answer says
        when it was evaluated), or no caller would ever get a computation longer than its life.

        ``stale_for`` (seconds, with ``background`` and ``spawn``): a background computation's
        answer stays this long past its expiry to be handed out, at once, to the callers that
        come while the next one is computed (the first of them starts it); nobody waits for a
        computation while an answer that recent is kept. Every answer says when it was
        evaluated, so it is at most its life, its build time and ``stale_for`` old."""
        if self.ttl <= 0:
            return compute()
        mine: threading.Event | None = None
        waiting: threading.Event | None = None
        detached = background is not None and self._spawn is not None
        while True:
            renewal: threading.Event | None = None
            stale: tuple[float, T] | None = None
            with self._lock:
                found = self._items.get(key)
                now = self._clock.now()
                if found is not None and found[0] >= now:
                    expires, kept = found
                    lead = min(self.ttl / 2, max(self._margin, 1.5 * self._took.get(key, 0.0)))
                    due = now >= expires - lead
                    if due and renew is not None and self._spawn is not None and key not in self._pending:
                        renewal = self._pending[key] = threading.Event()
                    fresh = True
                else:
                    fresh = False
                    if found is not None and detached and self._stale_until.get(key, 0.0) >= now:
                        stale = found
                    waiting = self._pending.get(key)
                    started_here = waiting is None
                    if waiting is None:
                        waiting = mine = self._pending[key] = threading.Event()
                        self._failures.pop(key, None)
                        if not detached:
                            break
            if fresh:
                if renewal is not None and renew is not None:
                    self._start_renewal(key, renew, renewal)
                return _copy(kept)
            assert waiting is not None
            if started_here and background is not None:
                until = None if ttl is None else self._clock.now() + ttl
                self._start_background(key, background, waiting, until, kept_after, stale_for)
            if stale is not None:  # the previous answer, while the next one is computed
                return _copy(stale[1])
            if not waiting.wait(wait):  # the computation outlived our whole budget
                if detached:
                    raise StillComputing(
                        "prometheus",
                        f"no complete answer within {wait:g} s (it goes on, and its answer is kept: ask again shortly)",
                    )
                raise BackendUnavailable("prometheus", f"no complete answer within {wait:g} s")
            with self._lock:
                if key in self._items:
                    continue  # found kept at the loop's top
                failure = self._failures.get(key) if detached else None
            if failure is not None:
                raise failure
            if not detached:  # it failed: ask for ourselves, unshared
                mine = None
                break
        started = self._clock.now()
        try:
            body = compute()
        except BaseException:
            if mine is not None:
                self._release(key, mine)
            raise
        now = self._clock.now()
        self._store(key, body, mine, now - started, now + self.ttl if ttl is None else started + ttl)
        return _copy(body)

    def _store(
        self,
        key: Hashable,
        body: T,
        mine: threading.Event | None,
        took: float,
        expires: float,
        stale_for: float = 0.0,
    ) -> None:
        with self._lock:
            # Stored before the waiters wake (they then find it), and expired answers go at
            # every store, not only when full: a ranking table of a 20,000-pod level is
            # megabytes, and nobody may read it after its ttl (or its stale time, when it has
            # one). When full, the oldest goes.
            now = self._clock.now()
            self._items = {k: v for k, v in self._items.items() if max(v[0], self._stale_until.get(k, 0.0)) >= now}
            while len(self._items) >= self._size:
                del self._items[min(self._items, key=lambda k: self._items[k][0])]
            self._items[key] = (expires, body)
            self._stale_until = {k: v for k, v in self._stale_until.items() if k in self._items and k != key}
            if stale_for > 0:
                self._stale_until[key] = expires + stale_for
            self._took = {k: v for k, v in self._took.items() if k in self._items}
            self._took[key] = took
            if mine is not None:
                self._pending.pop(key, None)
        if mine is not None:
            mine.set()

    def _start_renewal(self, key: Hashable, renew: Callable[[], T], event: threading.Event) -> None:
        def job() -> None:
            started = self._clock.now()
            try:
                body = renew()
            except BaseException:  # the kept answer serves until its ttl; then a caller asks itself
                log.debug("renewing a shared answer failed", exc_info=True)
                self._release(key, event)
                return
            now = self._clock.now()
            self._store(key, body, event, now - started, now + self.ttl)

        assert self._spawn is not None
        try:
            self._spawn(job)
        except Exception:  # e.g. the pool is shut down: no renewal; callers compute at expiry
            log.debug("could not start renewing a shared answer", exc_info=True)
            self._release(key, event)

    def _start_background(
        self,
        key: Hashable,
        compute: Callable[[], T],
        event: threading.Event,
        expires: float | None,
        kept_after: float,
        stale_for: float = 0.0,
    ) -> None:
        """Runs ``compute`` for ``key`` on ``spawn``: kept (until ``expires``, else for the ttl
        from when it started, and at least ``kept_after`` from its end; handed out ``stale_for``
        longer while its successor is computed) or, failing, its error handed to the callers
        waiting for it. Logged either way: it may take minutes."""

        def job() -> None:
            started = self._clock.now()
            try:
                body = compute()
            except Exception as exc:
                log.warning("a background computation failed after %.1f s: %s", self._clock.now() - started, exc)
                with self._lock:
                    self._failures[key] = exc
                    while len(self._failures) > self._size:
                        del self._failures[next(iter(self._failures))]
                self._release(key, event)
                return
            now = self._clock.now()
            until = expires if expires is not None else started + self.ttl
            log.info("a background computation took %.1f s; kept %.0f s", now - started, max(until - now, kept_after))
            self._store(key, body, event, now - started, max(until, now + kept_after), stale_for)

        assert self._spawn is not None
        try:
            self._spawn(job)
        except Exception as exc:  # e.g. the pool is shut down: the callers waiting get why
            with self._lock:
                self._failures[key] = BackendUnavailable("prometheus", f"could not start the computation: {exc}")
            self._release(key, event)

    def _release(self, key: Hashable, event: threading.Event) -> None:
        """A computation of ``key`` ended without an answer: its waiters wake and ask for themselves."""
        with self._lock:
            self._pending.pop(key, None)
        event.set()


def _copy(value: T) -> T:
    """A caller's own copy of a kept answer's top level (the web layer may add to a body);
    anything else kept here (a ranking table) is frozen and handed out as is."""
    return dict(value) if isinstance(value, dict) else value  # type: ignore[return-value]


class Deadline:
    """One time budget for all queries of a request, so a slow Prometheus costs the caller at
    most the configured timeout (plus our own small overhead), not a timeout per query."""

    def __init__(self, seconds: float, table_wait: float | None = None) -> None:
        self.seconds, self.table_wait = seconds, table_wait
        self.until = _time.monotonic() + seconds

    def for_table(self) -> float:
        """How long to wait for a ranking table: what is left, at most ``table_wait``."""
        left = self.remaining()
        return left if self.table_wait is None else min(left, self.table_wait)

    def remaining(self) -> float:
        left = self.until - _time.monotonic()
        if left <= 0:
            raise BackendUnavailable("prometheus", f"no complete answer within {self.seconds:g} s")
        return left
