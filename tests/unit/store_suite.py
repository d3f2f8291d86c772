"""The one test suite every state store must pass: SQLite and PostgreSQL (hub.store).

Not collected by itself (no ``test_`` prefix): ``tests/unit/test_store.py`` runs it on SQLite,
``tests/integration/test_store_suite.py`` on SQLite and a real PostgreSQL server. Both provide
``open_store``: a callable that opens one more connection handle (a new store object, as a
second process would) on the same fresh, empty database.

The tests pin what the two engines could do differently behind the one interface: column
types (epoch seconds with microseconds, integers past 2^31), placeholders next to literals
that look like them, ids answered by INSERT, rows, constraint errors, the trigger-bumped
project generation, upserts, the single-writer rule under concurrent read-check-write, and
the area stores' SQL (tenancy, alerts, audit) end to end. Expected values come from Python
computing the same thing over the inputs (a brute-force oracle), never from the store itself.

Over 400 lines because it is one suite on purpose: an engine must pass all of it, and a split
would let a second engine be wired to half.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from hub.errors import Conflict
from hub.store import IntegrityError, StateStore
from hub.store.alerts import AlertStore, CycleWrite, StaleCycle
from hub.store.audit import AuditFilter, AuditStore
from hub.store.meta import get_or_create_secret
from hub.store.tenancy import TenancyStore

OpenStore = Callable[[], StateStore]

T0 = 1_795_219_200.123456  # 2026-11-21T00:00:00.123456Z: float4 would lose the minutes


@pytest.fixture
def store(open_store: OpenStore) -> StateStore:
    db = open_store()
    db.migrate()
    return db


# -- migrations and the interface ---------------------------------------------------------


def test_migrations_apply_once_and_are_recorded(open_store: OpenStore) -> None:
    db = open_store()
    first = db.migrate()
    assert {"core:1", "tenancy:1", "tenancy:2", "alerts:1", "audit:1"} <= set(first)
    assert db.migrate() == []
    assert open_store().migrate() == []  # a second process finds them applied
    rows = db.query("SELECT area, version FROM schema_migrations")
    assert {(r["area"], r["version"]) for r in rows} == {(a, int(v)) for a, v in (s.split(":") for s in first)}


def test_two_stores_migrating_at_once_apply_each_step_once(open_store: OpenStore) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(open_store().migrate())
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = [step for r in results for step in r]
    assert len(applied) == len(set(applied))  # nobody applied a step twice
    db = open_store()
    n = db.query_one("SELECT COUNT(*) AS n FROM schema_migrations")
    assert n is not None and n["n"] == len(applied)


def test_state_survives_reopening(open_store: OpenStore) -> None:
    db = open_store()
    db.migrate()
    secret = get_or_create_secret(db)
    db.close()
    again = open_store()
    again.migrate()
    assert get_or_create_secret(again) == secret


def test_rows_index_key_dict_and_iteration(store: StateStore) -> None:
    store.execute("INSERT INTO meta(key, value) VALUES (?, ?)", ("k", "v"))
    row = store.query_one("SELECT key, value, 7 AS n FROM meta WHERE key = ?", ("k",))
    assert row is not None
    assert (row[0], row[1], row[2]) == ("k", "v", 7)
    assert (row["key"], row["value"], row["n"]) == ("k", "v", 7)
    assert row.keys() == ["key", "value", "n"]
    assert dict(row) == {"key": "k", "value": "v", "n": 7}  # type: ignore[call-overload]
    assert list(row) == ["k", "v", 7]  # type: ignore[call-overload]
    assert len(row) == 3
    assert store.query_one("SELECT value FROM meta WHERE key = ?", ("missing",)) is None
    assert store.query("SELECT value FROM meta WHERE key = ?", ("missing",)) == []


def test_numbers_keep_their_precision(store: StateStore) -> None:
    big = 2**40 + 3  # past a 4-byte integer
    store.execute(
        "INSERT INTO alert_flaps(policy_id, rule, entity, changes, holding, held, held_since) VALUES (?,?,?,?,?,?,?)",
        ("p", "r", "e", "[]", big, -big, T0),
    )
    row = store.query_one("SELECT holding, held, held_since FROM alert_flaps")
    assert row is not None
    assert (row["holding"], row["held"], row["held_since"]) == (big, -big, T0)
    assert isinstance(row["held_since"], float)


def test_placeholders_beside_literals_that_look_like_them(store: StateStore) -> None:
    row = store.query_one("SELECT '?' AS q, ':name' AS c, '50%' AS pct, ? AS p, 'it''s ?' AS s", ("x",))
    assert row is not None and tuple(row) == ("?", ":name", "50%", "x", "it's ?")  # type: ignore[call-overload]
    row = store.query_one("SELECT :a AS a, :b AS b, ':a' AS lit", {"a": "1%", "b": "?:b"})
    assert row is not None and tuple(row) == ("1%", "?:b", ":a")  # type: ignore[call-overload]
    text = "a%b_c?d:e 'quoted' \\ 汉字"
    store.execute("INSERT INTO meta(key, value) VALUES (?, ?)", ("odd", text))
    assert store.query("SELECT value FROM meta WHERE key = 'odd' AND value LIKE '%\\%%' ESCAPE '\\'")[0][0] == text


def test_executemany_with_positional_and_named_parameters(store: StateStore) -> None:
    store.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [("a", "1"), ("b", "2")])
    store.executemany("INSERT INTO meta(key, value) VALUES (:k, :v)", [{"k": "c", "v": "3"}, {"k": "d", "v": "4"}])
    store.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [])
    rows = store.query("SELECT key, value FROM meta WHERE key IN ('a','b','c','d') ORDER BY key")
    assert [(r["key"], r["value"]) for r in rows] == [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]


def test_execute_answers_new_ids_and_changed_rows(store: StateStore) -> None:
    audit = AuditStore(store)
    ids = [
        audit.append(at=T0 + i, actor="u", action="a", target="", result="ok", namespaces=[], detail={})
        for i in range(3)
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3 and all(i > 0 for i in ids)
    rows = store.query("SELECT id FROM audit_log ORDER BY id")
    assert [r["id"] for r in rows] == ids
    assert store.execute("UPDATE audit_log SET target = 'x' WHERE id >= ?", (ids[1],)) == 2
    assert store.execute("DELETE FROM audit_log WHERE id = ?", (-1,)) == 0


def test_booleans_are_stored_as_integers(store: StateStore) -> None:
    tenancy = TenancyStore(store)
    tenancy.insert_user(name="u", password_hash="h", platform_role="regular", display_name="", email="", now=T0)
    store.execute("UPDATE users SET disabled = ? WHERE name = ?", (True, "u"))
    row = store.query_one("SELECT disabled FROM users WHERE name = 'u'")
    assert row is not None and row["disabled"] == 1
    assert tenancy.user("u").disabled is True  # type: ignore[union-attr]


def test_a_failed_transaction_leaves_nothing_behind(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
        with store.transaction():  # a nested transaction joins the outer one
            store.execute("INSERT INTO meta(key, value) VALUES ('k2', 'v')")
        raise RuntimeError("boom")
    assert store.query_one("SELECT value FROM meta WHERE key IN ('k', 'k2')") is None
    with store.transaction():
        store.execute("INSERT INTO meta(key, value) VALUES ('k3', 'v')")
    assert store.query_one("SELECT value FROM meta WHERE key = 'k3'") is not None


def test_constraint_violations_raise_the_stores_integrity_error(store: StateStore) -> None:
    store.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
    with pytest.raises(IntegrityError):
        store.execute("INSERT INTO meta(key, value) VALUES ('k', 'again')")
    with pytest.raises(IntegrityError), store.transaction():
        store.execute("INSERT INTO meta(key, value) VALUES ('k', 'again')")
    tenancy = TenancyStore(store)
    with pytest.raises(IntegrityError):  # the workspace does not exist: foreign key
        tenancy.insert_project(namespace="ns", workspace="nope", display_name="", created=T0, created_by="", now=T0)
    with pytest.raises(IntegrityError):  # a check constraint
        tenancy.insert_user(name="x", password_hash="h", platform_role="root", display_name="", email="", now=T0)
    # The store is usable after each failure.
    assert store.query_one("SELECT value FROM meta WHERE key = 'k'")["value"] == "v"  # type: ignore[index]


def test_threads_share_one_database(store: StateStore) -> None:
    def write(i: int) -> None:
        with store.transaction():
            store.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"k{i}", str(i)))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.query_one("SELECT count(*) AS n FROM meta WHERE key LIKE 'k%'")["n"] == 8  # type: ignore[index]


def test_read_check_write_transactions_never_lose_an_update(open_store: OpenStore) -> None:
    """Writers are serialized on both engines: four stores (as four processes would) each add
    1 twenty times by reading and writing back; a lost update would show in the total."""
    first = open_store()
    first.migrate()
    first.execute("INSERT INTO meta(key, value) VALUES ('counter', '0')")
    stores = [open_store() for _ in range(4)]

    def bump(db: StateStore) -> None:
        for _ in range(20):
            with db.transaction():
                row = db.query_one("SELECT value FROM meta WHERE key = 'counter'")
                db.execute("UPDATE meta SET value = ? WHERE key = 'counter'", (str(int(row["value"]) + 1),))  # type: ignore[index]

    threads = [threading.Thread(target=bump, args=(db,)) for db in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert first.query_one("SELECT value FROM meta WHERE key = 'counter'")["value"] == "80"  # type: ignore[index]


def test_one_secret_even_when_many_ask_at_once(open_store: OpenStore) -> None:
    open_store().migrate()
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(get_or_create_secret(open_store()))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and len(set(got)) == 1


# -- tenancy ------------------------------------------------------------------------------


def _world(t: TenancyStore) -> None:
    for name in ("alice", "bob"):
        t.insert_user(name=name, password_hash="h", platform_role="regular", display_name=name, email="", now=T0)
    t.insert_workspace(name="ws", description="d", created_by="alice", now=T0)


def test_project_generation_changes_with_every_project_change(open_store: OpenStore) -> None:
    db = open_store()
    db.migrate()
    other = TenancyStore(open_store())  # another process's view: the counter is in the database
    t = TenancyStore(db)
    _world(t)
    seen = [other.projects_generation()]
    t.insert_project(namespace="a", workspace="ws", display_name="", created=T0, created_by="", now=T0)
    seen.append(other.projects_generation())
    t.insert_project(namespace="b", workspace="ws", display_name="", created=T0, created_by="", now=T0)
    seen.append(other.projects_generation())
    assert t.set_project_created("a", T0 + 1, "uid-1") == 1
    seen.append(other.projects_generation())
    assert t.set_project_created("a", T0 + 1, "uid-1") == 0  # nothing changed: no bump
    seen.append(other.projects_generation())
    t.delete_project("b")
    seen.append(other.projects_generation())
    assert seen == [seen[0], seen[0] + 1, seen[0] + 2, seen[0] + 3, seen[0] + 3, seen[0] + 4]
    assert [p.namespace for p in other.projects()] == ["a"]
    assert other.project("a").namespace_uid == "uid-1"  # type: ignore[union-attr]
    assert other.project("a").created == T0 + 1  # type: ignore[union-attr]


def test_memberships_upsert_and_cascade(store: StateStore) -> None:
    t = TenancyStore(store)
    _world(t)
    t.insert_project(namespace="a", workspace="ws", display_name="", created=T0, created_by="", now=T0)
    t.put_workspace_member("ws", "alice", "viewer")
    t.put_workspace_member("ws", "alice", "admin")  # upsert: the role changes, no second row
    t.put_project_member("a", "bob", "operator")
    assert t.workspace_members("ws") == [("alice", "admin")]
    assert t.project_roles_of("bob") == {"a": "operator"}
    t.insert_session(id_hash="s1", username="bob", now=T0, expires_at=T0 + 60, client="c")
    token_id = t.insert_token(
        username="bob", name="n", kind="named", token_hash="th", hint="h", now=T0, expires_at=T0 + 60
    )
    assert t.token(token_id).username == "bob"  # type: ignore[union-attr]
    assert t.delete_user("bob") == 1
    assert t.project_members("a") == []
    assert t.session("s1") is None and t.token(token_id) is None
    with pytest.raises(IntegrityError):
        t.delete_workspace("ws")  # a project still belongs to it


def test_sessions_tokens_and_login_failures(store: StateStore) -> None:
    t = TenancyStore(store)
    _world(t)
    t.insert_session(id_hash="s1", username="alice", now=T0, expires_at=T0 + 10, client="")
    t.insert_session(id_hash="s2", username="alice", now=T0, expires_at=T0 + 100, client="")
    assert t.session("s1") is not None and t.session("s1").expires_at == T0 + 10  # type: ignore[union-attr]
    assert t.purge_sessions(T0 + 10) == 1
    assert t.delete_sessions_of("alice", keep="s2") == 0
    assert t.delete_sessions_of("alice") == 1
    ids = [
        t.insert_token(username="alice", name=f"t{i}", kind=k, token_hash=f"h{i}", hint="", now=T0, expires_at=T0 + i)
        for i, k in enumerate(("login", "named", "named"))
    ]
    assert [r.id for r in t.tokens_of("alice", kind="named")] == ids[1:]
    assert t.revoke_token(ids[1], T0) == 1 and t.revoke_token(ids[1], T0) == 0
    assert t.purge_tokens(T0 + 1.5) == 2  # expired at T0 and T0+1... and the one revoked at T0
    assert [r.id for r in t.tokens_of("alice")] == [ids[2]]
    times = [T0 + i * 0.25 for i in range(6)]
    for at in times:
        t.record_failure("key", at)
    assert t.failures_since("key", T0 + 0.5) == [x for x in times if x > T0 + 0.5]
    t.purge_failures(T0 + 0.5)
    assert t.failures_since("key", 0) == [x for x in times if x > T0 + 0.5]
    t.clear_failures("key")
    assert t.failures_since("key", 0) == []


def test_user_updates_and_admin_count(store: StateStore) -> None:
    t = TenancyStore(store)
    _world(t)
    t.update_user("alice", now=T0 + 5, platform_role="admin", disabled=False, email="a@x")
    t.update_user("bob", now=T0 + 5, platform_role="admin", disabled=True)
    assert t.count_active_admins() == 1
    alice = t.user("alice")
    assert alice is not None and alice.email == "a@x" and alice.updated_at == T0 + 5 and alice.disabled is False
    t.update_user("alice", now=T0 + 9, last_login_at=T0 + 9)
    assert t.user("alice").updated_at == T0 + 5 and t.user("alice").last_login_at == T0 + 9  # type: ignore[union-attr]
    assert [u.name for u in t.users()] == ["alice", "bob"]


# -- audit --------------------------------------------------------------------------------


def test_audit_filters_match_a_brute_force_oracle(store: StateStore) -> None:
    audit = AuditStore(store)
    rng = random.Random(7)
    actions = ["user.create", "user_create", "user.delete", "policy.update", "USER.create", "us%r.x"]
    namespaces = ["team-a", "team_a", "team-b", "a"]
    entries = []
    for i in range(60):
        e = {
            "at": T0 + i,
            "actor": rng.choice(["alice", "bob"]),
            "action": rng.choice(actions),
            "target": rng.choice(["t1", "t2"]),
            "result": rng.choice(["ok", "denied"]),
            "namespaces": rng.sample(namespaces, rng.randint(0, 2)),
        }
        e["id"] = audit.append(detail={"i": i}, **e)
        entries.append(e)
    cases = [
        AuditFilter(action="user."),
        AuditFilter(action="user_"),
        AuditFilter(action="us%"),
        AuditFilter(namespace="team_a"),
        AuditFilter(namespace="a", actor="bob"),
        AuditFilter(result="denied", start=T0 + 10, end=T0 + 40),
        AuditFilter(),
    ]
    for flt in cases:

        def keep(e: dict[str, Any], flt: AuditFilter = flt) -> bool:
            return (
                (flt.actor is None or e["actor"] == flt.actor)
                and (flt.action is None or e["action"].startswith(flt.action))
                and (flt.namespace is None or flt.namespace in e["namespaces"])
                and (flt.result is None or e["result"] == flt.result)
                and (flt.start is None or e["at"] >= flt.start)
                and (flt.end is None or e["at"] < flt.end)
            )

        want = sorted((e for e in entries if keep(e)), key=lambda e: (-e["at"], -e["id"]))
        got, total = audit.search(flt, limit=10, offset=2)
        assert total == len(want), flt
        assert [g.id for g in got] == [e["id"] for e in want[2:12]], flt


# -- alerts -------------------------------------------------------------------------------


def _alert(i: int, **kw: Any) -> dict[str, Any]:
    base = {
        "id": f"a{i}",
        "policy_id": "p1",
        "policy_name": "cpu",
        "level": "workload",
        "namespace": "team-a" if i % 2 else "",
        "rule": "r",
        "severity": "warning",
        "entity": f"e{i}",
        "labels": "{}",
        "state": "firing",
        "active": True,
        "started_at": T0,
        "fired_at": T0 + 60,
        "ended_at": None,
        "last_value": 0.1 * i,
        "threshold": 0.5,
        "comparator": ">",
        "unit": "",
        "metric": "m",
        "query": "q",
        "periods": 1,
        "sends": 0,
        "reason": "",
        "updated_at": T0 + i,
    }
    base.update(kw)
    return base


def test_policies_conflict_and_generation(store: StateStore) -> None:
    alerts = AlertStore(store)
    gen0 = alerts.generation()
    doc = {"name": "cpu", "rules": []}
    alerts.insert_policy(
        policy_id="p1", level="workload", namespace="team-a", name="cpu", document=doc, enabled=True, actor="u", now=T0
    )
    alerts.insert_policy(
        policy_id="p2", level="node", namespace=None, name="cpu", document=doc, enabled=False, actor="u", now=T0
    )
    with pytest.raises(Conflict):
        alerts.insert_policy(
            policy_id="p3",
            level="workload",
            namespace="team-a",
            name="cpu",
            document=doc,
            enabled=True,
            actor="u",
            now=T0,
        )
    assert alerts.generation() == gen0 + 2
    alerts.update_policy("p1", name="cpu2", document=doc, enabled=True, actor="v", now=T0 + 1)
    assert alerts.generation() == gen0 + 3
    assert [r["id"] for r in alerts.enabled_policy_rows()] == ["p1"]
    assert alerts.policy("p1")["version"] == 2  # type: ignore[index]
    assert [r["id"] for r in alerts.policies(namespaces=[])] == []
    assert [r["id"] for r in alerts.policies(namespaces=["team-a"])] == ["p1"]
    assert [r["id"] for r in alerts.policies(level="node")] == ["p2"]
    with pytest.raises(StaleCycle):
        alerts.commit_cycle(CycleWrite(meta={"x": "1"}), now=T0, generation=gen0)
    assert alerts.meta("x") is None  # the stale cycle wrote nothing
    alerts.commit_cycle(CycleWrite(meta={"x": "1"}), now=T0, generation=alerts.generation())
    assert alerts.meta("x") == "1"


def test_a_cycle_write_lands_whole(store: StateStore) -> None:
    alerts = AlertStore(store)
    w = CycleWrite(
        slots={60.0: T0, 300.0: T0 - 240},
        upsert_states=[("p1", "r", f"e{i}", f"a{i}", "firing", json.dumps({"i": i})) for i in range(5)],
        upsert_alerts=[_alert(i) for i in range(5)],
        events=[
            {
                "alert_id": f"a{i}",
                "policy_id": "p1",
                "namespace": _alert(i)["namespace"],
                "at": T0 + i,
                "from_state": "pending",
                "to_state": "firing",
                "value": 0.1 * i,
                "reason": "",
            }
            for i in range(5)
        ],
        notices=[
            {
                "key": f"n{i}",
                "alert_id": f"a{i}",
                "policy_id": "p1",
                "namespace": "",
                "kind": "firing",
                "at": T0,
                "status": "new",
                "payload": "{}",
            }
            for i in range(5)
        ],
        upsert_flaps=[("p1", "r", "e0", "[]", 1, 0, None)],
        health={"p1/r": ("error", "bad", T0)},
    )
    alerts.commit_cycle(w, now=T0)
    assert alerts.slots() == {60.0: T0, 300.0: T0 - 240}
    # The next cycle: upserts replace, a duplicate notice key is ignored, deletes remove.
    w2 = CycleWrite(
        slots={60.0: T0 + 60},
        upsert_alerts=[_alert(1, state="resolved", active=False, ended_at=T0 + 120, sends=99)],
        delete_states=[("p1", "r", "e0")],
        delete_alerts=["a4"],
        notices=[
            {
                "key": "n1",
                "alert_id": "a1",
                "policy_id": "p1",
                "namespace": "",
                "kind": "resolved",
                "at": T0 + 120,
                "status": "new",
                "payload": "{}",
            }
        ],
        health={"p1/r": None},
    )
    alerts.commit_cycle(w2, now=T0 + 120)
    assert alerts.slots()[60.0] == T0 + 60
    a1 = alerts.alert("a1")
    assert a1 is not None and a1["state"] == "resolved" and a1["active"] == 0 and a1["sends"] == 0
    assert a1["started_at"] == T0 and a1["ended_at"] == T0 + 120
    assert alerts.alert("a4") is None
    assert sorted(r["entity"] for r in alerts.state_rows()) == ["e1", "e2", "e3", "e4"]
    assert [r["kind"] for r in alerts.notices_by_keys(["n1"])] == ["firing"]
    assert alerts.existing_notice_keys(["n1", "n9"]) == {"n1"}
    assert alerts.health_rows() == []
    rows, total = alerts.alerts(namespaces=["team-a"], include_cluster=False)
    assert total == 2 and [r["id"] for r in rows] == ["a3", "a1"]  # newest update first, a1 and a3 only
    rows, total = alerts.alerts(namespaces=None, include_cluster=True, active=True)
    assert {r["id"] for r in rows} == {"a0", "a2", "a3"}
    events, total = alerts.events(namespaces=None, include_cluster=True, since=T0 + 1, until=T0 + 4)
    assert [e["alert_id"] for e in events] == ["a3", "a2", "a1"] and total == 3
    assert events[0]["policy_name"] == "cpu"


def test_comments_and_silences(store: StateStore) -> None:
    alerts = AlertStore(store)
    ids = [
        alerts.add_comment(alert_id=a, namespace="", author="u", text=f"{a}-{i}", now=T0 + i)
        for i, a in enumerate(["a1", "a2", "a1", "a1"])
    ]
    assert ids == sorted(ids) and len(set(ids)) == 4
    latest = alerts.latest_comments(["a1", "a2", "a3"])
    assert {k: (n, r["text"]) for k, (n, r) in latest.items()} == {"a1": (3, "a1-3"), "a2": (1, "a2-1")}
    assert alerts.latest_comments([]) == {}
    alerts.insert_silence(
        silence_id="s1",
        namespace="team-a",
        matchers={"rule": "r*"},
        starts_at=T0,
        ends_at=T0 + 60,
        comment="",
        actor="u",
        now=T0,
    )
    alerts.insert_silence(
        silence_id="s2", namespace=None, matchers={}, starts_at=T0 + 30, ends_at=T0 + 90, comment="", actor="u", now=T0
    )
    assert [r["id"] for r in alerts.silences(namespaces=["team-a"], include_cluster=False, active_at=T0 + 10)] == ["s1"]
    assert [r["id"] for r in alerts.silences(namespaces=None, include_cluster=True, active_at=T0 + 40)] == ["s2", "s1"]
    alerts.delete_silence("s1", now=T0)
    assert alerts.silence("s1") is None and json.loads(alerts.silence("s2")["matchers"]) == {}  # type: ignore[index]


def test_outbox_due_order_and_next_due_time_match_an_oracle(store: StateStore) -> None:
    alerts = AlertStore(store)
    rng = random.Random(3)
    msgs = []
    for i in range(30):
        nb = T0 + rng.randint(0, 100)
        m = {
            "mkey": f"m{i}",
            "tenant": rng.choice(["team-a", "team-b"]),
            "policy_id": "p1",
            "recipient": rng.choice(["x@e", "y@e", "z@e"]),
            "language": "en",
            "notices": [f"n{i}"],
            "not_before": nb,
            "message_id": f"<{i}@hub>",
        }
        msgs.append(m)
    alerts.commit_cycle(CycleWrite(messages=msgs), now=T0)
    # Re-enqueueing an existing waiting message merges its notices.
    alerts.commit_cycle(CycleWrite(messages=[{**msgs[0], "notices": ["n0", "extra"]}]), now=T0)
    rows = {r["mkey"]: r for r in alerts.outbox(limit=100)}
    assert json.loads(rows["m0"]["notices"]) == ["n0", "extra"]
    ids = {m["mkey"]: rows[m["mkey"]]["id"] for m in msgs}
    # Some messages back off: their next attempt moves past the others' not_before.
    backoff = {f"m{i}": T0 + 150 + i for i in range(0, 30, 7)}
    for key, nxt in backoff.items():
        alerts.mark_retry(ids[key], now=T0, next_attempt=nxt, error="421 try later")
    waiting = [
        {
            "id": ids[m["mkey"]],
            "recipient": m["recipient"],
            "not_before": m["not_before"],
            "next_attempt": backoff.get(m["mkey"], m["not_before"]),
            "attempts": 1 if m["mkey"] in backoff else 0,
        }
        for m in msgs
    ]
    assert alerts.next_due_time() == min(max(w["not_before"], w["next_attempt"]) for w in waiting)
    for now in (T0 + 20, T0 + 60, T0 + 100, T0 + 200):
        want = [
            w["id"]
            for w in sorted(waiting, key=lambda w: w["id"])
            if w["not_before"] <= now
            and w["next_attempt"] <= now
            and not any(
                p["recipient"] == w["recipient"] and p["id"] < w["id"] and p["attempts"] > 0 and p["next_attempt"] > now
                for p in waiting
            )
        ]
        assert [r["id"] for r in alerts.due_messages(now, 100)] == want, now
    assert alerts.mark_sending([], now=T0) == 0
    assert alerts.mark_sending([ids["m1"], ids["m2"]], now=T0) == 2
    assert alerts.outbox_depth() == 30
    assert alerts.recover_sending(T0) == 2
    assert alerts.tenant_messages_since("team-a", T0) == sum(1 for m in msgs if m["tenant"] == "team-a")


def test_notification_groups_upsert_expire_and_a_left_message_gets_a_follow_up(store: StateStore) -> None:
    alerts = AlertStore(store)
    rng = random.Random(17)
    oracle: dict[tuple[str, str], tuple[str, str, float]] = {}
    for cycle in range(6):
        ups = []
        for _ in range(rng.randint(1, 5)):
            key = (rng.choice(["a@e", "b@e", "webhook:http://x"]), f"g{rng.randint(0, 4)}")
            row = (rng.choice(["cluster", "team-a"]), json.dumps({"node": key[1]}), T0 + cycle * 60 + rng.random())
            ups = [u for u in ups if (u[0], u[1]) != key] + [(*key, *row)]
        gone = rng.sample(sorted(oracle), k=min(len(oracle), rng.randint(0, 2)))
        alerts.commit_cycle(CycleWrite(upsert_groups=ups, delete_groups=gone), now=T0)
        for k in gone:
            oracle.pop(k, None)
        oracle.update({(u[0], u[1]): (u[2], u[3], u[4]) for u in ups})
        got = {(r["recipient"], r["group_id"]): (r["tenant"], r["labels"], r["flush_at"]) for r in alerts.group_rows()}
        assert got == oracle, cycle
    # A group message that left before a cycle committed: the notices it lacks go in a
    # follow-up (own Message-ID), never nowhere; the ones it carried are not sent again.
    m = {
        "mkey": "group:a@e:x:1",
        "tenant": "cluster",
        "policy_id": "p1",
        "recipient": "a@e",
        "language": "en",
        "notices": ["n1"],
        "not_before": T0,
        "message_id": "<g1@kubehub.alerts>",
    }
    alerts.commit_cycle(CycleWrite(messages=[m]), now=T0)
    [row] = [r for r in alerts.outbox(limit=100) if r["mkey"] == m["mkey"]]
    alerts.mark_sending([row["id"]], now=T0)
    alerts.commit_cycle(CycleWrite(messages=[{**m, "notices": ["n1", "n2"]}]), now=T0 + 5)
    rows = {r["mkey"]: r for r in alerts.outbox(limit=100)}
    assert json.loads(rows[m["mkey"]]["notices"]) == ["n1"]
    follow = rows[m["mkey"] + "+"]
    assert json.loads(follow["notices"]) == ["n2"] and follow["not_before"] == T0 + 5
    assert follow["message_id"] == "<g1.1@kubehub.alerts>" and follow["status"] == "waiting"


def test_delivery_counts_each_alerts_firing_notices_once(store: StateStore) -> None:
    alerts = AlertStore(store)
    notices = [
        {
            "key": k,
            "alert_id": a,
            "policy_id": "p1",
            "namespace": "",
            "kind": kind,
            "at": T0,
            "status": "new",
            "payload": "{}",
        }
        for k, a, kind in [
            ("k1", "a1", "firing"),
            ("k2", "a1", "repeat"),
            ("k3", "a2", "firing"),
            ("k4", "a2", "resolved"),
        ]
    ]
    messages = [
        {
            "mkey": "m1",
            "tenant": "",
            "policy_id": "p1",
            "recipient": "x@e",
            "language": "en",
            "notices": ["k1", "k2", "k4"],
            "not_before": T0,
            "message_id": "<1@h>",
        },
        {
            "mkey": "m2",
            "tenant": "",
            "policy_id": "p1",
            "recipient": "y@e",
            "language": "en",
            "notices": ["k1", "k3"],
            "not_before": T0,
            "message_id": "<2@h>",
        },
    ]
    alerts.commit_cycle(CycleWrite(upsert_alerts=[_alert(1), _alert(2)], notices=notices, messages=messages), now=T0)
    ids = {r["mkey"]: r["id"] for r in alerts.outbox()}
    alerts.record_results([(ids["m1"], "sent", 0.0, "", "s1"), (ids["m2"], "retry", T0 + 30, "busy", "")], now=T0 + 1)
    assert (alerts.alert("a1")["sends"], alerts.alert("a2")["sends"]) == (2, 0)  # type: ignore[index]
    alerts.record_results([(ids["m2"], "sent", 0.0, "", "s2")], now=T0 + 31)
    assert (alerts.alert("a1")["sends"], alerts.alert("a2")["sends"]) == (2, 1)  # type: ignore[index]
    rows = {r["mkey"]: r for r in alerts.outbox()}
    assert rows["m1"]["status"] == "sent" and rows["m2"]["attempts"] == 2 and rows["m2"]["sent_at"] == T0 + 31


def test_the_sent_mark_commits_alone_and_its_bookkeeping_is_completed_once_by_any_round(store: StateStore) -> None:
    """record_sent is the commit right after the server's answer (nothing rides along); a leader
    that died before count_sent leaves ``counted = 0``, which the next round completes once. A
    message that left is never changed again, and is never claimed for sending again."""
    alerts = AlertStore(store)
    notices = [
        {"key": k, "alert_id": a, "policy_id": "p1", "namespace": "", "kind": "firing", "at": T0, "status": "new",
         "payload": "{}"}
        for k, a in [("k1", "a1"), ("k2", "a2"), ("k3", "a2")]
    ]  # fmt: skip
    messages = [
        {"mkey": f"m{i}", "tenant": "", "policy_id": "p1", "recipient": f"{i}@e", "language": "en", "notices": ks,
         "not_before": T0, "message_id": f"<{i}@h>"}
        for i, ks in enumerate([["k1"], ["k2"], ["k3", "k1"]])
    ]  # fmt: skip
    alerts.commit_cycle(CycleWrite(upsert_alerts=[_alert(1), _alert(2)], notices=notices, messages=messages), now=T0)
    ids = {r["mkey"]: r["id"] for r in alerts.outbox()}
    assert alerts.claim_sending([ids["m0"], ids["m1"]], T0) == [ids["m0"], ids["m1"]]
    assert alerts.record_sent(ids["m0"], now=T0 + 1, subject="s0")
    assert alerts.record_sent(ids["m2"], now=T0 + 1, subject="s2")  # a former leader's late mark: still true
    # the sender "died" here: nothing counted yet
    assert (alerts.alert("a1")["sends"], alerts.alert("a2")["sends"]) == (0, 0)  # type: ignore[index]
    assert alerts.claim_sending([ids["m2"]], T0 + 2) == []  # it left: not claimed, so not sent again
    assert alerts.count_sent(T0 + 2) == 2
    assert alerts.count_sent(T0 + 3) == 0 and alerts.count_sent(T0 + 3, [ids["m0"]]) == 0
    assert (alerts.alert("a1")["sends"], alerts.alert("a2")["sends"]) == (1, 1)  # type: ignore[index]
    assert not alerts.record_sent(ids["m0"], now=T0 + 4, subject="again")  # already sent: unchanged
    alerts.record_results([(ids["m0"], "retry", T0 + 30, "late refusal", "")], now=T0 + 4)
    rows = {r["mkey"]: r for r in alerts.outbox()}
    assert (rows["m0"]["status"], rows["m0"]["sent_at"], rows["m0"]["attempts"]) == ("sent", T0 + 1, 1)
    assert rows["m1"]["status"] == "sending" and rows["m1"]["counted"] == 1
    assert alerts.recover_sending(T0 + 5) == 1


def test_a_large_batch_lands_as_row_by_row_would_even_with_repeated_keys(store: StateStore) -> None:
    rows = [(f"k{i % 40}", f"v{i}") for i in range(1200)]  # every key 30 times: the last one wins
    store.executemany(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", rows
    )
    want: dict[str, str] = {}
    for key, value in rows:
        want[key] = value
    assert {r["key"]: r["value"] for r in store.query("SELECT key, value FROM meta WHERE key LIKE 'k%'")} == want
    named = [{"key": f"n{i}", "alert_id": f"a{i % 7}", "at": T0 + i / 1000} for i in range(1000)]
    named.append({"key": "n5", "alert_id": "again", "at": 0.0})  # ignored: the key exists
    with store.transaction():
        store.executemany(
            "INSERT INTO alert_notices(key, alert_id, policy_id, namespace, kind, at, status, payload)"
            " VALUES (:key, :alert_id, 'p%?', '', 'firing', :at, 'new', '{\"x\": 1}') ON CONFLICT DO NOTHING",
            named,
        )
    got = {
        r["key"]: (r["alert_id"], r["at"], r["policy_id"], r["payload"])
        for r in store.query("SELECT * FROM alert_notices")
    }
    assert got == {n["key"]: (n["alert_id"], n["at"], "p%?", '{"x": 1}') for n in named[:1000]}
    with pytest.raises(RuntimeError), store.transaction():
        store.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [(f"z{i}", "v") for i in range(100)])
        raise RuntimeError("boom")
    assert store.query("SELECT key FROM meta WHERE key LIKE 'z%'") == []
