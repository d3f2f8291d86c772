"""One leader among the hub's replicas: the lease loop, and the background work it starts and stops.

Every replica serves the console and API and keeps its own watch cache. The work that must run
once (the alert engine's cycles, outbox delivery, log shipping and retention) runs on the
replica holding the ``background`` lease (:mod:`hub.store.leases`, in the state store so that
it keeps working while the Kubernetes API server is down). This module is the loop around it:

- every third of the lease the holder renews; a follower checks every tenth of it (a read;
  it writes only when the lease is free or expired), so a dead leader is replaced within the
  lease plus a tenth of it;
- the holder acts only while its lease is valid on its OWN monotonic clock, measured from
  before the renewal was written and shortened by a margin: a process paused (SIGSTOP, a long
  GC, a frozen VM) wakes up knowing it may no longer act, before it checks anything remotely;
- each unit of work (one cycle, one delivery round) takes the fence (lease name and token) once
  at its start and its writes check that token in their transaction
  (:class:`hub.store.leases.FencedStore`): a unit begun under an old token never commits,
  even if this replica has meanwhile become the leader again under a new one;
- on losing the lease the work stops; on a clean shutdown the lease is released so another
  replica takes over at once.

The loop also writes this replica's heartbeat, which the admin overview lists.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hub.store.leases import BACKGROUND, Fence, Lease, LeaseStore, ReplicaRow
from hub.timeutil import Clock

log = logging.getLogger("kubehub.leader")

REPLICAS_KEPT = 3600.0  # the admin overview lists replicas heard from within the last hour


class Work(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class LeaderStatus:
    """What /readyz, /metrics and the admin overview say about leadership."""

    replica: str
    leading: bool
    leader: str | None  # the live lease's holder, None when nobody holds one
    since: float | None  # when the live lease's holder acquired it
    token: int | None
    expires_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "leading": self.leading,
            "leader": self.leader,
            "leader_since": self.since,
            "token": self.token,
            "lease_expires_at": self.expires_at,
        }


class Leadership:
    """The lease loop of one replica (see the module docstring)."""

    def __init__(
        self,
        leases: LeaseStore,
        *,
        replica_id: str,
        lease_seconds: float,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[LeaderStatus], None] | None = None,
    ) -> None:
        self.leases = leases
        self.replica_id = replica_id
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.monotonic = monotonic
        self.on_change = on_change
        self.margin = min(1.0, lease_seconds * 0.1)
        self.started_at = clock.now()
        self._lease: Lease | None = None
        self._valid_until = 0.0  # on this process's monotonic clock
        self._beat: tuple[int | None, float] = (None, float("-inf"))  # (token, when) of the last heartbeat
        self._work: list[tuple[str, Work]] = []
        self._working = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one round at a time (the loop, stop())

    # -- what the work asks -------------------------------------------------------------------
    def fence(self) -> Fence | None:
        """The fence to act under now, or None when this replica may not act."""
        lease = self._lease
        if lease is None or self.monotonic() >= self._valid_until:
            return None
        return Fence(lease.name, lease.holder, lease.token)

    def may_act(self, fence: Fence) -> bool:
        """Whether work begun under ``fence`` may still do something outside the store (send an
        email): the same lease, still valid on this process's own clock."""
        current = self.fence()
        return current is not None and current == fence

    # -- the loop -----------------------------------------------------------------------------
    def start(self, work: Sequence[tuple[str, Work]]) -> None:
        if self._thread is not None:
            return
        self._work = list(work)
        self._stop.clear()
        self.round()  # the first round now: a lone hub leads from its first second
        self._thread = threading.Thread(target=self._loop, name="leader-lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.lease_seconds / (3 if self._lease is not None else 10)
            if self._stop.wait(wait):
                return
            try:
                self.round()
            except Exception:  # the loop must survive anything; the lease simply lapses
                log.exception("leader lease round failed")

    def round(self) -> None:
        """One renewal (holder) or check (follower) round, then start or stop the work."""
        with self._lock:
            if self._stop.is_set() and self._thread is not None:
                return
            began = self.monotonic()
            now = self.clock.now()
            held = self._lease.token if self._lease is not None else None
            try:
                current = self.leases.current(BACKGROUND)
                if held is None and current is not None and current.live(now):
                    lease = None  # a follower only reads while someone else leads
                else:
                    lease = self.leases.acquire(
                        me=self.replica_id, held=held, now=now, duration=self.lease_seconds, name=BACKGROUND
                    )
                    current = lease or self.leases.current(BACKGROUND)
            except Exception as exc:  # the store is down: keep the lease only while it is valid
                log.warning("leader lease: the state store did not answer: %s", exc)
                if self._lease is not None and self.monotonic() >= self._valid_until:
                    self._lose("its lease ran out while the state store did not answer")
                return
            if lease is not None:
                if self._lease is None or self._lease.token != lease.token:
                    log.info("replica %s leads (lease token %d)", self.replica_id, lease.token)
                self._lease = lease
                self._valid_until = began + self.lease_seconds - self.margin
                if not self._working:
                    self._start_work()
            elif self._lease is not None:
                holder = current.holder if current is not None else "nobody"
                self._lose(f"the lease is held by {holder}")
            # The heartbeat is a write (the writers' lock): every third of the lease, or at once
            # when this replica's leadership changed, not on every follower check.
            beat = (self._lease.token if self._lease is not None else None, began)
            if beat[0] != self._beat[0] or began - self._beat[1] >= self.lease_seconds / 3:
                try:
                    self.leases.heartbeat(self.replica_id, started_at=self.started_at, now=now, lease=self._lease)
                    self._beat = beat
                except Exception as exc:
                    log.warning("replica heartbeat not written: %s", exc)
            if self.on_change is not None:
                self.on_change(self._status(current, now))

    def _start_work(self) -> None:
        self._working = True
        for name, work in self._work:
            log.info("leader: starting %s", name)
            try:
                work.start()
            except Exception:
                log.exception("leader: starting %s failed", name)

    def _stop_work(self) -> None:
        if not self._working:
            return
        self._working = False
        for name, work in reversed(self._work):
            try:
                work.stop()
            except Exception:
                log.exception("leader: stopping %s failed", name)

    def _lose(self, why: str) -> None:
        log.warning("replica %s no longer leads: %s", self.replica_id, why)
        self._lease = None
        self._valid_until = 0.0
        self._stop_work()

    def stop(self) -> None:
        """Stop the work, release the lease (another replica takes over at once), leave the list."""
        self._stop.set()
        if self._thread is None and self._lease is None and not self._working:
            return  # never started (a web-only process): nothing held, no heartbeat written
        if self._thread is not None:
            self._thread.join(timeout=self.lease_seconds + 5)
            self._thread = None
        with self._lock:
            lease = self._lease
            self._lease = None
            self._valid_until = 0.0
            self._stop_work()
            try:
                if lease is not None:
                    self.leases.release(Fence(lease.name, lease.holder, lease.token), now=self.clock.now())
                self.leases.forget(self.replica_id)
            except Exception as exc:  # shutting down with the store unreachable: the lease lapses
                log.warning("leader lease not released: %s", exc)

    # -- status -------------------------------------------------------------------------------
    def status(self) -> LeaderStatus:
        """Read from the store (any replica may answer, whether it runs the loop or not)."""
        return self._status(self.leases.current(BACKGROUND), self.clock.now())

    def _status(self, current: Lease | None, now: float) -> LeaderStatus:
        live = current if current is not None and current.live(now) else None
        return LeaderStatus(
            replica=self.replica_id,
            leading=self.fence() is not None,
            leader=live.holder if live else None,
            since=live.acquired_at if live else None,
            token=live.token if live else None,
            expires_at=live.expires_at if live else None,
        )

    def replicas(self) -> list[ReplicaRow]:
        return self.leases.replicas(now=self.clock.now(), keep_seconds=REPLICAS_KEPT)
