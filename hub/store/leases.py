"""Leadership among hub replicas: a lease with a fencing token, kept in the state store.

Why in the state store (and not a Kubernetes ``Lease``): the work the lease guards (the alert
engine, outbox delivery, log shipping and retention) must go on while the Kubernetes API server
is down, which is often what the alerts are about, and every write of that work already goes
to the state store. Keeping the lease there lets the write itself check it: the fencing token
is compared inside the same transaction as the cycle's commit or the outbox update, so a
paused or partitioned former leader cannot commit even if it still believes it leads. A
Kubernetes ``Lease`` could elect, but could not fence writes to another system.

The decision is pure (:func:`decide`, the clock passed in); :class:`LeaseStore` applies it in
one write transaction, and both engines serialise writers (SQLite's ``BEGIN IMMEDIATE``, the
PostgreSQL adapter's writers' lock), so reading the row and writing the decision cannot
interleave with another replica's. The same holds for :class:`FencedStore`: the token check at
the start of a write transaction holds until its commit, because no lease change can commit
in between. That is the conditional write: the commit happens only if the token did not move.

Time: ``now`` is the replicas' wall clock (epoch seconds), so their clocks must agree to well
within the lease duration (NTP). The holder itself also stops acting on its own monotonic
clock before the stored expiry (see :mod:`hub.runtime.leadership`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hub.store.db import Params, Row, StateStore

BACKGROUND = "background"  # the one lease today: all the work that must run once


class FencingLost(Exception):
    """The lease this process acted under has a newer holder or token: its write is refused."""


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    token: int
    acquired_at: float
    renewed_at: float
    expires_at: float

    def live(self, now: float) -> bool:
        return now < self.expires_at

    @staticmethod
    def from_row(row: Row) -> Lease:
        return Lease(
            name=str(row["name"]),
            holder=str(row["holder"]),
            token=int(row["token"]),
            acquired_at=float(row["acquired_at"]),
            renewed_at=float(row["renewed_at"]),
            expires_at=float(row["expires_at"]),
        )


@dataclass(frozen=True)
class Fence:
    """What a write of the background work checks: the lease name and the token it acts under."""

    name: str
    holder: str
    token: int


def decide(current: Lease | None, *, name: str, me: str, held: int | None, now: float, duration: float) -> Lease | None:
    """The lease after ``me`` asks for it, or None when another holder's lease is still live.

    - no lease yet: ``me`` gets token 1;
    - ``me`` holds it (same holder and the token this process holds) and it is live: renewed,
      same token, same ``acquired_at``;
    - it expired (whoever held it, ``me`` included): ``me`` gets the next token. A holder that
      let its lease lapse may have been paused; whatever it had in flight must not commit;
    - another holder's live lease, or ``me``'s name with a token this process does not hold
      (a second process under the same replica id): None, wait for it to expire.
    """
    if duration <= 0:
        raise ValueError("a lease needs a positive duration")
    if current is None:
        return Lease(name, me, 1, now, now, now + duration)
    if current.live(now):
        if current.holder == me and held == current.token:
            return Lease(name, me, current.token, current.acquired_at, now, now + duration)
        return None
    return Lease(name, me, current.token + 1, now, now, now + duration)


@dataclass(frozen=True)
class ReplicaRow:
    id: str
    started_at: float
    heartbeat_at: float
    leader_since: float | None
    token: int | None


class LeaseStore:
    """The lease rows and the replicas' heartbeats."""

    def __init__(self, db: StateStore) -> None:
        self.db = db

    def current(self, name: str = BACKGROUND) -> Lease | None:
        row = self.db.query_one("SELECT * FROM hub_leases WHERE name=?", (name,))
        return Lease.from_row(row) if row else None

    def acquire(
        self, *, me: str, held: int | None, now: float, duration: float, name: str = BACKGROUND
    ) -> Lease | None:
        """Take or renew the lease in one write transaction; the lease ``me`` holds, or None."""
        with self.db.transaction():
            nxt = decide(self.current(name), name=name, me=me, held=held, now=now, duration=duration)
            if nxt is None:
                return None
            self.db.execute(
                "INSERT INTO hub_leases(name, holder, token, acquired_at, renewed_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET holder=excluded.holder,"
                " token=excluded.token, acquired_at=excluded.acquired_at, renewed_at=excluded.renewed_at,"
                " expires_at=excluded.expires_at",
                (nxt.name, nxt.holder, nxt.token, nxt.acquired_at, nxt.renewed_at, nxt.expires_at),
            )
            return nxt

    def release(self, fence: Fence, *, now: float) -> bool:
        """End the lease now (a clean shutdown), so another replica takes over without waiting
        for it to expire. Only the holder with that token can; the token stays (the next
        holder bumps it)."""
        with self.db.transaction():
            return (
                self.db.execute(
                    "UPDATE hub_leases SET expires_at=? WHERE name=? AND holder=? AND token=? AND expires_at>?",
                    (now, fence.name, fence.holder, fence.token, now),
                )
                > 0
            )

    def check(self, fence: Fence) -> None:
        """Raise :class:`FencingLost` unless ``fence`` is still the lease's holder and token.
        Called inside the caller's write transaction (see the module docstring)."""
        row = self.db.query_one("SELECT holder, token FROM hub_leases WHERE name=?", (fence.name,))
        if row is None or str(row["holder"]) != fence.holder or int(row["token"]) != fence.token:
            now_held = f"{row['holder']} with token {row['token']}" if row else "nobody"
            raise FencingLost(
                f"lease {fence.name!r}: this replica acted under token {fence.token}, now held by {now_held}"
            )

    # -- replicas ---------------------------------------------------------------------------
    def heartbeat(self, replica: str, *, started_at: float, now: float, lease: Lease | None) -> None:
        leader_since = lease.acquired_at if lease is not None else None
        token = lease.token if lease is not None else None
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO hub_replicas(id, started_at, heartbeat_at, leader_since, token) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET started_at=excluded.started_at, heartbeat_at=excluded.heartbeat_at,"
                " leader_since=excluded.leader_since, token=excluded.token",
                (replica, started_at, now, leader_since, token),
            )

    def forget(self, replica: str) -> None:
        """A replica that stops cleanly leaves the list."""
        with self.db.transaction():
            self.db.execute("DELETE FROM hub_replicas WHERE id=?", (replica,))

    def replicas(self, *, now: float, keep_seconds: float) -> list[ReplicaRow]:
        """Replicas heard from within ``keep_seconds``, most recent first; older rows go."""
        with self.db.transaction():
            self.db.execute("DELETE FROM hub_replicas WHERE heartbeat_at < ?", (now - keep_seconds,))
        rows = self.db.query("SELECT * FROM hub_replicas ORDER BY heartbeat_at DESC, id")
        return [
            ReplicaRow(
                id=str(r["id"]),
                started_at=float(r["started_at"]),
                heartbeat_at=float(r["heartbeat_at"]),
                leader_since=None if r["leader_since"] is None else float(r["leader_since"]),
                token=None if r["token"] is None else int(r["token"]),
            )
            for r in rows
        ]


