"""The engine's tracked states in memory: written only when what a restart reads back changes,
re-read from the store when it may hold something else (a new fence, a failed commit)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields, replace
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.cycle import CycleRunner
from hub.alerts.cycle_stages import must_persist, persisted_content
from hub.alerts.engine_model import EntityState, evolve
from hub.alerts.notify.damping import FlapRecord
from hub.store.alerts import AlertStore
from hub.store.leases import Fence, FencedStore, LeaseStore
from tests.unit.test_alerts_pipeline import World, node_doc

pytestmark = pytest.mark.unit


def firing(**over: Any) -> EntityState:
    st = EntityState(
        policy_id="p1",
        rule="cpu",
        entity="node-1",
        labels={"node": "node-1"},
        state="firing",
        alert_id="a1",
        count=3,
        started_at=0.0,
        since=120.0,
        last_eval=120.0,
        fired_at=120.0,
        last_breach=120.0,
        last_value=0.97,
        samples=((60.0, 0.95), (120.0, 0.97)),
    )
    return replace(st, **over)


def test_only_restart_relevant_changes_or_a_stale_checkpoint_are_written() -> None:
    saved = firing()
    evidence_only = firing(count=4, last_eval=180.0, last_breach=180.0, last_value=0.99, samples=((180.0, 0.99),))
    assert must_persist(saved, None)
    assert not must_persist(saved, saved)
    assert not must_persist(evidence_only, saved, checkpoint=300)
    assert must_persist(replace(evidence_only, last_eval=420.0), saved, checkpoint=300)  # the evidence's checkpoint
    assert must_persist(replace(evidence_only, sends=1, last_sent=180.0), saved)  # repeats count from it
    assert must_persist(replace(evidence_only, state="nodata", prior="firing", since=180.0), saved)
    assert must_persist(replace(evidence_only, state="error", prior="firing"), saved)
    # while pending, the breach count decides when it fires: every change is written
    pending = firing(state="pending", fired_at=None, count=1)
    assert must_persist(replace(pending, count=2, last_eval=180.0), pending)
    in_error = replace(pending, state="error", prior="pending")
    assert must_persist(replace(in_error, count=2), in_error)


def data_of(w: World) -> list[str]:
    return [r["data"] for r in w.store.state_rows()]


def test_a_firing_alert_is_not_rewritten_every_cycle_and_a_restart_continues_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 3}))
    w.values = {"node-1": 0.97}
    w.tick(2)
    pending = data_of(w)
    w.tick()  # the third breach fires it
    fired = data_of(w)
    assert fired != pending and '"state":"firing"' in fired[0]
    w.tick(2)  # still firing: only its evidence changed, nothing is written
    assert data_of(w) == fired
    assert len(w.mails()) == 1
    # a restart (kill -9: a new runner on the same store) continues the episode: no new first
    # notice, and the recovery resolves the same alert id
    w.runner = CycleRunner(
        store=w.store, build_query=w.runner.build_query, run_query=w.run_query, clock=w.clock, tick_seconds=60
    )
    w.tick()
    w.values = {"node-1": 0.10}
    w.tick()
    assert w.store.state_rows() == []
    subjects = w.subjects()
    assert len(subjects) == 2 and "RESOLVED" in subjects[1].upper(), subjects


def test_a_restart_keeps_the_pending_count(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 3}))
    w.values = {"node-1": 0.97}
    w.tick(2)
    w.runner = CycleRunner(
        store=w.store, build_query=w.runner.build_query, run_query=w.run_query, clock=w.clock, tick_seconds=60
    )
    w.tick()  # the third breach in a row, across the restart
    assert [r["state"] for r in w.store.state_rows()] == ["firing"]
    assert len(w.mails()) == 1


def test_a_failed_commit_drops_the_memory_copy(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.tick()
    real = w.store.commit_cycle

    def refused(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    w.store.commit_cycle = refused  # type: ignore[method-assign]
    w.values = {"node-1": 0.10}
    with pytest.raises(OSError):
        w.runner.run_once()
    # meanwhile the store changes under the runner (as an operator's repair would)
    w.db.execute("DELETE FROM alert_states")
    w.store.commit_cycle = real  # type: ignore[method-assign]
    w.runner.run_once()  # the memory copy was dropped: nothing left to resolve
    assert w.store.state_rows() == []
    assert [r["to_state"] for r in w.db.query("SELECT to_state FROM alert_events ORDER BY id")] == ["firing"]


def test_a_new_term_reads_what_the_other_leader_wrote(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    leases = LeaseStore(w.db)
    fenced = FencedStore(w.db)

    def runner() -> CycleRunner:
        return CycleRunner(
            store=AlertStore(fenced), build_query=w.runner.build_query, run_query=w.run_query, clock=w.clock,
            tick_seconds=60,
        )  # fmt: skip

    a, b = runner(), runner()
    first = leases.acquire(me="a", held=None, now=w.clock.now(), duration=3)
    assert first is not None
    w.values = {"node-1": 0.97}
    with fenced.acting(Fence(first.name, first.holder, first.token)):
        a.run_once()  # a fires the alert and keeps it in memory
    w.clock.advance(60)
    second = leases.acquire(me="b", held=None, now=w.clock.now(), duration=3)
    assert second is not None
    w.values = {"node-1": 0.10}
    with fenced.acting(Fence(second.name, second.holder, second.token)):
        b.run_once()  # b resolves it
    assert w.store.state_rows() == []
    w.clock.advance(60)
    third = leases.acquire(me="a", held=None, now=w.clock.now(), duration=3)
    assert third is not None
    w.values = {"node-1": 0.10}
    with fenced.acting(Fence(third.name, third.holder, third.token)):
        a.run_once()  # a leads again: it must not resolve the alert a second time from memory
    events = [r["to_state"] for r in w.db.query("SELECT to_state FROM alert_events ORDER BY id")]
    assert events == ["firing", "resolved"], events


def test_an_edit_of_another_policy_keeps_the_evidence_held_in_memory(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.add(node_doc(name="other"), policy_id="p2")
    w.values = {"node-1": 0.97}
    w.tick(3)  # fired at the first; the next two only appended evidence, in memory
    key = ("p1", "cpu-high", "node-1")
    assert len(w.runner._tracked[key].samples) == 3  # type: ignore[index]
    doc = node_doc(name="other", rule={"threshold": 95})
    w.store.update_policy("p2", name="other", document=doc, enabled=True, actor="test", now=w.clock.now())
    w.tick()
    assert len(w.runner._tracked[key].samples) == 4  # type: ignore[index]


# A different value for every field of EntityState.
OTHER: dict[str, Any] = {
    "policy_id": "p2",
    "rule": "mem",
    "entity": "node-2",
    "labels": {"node": "node-2"},
    "state": "pending",
    "alert_id": "a2",
    "count": 9,
    "started_at": 1.0,
    "since": 2.0,
    "last_eval": 3.0,
    "prior": "firing",
    "fired_at": None,
    "last_breach": 4.0,
    "last_value": None,
    "samples": ((1.0, None),),
    "sends": 2,
    "first_sent": 5.0,
    "last_sent": 6.0,
}


def test_evolve_builds_what_dataclasses_replace_builds() -> None:
    assert set(OTHER) == {f.name for f in fields(EntityState)}
    st = firing()
    for name, value in OTHER.items():
        assert evolve(st, **{name: value}) == replace(st, **{name: value}), name
    got = evolve(st, **OTHER)
    assert got == replace(st, **OTHER) and type(got) is EntityState
    assert st == firing()  # the original is untouched
    with pytest.raises(FrozenInstanceError):
        got.state = "firing"  # type: ignore[misc]


def test_must_persist_agrees_with_the_persisted_content() -> None:
    """The field-by-field check decides exactly as comparing :func:`persisted_content` does."""
    bases = [firing(), firing(state="pending", fired_at=None, count=1), firing(state="error", prior="pending")]
    for saved in bases:
        variants = [replace(saved, **{name: value}) for name, value in OTHER.items()]
        variants += [
            replace(saved, labels=dict(saved.labels)),  # equal labels, another mapping: no change
            replace(saved, labels={**saved.labels, "extra": "x"}),
            replace(saved, count=saved.count + 1),
            replace(saved, last_eval=saved.last_eval + 300),
            saved,
        ]
        for new in variants:
            expected = persisted_content(new) != persisted_content(saved) or new.last_eval - saved.last_eval >= 300
            assert must_persist(new, saved, checkpoint=300) == expected, (saved, new)


def test_the_flap_records_kept_in_memory_are_what_the_store_holds(tmp_path: Path) -> None:
    """The runner keeps the flap records between cycles; after every cycle they equal the
    store's rows (held, holding, summarised, pruned), also across another policy's edit."""
    w = World(tmp_path)
    doc = node_doc(rule={"consecutive": 1})
    doc["flap"] = {"changes": 4, "window": "10m"}
    w.add(doc)
    w.add(node_doc(name="other"), policy_id="p2")

    def stored() -> dict[tuple[str, str, str], FlapRecord]:
        return {(r["policy_id"], r["rule"], r["entity"]): FlapRecord.from_row(r) for r in w.store.flap_rows()}

    seen_holding = False
    for i in range(26):
        w.values = {"node-1": 0.97 if i % 2 == 0 and i < 12 else 0.1}
        if i == 8:
            other = node_doc(name="other", rule={"threshold": 95})
            w.store.update_policy("p2", name="other", document=other, enabled=True, actor="test", now=w.clock.now())
        w.tick()
        assert w.runner._flaps == stored(), i
        seen_holding |= any(r.holding for r in stored().values())
    assert seen_holding  # the pair was held (and counted) in between
    assert stored() == {}  # settled, summarised, then forgotten
    assert w.subjects()[-1].startswith("[FLAPPING·critical] node-1 cpu-high")


def test_a_state_whose_policy_no_longer_parses_is_closed_once(tmp_path: Path) -> None:
    """close_orphans checks every state after a policy change and only new keys in between."""
    w = World(tmp_path)
    w.add(node_doc(rule={"consecutive": 1}))
    w.add(node_doc(name="other", rule={"consecutive": 1}), policy_id="p2")
    w.values = {"node-1": 0.97}
    w.tick(2)
    assert len(w.store.state_rows()) == 2
    # A stored document that no longer parses is skipped by the engine: its alert is an orphan.
    w.db.execute("UPDATE alert_policies SET document=? WHERE id=?", ('{"broken": true}', "p2"))
    same = node_doc(rule={"consecutive": 1})  # an edit that changes nothing, for the generation
    w.store.update_policy("p1", name="node-pressure", document=same, enabled=True, actor="test", now=w.clock.now())
    w.tick(3)
    assert [r["policy_id"] for r in w.store.state_rows()] == ["p1"]
    closed = w.db.query("SELECT reason FROM alert_events WHERE policy_id='p2' AND to_state='closed'")
    assert [r["reason"] for r in closed] == ["its rule no longer exists"]
