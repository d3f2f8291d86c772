"""Inherited alert policies through the HTTP API and the console, with the tenancy world's real
roles: workspace admins write workspace policies, project members read the effective view and
override rules, another workspace's tenant sees nothing of them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest_tenancy import TenancyWorld, body_text

pytestmark = pytest.mark.unit


def doc(**over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": "mem-default",
        "level": "workload",
        "rules": [
            {
                "name": "cpu",
                "metric": "workload_cpu_usage",
                "comparator": ">",
                "threshold": 500,
                "unit": "millicores",
                "period": "1m",
                "consecutive": 2,
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
        "required": ["cpu-critical"],
    }
    out.update(over)
    return out


def test_a_workspace_default_policy_appears_in_each_project_effective_view_and_nowhere_else(
    tenancy_world: TenancyWorld,
) -> None:
    w = tenancy_world
    r = w.client("workspace-admin").post("/api/v1/workspaces/ws-a/alerting/policies", json=doc())
    assert r.status_code == 201, body_text(r)
    pid = r.get_json()["id"]
    for ns in ("ns-a1", "ns-a2"):
        view = w.client("workspace-admin").get(f"/api/v1/namespaces/{ns}/alerting/effective-policies").get_json()
        entry = next(e for e in view["items"] if e["name"] == "mem-default")
        assert entry["source"] == "workspace" and entry["workspace"] == "ws-a" and entry["id"] == f"{pid}@{ns}"
    # A project viewer of ns-a1 reads the view but may not change it; tenant-b sees nothing.
    assert w.client("project-viewer").get("/api/v1/namespaces/ns-a1/alerting/effective-policies").status_code == 200
    r = w.client("project-viewer").put(
        f"/api/v1/namespaces/ns-a1/alerting/effective-policies/{pid}/rules/cpu", json={"threshold": 900}
    )
    assert r.status_code == 403
    bob = w.client("tenant-b")
    view = bob.get("/api/v1/namespaces/ns-b1/alerting/effective-policies")
    assert view.status_code == 200 and all(e["name"] != "mem-default" for e in view.get_json()["items"])
    assert bob.get("/api/v1/workspaces/ws-a/alerting/policies").status_code == 403
    r = bob.put(f"/api/v1/namespaces/ns-b1/alerting/effective-policies/{pid}/rules/cpu", json={"threshold": 900})
    assert r.status_code == 404
    assert "ws-a" not in body_text(r) and "mem-default" not in body_text(r)
    assert bob.get(f"/api/v1/workspaces/ws-b/alerting/policies/{pid}").status_code == 404


def test_overrides_through_the_api_and_the_422_naming_a_required_rule(tenancy_world: TenancyWorld) -> None:
    w = tenancy_world
    pid = w.client("workspace-admin").post("/api/v1/workspaces/ws-a/alerting/policies", json=doc()).get_json()["id"]
    op = w.client("project-operator")
    base = f"/api/v1/namespaces/ns-a1/alerting/effective-policies/{pid}/rules"
    r = op.put(f"{base}/cpu-critical", json={"disabled": True})
    assert r.status_code == 422 and "cpu-critical" in body_text(r)
    r = op.put(f"{base}/cpu", json={"disabled": True})
    assert r.status_code == 200, body_text(r)
    rules = {x["name"]: x for x in r.get_json()["rules"]}
    assert rules["cpu"]["disabled"] and rules["cpu"]["overridden_by"] == w.user("project-operator")
    r = op.put(f"{base}/cpu", json={"threshold": "lots"})
    assert r.status_code == 400 and "threshold" in body_text(r)
    assert op.delete(f"{base}/cpu").status_code == 200
    # The regular workspace member cannot write workspace policies; the workspace admin deletes.
    assert (
        w.client("workspace-regular").post("/api/v1/workspaces/ws-a/alerting/policies", json=doc(name="x")).status_code
        == 403
    )
    assert w.client("workspace-admin").delete(f"/api/v1/workspaces/ws-a/alerting/policies/{pid}").status_code == 200


def test_the_console_pages_show_the_workspace_policy_and_the_project_effective_view(
    tenancy_world: TenancyWorld,
) -> None:
    w = tenancy_world
    client, csrf = w.session("workspace-admin")
    yaml_text = (
        "name: console-default\nlevel: workload\nrequired: true\nrules:\n"
        "  - {name: cpu, metric: workload_cpu_usage, comparator: '>', threshold: 500, unit: millicores,"
        " period: 1m, consecutive: 1, severity: major}\n"
        "notification: {receivers: [{email: oncall@example.com}]}\n"
    )
    r = client.post("/workspaces/ws-a/alerting/policies", data={"document": yaml_text, "csrf_token": csrf})
    assert r.status_code == 303, body_text(r)
    page = body_text(client.get("/workspaces/ws-a/alerting/policies"))
    assert "console-default" in page
    assert "/workspaces/ws-a/alerting/policies" in body_text(client.get("/workspaces/ws-a"))
    assert "/projects/ns-a2/alerting/effective" in body_text(client.get("/alerting/policies"))
    page = body_text(client.get("/projects/ns-a2/alerting/effective"))
    assert "console-default" in page and "ws-a" in page
    page_zh = body_text(client.get("/projects/ns-a2/alerting/effective?lang=zh"))
    assert "继承自工作空间 ws-a" in page_zh
