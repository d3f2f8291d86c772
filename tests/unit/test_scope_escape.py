"""Escape attempts where a tenant's scope used to be applied in two places (issue 13).

Monitoring dropped foreign namespaces on the web side, logs refused them in the runtime, the
alerting API and console built their own ``Visibility``, the notice path worked out receivers
and log floors again, and the audit log had its own check. Each area's service now applies
the caller's scope once; these cases go through the API *and* the console (which used to
filter on its own) and check both the status and that nothing of the other tenant leaks:
its namespaces, policy names, alert ids and receivers' addresses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hub.timeutil import FakeClock
from tests.unit.conftest_tenancy import (
    FOREIGN_NAMESPACE,
    HOME_NAMESPACE,
    UNKNOWN_NAMESPACE,
    TenancyWorld,
    assert_no_leak,
    build_world,
)
from tests.unit.test_alerts_api import T0, Engine, create, node_policy, workload_policy

pytestmark = pytest.mark.unit

TENANT_ROLES = ("workspace-admin", "workspace-viewer", "project-admin", "project-operator", "project-viewer")

# A list naming the caller's own namespace AND another one: refused whole (the one 403 of
# docs/tenancy.md), never narrowed to the own one. Monitoring used to drop the other name and
# answer 200; the console pages call the same services.
MIXED_LISTS = (
    ("/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces=ns-a1,{ns}", "monitoring:read"),
    ("/api/v1/monitoring/workloads?metrics=workload_cpu_usage&namespaces={ns},ns-a1", "monitoring:read"),
    ("/api/v1/logs?namespaces=ns-a1,{ns}", "logs:read"),
    ("/api/v1/logs/histogram?namespaces=ns-a1,{ns}", "logs:read"),
    ("/api/v1/logs/export?namespaces=ns-a1,{ns}&limit=5", "logs:read"),
    ("/logs?namespaces=ns-a1,{ns}&q=error", "logs:read"),
    ("/rankings?level=pods&namespaces=ns-a1,{ns}", "monitoring:read"),
)

_MESSAGE = re.compile(r'<p class="message">([^<]*)</p>')


def _refusal(r: Any) -> str:
    """The refusal's message: the JSON error, or the console error page's message."""
    if r.is_json:
        return str(r.get_json()["error"])
    found = _MESSAGE.search(r.get_data(as_text=True))
    assert found, r.get_data(as_text=True)[:500]
    return found.group(1)


@pytest.mark.parametrize("role", ("workspace-admin", "workspace-viewer", "project-operator", "project-viewer"))
def test_a_list_naming_an_own_and_another_namespace_is_refused_whole(tenancy_world: TenancyWorld, role: str) -> None:
    client = tenancy_world.client(role)
    for url, perm in MIXED_LISTS:
        answers = {}
        for ns in (FOREIGN_NAMESPACE, UNKNOWN_NAMESPACE):
            r = client.get(url.format(ns=ns))
            assert r.status_code == 403, (role, url.format(ns=ns), r.status_code)
            assert _refusal(r) == f"you lack the permission {perm} in namespace {ns}"
            assert_no_leak(r, requested=ns)
            answers[ns] = _refusal(r).replace(ns, "NS")
        assert answers[FOREIGN_NAMESPACE] == answers[UNKNOWN_NAMESPACE], url


def test_a_refused_log_search_is_audited_as_denied_with_the_names_it_asked_for(tenancy_world: TenancyWorld) -> None:
    r = tenancy_world.client("project-operator").get(f"/api/v1/logs?namespaces={HOME_NAMESPACE},{FOREIGN_NAMESPACE}")
    assert r.status_code == 403
    audit = tenancy_world.client("platform-admin").get("/api/v1/audit?actor=poperator&action=logs.").get_json()
    assert [(e["action"], e["result"], e["namespaces"]) for e in audit["items"]] == [
        ("logs.search", "denied", [HOME_NAMESPACE, FOREIGN_NAMESPACE])
    ]


@pytest.mark.parametrize("role", TENANT_ROLES)
def test_the_audit_log_stays_with_platform_admins_whatever_namespace_is_named(
    tenancy_world: TenancyWorld, role: str
) -> None:
    client = tenancy_world.client(role)
    for ns in (HOME_NAMESPACE, FOREIGN_NAMESPACE, UNKNOWN_NAMESPACE):
        for url in (f"/api/v1/audit?namespace={ns}", f"/audit?namespace={ns}"):
            r = client.get(url)
            assert r.status_code == 403, (role, url)
            assert _refusal(r) == "you lack the permission audit:read"
            assert_no_leak(r, requested=ns)
    assert tenancy_world.client("platform-admin").get(f"/api/v1/audit?namespace={HOME_NAMESPACE}").status_code == 200


@pytest.fixture
def alerting_world(tmp_path: Path) -> Any:
    """Both tenants and the platform have a firing alert, each told to its own receiver."""
    w = build_world(tmp_path, clock=FakeClock(T0))
    create(w, "project-operator", "/api/v1/namespaces/ns-a1/alerting/policies", workload_policy())
    create(w, "tenant-b", "/api/v1/namespaces/ns-b1/alerting/policies", workload_policy("b-cpu", receiver="bob"))
    create(w, "platform-admin", "/api/v1/alerting/policies", node_policy())
    engine = Engine(w)
    engine.values = {"ns-a1/deployment/api": 0.9, "ns-b1/deployment/api": 0.9, "node-1": 0.99}
    engine.tick()
    yield w
    w.hub.close()


def _secrets_of_the_others(world: TenancyWorld) -> tuple[list[str], str, str]:
    """What a tenant of ws-a must never see, read as the platform admin (so the test fails if
    the cycle produced nothing to hide): tenant b's and the node policy's names, alert ids and
    receivers' addresses. Also one alert id of each."""
    admin = world.client("platform-admin")
    alerts = admin.get("/api/v1/alerting/alerts").get_json()["items"]
    assert sorted(str(a["namespace"]) for a in alerts) == ["None", "ns-a1", "ns-b1"]
    foreign = next(a["id"] for a in alerts if a["namespace"] == FOREIGN_NAMESPACE)
    own = next(a["id"] for a in alerts if a["namespace"] == HOME_NAMESPACE)
    outbox = admin.get("/api/v1/alerting/outbox").get_json()["items"]
    recipients = {m["tenant"]: m["recipient"] for m in outbox}
    assert recipients[FOREIGN_NAMESPACE] == "bob@example.com" and recipients["cluster"] == "oncall@example.com"
    hidden = [
        FOREIGN_NAMESPACE,
        "b-cpu",
        "node-pressure",
        "bob@example.com",
        "oncall@example.com",
        *(a["id"] for a in alerts if a["namespace"] != HOME_NAMESPACE),
    ]
    return hidden, foreign, own


