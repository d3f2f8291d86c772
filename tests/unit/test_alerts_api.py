"""The alerting API over the tenancy world: permissions, field-path errors, tenant isolation,
edits that carry over or close in-flight alerts, comments, silences, history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hub.alerts.cycle import CycleRunner
from hub.alerts.notify.delivery import RecordingNotifier
from hub.alerts.notify.outbox import Dispatcher
from hub.alerts.notify.render import Renderer
from hub.store.alerts import AlertStore
from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import TenancyWorld, assert_no_leak, build_world

pytestmark = pytest.mark.unit

T0 = 1_794_983_400.0


def node_policy(name: str = "node-pressure", threshold: float = 90) -> dict[str, Any]:
    return {
        "name": name,
        "level": "node",
        "rules": [
            {
                "name": "cpu-high",
                "metric": "node_cpu_utilisation",
                "comparator": ">",
                "threshold": threshold,
                "unit": "percent",
                "period": "1m",
                "consecutive": 1,
                "severity": "critical",
            }
        ],
        "notification": {"receivers": [{"email": "oncall@example.com"}]},
    }


def workload_policy(name: str = "api-cpu", receiver: str = "poperator", **rule: Any) -> dict[str, Any]:
    r = {
        "name": "cpu",
        "metric": "workload_cpu_usage",
        "comparator": ">",
        "threshold": 500,
        "unit": "millicores",
        "period": "1m",
        "consecutive": 1,
        "severity": "major",
    }
    r.update(rule)
    return {"name": name, "level": "workload", "rules": [r], "notification": {"receivers": [{"user": receiver}]}}


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = build_world(tmp_path, clock=FakeClock(T0))
    yield w
    w.hub.close()


class Engine:
    """Runs real cycles of the world's hub against values the test sets (our query protocol)."""

    def __init__(self, world: TenancyWorld) -> None:
        from hub.collectors.catalogue import default_catalogue

        self.world = world
        self.values: dict[str, float] = {}
        cat = default_catalogue()
        self.runner = CycleRunner(
            store=AlertStore(world.hub.db),
            build_query=cat.alert_query,
            run_query=self.query,
            clock=world.hub.clock,
            resolve_user=lambda name, namespace: world.tenancy.user_email(name),
            explain_user=world.hub.alerting.explain_user,
            tick_seconds=60,
        )
        # Delivery through a recording notifier: an alert's ``sends`` counts notices a mail
        # server (here: the recorder) accepted.
        self.notifier = RecordingNotifier(clock=world.hub.clock.now)
        self.dispatcher = Dispatcher(
            store=AlertStore(world.hub.db),
            notifier=self.notifier,
            renderer=Renderer(public_url=""),
            clock=world.hub.clock,
        )

    def query(self, promql: str, start: float, at: float, step: float) -> pd.DataFrame:
        if "node_cpu" in promql:
            nodes = {k: v for k, v in self.values.items() if "/" not in k}
            return pd.DataFrame({"node": list(nodes), "value": list(nodes.values())})
        rows = [(*k.split("/"), v) for k, v in self.values.items() if k.count("/") == 2]
        return pd.DataFrame(rows, columns=["namespace", "kind", "workload", "value"])

    def tick(self) -> None:
        self.runner.run_once()
        self.dispatcher.deliver_all_due()
        self.world.hub.clock.advance(60)  # type: ignore[attr-defined]


def create(world: TenancyWorld, role: str, url: str, doc: dict[str, Any]) -> Any:
    r = world.client(role).post(url, json=doc)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def test_admins_manage_node_policies_and_tenants_may_not(world: TenancyWorld) -> None:
    p = create(world, "platform-admin", "/api/v1/alerting/policies", node_policy())
    assert p["id"].startswith("pol-") and p["rules"][0]["threshold"] == 90
    assert world.client("project-admin").post("/api/v1/alerting/policies", json=node_policy("x")).status_code == 403
    assert world.client("project-admin").get("/api/v1/alerting/policies").status_code == 403
    r = world.client("platform-admin").get("/api/v1/alerting/policies")
    assert r.get_json()["total"] == 1
    again = world.client("platform-admin").post("/api/v1/alerting/policies", json=node_policy())
    assert again.status_code == 409 and again.get_json()["field"] == "name"


