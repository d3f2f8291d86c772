"""The leader lease: its pure rule (:func:`hub.store.leases.decide`), the lease suite on SQLite
(tests/unit/lease_suite.py; PostgreSQL in tests/integration/test_leases_postgres.py), and the
lease loop (:class:`hub.runtime.leadership.Leadership`) driven by a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.runtime.leadership import Leadership
from hub.store import Database, StateStore
from hub.store.leases import Lease, LeaseStore, decide
from hub.timeutil import FakeClock

pytest.register_assert_rewrite("tests.unit.lease_suite")
from tests.unit.lease_suite import *  # noqa: E402, F403  (the suite's tests run here)

pytestmark = pytest.mark.unit


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    opened: list[Database] = []

    def open_() -> StateStore:
        db = Database(tmp_path / "state.sqlite3")
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()


def test_decide_covers_each_case() -> None:
    assert decide(None, name="n", me="a", held=None, now=10, duration=3) == Lease("n", "a", 1, 10, 10, 13)
    live = Lease("n", "a", 4, 0, 9, 12)
    assert decide(live, name="n", me="a", held=4, now=10, duration=3) == Lease("n", "a", 4, 0, 10, 13)
    assert decide(live, name="n", me="b", held=None, now=11.99, duration=3) is None
    assert decide(live, name="n", me="a", held=3, now=10, duration=3) is None  # same name, not this process's
    assert decide(live, name="n", me="b", held=None, now=12, duration=3) == Lease("n", "b", 5, 12, 12, 15)
    assert decide(live, name="n", me="a", held=4, now=12, duration=3) == Lease("n", "a", 5, 12, 12, 15)
    with pytest.raises(ValueError):
        decide(None, name="n", me="a", held=None, now=0, duration=0)


class Recorder:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_the_loop_starts_work_on_its_holder_and_hands_over(open_store: Callable[[], StateStore]) -> None:
    clock = FakeClock(1_795_219_200.0)
    mono = [100.0]
    first = open_store()
    first.migrate()
    events: list[str] = []

    def replica(name: str) -> Leadership:
        return Leadership(
            LeaseStore(open_store()), replica_id=name, lease_seconds=3.0, clock=clock, monotonic=lambda: mono[0]
        )

    a, b = replica("a"), replica("b")
    a._work = [("w", Recorder(events, "a"))]
    b._work = [("w", Recorder(events, "b"))]
    a.round()
    b.round()
    assert events == ["start a"]
    fence = a.fence()
    assert fence is not None and fence.token == 1 and b.fence() is None
    status = b.status()
    assert (status.leader, status.since, status.leading) == ("a", clock.now(), False)
    # a is paused past its lease: on its own clock it may not act any more
    mono[0] += 2.8
    assert a.fence() is None and not a.may_act(fence)
    clock.advance(3.0)
    b.round()
    assert events == ["start a", "start b"] and b.fence() is not None and b.fence().token == 2  # type: ignore[union-attr]
    a.round()  # a wakes up: the lease is b's, a stops its work
    assert events == ["start a", "start b", "stop a"] and a.fence() is None
    # a clean stop releases the lease: a takes over at its next round, with the next token
    b.stop()
    a.round()
    assert events[-2:] == ["stop b", "start a"] and a.fence() is not None and a.fence().token == 3  # type: ignore[union-attr]
    assert [r.id for r in a.replicas()] == ["a"]


def test_readyz_metrics_and_the_admin_overview_say_who_leads(tmp_path: Path) -> None:
    from tests.unit.conftest_tenancy import build_world

    world = build_world(tmp_path)
    try:
        hub = world.hub
        # another replica of the same store, as a second process would be
        other = Leadership(LeaseStore(hub.db), replica_id="other-replica:7", lease_seconds=30.0, clock=hub.clock)
        hub.leadership.round()  # this replica asks first and leads; the other follows
        other.round()
        me = hub.leadership.replica_id
        body = world.client().get("/readyz").get_json()
        assert body["leader"]["replica"] == me and body["leader"]["leading"] is True
        assert body["leader"]["leader"] == me and body["leader"]["token"] == 1
        assert body["leader"]["leader_since"] == pytest.approx(hub.clock.now(), abs=60)
        metrics = world.client().get("/metrics").get_data(as_text=True)
        assert f'kubehub_leader_info{{leader="{me}",replica="{me}"}} 1.0' in metrics
        assert "kubehub_leader 1.0" in metrics and "kubehub_lease_token 1.0" in metrics
        client, _ = world.session("platform-admin")
        html = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
        table = html[html.index('id="replicas"') :]
        table = table[: table.index("</table>")]
        rows = table.split("<tr>")[2:]
        assert len(rows) == 2
        mine = next(r for r in rows if me in r)
        theirs = next(r for r in rows if "other-replica:7" in r)
        assert "✓" in mine and "✓" not in theirs
        # a tenant sees no replicas
        tenant, _ = world.session("tenant-b")
        assert 'id="replicas"' not in tenant.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
    finally:
        world.hub.close()