class FencedStore:
    """A state store whose every write transaction first checks a fencing token.

    The background work's stores (the cycle runner's and the dispatcher's) are built over
    this instead of the plain store, so none of their writes needs to know about leases. A
    unit of work runs inside ``acting(fence)``, binding the fence it began under to its
    thread; the outermost ``transaction()`` checks that fence right after it got the write
    lock, and a write outside a transaction runs inside one. A write with no fence bound is
    refused: background work that forgot to take the lease must not write either.
    """

    def __init__(self, db: StateStore) -> None:
        self.db = db
        self.dialect = db.dialect
        self._leases = LeaseStore(db)
        self._local = threading.local()

    @contextmanager
    def acting(self, fence: Fence) -> Iterator[Fence]:
        previous = getattr(self._local, "fence", None)
        self._local.fence = fence
        try:
            yield fence
        finally:
            self._local.fence = previous

    def bound(self) -> Fence | None:
        """The fence this thread's unit of work acts under."""
        fence: Fence | None = getattr(self._local, "fence", None)
        return fence

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        depth = getattr(self._local, "depth", 0)
        with self.db.transaction() as conn:
            self._local.depth = depth + 1
            try:
                if depth == 0:
                    fence = self.bound()
                    if fence is None:
                        raise FencingLost("a background write without the lease")
                    self._leases.check(fence)
                yield conn
            finally:
                self._local.depth = depth

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        return self.db.query(sql, params)

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        return self.db.query_one(sql, params)

    def execute(self, sql: str, params: Params = ()) -> int:
        if getattr(self._local, "depth", 0) == 0 and sql.lstrip()[:6].upper() != "SELECT":
            with self.transaction():
                return self.db.execute(sql, params)
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if getattr(self._local, "depth", 0) == 0:
            with self.transaction():
                self.db.executemany(sql, rows)
            return
        self.db.executemany(sql, rows)

    def execute_alone(self, sql: str, params: Params = ()) -> int:
        """Not fenced, on purpose: the one write that records a fact rather than a decision (the
        mail server accepted a message). Refusing it to a former leader would only turn a
        message that left into one the next leader sends again."""
        return self.db.execute_alone(sql, params)

    def migrate(self) -> list[str]:
        return self.db.migrate()

    def describe(self) -> str:
        return self.db.describe()

    def close(self) -> None:
        """The plain store is the hub's; closing it is the hub's to do."""