def test_invalid_documents_answer_with_the_field_path(world: TenancyWorld) -> None:
    c = world.client("project-operator")
    bad = workload_policy(threshold="high")
    r = c.post("/api/v1/namespaces/ns-a1/alerting/policies", json=bad)
    assert r.status_code == 422
    assert r.get_json()["field"] == "rules[0].threshold"
    r = c.post("/api/v1/namespaces/ns-a1/alerting/policies", json=workload_policy(period="5mins", metric="nope"))
    fields = {p["field"] for p in r.get_json()["problems"]}
    assert {"rules[0].period", "rules[0].metric"} <= fields
    r = c.post(
        "/api/v1/namespaces/ns-a1/alerting/policies", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    yaml_doc = "name: api-mem\nlevel: workload\nrules:\n  - name: mem\n    metric: workload_memory_usage\n"
    yaml_doc += "    comparator: '>'\n    threshold: 2\n    unit: GiB\n    period: 5mins\n    severity: minor\n"
    r = c.post(
        "/api/v1/namespaces/ns-a1/alerting/policies", data=yaml_doc, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 422 and r.get_json()["problems"][0]["line"] == 9
    r = c.post(
        "/api/v1/namespaces/ns-a1/alerting/policies",
        data=yaml_doc.replace("5mins", "5m"),
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 201
    r = c.post("/api/v1/namespaces/ns-a1/alerting/policies", data="a: [", headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400


def test_a_user_receiver_must_be_able_to_see_the_projects_alerts(world: TenancyWorld) -> None:
    c = world.client("project-operator")
    doc = workload_policy()
    doc["notification"]["receivers"] = [{"user": "bob"}]  # the other tenant
    r = c.post("/api/v1/namespaces/ns-a1/alerting/policies", json=doc)
    assert r.status_code == 422 and r.get_json()["field"] == "notification.receivers[0].user"
    doc["notification"]["receivers"] = [{"user": "pviewer"}, {"user": "wsadmin"}]
    assert c.post("/api/v1/namespaces/ns-a1/alerting/policies", json=doc).status_code == 201


def test_validate_checks_without_saving(world: TenancyWorld) -> None:
    c = world.client("project-viewer")
    r = c.post("/api/v1/namespaces/ns-a1/alerting/policies/validate", json=workload_policy())
    assert r.status_code == 200 and r.get_json()["policy"]["namespace"] == "ns-a1"
    assert world.client("project-admin").get("/api/v1/namespaces/ns-a1/alerting/policies").get_json()["total"] == 0


def test_a_tenant_cannot_aim_a_policy_at_another_project(world: TenancyWorld) -> None:
    doc = workload_policy()
    doc["namespace"] = "ns-b1"
    r = world.client("project-operator").post("/api/v1/namespaces/ns-a1/alerting/policies", json=doc)
    assert r.status_code == 422 and r.get_json()["field"] == "namespace"
    r = world.client("project-operator").post("/api/v1/namespaces/ns-b1/alerting/policies", json=workload_policy())
    assert r.status_code == 403
    assert_no_leak(r, requested="ns-b1")
    viewer = world.client("project-viewer").post("/api/v1/namespaces/ns-a1/alerting/policies", json=workload_policy())
    assert viewer.status_code == 403


def test_other_tenants_policy_ids_are_404_without_a_leak(world: TenancyWorld) -> None:
    mine = create(
        world, "tenant-b", "/api/v1/namespaces/ns-b1/alerting/policies", workload_policy("b-cpu", receiver="bob")
    )
    node = create(world, "platform-admin", "/api/v1/alerting/policies", node_policy())
    c = world.client("workspace-admin")
    for url in (
        f"/api/v1/namespaces/ns-a1/alerting/policies/{mine['id']}",
        f"/api/v1/namespaces/ns-a1/alerting/policies/{node['id']}",
    ):
        for r in (c.get(url), c.put(url, json=workload_policy()), c.delete(url), c.post(url + "/backtest", json={})):
            assert r.status_code == 404, (url, r.status_code)
            assert_no_leak(r)
    assert world.client("platform-admin").get(f"/api/v1/alerting/policies/{mine['id']}").status_code == 404


def test_every_policy_change_is_audited(world: TenancyWorld) -> None:
    p = create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy())
    url = f"/api/v1/namespaces/ns-a1/alerting/policies/{p['id']}"
    assert world.client("project-operator").put(url, json=workload_policy(threshold=700)).status_code == 200
    assert world.client("project-operator").delete(url).status_code == 200
    rows = world.hub.db.query("SELECT actor, action, target FROM audit_log ORDER BY id")
    mine = [(r["actor"], r["action"]) for r in rows if r["action"].startswith("policy.")]
    assert mine == [("poperator", "policy.create"), ("poperator", "policy.update"), ("poperator", "policy.delete")]
    assert all("ns-a1" in r["target"] for r in rows if r["action"].startswith("policy."))


def test_an_edit_carries_over_matching_alerts_and_closes_the_others_with_a_notice(world: TenancyWorld) -> None:
    doc = workload_policy()
    doc["rules"].append({**doc["rules"][0], "name": "cpu-critical", "threshold": 800, "severity": "critical"})
    p = create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", doc)
    engine = Engine(world)
    engine.values = {"ns-a1/deployment/api": 0.9}
    engine.tick()
    alerts = world.client("project-operator").get("/api/v1/alerting/alerts").get_json()
    assert sorted(a["rule"] for a in alerts["items"]) == ["cpu", "cpu-critical"]
    assert all(a["sends"] == 1 for a in alerts["items"])
    # Remove one rule, change the threshold of the other.
    new = workload_policy(threshold=600)
    r = world.client("project-operator").put(f"/api/v1/namespaces/ns-a1/alerting/policies/{p['id']}", json=new)
    effects = r.get_json()["effects"]
    assert [e["rule"] for e in effects["carried_over"]] == ["cpu"]
    assert effects["closed"] == [
        {"rule": "cpu-critical", "entity": "ns-a1/deployment/api", "reason": "its rule was removed from the policy"}
    ]
    closed = world.client("project-operator").get("/api/v1/alerting/alerts?state=closed").get_json()["items"]
    assert [a["rule"] for a in closed] == ["cpu-critical"]
    notices = world.hub.db.query("SELECT kind, status FROM alert_notices WHERE kind='closed'")
    assert [(n["kind"], n["status"]) for n in notices] == [("closed", "queued")]
    # The carried-over alert keeps firing under the new threshold, without a second first notice.
    engine.tick()
    firing = world.client("project-operator").get("/api/v1/alerting/alerts?state=firing").get_json()["items"]
    assert [(a["rule"], a["sends"], a["threshold"]) for a in firing] == [("cpu", 1, 600)]


def test_alerts_history_and_comments_are_scoped_by_tenant(world: TenancyWorld) -> None:
    create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy())
    create(world, "tenant-b", "/api/v1/namespaces/ns-b1/alerting/policies", workload_policy("b-cpu", receiver="bob"))
    create(world, "platform-admin", "/api/v1/alerting/policies", node_policy())
    engine = Engine(world)
    engine.values = {"ns-a1/deployment/api": 0.9, "ns-b1/deployment/api": 0.9, "node-1": 0.99}
    engine.tick()
    a = world.client("project-viewer").get("/api/v1/alerting/alerts").get_json()
    assert [x["namespace"] for x in a["items"]] == ["ns-a1"]
    everything = world.client("platform-admin").get("/api/v1/alerting/alerts").get_json()
    assert sorted(str(x["namespace"]) for x in everything["items"]) == ["None", "ns-a1", "ns-b1"]
    foreign = next(x["id"] for x in everything["items"] if x["namespace"] == "ns-b1")
    node = next(x["id"] for x in everything["items"] if x["namespace"] is None)
    c = world.client("project-operator")
    for aid in (foreign, node):
        for r in (
            c.get(f"/api/v1/alerting/alerts/{aid}"),
            c.post(f"/api/v1/alerting/alerts/{aid}/comments", json={"text": "x"}),
        ):
            assert r.status_code == 404
            assert_no_leak(r)
    hist = c.get("/api/v1/alerting/history").get_json()
    assert hist["total"] == 1 and hist["items"][0]["namespace"] == "ns-a1"
    assert c.get(f"/api/v1/alerting/history?alert={foreign}").status_code == 404
    own = a["items"][0]["id"]
    assert (
        world.client("project-viewer").post(f"/api/v1/alerting/alerts/{own}/comments", json={"text": "hi"}).status_code
        == 403
    )
    r = c.post(f"/api/v1/alerting/alerts/{own}/comments", json={"text": "looking at it"})
    assert r.status_code == 201 and r.get_json()["author"] == "poperator"
    assert c.post(f"/api/v1/alerting/alerts/{own}/comments", json={"text": ""}).get_json()["field"] == "text"
    detail = world.client("project-viewer").get(f"/api/v1/alerting/alerts/{own}").get_json()
    assert [x["text"] for x in detail["comments"]] == ["looking at it"]
    assert c.post(f"/api/v1/alerting/alerts/{own}/comments", json={"text": "rolled back"}).status_code == 201
    row = world.client("project-viewer").get("/api/v1/alerting/history").get_json()["items"][0]
    assert row["comments"]["count"] == 2 and row["comments"]["latest"]["text"] == "rolled back"
    page = world.client("project-viewer").get("/alerting/history").get_data(as_text=True)
    assert "rolled back" in page and "looking at it" not in page  # the latest one, inline
    assert detail["events"][0]["to"] == "firing" and detail["notices"][0]["kind"] == "firing"
    assert c.get("/api/v1/alerting/alerts?state=burning").get_json()["field"] == "state"


def test_silences_stay_inside_the_tenant(world: TenancyWorld) -> None:
    c = world.client("project-operator")
    r = c.post("/api/v1/alerting/silences", json={"namespace": "ns-a1", "matchers": {"rule": "cpu"}, "duration": "2h"})
    assert r.status_code == 201
    own = r.get_json()["id"]
    r = c.post("/api/v1/alerting/silences", json={"namespace": "ns-b1", "matchers": {"rule": "*"}, "duration": "2h"})
    assert r.status_code == 403
    r = c.post("/api/v1/alerting/silences", json={"matchers": {"rule": "*"}, "duration": "2h"})
    assert r.status_code == 403  # cluster-wide silences are for platform admins
    r = c.post(
        "/api/v1/alerting/silences", json={"namespace": "ns-a1", "matchers": {"colour": "red"}, "duration": "1h"}
    )
    assert r.status_code == 422 and r.get_json()["field"] == "matchers.colour"
    r = c.post("/api/v1/alerting/silences", json={"namespace": "ns-a1", "matchers": {"rule": "x"}, "duration": "5mins"})
    assert r.status_code == 400 and r.get_json()["field"] == "duration"
    b = world.client("tenant-b")
    theirs = b.post(
        "/api/v1/alerting/silences", json={"namespace": "ns-b1", "matchers": {"rule": "*"}, "duration": "1h"}
    )
    assert theirs.status_code == 201
    listed = c.get("/api/v1/alerting/silences").get_json()
    assert [s["id"] for s in listed["items"]] == [own]
    r = c.delete(f"/api/v1/alerting/silences/{theirs.get_json()['id']}")
    assert r.status_code == 404
    assert_no_leak(r)
    assert world.client("project-viewer").delete(f"/api/v1/alerting/silences/{own}").status_code == 403
    assert c.delete(f"/api/v1/alerting/silences/{own}").status_code == 200
    admin = world.client("platform-admin")
    assert (
        admin.post("/api/v1/alerting/silences", json={"matchers": {"level": "node"}, "duration": "1h"}).status_code
        == 201
    )


def test_a_tenant_silence_cannot_mute_another_tenants_alerts(world: TenancyWorld) -> None:
    create(world, "tenant-b", "/api/v1/namespaces/ns-b1/alerting/policies", workload_policy("b-cpu", receiver="bob"))
    c = world.client("project-operator")
    assert (
        c.post(
            "/api/v1/alerting/silences", json={"namespace": "ns-a1", "matchers": {"rule": "*"}, "duration": "2h"}
        ).status_code
        == 201
    )
    engine = Engine(world)
    engine.values = {"ns-b1/deployment/api": 0.9}
    engine.tick()
    statuses = [r["status"] for r in world.hub.db.query("SELECT status FROM alert_notices")]
    assert statuses == ["queued"]


def test_templates_are_listed_and_instantiated_in_the_project(world: TenancyWorld) -> None:
    c = world.client("project-operator")
    names = [t["template"] for t in c.get("/api/v1/alerting/templates?level=workload").get_json()["items"]]
    assert "workload-cpu" in names and "node-cpu" not in names
    r = c.post(
        "/api/v1/namespaces/ns-a1/alerting/policies/templates/workload-cpu",
        json={"notification": {"receivers": [{"user": "poperator"}]}},
    )
    assert r.status_code == 201 and r.get_json()["namespace"] == "ns-a1"
    assert c.post("/api/v1/namespaces/ns-a1/alerting/policies/templates/node-cpu", json={}).status_code == 404


def test_backtest_without_prometheus_is_a_503_naming_it(world: TenancyWorld) -> None:
    p = create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy())
    r = world.client("project-operator").post(
        f"/api/v1/namespaces/ns-a1/alerting/policies/{p['id']}/backtest", json={"start": "24h"}
    )
    assert r.status_code == 503 and r.get_json()["backend"] == "prometheus"


def test_a_user_removed_from_the_project_stops_getting_its_alerts(tmp_path: Path) -> None:
    w = build_world(tmp_path, clock=FakeClock(T0), settings={"prometheus": {"url": "http://127.0.0.1:9"}})
    try:
        resolve = w.hub.alert_engine.runner.resolve_user
        assert resolve("pviewer", "ns-a1") == "pviewer@example.com"
        assert resolve("pviewer", "ns-b1") is None
        assert resolve("bob", None) == "bob@example.com"  # node policies: admins chose them
        w.tenancy.set_project_member("ns-a1", "pviewer", None)
        assert resolve("pviewer", "ns-a1") is None
    finally:
        w.hub.close()


def _job_page(client: Any, url: str) -> Any:
    """Follow a console backtest job until it finished (the page reloads itself meanwhile)."""
    import time

    deadline = time.monotonic() + 20
    while True:
        r = client.get(url)
        if r.status_code != 200 or 'id="backtest-running"' not in r.get_data(as_text=True):
            return r
        assert time.monotonic() < deadline, "the backtest job never finished"
        time.sleep(0.05)


def test_a_console_backtest_runs_as_a_job_of_its_user_and_shows_its_outcome(world: TenancyWorld) -> None:
    p = create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy())
    c = world.client("project-operator")
    r = c.post(f"/projects/ns-a1/alerting/policies/{p['id']}/backtest", data={"window": "24h"})
    assert r.status_code == 303
    job_url = r.headers["Location"]
    assert f"/projects/ns-a1/alerting/policies/{p['id']}/backtests/" in job_url
    page = _job_page(c, job_url)
    # No Prometheus in this world: the job page says which backend is missing.
    assert page.status_code == 503 and "prometheus" in page.get_data(as_text=True).lower()
    # Another member of the same project may read the policy but not someone else's job.
    assert world.client("project-viewer").get(job_url).status_code == 404
    # A tenant of another project is refused before anything is looked up.
    r = world.client("tenant-b").get(job_url)
    assert r.status_code == 403 and "api-cpu" not in r.get_data(as_text=True)  # not even the policy's name
    # The same job id under another policy of the user is not found either.
    q = create(world, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy("other"))
    assert c.get(job_url.replace(p["id"], q["id"])).status_code == 404


