"""The rule import/export API and PromQL rules through the policy API, over the tenancy world:
a tenant's upload is scoped to its project (a construct that cannot be scoped is reported, not
imported), admins import node-level rules, export answers a PrometheusRule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import TenancyWorld, build_world

pytestmark = pytest.mark.unit

UPLOAD = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: apps}
spec:
  groups:
    - name: apps
      interval: 1m
      rules:
        - alert: PodRestarts
          expr: increase(kube_pod_container_status_restarts_total{namespace="ns-b1"}[5m]) > 2
          for: 2m
          labels: {severity: warning}
          annotations: {summary: "{{ $labels.pod }} restarts"}
        - alert: Everywhere
          expr: sum(kube_pod_info) > 0
          labels: {severity: critical}
        - record: ns:restarts:sum
          expr: sum by (namespace) (kube_pod_container_status_restarts_total)
"""


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = build_world(tmp_path, clock=FakeClock(1_794_983_400.0))
    yield w
    w.hub.close()


def test_tenant_upload_is_scoped_and_reported(world: TenancyWorld) -> None:
    c = world.client("project-operator")
    r = c.post(
        "/api/v1/namespaces/ns-a1/alerting/policies/import?apply=true",
        data=UPLOAD,
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    outcomes = {x["rule"]: x for x in body["rules"]}
    assert outcomes["PodRestarts"]["outcome"] == "changed"
    assert outcomes["Everywhere"]["outcome"] == "not_importable"
    assert "sum()" in " ".join(outcomes["Everywhere"]["reasons"])
    assert outcomes["ns:restarts:sum"]["outcome"] == "recording"
    assert [x["name"] for x in body["created"]] == ["apps"]
    saved = c.get("/api/v1/namespaces/ns-a1/alerting/policies").get_json()["items"][0]
    assert saved["namespace"] == "ns-a1" and saved["rules"][0]["for"] == "2m"
    exported = c.get("/api/v1/namespaces/ns-a1/alerting/policies/export").get_json()
    (group,) = exported["spec"]["groups"]
    expr = group["rules"][0]["expr"]
    assert 'namespace="ns-a1"' in expr and "ns-b1" not in expr
    # The other tenant sees none of it.
    assert world.client("tenant-b").get("/api/v1/namespaces/ns-b1/alerting/policies").get_json()["total"] == 0


def test_tenant_promql_rule_refusal_names_the_construct(world: TenancyWorld) -> None:
    doc = {
        "name": "p",
        "level": "workload",
        "rules": [{"name": "r", "expr": "kube_pod_info or vector(1)", "severity": "minor"}],
    }
    r = world.client("project-operator").post("/api/v1/namespaces/ns-a1/alerting/policies", json=doc)
    assert r.status_code == 422
    assert r.get_json()["field"] == "rules[0].expr" and "or with a side without series" in r.get_json()["error"]


def test_admin_import_and_permissions(world: TenancyWorld) -> None:
    files = {"files": [{"name": "a.yml", "text": UPLOAD}], "severity_map": {"warning": "minor"}}
    assert world.client("project-admin").post("/api/v1/alerting/policies/import", json=files).status_code == 403
    r = world.client("platform-admin").post("/api/v1/alerting/policies/import", json=files)
    assert r.status_code == 200
    rules = {x["rule"]: x for x in r.get_json()["rules"]}
    assert rules["Everywhere"]["outcome"] == "imported"  # admins: any expression at node level
    assert r.get_json()["policies"][0]["rules"][0]["severity"] == "minor"
    assert r.get_json()["created"] == []  # without apply nothing is saved
    bad = world.client("platform-admin").post("/api/v1/alerting/policies/import", json={"files": "x"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "files"
    bad = world.client("platform-admin").post(
        "/api/v1/alerting/policies/import", json={"files": [{"text": UPLOAD}], "severity_map": {"x": "huge"}}
    )
    assert bad.status_code == 400 and bad.get_json()["field"] == "severity_map"


def test_a_promql_rule_fires_resolves_and_its_email_carries_the_rendered_templates(world: TenancyWorld) -> None:
    """Through the live cycle and the delivery (our query protocol stands in for Prometheus):
    a row returned is a breach, `for` counts periods, a row gone resolves, the notice renders
    the summary/description templates and shows the query as sent (scoped)."""
    import pandas as pd

    from hub.alerts.cycle import CycleRunner
    from hub.alerts.notify.delivery import RecordingNotifier
    from hub.alerts.notify.outbox import Dispatcher
    from hub.alerts.notify.render import Renderer
    from hub.store.alerts import AlertStore

    doc = {
        "name": "restarts",
        "level": "workload",
        "rules": [
            {
                "name": "crash",
                "expr": 'increase(kube_pod_container_status_restarts_total{namespace="ns-b1"}[5m]) > 2',
                "period": "1m",
                "for": "1m",
                "severity": "major",
                "summary": "{{ $labels.pod }} restarted {{ $value }} times",
                "description": "in {{ $labels.namespace }}",
            }
        ],
        "notification": {"receivers": [{"email": "oncall@example.com"}]},
    }
    r = world.client("project-operator").post("/api/v1/namespaces/ns-a1/alerting/policies", json=doc)
    assert r.status_code == 201, r.get_json()
    asked: list[str] = []
    rows = {"on": True}

    def query(promql: str, start: float, at: float, step: float) -> pd.DataFrame:
        asked.append(promql)
        assert start == at and step == 60  # one point: the value at the slot's end
        if not rows["on"]:
            return pd.DataFrame(columns=["namespace", "pod", "value"])
        return pd.DataFrame({"namespace": ["ns-a1", "ns-b1"], "pod": ["web-1", "intruder"], "value": [4.0, 9.0]})

    clock = world.hub.clock
    runner = CycleRunner(store=AlertStore(world.hub.db), build_query=lambda *a, **k: ("", []), run_query=query,
                         clock=clock, tick_seconds=60)  # fmt: skip
    notifier = RecordingNotifier(clock=clock.now)
    dispatcher = Dispatcher(store=AlertStore(world.hub.db), notifier=notifier, renderer=Renderer(public_url=""),
                            clock=clock)  # fmt: skip
    states = []
    for k in range(4):
        rows["on"] = k < 3
        runner.run_once()
        dispatcher.deliver_all_due()
        got = world.client("project-operator").get("/api/v1/alerting/alerts").get_json()["items"]
        states.append(sorted(a["state"] for a in got))
        clock.advance(60)  # type: ignore[attr-defined]
    assert asked and all('namespace="ns-a1"' in q and "ns-b1" not in q for q in asked)
    assert states[0] == ["pending"] and states[1] == ["firing"] and states[3] == []
    bodies = [m.text + m.html for _, m in notifier.sent]
    assert any("web-1 restarted 4 times" in b and "in ns-a1" in b for b in bodies), bodies
    assert not any("intruder" in b for b in bodies)
