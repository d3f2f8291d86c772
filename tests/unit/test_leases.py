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


def test_a_leader_that_lost_its_lease_neither_commits_a_cycle_nor_sends(tmp_path: Path) -> None:
    """The alert engine's store over the fence: a cycle and a delivery round begun under an old
    token commit nothing and hand nothing to the notifier; the new leader's do."""
    from hub.alerts.cycle import CycleRunner
    from hub.alerts.notify.delivery import RecordingNotifier
    from hub.alerts.notify.outbox import Dispatcher
    from hub.alerts.notify.render import Renderer
    from hub.store.alerts import AlertStore
    from hub.store.leases import Fence, FencedStore, FencingLost
    from tests.unit.test_alerts_pipeline import World, node_doc

    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    leases = LeaseStore(w.db)
    old = leases.acquire(me="old", held=None, now=w.clock.now(), duration=3)
    assert old is not None
    fenced = FencedStore(w.db)
    store = AlertStore(fenced)
    runner = CycleRunner(
        store=store, build_query=w.runner.build_query, run_query=w.run_query, clock=w.clock, tick_seconds=60
    )
    old_fence = Fence(old.name, old.holder, old.token)
    with fenced.acting(old_fence):
        runner.run_once()  # under the live lease: committed, a message queued
    queued = w.store.outbox()
    assert len(queued) == 1 and queued[0]["status"] == "waiting"
    # "old" pauses; its lease runs out and "new" takes over
    w.clock.advance(4)
    new = leases.acquire(me="new", held=None, now=w.clock.now(), duration=3)
    assert new is not None and new.token == 2
    states_before = [dict(r) for r in w.store.state_rows()]
    w.values = {"node-1": 0.10}  # the old leader would resolve the alert...
    with fenced.acting(old_fence), pytest.raises(FencingLost):
        runner.run_once()
    assert [dict(r) for r in w.store.state_rows()] == states_before  # ...but commits nothing
    notifier = RecordingNotifier(clock=w.clock.now)
    allowed = {"old": False}
    dispatcher = Dispatcher(
        store=store,
        notifier=notifier,
        renderer=Renderer(public_url="http://hub.example"),
        clock=w.clock,
        may_send=lambda: allowed["old"],
    )
    with fenced.acting(old_fence), pytest.raises(FencingLost):
        dispatcher.deliver_all_due()  # refused at mark_sending: nothing handed over
    assert notifier.attempts == [] and w.store.outbox()[0]["status"] == "waiting"
    # the new leader delivers it, once
    allowed["old"] = True  # (its own may_send)
    with fenced.acting(Fence(new.name, new.holder, new.token)):
        assert dispatcher.deliver_all_due().sent == 1
    assert len(notifier.sent) == 1 and w.store.outbox()[0]["status"] == "sent"


def test_may_send_is_asked_per_message_and_a_refusal_keeps_it_queued(tmp_path: Path) -> None:
    from hub.alerts.notify.delivery import RecordingNotifier
    from hub.alerts.notify.outbox import Dispatcher
    from hub.alerts.notify.render import Renderer
    from tests.unit.test_alerts_pipeline import World, node_doc

    w = World(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["notification"]["receivers"] = [{"email": "a@example.com"}, {"email": "b@example.com"}]
    w.add(doc)
    w.values = {"node-1": 0.97}
    w.runner.run_once()
    answers = iter([True, False])
    notifier = RecordingNotifier(clock=w.clock.now)
    dispatcher = Dispatcher(
        store=w.store,
        notifier=notifier,
        renderer=Renderer(public_url="http://hub.example"),
        clock=w.clock,
        may_send=lambda: next(answers),
    )
    report = dispatcher.deliver_due()
    assert (report.sent, report.retried) == (1, 1) and len(notifier.sent) == 1
    statuses = sorted(r["status"] for r in w.store.outbox())
    assert statuses == ["sent", "waiting"]