def test_a_user_receiver_without_an_address_is_a_save_warning_and_the_alert_says_it_was_not_delivered(
    world: TenancyWorld,
) -> None:
    from tests.unit.conftest_tenancy import PASSWORD

    world.tenancy.create_user("noaddr", PASSWORD, email="")
    world.tenancy.set_project_member("ns-a1", "noaddr", "viewer")
    url = "/api/v1/namespaces/ns-a1/alerting/policies"
    doc = workload_policy()
    doc["notification"]["receivers"] = [{"user": "poperator"}, {"user": "noaddr"}]
    expected = [
        {
            "field": "notification.receivers[1].user",
            "user": "noaddr",
            "warning": "noaddr has no email address: their notices will not be delivered",
        }
    ]
    client = world.client("project-operator")
    assert client.post(url + "/validate", json=doc).get_json()["warnings"] == expected
    p = create(world, "project-operator", url, doc)
    assert p["warnings"] == expected
    doc["notification"]["receivers"] = [{"user": "noaddr"}]
    r = client.put(f"{url}/{p['id']}", json=doc)
    assert r.status_code == 200 and [w["field"] for w in r.get_json()["warnings"]] == ["notification.receivers[0].user"]
    # fixed: no warning
    doc["notification"]["receivers"] = [{"user": "poperator"}]
    assert client.put(f"{url}/{p['id']}", json=doc).get_json()["warnings"] == []
    doc["notification"]["receivers"] = [{"user": "noaddr"}]
    client.put(f"{url}/{p['id']}", json=doc)

    engine = Engine(world)
    engine.values = {"ns-a1/deployment/api": 0.9}
    engine.tick()
    engine.tick()
    assert engine.notifier.sent == []
    (alert,) = client.get("/api/v1/alerting/alerts").get_json()["items"]
    assert alert["state"] == "firing" and alert["sends"] == 0
    detail = client.get(f"/api/v1/alerting/alerts/{alert['id']}").get_json()
    assert detail["undelivered"] == ["not delivered: noaddr has no email address"]
    history = client.get(f"/api/v1/alerting/history?alert={alert['id']}").get_json()["items"]
    assert [(e["to"], e["reason"]) for e in history if e["to"] == "undelivered"] == [
        ("undelivered", "not delivered: noaddr has no email address")
    ]
    # the address arrives: the first notice goes out and counts
    world.tenancy.update_user("noaddr", email="noaddr@example.com", actor="test")
    engine.tick()
    assert [e.recipient for _, e in engine.notifier.sent] == ["noaddr@example.com"]
    assert client.get(f"/api/v1/alerting/alerts/{alert['id']}").get_json()["sends"] == 1


