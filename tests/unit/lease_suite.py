"""The leader lease and its fencing on a state store: one suite for SQLite and PostgreSQL.

Not collected by itself: ``tests/unit/test_leases.py`` runs it on SQLite,
``tests/integration/test_leases_postgres.py`` on both engines. The fixture ``open_store``
opens one more handle on the same fresh database (as another replica would).

What is checked against an outside reference: the lease's rules are replayed by a
brute-force model (who may hold a lease at which time, from the asks alone) and compared with
what the store answered; concurrent acquisition by several handles is checked for the one
property that matters (never two live holders, tokens only grow).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from hub.store import StateStore
from hub.store.leases import FencedStore, FencingLost, LeaseStore

OpenStore = Callable[[], StateStore]
T0 = 1_795_219_200.25


@pytest.fixture
def leases(open_store: OpenStore) -> LeaseStore:
    db = open_store()
    db.migrate()
    return LeaseStore(db)


def test_first_ask_gets_token_one_then_renews_and_others_wait(leases: LeaseStore, open_store: OpenStore) -> None:
    other = LeaseStore(open_store())
    a = leases.acquire(me="a", held=None, now=T0, duration=3.0)
    assert a is not None and (a.holder, a.token, a.expires_at) == ("a", 1, T0 + 3.0)
    assert other.acquire(me="b", held=None, now=T0 + 2.9, duration=3.0) is None
    renewed = leases.acquire(me="a", held=1, now=T0 + 2.0, duration=3.0)
    assert renewed is not None and (renewed.token, renewed.acquired_at, renewed.expires_at) == (1, T0, T0 + 5.0)
    assert other.acquire(me="b", held=None, now=T0 + 4.9, duration=3.0) is None
    b = other.acquire(me="b", held=None, now=T0 + 5.0, duration=3.0)
    assert b is not None and (b.holder, b.token, b.acquired_at) == ("b", 2, T0 + 5.0)
    # the former holder's renewal with its old token is refused: b's lease is live
    assert leases.acquire(me="a", held=1, now=T0 + 5.5, duration=3.0) is None
    assert leases.current() == b


def test_release_lets_the_next_take_over_at_once_and_bumps_the_token(leases: LeaseStore, open_store: OpenStore) -> None:
    from hub.store.leases import Fence

    a = leases.acquire(me="a", held=None, now=T0, duration=10.0)
    assert a is not None
    assert not leases.release(Fence(a.name, "a", 7), now=T0 + 1)  # not with another token
    assert leases.release(Fence(a.name, "a", a.token), now=T0 + 1)
    b = LeaseStore(open_store()).acquire(me="b", held=None, now=T0 + 1.5, duration=10.0)
    assert b is not None and b.token == a.token + 1


def test_a_fenced_write_commits_only_under_the_current_token(leases: LeaseStore, open_store: OpenStore) -> None:
    from hub.store.leases import Fence

    db = leases.db
    db.execute("CREATE TABLE fenced_probe (who TEXT NOT NULL)")
    a = leases.acquire(me="a", held=None, now=T0, duration=3.0)
    assert a is not None
    fenced = FencedStore(db)
    with pytest.raises(FencingLost):  # no fence bound: background work without the lease
        fenced.execute("INSERT INTO fenced_probe(who) VALUES ('nobody')")
    with fenced.acting(Fence(a.name, a.holder, a.token)):
        with fenced.transaction():
            fenced.execute("INSERT INTO fenced_probe(who) VALUES ('a-1')")
        # a paused "a": its lease lapses, b takes over, and a's next commit must not land
        b = LeaseStore(open_store()).acquire(me="b", held=None, now=T0 + 3.5, duration=3.0)
        assert b is not None and b.token == 2
        with pytest.raises(FencingLost, match="now held by b"), fenced.transaction():
            fenced.execute("INSERT INTO fenced_probe(who) VALUES ('a-2')")
        with pytest.raises(FencingLost):
            fenced.executemany("INSERT INTO fenced_probe(who) VALUES (?)", [("a-3",), ("a-4",)])
    # even the same replica name under a new token: work begun under token 1 stays refused
    c = leases.acquire(me="a", held=None, now=T0 + 7.0, duration=3.0)
    assert c is not None and c.token == 3
    with fenced.acting(Fence(a.name, "a", 1)), pytest.raises(FencingLost):
        fenced.execute("INSERT INTO fenced_probe(who) VALUES ('a-5')")
    with fenced.acting(Fence(c.name, "a", 3)):
        fenced.execute("INSERT INTO fenced_probe(who) VALUES ('a-6')")
    assert sorted(r["who"] for r in db.query("SELECT who FROM fenced_probe")) == ["a-1", "a-6"]


def test_random_asks_agree_with_a_brute_force_model(leases: LeaseStore, open_store: OpenStore) -> None:
    """Replay random asks; the model says from the asks alone who holds the lease and with
    which token, and no two replicas ever hold a live lease at once."""
    rng = random.Random(14)
    stores = {name: LeaseStore(open_store()) for name in ("a", "b", "c")}
    held: dict[str, int | None] = dict.fromkeys(stores)
    model_holder, model_token, model_expiry = None, 0, float("-inf")
    now = T0
    for _ in range(300):
        now += rng.choice([0.1, 0.5, 1.0, 2.0, 3.5])
        me = rng.choice(list(stores))
        duration = rng.choice([1.0, 3.0])
        got = stores[me].acquire(me=me, held=held[me], now=now, duration=duration)
        # the model
        if model_holder is None or now >= model_expiry:
            model_holder, model_token, model_expiry = me, model_token + 1, now + duration
            expected: tuple[str, int] | None = (me, model_token)
        elif model_holder == me and held[me] == model_token:
            model_expiry = now + duration
            expected = (me, model_token)
        else:
            expected = None
        assert (None if got is None else (got.holder, got.token)) == expected
        held[me] = got.token if got is not None else None
        live = [n for n, t in held.items() if t == model_token and model_holder == n and now < model_expiry]
        assert len(live) <= 1


def test_concurrent_asks_elect_exactly_one(leases: LeaseStore, open_store: OpenStore) -> None:
    stores = [LeaseStore(open_store()) for _ in range(6)]
    winners: list[tuple[str, int]] = []
    barrier = threading.Barrier(len(stores))
    lock = threading.Lock()

    def ask(i: int) -> None:
        barrier.wait()
        got = stores[i].acquire(me=f"r{i}", held=None, now=T0, duration=5.0)
        if got is not None:
            with lock:
                winners.append((got.holder, got.token))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and winners[0][1] == 1
    current = leases.current()
    assert current is not None and (current.holder, current.token) == winners[0]


def test_heartbeats_list_the_replicas_and_forget_old_ones(leases: LeaseStore) -> None:
    lease = leases.acquire(me="a", held=None, now=T0, duration=3.0)
    leases.heartbeat("a", started_at=T0 - 10, now=T0, lease=lease)
    leases.heartbeat("b", started_at=T0 - 5, now=T0 + 1, lease=None)
    leases.heartbeat("old", started_at=T0 - 99, now=T0 - 4000, lease=None)
    rows = leases.replicas(now=T0 + 2, keep_seconds=3600)
    assert [(r.id, r.leader_since, r.token) for r in rows] == [("b", None, None), ("a", T0, 1)]
    leases.forget("b")
    assert [r.id for r in leases.replicas(now=T0 + 2, keep_seconds=3600)] == ["a"]
