"""Workspace (inherited) alert policies: inheritance, overrides, required rules, tenant scope,
and the real engine cycle evaluating one workspace policy in two projects separately."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hub.alerts.cycle import CycleRunner
from hub.alerts.policy import parse_policy
from hub.alerts.service import AlertService
from hub.errors import NotFound, Unprocessable
from hub.store.alerts import AlertStore
from hub.store.alerts_inherited import expand, expand_document, inherited_id
from hub.store.tenancy import TenancyStore
from hub.timeutil import FakeClock
from tests.conftest import open_test_store

pytestmark = pytest.mark.unit

T0 = 1_794_983_400.0


def ws_doc(threshold: float = 500, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "cpu-default",
        "level": "workload",
        "rules": [
            {
                "name": "cpu",
                "metric": "workload_cpu_usage",
                "comparator": ">",
                "threshold": threshold,
                "unit": "millicores",
                "period": "1m",
                "consecutive": 1,
                "severity": "major",
            },
            {
                "name": "cpu-critical",
                "metric": "workload_cpu_usage",
                "comparator": ">",
                "threshold": 2000,
                "unit": "millicores",
                "period": "1m",
                "consecutive": 1,
                "severity": "critical",
            },
        ],
        "notification": {"receivers": [{"email": "oncall@example.com"}]},
    }
    doc.update(over)
    return doc


def builder(level: str, metric: str, aggregation: str, period_seconds: float, namespace: str | None = None) -> Any:
    return metric, ["namespace", "kind", "workload"]


class World:
    """Two workspaces (ws-a: ns-a1, ns-a2; ws-b: ns-b1), the alerting service and the real cycle."""

    def __init__(self, tmp: Path) -> None:
        self.db = open_test_store(tmp / "state.sqlite3")
        self.db.migrate()
        self.store = AlertStore(self.db)
        self.tenancy = TenancyStore(self.db)
        self.clock = FakeClock(T0)
        for ws in ("ws-a", "ws-b"):
            self.tenancy.insert_workspace(name=ws, description="", created_by="admin", now=T0)
        for ns, ws in (("ns-a1", "ws-a"), ("ns-a2", "ws-a"), ("ns-b1", "ws-b")):
            self.add_project(ns, ws)
        self.service = AlertService(self.store, clock=self.clock)
        self.values: dict[str, float] = {}
        self.runner = CycleRunner(
            store=self.store,
            build_query=builder,
            run_query=self.run_query,
            clock=self.clock,
            resolve_user=lambda name, namespace: None,
            tick_seconds=60,
        )

    def add_project(self, ns: str, ws: str) -> None:
        self.tenancy.insert_project(namespace=ns, workspace=ws, display_name=ns, created=T0, created_by="admin", now=T0)

    def run_query(self, promql: str, start: float, at: float, step: float) -> pd.DataFrame:
        rows = [(k.split("/")[0], "deployment", k.split("/")[1], v) for k, v in self.values.items()]
        return pd.DataFrame(rows, columns=["namespace", "kind", "workload", "value"])

    def tick(self) -> None:
        self.runner.run_once()
        self.clock.advance(60)

    def active(self) -> list[dict[str, Any]]:
        rows, _ = self.store.alerts(namespaces=None, include_cluster=True, active=True, limit=1000)
        return [{k: r[k] for k in r.keys()} for r in rows]  # noqa: SIM118


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _effective(w: World, ns: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in w.service.effective_policies(ns)}


# -- pure expansion -------------------------------------------------------------------------------


def test_expansion_forces_the_namespace_applies_thresholds_and_drops_disabled_rules() -> None:
    doc = ws_doc()
    out = expand_document(doc, "ns-x", {"cpu": {"threshold": 800}, "cpu-critical": {"disabled": True}})
    assert out["namespace"] == "ns-x" and out["level"] == "workload"
    assert [(r["name"], r["threshold"]) for r in out["rules"]] == [("cpu", 800.0)]
    assert doc["rules"][0]["threshold"] == 500  # the workspace document itself is untouched
    parse_policy(out)  # still a valid policy


def test_expansion_gives_a_workspace_policy_only_to_the_projects_of_its_own_workspace() -> None:
    policies = [
        {"id": "wa", "workspace": "ws-a", "enabled": 1, "version": 3, "document": json.dumps(ws_doc())},
        {"id": "wb", "workspace": "ws-b", "enabled": 1, "version": 1, "document": json.dumps(ws_doc())},
        {"id": "off", "workspace": "ws-a", "enabled": 0, "version": 1, "document": json.dumps(ws_doc())},
    ]
    rows = expand(policies, {"ws-a": ["ns-a1", "ns-a2"], "ws-b": ["ns-b1"]}, [])
    assert [r["id"] for r in rows] == ["wa@ns-a1", "wa@ns-a2", "wb@ns-b1"]
    assert {json.loads(r["document"])["namespace"] for r in rows if r["id"].startswith("wa@")} == {"ns-a1", "ns-a2"}
    assert rows[0]["version"] == 3


# -- the service ------------------------------------------------------------------------------------


def test_every_project_of_the_workspace_inherits_and_no_other_does(world: World) -> None:
    created = world.service.create_workspace_policy("ws-a", ws_doc(required=["cpu-critical"]), actor="wsadmin")
    assert created["required"] == ["cpu-critical"] and "namespace" not in created
    for ns in ("ns-a1", "ns-a2"):
        entry = _effective(world, ns)["cpu-default"]
        assert entry["source"] == "workspace" and entry["workspace"] == "ws-a"
        assert entry["id"] == inherited_id(created["id"], ns)
    assert "cpu-default" not in _effective(world, "ns-b1")
    with pytest.raises(NotFound):  # ws-b's project cannot reach ws-a's policy by id either
        world.service.put_override("ns-b1", created["id"], "cpu", {"threshold": 900}, actor="bob")
    with pytest.raises(NotFound):
        world.service.get_workspace_policy("ws-b", created["id"])


def test_a_project_overrides_a_threshold_and_disables_a_rule_the_view_says_so(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    world.service.put_override("ns-a1", pid, "cpu", {"threshold": 900}, actor="alice")
    world.service.put_override("ns-a1", pid, "cpu-critical", {"disabled": True}, actor="alice")
    rules = {r["name"]: r for r in _effective(world, "ns-a1")["cpu-default"]["rules"]}
    assert rules["cpu"]["threshold"] == 900 and rules["cpu"]["workspace_threshold"] == 500
    assert rules["cpu"]["overridden"] and rules["cpu"]["overridden_by"] == "alice"
    assert rules["cpu-critical"]["disabled"]
    sibling = {r["name"]: r for r in _effective(world, "ns-a2")["cpu-default"]["rules"]}
    assert sibling["cpu"]["threshold"] == 500 and not sibling["cpu"]["overridden"]  # ns-a2 is untouched
    world.service.delete_override("ns-a1", pid, "cpu", actor="alice")
    rules = {r["name"]: r for r in _effective(world, "ns-a1")["cpu-default"]["rules"]}
    assert rules["cpu"]["threshold"] == 500 and not rules["cpu"]["overridden"]


def test_a_required_rule_cannot_be_disabled_the_422_names_it_but_its_threshold_may_change(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(required=["cpu-critical"]), actor="wsadmin")["id"]
    with pytest.raises(Unprocessable) as err:
        world.service.put_override("ns-a1", pid, "cpu-critical", {"disabled": True}, actor="alice")
    assert "cpu-critical" in err.value.message and err.value.field == "disabled"
    world.service.put_override("ns-a1", pid, "cpu-critical", {"threshold": 3000}, actor="alice")
    rules = {r["name"]: r for r in _effective(world, "ns-a1")["cpu-default"]["rules"]}
    assert rules["cpu-critical"]["required"] and rules["cpu-critical"]["threshold"] == 3000


def test_making_a_rule_required_later_re_enables_it_where_a_project_had_disabled_it(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    world.service.put_override("ns-a1", pid, "cpu-critical", {"disabled": True}, actor="alice")
    world.service.update_workspace_policy("ws-a", pid, ws_doc(required=True), actor="wsadmin")
    rules = {r["name"]: r for r in _effective(world, "ns-a1")["cpu-default"]["rules"]}
    assert not rules["cpu-critical"]["disabled"] and rules["cpu-critical"]["required"]


def test_bad_overrides_are_refused_naming_the_field(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    with pytest.raises(NotFound):
        world.service.put_override("ns-a1", pid, "no-such-rule", {"threshold": 1}, actor="alice")
    with pytest.raises(Exception) as err:
        world.service.put_override("ns-a1", pid, "cpu", {"threshold": "high"}, actor="alice")
    assert getattr(err.value, "field", None) == "threshold"
    with pytest.raises(Unprocessable) as err2:
        world.service.put_override("ns-a1", pid, "cpu", {}, actor="alice")
    assert err2.value.field == "threshold"
    with pytest.raises(Unprocessable) as err3:
        world.service.create_workspace_policy("ws-a", ws_doc(name="x", required=["nope"]), actor="wsadmin")
    assert err3.value.field == "required"


# -- the real cycle -----------------------------------------------------------------------------------


def test_an_inherited_policy_fires_in_two_projects_separately_and_never_in_another_workspace(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    # 0.9 cores breaches 500m in both ws-a projects; ns-b1 (ws-b) is far above but has no such policy.
    world.values = {"ns-a1/api": 0.9, "ns-a2/web": 0.7, "ns-b1/api": 5.0}
    world.tick()
    fired = sorted((a["namespace"], a["entity"].split("/")[-1], a["policy_id"], a["rule"]) for a in world.active())
    assert fired == [
        ("ns-a1", "api", inherited_id(pid, "ns-a1"), "cpu"),
        ("ns-a2", "web", inherited_id(pid, "ns-a2"), "cpu"),
    ]
    # Each project's alerts are its own: a scoped read of ns-a1 sees only ns-a1's.
    rows, _ = world.store.alerts(namespaces=["ns-a1"], include_cluster=False, active=True, limit=100)
    assert {r["namespace"] for r in rows} == {"ns-a1"}
    status = _effective(world, "ns-a2")["cpu-default"]["status"]
    assert sum(status["alerts"].values()) == 1


def test_an_override_changes_what_the_engine_evaluates_in_that_project_only(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    world.service.put_override("ns-a1", pid, "cpu", {"threshold": 1000}, actor="alice")
    world.values = {"ns-a1/api": 0.9, "ns-a2/web": 0.9}
    world.tick()
    assert {(a["namespace"], a["rule"]) for a in world.active()} == {("ns-a2", "cpu")}


def test_a_project_added_later_inherits_at_the_next_cycle(world: World) -> None:
    world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")
    world.values = {"ns-a3/api": 0.9}
    world.tick()
    assert world.active() == []
    world.add_project("ns-a3", "ws-a")
    world.tick()
    assert [a["namespace"] for a in world.active()] == ["ns-a3"]


def test_deleting_the_workspace_policy_ends_its_alerts_in_every_project(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    world.values = {"ns-a1/api": 0.9, "ns-a2/web": 0.9}
    world.tick()
    assert len(world.active()) == 2
    ids = [a["id"] for a in world.active()]
    world.service.delete_workspace_policy("ws-a", pid, actor="wsadmin")
    assert world.active() == []
    for alert_id in ids:  # each ended through the pipeline, with its reason in the history
        events, _ = world.store.events(namespaces=None, include_cluster=True, alert_id=alert_id)
        assert any("the workspace policy was deleted" in str(e["reason"]) for e in events)
    world.tick()
    assert world.active() == []
    assert "cpu-default" not in _effective(world, "ns-a1")


def test_disabling_a_firing_inherited_rule_closes_its_alert_in_that_project_with_history(world: World) -> None:
    pid = world.service.create_workspace_policy("ws-a", ws_doc(), actor="wsadmin")["id"]
    world.values = {"ns-a1/api": 0.9, "ns-a2/web": 0.9}
    world.tick()
    a1 = next(a for a in world.active() if a["namespace"] == "ns-a1")
    world.service.put_override("ns-a1", pid, "cpu", {"disabled": True}, actor="alice")
    assert [a["namespace"] for a in world.active()] == ["ns-a2"]  # closed at once, not at the next cycle
    closed = world.store.alert(a1["id"])
    assert closed is not None and not closed["active"]
    events, _ = world.store.events(namespaces=["ns-a1"], include_cluster=False, alert_id=a1["id"])
    assert any("its rule was removed from the policy" in str(e["reason"]) for e in events), [dict(e) for e in events]
    world.tick()  # the engine agrees: ns-a1's rule is gone, ns-a2's alert still fires
    assert [a["namespace"] for a in world.active()] == ["ns-a2"]