@pytest.mark.parametrize("role", TENANT_ROLES)
def test_alerts_history_silences_and_messages_show_a_tenant_only_its_own(
    alerting_world: TenancyWorld, role: str
) -> None:
    hidden, _, own = _secrets_of_the_others(alerting_world)
    client = alerting_world.client(role)
    outbox = client.get("/api/v1/alerting/outbox").get_json()["items"]
    assert [(m["tenant"], m["recipient"]) for m in outbox] == [(HOME_NAMESPACE, "poperator@example.com")]
    alerts = client.get("/api/v1/alerting/alerts").get_json()["items"]
    assert [a["id"] for a in alerts] == [own]
    for url in (
        "/api/v1/alerting/alerts",
        "/api/v1/alerting/history",
        "/api/v1/alerting/silences",
        "/api/v1/alerting/outbox",
        f"/api/v1/alerting/alerts/{own}",
        "/alerting",
        "/alerting/history",
        "/alerting/silences",
        "/alerting/policies",
        f"/alerting/alerts/{own}",
    ):
        r = client.get(url)
        assert r.status_code == 200, (role, url, r.status_code)
        text = r.get_data(as_text=True)
        assert [h for h in hidden if h in text] == [], (role, url)


@pytest.mark.parametrize("role", TENANT_ROLES)
def test_another_tenants_alert_answers_like_a_missing_one_in_the_api_and_the_console(
    alerting_world: TenancyWorld, role: str
) -> None:
    _, foreign, _ = _secrets_of_the_others(alerting_world)
    client = alerting_world.client(role)
    missing = "alert-does-not-exist"
    for url in (
        "/api/v1/alerting/alerts/{id}",
        "/api/v1/alerting/alerts/{id}/comments",
        "/api/v1/alerting/history?alert={id}",
        "/alerting/alerts/{id}",
    ):
        answers = {}
        for aid in (foreign, missing):
            r = client.get(url.format(id=aid))
            assert r.status_code == 404, (role, url.format(id=aid), r.status_code)
            answers[aid] = _refusal(r).replace(aid, "ID")
        assert answers[foreign] == answers[missing], url
    r = client.post(f"/api/v1/alerting/alerts/{foreign}/comments", json={"text": "x"})
    assert r.status_code == 404
    assert_no_leak(r)


def test_a_notice_reaches_a_receiver_only_within_the_receivers_own_scope(tmp_path: Path) -> None:
    """Who may be told is the receiver's scope, decided by tenancy (``may_receive``) and used
    unchanged by the alert engine's resolver, at send time, so a membership change counts at
    once."""
    w = build_world(tmp_path, clock=FakeClock(T0), settings={"prometheus": {"url": "http://127.0.0.1:9"}})
    try:
        t = w.tenancy
        runner = w.hub.alert_engine.runner
        assert runner is not None  # Prometheus is configured: the engine runs
        resolve = runner.resolve_user
        for user, ns, expected in (
            ("poperator", HOME_NAMESPACE, True),
            ("wsviewer", HOME_NAMESPACE, True),
            ("wsregular", HOME_NAMESPACE, False),  # in the workspace, not in the project
            ("bob", HOME_NAMESPACE, False),
            ("poperator", FOREIGN_NAMESPACE, False),
            ("poperator", UNKNOWN_NAMESPACE, False),
            ("bob", None, True),  # node-level notices: any active user an admin named
        ):
            assert t.may_receive(user, ns) is expected, (user, ns)
            assert (resolve(user, ns) is not None) is expected, (user, ns)
        r = w.client("project-admin").delete(f"/api/v1/namespaces/{HOME_NAMESPACE}/members/poperator")
        assert r.status_code in (200, 204), r.get_data(as_text=True)
        assert not t.may_receive("poperator", HOME_NAMESPACE)
        assert resolve("poperator", HOME_NAMESPACE) is None
    finally:
        w.hub.close()


def test_only_a_platform_admin_may_make_the_default_namespace_a_project(tenancy_world: TenancyWorld) -> None:
    """The rule is the scope's (cluster-wide reach), not a role check of the web layer."""
    url = "/api/v1/workspaces/ws-a/projects"
    r = tenancy_world.client("workspace-admin").post(url, json={"namespace": "default"})
    assert (r.status_code, r.get_json()["field"]) == (422, "namespace")
    assert tenancy_world.client("platform-admin").post(url, json={"namespace": "default"}).status_code == 201
    assert "default" in [p.namespace for p in tenancy_world.tenancy.projects("ws-a")]
