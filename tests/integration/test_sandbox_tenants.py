"""The scale tenancy (``kubehub sandbox up --tenants N``) on a real cluster, small: a private
one-cluster sandbox of 3 nodes and about 30 pods with 2 tenant workspaces (6 projects, 20 users,
~22 policies), started by ``Sandbox.up_clusters_only`` (the same Seeder as ``up``; no
Elasticsearch, Prometheus or shared-sandbox state touched, about half a minute of CI).

Checked against the API server itself: the tenants' namespaces with the workspace label the hub
reads, their Deployments' pods scheduled and ready, a second seeding creating and changing
nothing; then the hub hook on a hub of its own registers the projects with the namespaces' real
UIDs, and a second run creates nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.runtime import build_hub
from hub.settings import Settings
from sandbox import kube, seed, tenants
from sandbox.core import Sandbox
from sandbox.hub_seed import seed_tenants
from tests.integration.private_clusters import free_two_cluster_base

pytestmark = pytest.mark.integration

NODES, PODS, TENANTS = 3, 30, 2


@pytest.fixture(scope="module")
def tenant_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path_factory.mktemp("tenants") / "sb", port_base=free_two_cluster_base(), quiet=True)
    sb.config.nodes, sb.config.pods, sb.config.tenants = NODES, PODS, TENANTS
    t0 = time.monotonic()
    try:
        sb.up_clusters_only(1)
        print(f"private cluster with {TENANTS} tenant workspaces up and seeded in {time.monotonic() - t0:.1f}s")
        yield sb
    finally:
        sb.down()


def _tenant_objects(api: kube.KubeRest) -> tuple[dict[str, dict], dict[tuple[str, str], dict]]:
    selector = f"{tenants.TENANT_LABEL}=true"
    namespaces = {n["metadata"]["name"]: n for n in api.list("/api/v1/namespaces", labelSelector=selector)}
    deployments = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in api.list("/apis/apps/v1/deployments", labelSelector=selector)
    }
    return namespaces, deployments


def test_the_tenants_namespaces_and_deployments_are_in_the_cluster_once(tenant_sandbox: Sandbox) -> None:
    api = kube.KubeRest(tenant_sandbox.kubeconfig)
    plan = tenants.plan_tenancy(TENANTS)
    namespaces, deployments = _tenant_objects(api)
    assert set(namespaces) == {p.namespace for p in plan.projects}
    for p in plan.projects:
        labels = namespaces[p.namespace]["metadata"]["labels"]
        assert labels[seed.WORKSPACE_LABEL] == p.workspace and labels[seed.SEED_LABEL] == "true"
    assert set(deployments) == {(p.namespace, p.workload.name) for p in plan.projects}
    # Every tenant pod the API server lists is scheduled and Running, and each Deployment has them all.
    pods = [p for p in api.list("/api/v1/pods") if p["metadata"]["namespace"] in namespaces]
    assert pods and all(p["spec"].get("nodeName") and p["status"].get("phase") == "Running" for p in pods)
    for (ns, _), d in deployments.items():
        want = d["spec"]["replicas"]
        assert d["status"].get("availableReplicas") == want >= 1
        assert sum(p["metadata"]["namespace"] == ns for p in pods) == want
    # The tenants share the --pods budget with the demo workloads (about half of it, one at least each).
    seeded = api.list("/api/v1/pods", labelSelector=f"{seed.SEED_LABEL}=true")
    assert len(pods) >= len(plan.projects) and len(seeded) <= PODS + 2 * len(plan.projects)

    # A second seeding (what a second `up` runs) creates nothing and changes nothing.
    before = {k: v["metadata"]["resourceVersion"] for k, v in {**namespaces, **deployments}.items()}
    seed.Seeder(tenant_sandbox, api).seed_cluster()
    namespaces, deployments = _tenant_objects(api)
    after = {k: v["metadata"]["resourceVersion"] for k, v in {**namespaces, **deployments}.items()}
    assert set(after) == set(before)
    assert all(after[ns] == before[ns] for ns in namespaces)  # not even a no-op write
    # A Deployment's status may move (its controller writes it); its spec must not.
    assert all(d["metadata"]["generation"] == 1 for d in deployments.values())


def test_the_hub_hook_registers_the_real_namespaces_and_a_second_run_creates_nothing(
    tenant_sandbox: Sandbox, tmp_path: Path
) -> None:
    from tests.conftest import world_database_url
    from tests.integration.cluster_support import FAST_AUTH

    seed.Seeder(tenant_sandbox, kube.KubeRest(tenant_sandbox.kubeconfig)).seed_credentials()
    settings = Settings(data_dir=tmp_path, database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": str(tenant_sandbox.kubeconfig), "request_timeout": 5.0},
        prometheus={"url": "http://127.0.0.1:9", "timeout": 1.0},
        auth=dict(FAST_AUTH),
    )
    credentials = tenant_sandbox.state_dir / seed.TENANT_CREDENTIALS
    state = {"tenants": {"workspaces": TENANTS, "credentials": str(credentials)}}
    plan = tenants.plan_tenancy(TENANTS)
    first = seed_tenants(settings, state)
    assert f"created {TENANTS} workspaces, {len(plan.projects)} projects, {len(plan.users)} users" in first, first
    assert f", {len(plan.policies)} policies (" in first and "warnings" not in first, first
    again = seed_tenants(settings, state)
    assert "created 0 workspaces, 0 projects, 0 users (" in again and ", 0 role bindings, 0 policies (" in again
    api = kube.KubeRest(tenant_sandbox.kubeconfig)
    hub = build_hub(settings)
    try:
        svc = hub.tenancy
        for p in plan.projects:
            project = svc.project(p.namespace)
            assert project is not None and project.workspace == p.workspace
            assert project.uid == api.get(f"/api/v1/namespaces/{p.namespace}")["metadata"]["uid"]
        # A project operator reaches exactly their projects, and may sign in with the password
        # the sandbox keeps for them.
        user = next(u for u in plan.users if any(r == "operator" for _, r in u.projects) and not u.workspaces)
        principal = svc.principal_for(user.username)
        assert principal is not None
        scope = svc.scope(principal)
        assert {p.namespace for p in plan.projects if scope.allows(p.namespace)} == {ns for ns, _ in user.projects}
        password = {c["username"]: c["password"] for c in json.loads(credentials.read_text())}[user.username]
        assert svc.hashing.verify(svc.user(user.username).password_hash, password)  # type: ignore[union-attr]
    finally:
        hub.close()
