"""GET /api/v1/monitoring/*: permissions, tenant scoping and error bodies, over a fake backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hub.settings import Settings
from tests.unit.monitoring_fakes import FakeBackend, unavailable

pytestmark = pytest.mark.unit

PASSWORD = "correct-horse-battery-9"
CPU = "container_cpu_usage_seconds_total"
PODS = [("team-a", "web-1"), ("team-a", "web-2"), ("team-b", "db-0"), ("team-c", "secret-0")]


@pytest.fixture
def env(settings: Settings) -> Iterator[dict[str, Any]]:
    from web import create_app

    app = create_app(settings.replace(auth={"password_hash_memory_kib": 8, "password_hash_time_cost": 1}), testing=True)
    hub = app.extensions["kubehub"]
    tenancy = hub.tenancy
    tenancy.create_user("admin", PASSWORD, platform_role="admin")
    tenancy.create_user("alice", PASSWORD)
    tenancy.create_user("nobody", PASSWORD)
    tenancy.create_workspace("ws-one")
    tenancy.create_workspace("ws-two")
    for ws, ns in (("ws-one", "team-a"), ("ws-one", "team-b"), ("ws-two", "team-c")):
        tenancy.create_project(ws, ns)
    tenancy.set_project_member("team-a", "alice", "viewer")
    backend = FakeBackend({CPU: {k: float(i + 1) for i, k in enumerate(PODS)}}, PODS)
    hub.monitoring.backend = backend
    tokens = {u: tenancy.issue_token(u).token for u in ("admin", "alice", "nobody")}
    client = app.test_client()

    def get(user: str, path: str) -> tuple[int, dict]:
        response = client.get(path, headers={"Authorization": f"Bearer {tokens[user]}"})
        return response.status_code, response.get_json()

    yield {"get": get, "backend": backend, "client": client}
    hub.close()


def namespaces_in(body: dict) -> set[str]:
    return {s["labels"].get("namespace", "") for r in body["results"] for s in r["series"]}


def test_cluster_levels_are_for_platform_admins_only(env: dict) -> None:
    for level in ("cluster", "nodes", "components", "node"):
        status, body = env["get"]("alice", f"/api/v1/monitoring/{level}")
        assert status == 403, level
        assert "monitoring:cluster" in body["error"]
    assert env["backend"].sent == []
    status, _ = env["get"]("admin", "/api/v1/monitoring/nodes?metrics=node_cpu_utilisation")
    assert status == 200


def test_anonymous_callers_are_refused(env: dict) -> None:
    assert env["client"].get("/api/v1/monitoring/pods").status_code == 401


def test_a_tenant_sees_only_their_namespaces(env: dict) -> None:
    status, body = env["get"]("alice", "/api/v1/monitoring/pods?metrics=pod_cpu_usage&sort_metric=pod_cpu_usage")
    assert status == 200
    assert namespaces_in(body) == {"team-a"} and body["total"] == 2
    # A live ranking is one evaluation over every namespace (the level's table), narrowed by the
    # service to the caller's; anything else is sent with the caller's namespaces as matchers.
    for spec in env["backend"].sent:
        assert "team-b" not in spec.promql
        assert 'namespace="team-a"' in spec.promql or "namespace=" not in spec.promql
    status, body = env["get"](
        "alice", "/api/v1/monitoring/pods?metrics=pod_cpu_usage,pod_memory_usage&sort_metric=pod_cpu_usage"
    )
    assert status == 200 and namespaces_in(body) == {"team-a"} and body["total"] == 2
    status, body = env["get"](
        "alice", "/api/v1/monitoring/pods?metrics=pod_cpu_usage&sort_metric=pod_cpu_usage&limit=1&page=3"
    )
    assert status == 200 and body["total"] == 2 and body["results"][0]["series"] == []


@pytest.mark.parametrize("query", ["namespaces=team-c", "namespaces=team-b,team-c", "namespaces=team-a,team-c"])
def test_naming_another_tenants_namespace_is_the_one_403_and_sends_no_query(env: dict, query: str) -> None:
    """The monitoring service enforces the scope: a named namespace outside it refuses the
    request whole (docs/tenancy.md "One answer"), never a silently narrowed answer."""
    status, body = env["get"]("alice", f"/api/v1/monitoring/pods?metrics=pod_cpu_usage&{query}")
    assert status == 403
    assert body["error"].startswith("you lack the permission monitoring:read in namespace team-")
    assert "secret-0" not in str(body) and "db-0" not in str(body)
    assert env["backend"].sent == []


def test_a_foreign_and_an_unknown_namespace_answer_byte_for_byte_alike(env: dict) -> None:
    client = env["client"]

    def raw(ns: str) -> bytes:
        token = env["client"].application.extensions["kubehub"].tenancy.issue_token("alice").token
        answer = client.get(
            f"/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces={ns}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 403
        return answer.get_data().replace(ns.encode(), b"NS")

    assert raw("team-c") == raw("no-such-ns")


def test_a_foreign_workspace_filter_returns_nothing_of_it(env: dict) -> None:
    status, body = env["get"]("alice", "/api/v1/monitoring/pods?metrics=pod_cpu_usage&workspace=ws-two")
    assert status == 200
    assert namespaces_in(body) <= {"team-a"}
    assert "secret-0" not in str(body) and "db-0" not in str(body)
    for spec in env["backend"].sent:
        assert "team-b" not in spec.promql and "team-c" not in spec.promql


@pytest.mark.parametrize("value", ['team-a"}or{x=~".*', ".*", "team-a|team-c", "team-a%22%7D"])
def test_a_regex_or_quote_in_a_filter_is_refused_not_widened(env: dict, value: str) -> None:
    status, body = env["get"]("alice", f"/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces={value}")
    assert status == 400 and body["field"] == "namespaces"
    assert env["backend"].sent == []


def test_a_user_without_projects_gets_an_empty_answer_without_any_query(env: dict) -> None:
    status, body = env["get"]("nobody", "/api/v1/monitoring/workspaces?metrics=workspace_cpu_usage")
    assert status == 200 and body["total"] == 0
    assert env["backend"].sent == []


def test_a_tenants_workspace_level_only_sums_their_namespaces(env: dict) -> None:
    status, _ = env["get"]("alice", "/api/v1/monitoring/workspaces?metrics=workspace_cpu_usage,workspace_pod_count")
    assert status == 200
    assert env["backend"].sent
    for spec in env["backend"].sent:
        assert 'namespace="team-a"' in spec.promql and "team-b" not in spec.promql


def test_the_admin_sees_every_namespace(env: dict) -> None:
    status, body = env["get"]("admin", "/api/v1/monitoring/pods?metrics=pod_cpu_usage")
    assert status == 200 and namespaces_in(body) == {"team-a", "team-b", "team-c"}


def test_the_catalogue_lists_every_level_with_metrics_units_and_promql(env: dict) -> None:
    status, body = env["get"]("alice", "/api/v1/monitoring/catalogue")
    assert status == 200
    levels = {entry["level"]: entry for entry in body["levels"]}
    assert list(levels) == [
        "cluster",
        "nodes",
        "workspaces",
        "namespaces",
        "workloads",
        "pods",
        "containers",
        "volumes",
        "components",
    ]
    assert levels["nodes"]["scope"] == "cluster" and levels["pods"]["scope"] == "tenant"
    metric = next(m for m in levels["workloads"]["metrics"] if m["name"] == "workload_unavailable_ratio")
    assert metric["unit"] == "ratio" and "kube_deployment_spec_replicas" in metric["promql"]


def test_errors_are_json_sentences_with_the_field(env: dict) -> None:
    status, body = env["get"]("admin", "/api/v1/monitoring/galaxies")
    assert status == 400 and body["field"] == "level" and "workloads" in body["error"]
    status, body = env["get"]("admin", "/api/v1/monitoring/pods?metrics=pod_cpu&sort_metric=pod_cpu")
    assert status == 400 and body["field"] == "metrics" and "pod_cpu_usage" in body["error"]
    status, body = env["get"]("admin", "/api/v1/monitoring/pods?start=0&end=864000&step=1")
    assert status == 422 and body["field"] == "step" and "11000" in body["error"]


def test_prometheus_down_is_a_503_naming_it(env: dict) -> None:
    env["backend"].fail = unavailable()
    status, body = env["get"]("admin", "/api/v1/monitoring/nodes?metrics=node_cpu_utilisation")
    assert status == 503 and body["backend"] == "prometheus" and "prometheus" in body["error"]