def test_a_stored_policy_that_no_longer_validates_can_still_be_replaced_and_deleted(world: TenancyWorld) -> None:
    """Validation got stricter over time (finite thresholds within 1e18, rules required): a policy
    an older version saved must not become impossible to fix or remove."""
    url = "/api/v1/namespaces/ns-a1/alerting/policies"
    engine = Engine(world)
    for name, threshold in (("old-a", 1e19), ("old-b", 1e20)):
        p = create(world, "project-operator", url, workload_policy(name))
        engine.values = {"ns-a1/deployment/api": 0.9}
        engine.tick()
        doc = workload_policy(name)
        doc["rules"][0]["threshold"] = threshold  # what today's validator refuses
        world.hub.db.execute("UPDATE alert_policies SET document=? WHERE id=?", (json.dumps(doc), p["id"]))
        assert world.client("project-operator").get(f"{url}/{p['id']}").status_code == 200
        if name == "old-a":
            r = world.client("project-operator").put(f"{url}/{p['id']}", json=workload_policy(name, threshold=600))
            assert r.status_code == 200, r.get_data(as_text=True)
            closed = r.get_json()["effects"]["closed"]
            assert [c["reason"] for c in closed] == ["the stored policy no longer validated"]
            assert r.get_json()["rules"][0]["threshold"] == 600
        r = world.client("project-operator").delete(f"{url}/{p['id']}")
        assert r.status_code == 200, r.get_data(as_text=True)
        assert world.client("project-operator").get(f"{url}/{p['id']}").status_code == 404
    assert not world.hub.db.query("SELECT 1 FROM alert_states")
    actions = [r["action"] for r in world.hub.db.query("SELECT action FROM audit_log WHERE action LIKE 'policy.%'")]
    assert actions.count("policy.delete") == 2
