"""Grouping across policies: the pure stage (hub/alerts/notify/grouping.py) with the clock
passed in, and the whole cycle + outbox over a real SQLite store (the pipeline's World), where
five node policies tripped by one node make one email, a later sixth one update, and the
resolves one more; group state survives a new runner (a restart or another replica)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.alerts.cycle import CycleRunner
from hub.alerts.notify import grouping, quota
from hub.alerts.notify.grouping import GroupSettings, GroupState
from hub.alerts.notify.notice import Notice
from hub.alerts.notify.window import MessagePlan
from tests.unit.test_alerts_pipeline import T0, World, node_doc

pytestmark = pytest.mark.unit

SETTINGS = GroupSettings(wait=30, interval=300)


def notice(
    key: str, *, policy: str, entity: str, level: str = "node", tenant: str = "cluster", **labels: str
) -> Notice:
    if level == "node":
        labels.setdefault("node", entity)
    return Notice(
        key=key,
        kind="firing",
        at=T0,
        alert_id=f"a-{key}",
        policy_id=policy,
        policy_name=policy,
        level=level,
        namespace=None if tenant == "cluster" else tenant,
        tenant=tenant,
        rule="r",
        severity="critical",
        entity=entity,
        labels=labels,
        metric="m",
        aggregation="avg",
        comparator=">",
        threshold=1.0,
        unit="raw",
        value=2.0,
        query="m",
        period=60,
        consecutive=1,
        started_at=T0,
    )


def routed(notices: list[Notice], *, recipient: str = "ops@example.com", now: float = T0) -> list[MessagePlan]:
    """What routing makes today: one message per policy and receiver."""
    by_policy: dict[str, list[str]] = {}
    tenants: dict[str, str] = {}
    for n in notices:
        by_policy.setdefault(n.policy_id, []).append(n.key)
        tenants[n.policy_id] = n.tenant
    return [
        MessagePlan(
            mkey=f"now:{pid}:{recipient}",
            tenant=tenants[pid],
            policy_id=pid,
            recipient=recipient,
            language="en",
            notices=keys,
            not_before=now,
        )
        for pid, keys in by_policy.items()
    ]


def run(notices: list[Notice], states: dict[Any, GroupState], now: float, **kw: Any) -> grouping.Grouped:
    messages = kw.pop("messages", None) or routed(notices, now=now)
    out = grouping.group(messages, {n.key: n for n in notices}, states=states, settings=SETTINGS, now=now)
    states.update(out.states)
    for k in out.expired:
        states.pop(k, None)
    return out


def test_five_policies_of_one_node_make_one_message_listing_five() -> None:
    five = [notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(5)]
    states: dict[Any, GroupState] = {}
    out = run(five, states, T0)
    assert len(out.messages) == 1
    m = out.messages[0]
    assert m.notices == [f"k{i}" for i in range(5)]
    assert m.not_before == T0 + 30  # group_wait
    assert list(states) == [("ops@example.com", m.extra["groups"])]
    assert states[("ops@example.com", m.extra["groups"])].labels == {
        "tenant": "cluster",
        "level": "node",
        "node": "node-1",
    }


def test_changes_inside_group_wait_join_the_waiting_message_and_cost_no_quota() -> None:
    states: dict[Any, GroupState] = {}
    first = run([notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(3)], states, T0)
    later = run([notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in (3, 4)], states, T0 + 15)
    assert later.messages[0].mkey == first.messages[0].mkey  # the store merges it into the waiting row
    assert later.messages[0].not_before == T0 + 30 and later.messages[0].extra.get("joins") == "1"
    assert later.states == {}
    kept = quota.apply(later.messages, now=T0 + 15, limit=1, count_since=lambda tenant, since: 5)
    assert kept == later.messages  # a tenant over quota: the joining notices still ride the group message


@pytest.mark.parametrize(
    ("at", "release"),
    [
        (T0 + 60, T0 + 30 + 300),  # soon after the first message: no sooner than group_interval
        (T0 + 320, T0 + 350),  # interval almost over: group_wait from now is later
        (T0 + 4000, T0 + 4030),  # long idle: group_wait from now
    ],
)
def test_a_later_sixth_is_one_update_paced_by_group_interval(at: float, release: float) -> None:
    states: dict[Any, GroupState] = {}
    first = run([notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(5)], states, T0)
    sixth = run([notice("k5", policy="p5", entity="node-1")], states, at)
    assert len(sixth.messages) == 1
    assert sixth.messages[0].notices == ["k5"] and sixth.messages[0].not_before == release
    assert sixth.messages[0].mkey != first.messages[0].mkey
    # one more change before that update leaves joins it
    seventh = run([notice("k6", policy="p6", entity="node-1")], states, at + 1)
    assert seventh.messages[0].mkey == sixth.messages[0].mkey


def test_resolves_of_one_node_are_grouped() -> None:
    states: dict[Any, GroupState] = {}
    run([notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(5)], states, T0)
    resolves = [
        Notice(**{**notice(f"r{i}", policy=f"p{i}", entity="node-1").__dict__, "kind": "resolved"}) for i in range(5)
    ]
    out = run(resolves[:2], states, T0 + 900)
    more = run(resolves[2:], states, T0 + 915)
    assert len(out.messages) == 1 and more.messages[0].mkey == out.messages[0].mkey
    assert out.messages[0].not_before == T0 + 930


def test_different_nodes_are_different_groups_with_their_own_pace() -> None:
    states: dict[Any, GroupState] = {}
    mixed = [notice("a", policy="p1", entity="node-1"), notice("b", policy="p1", entity="node-2")]
    mixed += [notice("c", policy="p2", entity="node-1")]
    out = run(mixed, states, T0)
    # two groups; released at the same instant, they share one message (a policy with twenty
    # hot nodes in one cycle still makes one email)
    assert len(states) == 2 and len(out.messages) == 1
    assert out.messages[0].notices == ["a", "c", "b"]
    # node-2 alone changes after the first message went out: only node-2's group moves
    later = run([notice("d", policy="p2", entity="node-2")], states, T0 + 100)
    assert [m.notices for m in later.messages] == [["d"]] and later.messages[0].not_before == T0 + 330
    node1 = [st for st in states.values() if st.labels["node"] == "node-1"]
    assert [st.flush_at for st in node1] == [T0 + 30]
    # node-1 then changes: its own pace, and since both releases coincide, one message again
    both = run([notice("e", policy="p3", entity="node-1")], states, T0 + 110)
    assert both.messages[0].mkey == later.messages[0].mkey


def test_repeats_alone_follow_their_schedule_not_group_interval() -> None:
    states: dict[Any, GroupState] = {}
    run([notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(2)], states, T0)
    repeats = [
        Notice(**{**notice(f"r{i}", policy=f"p{i}", entity="node-1").__dict__, "kind": "repeat"}) for i in range(2)
    ]
    out = run(repeats, states, T0 + 60)
    assert len(out.messages) == 1 and out.messages[0].not_before == T0 + 60  # not T0 + 330
    assert out.states == {}  # the group's pace is unchanged


def test_tenants_and_receivers_are_never_grouped_together() -> None:
    # the same workload name in two projects, and a node alert, to the same receiver
    w1 = notice("w1", policy="pa", entity="shop/deployment/web", level="workload", tenant="shop", workload="web")
    w2 = notice("w2", policy="pb", entity="blog/deployment/web", level="workload", tenant="blog", workload="web")
    w3 = notice("w3", policy="pc", entity="shop/deployment/web", level="workload", tenant="shop", workload="web")
    n1 = notice("n1", policy="pn", entity="node-1")
    out = run([w1, w2, w3, n1], {}, T0)
    by_keys = {tuple(m.notices): m.tenant for m in out.messages}
    assert len({m.mkey for m in out.messages}) == 3
    assert by_keys == {("w1", "w3"): "shop", ("w2",): "blog", ("n1",): "cluster"}
    # two receivers of the same notices: one message each, never one for both
    two = routed([w1, w3], recipient="a@example.com") + routed([w1, w3], recipient="b@example.com")
    out = run([w1, w3], {}, T0, messages=two)
    assert sorted((m.recipient, tuple(m.notices)) for m in out.messages) == [
        ("a@example.com", ("w1", "w3")),
        ("b@example.com", ("w1", "w3")),
    ]


def test_a_group_by_naming_tenant_or_level_cannot_widen_a_group_past_its_tenant() -> None:
    sneaky = GroupSettings(per_policy={"pa": ("tenant", "level"), "pb": ("tenant", "level")})
    w1 = notice("w1", policy="pa", entity="shop/deployment/web", level="workload", tenant="shop", workload="web")
    w2 = notice("w2", policy="pb", entity="blog/deployment/web", level="workload", tenant="blog", workload="web")
    assert grouping.group_labels(w1, sneaky)["tenant"] == "shop"
    out = grouping.group(routed([w1, w2]), {"w1": w1, "w2": w2}, states={}, settings=sneaky, now=T0)
    assert sorted((m.tenant, tuple(m.notices)) for m in out.messages) == [("blog", ("w2",)), ("shop", ("w1",))]


def test_alertmanager_receivers_quota_digests_and_disabled_grouping_pass_through() -> None:
    five = [notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(5)]
    am = routed(five, recipient="alertmanager:http://127.0.0.1:9093")
    out = run(five, {}, T0, messages=am)
    assert out.messages == am and out.states == {}
    off = grouping.group(
        routed(five), {n.key: n for n in five}, states={}, settings=GroupSettings(enabled=False), now=T0
    )
    assert len(off.messages) == 5


def test_held_messages_group_by_their_release_and_keep_it() -> None:
    five = [notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(5)]
    held = routed(five)
    for m in held:
        m.not_before, m.reason = T0 + 7200, "window"
    out = run(five, {}, T0, messages=held)
    assert len(out.messages) == 1
    assert (out.messages[0].not_before, out.messages[0].reason) == (T0 + 7200, "window")
    assert out.states == {}


def test_old_groups_are_forgotten() -> None:
    states: dict[Any, GroupState] = {}
    run([notice("k", policy="p", entity="node-1")], states, T0)
    assert states
    out = run([notice("x", policy="p", entity="node-2")], states, T0 + 30 + 301)
    assert [k for k in states if states[k].labels.get("node") == "node-1"] == []
    assert len(out.expired) == 1


# -- through the cycle, the store and the outbox --------------------------------------------


def grouped_world(tmp: Path, settings: GroupSettings = GroupSettings(wait=150, interval=300)) -> World:
    w = World(tmp)
    w.runner.group_settings = settings
    for i, name in enumerate(("cpu", "memory", "disk", "pressure", "network")):
        # different consecutive counts: the five fire over three cycles, inside group_wait
        w.add(node_doc(name=f"node-{name}", rule={"name": f"{name}-high", "consecutive": 1 + i % 3}), f"p{i}")
    return w


def test_five_node_policies_one_node_one_email_then_one_update_then_grouped_resolves(tmp_path: Path) -> None:
    w = grouped_world(tmp_path)
    w.values = {"node-1": 0.97, "node-2": 0.2}
    w.tick(5)
    assert len(w.mails()) == 1
    sent_at, mail = w.mails()[0]
    assert sent_at == T0 + 180  # released at T0 + 150 (group_wait after the first), delivered on the next tick
    for name in ("cpu", "memory", "disk", "pressure", "network"):
        assert f"node-{name}" in mail.text and f"{name}-high" in mail.text
    assert mail.text.count("node-1") >= 5 and "node-2" not in mail.text
    assert mail.subject.startswith("[FIRING·critical] node-1: 5 alerts (")
    assert mail.images  # the evidence charts
    # a sixth policy on the same node, later: one update
    w.add(node_doc(name="node-sixth", rule={"name": "sixth-high", "consecutive": 1}), "p5")
    w.tick(8)
    assert len(w.mails()) == 2
    assert "sixth-high" in w.mails()[1][1].text and "cpu-high" not in w.mails()[1][1].text
    # the node recovers: the six resolves, decided in one cycle, make one email
    w.values = {"node-1": 0.2, "node-2": 0.2}
    w.tick(8)
    assert len(w.mails()) == 3
    last = w.mails()[2][1]
    assert last.subject.startswith("[RESOLVED] node-1: 6 alerts")
    rows, total = w.store.alerts(namespaces=None, include_cluster=True, states=["resolved"])
    assert total == 6 and all(r["sends"] == 1 for r in rows)


def test_group_state_survives_a_new_runner_mid_group_wait(tmp_path: Path) -> None:
    w = grouped_world(tmp_path)
    w.values = {"node-1": 0.97}
    w.tick(2)  # the first notices wait in the outbox, their group in alert_groups
    assert w.mails() == [] and len(w.store.group_rows()) == 1
    old = w.runner
    w.runner = CycleRunner(  # a restart, or another replica taking the lease
        store=w.store,
        build_query=old.build_query,
        run_query=old.run_query,
        clock=w.clock,
        tick_seconds=60,
        group_settings=old.group_settings,
    )
    w.tick(3)
    assert len(w.mails()) == 1 and w.mails()[0][1].subject.startswith("[FIRING·critical] node-1: 5 alerts")
    outbox = w.store.outbox()
    assert len(outbox) == 1 and outbox[0]["status"] == "sent"


# -- settings ------------------------------------------------------------------------------


def test_group_by_setting_overrides_per_level_and_refuses_what_it_cannot_read() -> None:
    from hub.errors import ConfigError
    from hub.runtime.alerting import group_settings
    from hub.settings import AlertSettings

    assert grouping.parse_group_by("") == dict(grouping.DEFAULT_GROUP_BY)
    assert grouping.parse_group_by("workload=namespace; node = node,zone")["node"] == ("node", "zone")
    assert grouping.parse_group_by("workload=namespace")["workload"] == ("namespace",)
    for bad in ("pods=namespace", "node"):
        with pytest.raises(ValueError, match="level node, workload or cluster"):
            grouping.parse_group_by(bad)
    with pytest.raises(ConfigError, match="KUBEHUB_ALERTS_GROUP_BY"):
        group_settings(AlertSettings(group_by="pods=x"))
    assert group_settings(AlertSettings(group=False)) is None
    on = group_settings(AlertSettings(group_wait_seconds=7, group_interval_seconds=70))
    assert on is not None and (on.wait, on.interval) == (7, 70)
    # a workload grouped by namespace only: two workloads of one project share a group
    by_ns = GroupSettings(group_by=grouping.parse_group_by("workload=namespace"))
    a = notice("a", policy="p", entity="shop/deployment/web", level="workload", tenant="shop", workload="web")
    b = notice("b", policy="q", entity="shop/deployment/api", level="workload", tenant="shop", workload="api")
    assert grouping.group_labels(a, by_ns) == grouping.group_labels(b, by_ns)
    assert grouping.group_labels(a, SETTINGS) != grouping.group_labels(b, SETTINGS)


def test_a_policy_names_its_own_group_by_and_bad_names_are_refused_by_field() -> None:
    from hub.alerts.policy import PolicyInvalid, parse_policy

    doc = node_doc()
    doc["notification"]["group_by"] = ["policy", "node", "node"]
    p = parse_policy(doc)
    assert p.notification.group_by == ("policy", "node")
    assert parse_policy(p.to_document()).notification.group_by == ("policy", "node")
    assert parse_policy(node_doc()).notification.group_by is None and "group_by" not in p.to_document()["rules"][0]
    doc["notification"]["group_by"] = ["node", "bad-name"]
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(doc)
    assert err.value.problems[0].path == "notification.group_by[1]"
    # group_by [policy]: that policy's notices keep to themselves; the others still group by node
    own = GroupSettings(wait=30, interval=300, per_policy={"p0": ("policy",)})
    five = [notice(f"k{i}", policy=f"p{i}", entity="node-1") for i in range(5)]
    labels = {grouping.group_id(grouping.group_labels(n, own)) for n in five}
    assert len(labels) == 2


def test_the_pipeline_reads_each_policys_group_by(tmp_path: Path) -> None:
    w = grouped_world(tmp_path, GroupSettings(wait=30, interval=300))
    doc = node_doc(name="node-alone", rule={"name": "alone-high", "consecutive": 1})
    doc["notification"]["group_by"] = ["policy"]
    w.add(doc, "p9")
    w.values = {"node-1": 0.97}
    w.tick(5)
    # two groups with their own pace (released together at first, they share that message)
    groups = sorted(json.loads(r["labels"]).get("policy", "node") for r in w.store.group_rows())
    assert groups == ["node", "p9"]
    assert sum("alone-high" in m.text for _, m in w.mails()) == 1
