"""A notice that reaches nobody is not silent: it is not counted as a send, the alert's history
says who was not told and why (once), it goes out as soon as the receiver has an address, and
the hub's own meta-alert tells the admins while a firing alert reaches nobody."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.alerts.notify.reach import REACH_POLICY_ID, receiver_warnings
from hub.alerts.policy import parse_policy
from tests.unit.test_alerts_pipeline import World, node_doc

pytestmark = pytest.mark.unit


class Directory:
    """Users and their addresses, changeable during a test (what the tenancy service answers)."""

    def __init__(self, **emails: str) -> None:
        self.emails = dict(emails)

    def resolve(self, name: str, namespace: str | None) -> str | None:
        return self.emails.get(name) or None

    def explain(self, name: str, namespace: str | None) -> str:
        if name not in self.emails:
            return "is not a user of the hub any more"
        return "" if self.emails[name] else "has no email address"


def world(tmp_path: Path, directory: Directory, *, track: bool = True) -> World:
    w = World(tmp_path)
    w.runner.resolve_user = directory.resolve
    w.runner.explain_user = directory.explain
    w.runner.track_receivers = track
    return w


def users_doc(*users: str, **over: Any) -> dict[str, Any]:
    return node_doc(notification={"receivers": [{"user": u} for u in users], "send_resolved": True}, **over)


def alert_row(w: World) -> Any:
    rows, _ = w.store.alerts(namespaces=None, include_cluster=True, states=["firing"])
    (row,) = [r for r in rows if r["policy_id"] == "p1"]
    return row


def undelivered_events(w: World) -> list[Any]:
    events, _ = w.store.events(namespaces=None, include_cluster=True, limit=1000)
    return [e for e in events if e["to_state"] == "undelivered"]


def test_a_user_without_an_address_is_recorded_once_not_counted_and_mailed_once_reachable(tmp_path: Path) -> None:
    directory = Directory(bob="")
    w = world(tmp_path, directory, track=False)
    w.add(users_doc("bob", rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.tick(4)
    assert w.mails() == []
    row = alert_row(w)
    assert row["sends"] == 0
    (event,) = undelivered_events(w)
    assert event["reason"] == "not delivered: bob has no email address"
    assert event["alert_id"] == row["id"] and event["from_state"] == "firing"
    statuses = [(n["kind"], n["status"]) for n in w.store.notices_of(row["id"])]
    assert statuses == [("firing", "undelivered")]  # the first notice itself is not logged: still owed
    # bob gets an address: the first notice goes out at the next cycle, and counts
    directory.emails["bob"] = "bob@example.com"
    w.tick()
    assert [(m.recipient, m.subject.split("]")[0]) for _, m in w.mails()] == [("bob@example.com", "[FIRING·critical")]
    assert alert_row(w)["sends"] == 1
    assert len(undelivered_events(w)) == 1


def test_some_receivers_unreachable_the_others_are_mailed_and_the_alert_says_who_was_not(tmp_path: Path) -> None:
    directory = Directory(alice="alice@example.com", bob="")
    w = world(tmp_path, directory)
    w.add(users_doc("alice", "bob", "carol", rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.tick(3)
    assert [m.recipient for _, m in w.mails()] == ["alice@example.com"]
    assert alert_row(w)["sends"] == 1
    (event,) = undelivered_events(w)
    assert event["reason"] == (
        "not delivered: bob has no email address; not delivered: carol is not a user of the hub any more"
    )
    # someone was reached: no meta-alert
    rows, _ = w.store.alerts(namespaces=None, include_cluster=True)
    assert not [r for r in rows if r["policy_id"] == REACH_POLICY_ID]


def test_the_admins_are_alerted_while_a_firing_alert_reaches_nobody(tmp_path: Path) -> None:
    directory = Directory(bob="")
    w = world(tmp_path, directory)
    w.add(users_doc("bob", rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.tick(2)
    to_admin = [m for _, m in w.mails() if m.recipient == "admin@example.com"]
    assert [m.subject for m in to_admin] == ["[FIRING·major] cluster/node-pressure receivers-unreachable 1 (>0)"]
    assert "not delivered: bob has no email address" in to_admin[0].text
    rows, _ = w.store.alerts(namespaces=None, include_cluster=True, states=["firing"])
    meta = [r for r in rows if r["policy_id"] == REACH_POLICY_ID]
    assert len(meta) == 1 and meta[0]["namespace"] == "" and meta[0]["sends"] == 1
    # bob gets an address: his alert goes out and the meta-alert resolves
    directory.emails["bob"] = "bob@example.com"
    w.tick(2)
    assert any(m.recipient == "bob@example.com" for _, m in w.mails())
    resolved = [m.subject for _, m in w.mails() if m.recipient == "admin@example.com"][1:]
    assert resolved == ["[RESOLVED] cluster/node-pressure receivers-unreachable 0 (was >0)"]


def test_a_policy_with_no_receivers_at_all_reaches_nobody_too(tmp_path: Path) -> None:
    w = world(tmp_path, Directory())
    w.add(node_doc(notification={"receivers": []}, rule={"consecutive": 1}))
    w.values = {"node-1": 0.97}
    w.tick(2)
    (event,) = undelivered_events(w)
    assert event["reason"] == "not delivered: the policy names no receivers"
    assert [m.recipient for _, m in w.mails()] == ["admin@example.com"]


def test_save_warnings_name_each_unreachable_user_receiver() -> None:
    directory = Directory(alice="alice@example.com", bob="")
    policy = parse_policy(users_doc("alice", "bob"))
    warnings = receiver_warnings(policy, resolve_user=directory.resolve, explain_user=directory.explain)
    assert warnings == [
        {
            "field": "notification.receivers[1].user",
            "user": "bob",
            "warning": "bob has no email address: their notices will not be delivered",
        }
    ]
    assert receiver_warnings(parse_policy(node_doc()), resolve_user=directory.resolve) == []
    none = receiver_warnings(parse_policy(node_doc(notification={"receivers": []})), resolve_user=directory.resolve)
    assert [w["field"] for w in none] == ["notification.receivers"]


def test_the_console_shows_the_save_warning_next_to_the_saved_message(tmp_path: Path) -> None:
    from tests.unit.conftest_tenancy import HOME_NAMESPACE, PASSWORD, build_world
    from tests.unit.test_console_pages import HTML, policy_form

    w = build_world(tmp_path)
    try:
        w.tenancy.create_user("nomail", PASSWORD, email="")
        w.tenancy.set_project_member(HOME_NAMESPACE, "nomail", "viewer")
        client, csrf = w.session("project-operator")
        form = {**policy_form(csrf, "2"), "receivers": "user:poperator\nuser:nomail"}
        r = client.post(f"/projects/{HOME_NAMESPACE}/alerting/policies", data=form, headers=HTML)
        assert r.status_code == 303
        body = client.get(r.headers["Location"], headers=HTML).get_data(as_text=True)
        saved = body.index("Policy api-cpu is saved.")
        warning = body.index('<div class="flash warn" role="status">Saved, but nomail has no email address')
        assert saved < warning
        # in Chinese too
        zh = {**HTML, "Accept-Language": "zh-CN"}
        pid = r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        r = client.post(f"/projects/{HOME_NAMESPACE}/alerting/policies/{pid}", data=form, headers=zh)
        assert r.status_code == 303, r.get_data(as_text=True)[:300]
        body = client.get(r.headers["Location"], headers=zh).get_data(as_text=True)
        assert "nomail 没有邮箱地址" in body
    finally:
        w.hub.close()
