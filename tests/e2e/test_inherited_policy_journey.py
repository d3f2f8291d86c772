"""E2E journey (issue 19): a workspace admin creates a workspace default alert policy in
Chromium; it appears in each project's effective view as inherited from the workspace; a project
changes a rule's threshold there, and a required rule offers no way to disable it (and the API
refuses it with a 422 naming the rule).

The workspace and its two projects are the journey's own and are deleted at the end.
Screenshots go to ``artifacts/e2e/10-inherited-policy/``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from hub.errors import Unprocessable
from tests.e2e.conftest import Console

pytestmark = pytest.mark.e2e

ADMIN = "admin"

DOCUMENT = """name: {name}
level: workload
required: [cpu-critical]
rules:
  - name: cpu
    metric: workload_cpu_usage
    comparator: '>'
    threshold: 500
    unit: millicores
    period: 1m
    consecutive: 2
    severity: major
  - name: cpu-critical
    metric: workload_cpu_usage
    comparator: '>'
    threshold: 2000
    unit: millicores
    period: 1m
    consecutive: 1
    severity: critical
notification: {{receivers: [{{email: oncall@example.com}}]}}
"""


def test_a_workspace_default_policy_appears_in_a_project_effective_view(console: Console, journey: Any) -> None:
    suffix = secrets.token_hex(3)
    ws = f"e2e-inherit-{suffix}"
    projects = [f"e2e-inherit-{suffix}-a", f"e2e-inherit-{suffix}-b"]
    name = f"defaults-{suffix}"
    tenancy = console.hub.tenancy
    tenancy.create_workspace(ws)
    for ns in projects:
        tenancy.create_project(ws, ns)
    j = journey("10-inherited-policy")
    page = j.page
    try:
        j.login(ADMIN)
        j.goto(f"/workspaces/{ws}/alerting/policies")
        page.fill("#workspace-policy-document", DOCUMENT.format(name=name))
        j.shot("workspace-policy-form")
        with page.expect_navigation():
            page.click("#workspace-policy-create")
        assert name in page.inner_text(".flash.ok")
        assert name in page.inner_text("#workspace-policies")

        for ns in projects:
            j.goto(f"/projects/{ns}/alerting/effective")
            section = page.locator("section[data-source=workspace]", has_text=name)
            assert f"inherited from workspace {ws}" in section.inner_text()
        j.shot("effective-view")

        # The project changes the threshold of the optional rule; the required one has no disable button.
        ns = projects[0]
        j.goto(f"/projects/{ns}/alerting/effective")
        section = page.locator("section[data-source=workspace]", has_text=name)
        row = section.locator("tr[data-rule=cpu]")
        row.locator("input[name=threshold]").fill("900")
        with page.expect_navigation():
            row.locator("button[value=threshold]").click()
        assert "Rule cpu changed for this project." in page.inner_text(".flash.ok")
        section = page.locator("section[data-source=workspace]", has_text=name)
        assert "900" in section.locator("tr[data-rule=cpu]").inner_text()
        assert "(workspace: 500" in section.locator("tr[data-rule=cpu]").inner_text()
        required = section.locator("tr[data-rule=cpu-critical]")
        assert "Required" in required.inner_text() and required.locator("button[value=disable]").count() == 0
        j.shot("overridden")

        # The other project still has the workspace's threshold.
        j.goto(f"/projects/{projects[1]}/alerting/effective")
        other = page.locator("section[data-source=workspace]", has_text=name)
        assert "As the workspace defines it" in other.locator("tr[data-rule=cpu]").inner_text()

        policy_id = console.hub.alerting.list_workspace_policies(ws)[0]["id"]
        with pytest.raises(Unprocessable) as err:
            console.hub.alerting.put_override(ns, policy_id, "cpu-critical", {"disabled": True}, actor=ADMIN)
        assert "cpu-critical" in err.value.message
    finally:
        for p in console.hub.alerting.list_workspace_policies(ws):
            console.hub.alerting.delete_workspace_policy(ws, p["id"], actor=ADMIN)
        for ns in projects:
            try:
                tenancy.delete_project(ns, confirm=ns)
            except Exception:  # cleanup: a namespace already gone is fine
                pass
        tenancy.delete_workspace(ws)
