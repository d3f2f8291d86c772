"""The scope over several clusters: namespaces keyed by (cluster, namespace).

The same namespace name in two clusters belongs to two tenants; each one's view of the other
cluster is empty, whichever cluster a request names. Workspaces are granted clusters, a project
lives in one of them, and a single-cluster install's scope is exactly what it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.errors import Forbidden, Unprocessable
from hub.scope import project_key, split_key
from hub.settings import AuthSettings
from hub.store import Database
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.roles import ClusterRole, PlatformRole, ProjectRole, WorkspaceRole
from hub.tenancy.scope import Principal, Project, scope_for
from hub.tenancy.service import TenancyService
from hub.timeutil import FakeClock
from tests.conftest import open_test_store

pytestmark = pytest.mark.unit

PW = "Plenty-of-chars-7"
PROJECTS = [
    Project(namespace="retail-api", workspace="retail", created=10.0),
    Project(namespace="cluster-2/retail-api", workspace="payments", created=20.0),
    Project(namespace="cluster-2/pay-db", workspace="payments", created=30.0),
]


def test_keys_round_trip_and_the_implicit_cluster_keeps_plain_names() -> None:
    assert project_key("", "ns") == "ns" and project_key("default", "ns") == "ns"
    assert project_key("cluster-2", "ns") == "cluster-2/ns"
    assert split_key("cluster-2/ns") == ("cluster-2", "ns") and split_key("ns") == ("", "ns")
    assert project_key("prod", "ns", default_cluster="prod") == "ns"


def test_the_same_namespace_name_in_two_clusters_belongs_to_two_tenants() -> None:
    retail = scope_for(Principal("r", workspaces={"retail": WorkspaceRole.ADMIN}), PROJECTS)
    payments = scope_for(Principal("p", workspaces={"payments": WorkspaceRole.VIEWER}), PROJECTS)

    assert retail.at == "default" and dict(retail.namespaces) == {"retail-api": 10.0}
    assert retail.keys == {("default", "retail-api")}
    assert retail.for_cluster("cluster-2").namespaces == {}
    assert not retail.for_cluster("cluster-2").may("workloads:read", "retail-api")
    with pytest.raises(Forbidden):
        retail.for_cluster("cluster-2").named("metrics:read", ["retail-api"])
    assert retail.for_cluster("cluster-2").named("metrics:read", None) == []

    assert payments.namespaces == {}  # nothing in the implicit cluster
    assert not payments.may("workloads:read", "retail-api")
    two = payments.for_cluster("cluster-2")
    assert two.at == "cluster-2" and dict(two.namespaces) == {"retail-api": 20.0, "pay-db": 30.0}
    assert two.may("workloads:read", "retail-api") and two.floor("retail-api") == 20.0
    assert two.workspaces["retail-api"] == "payments"
    assert payments.keys == {("cluster-2", "retail-api"), ("cluster-2", "pay-db")}
    # Views are one scope: from any view every other is reached, and naming the own one is itself.
    assert two.for_cluster(None) is payments and payments.for_cluster("default") is payments
    assert two.for_cluster("cluster-2") is two


def test_an_unknown_cluster_is_an_empty_view_and_cluster_roles_apply_per_cluster() -> None:
    viewer = Principal("v", clusters={"cluster-2": ClusterRole.VIEWER})
    scope = scope_for(viewer, PROJECTS)
    assert not scope.cluster and scope.for_cluster("cluster-2").cluster
    assert scope.may_cluster("nodes:read", "cluster-2") and not scope.may_cluster("nodes:read")
    assert not scope.for_cluster("nope").cluster and scope.for_cluster("nope").namespaces == {}
    assert scope.may_read_cluster("cluster-2") and not scope.may_read_cluster("nope")
    # A node-level alert read (no namespace) is answered on the view's own cluster.
    assert scope.for_cluster("cluster-2").may("alerts:read", None) and not scope.may("alerts:read", None)


def test_platform_admins_see_every_cluster_and_single_cluster_scopes_are_unchanged() -> None:
    admin = scope_for(Principal("a", platform_role=PlatformRole.ADMIN), PROJECTS)
    assert admin.all_namespaces and admin.for_cluster("cluster-2").all_namespaces
    assert set(admin.for_cluster("cluster-2").namespaces) == {"retail-api", "pay-db"}
    assert admin.may_read_cluster("anything")
    one = [Project(namespace="a", workspace="w"), Project(namespace="b", workspace="w")]
    member = scope_for(Principal("m", projects={"a": ProjectRole.VIEWER}), one)
    assert member.visible == ("a",) and member.at == "default" and member.granted_clusters == {"default"}


def test_workspace_grants_list_clusters_before_any_project_lives_there() -> None:
    p = Principal("r", workspaces={"retail": WorkspaceRole.VIEWER})
    scope = scope_for(p, PROJECTS[:1], workspace_clusters={"retail": ["cluster-3"], "other": ["cluster-9"]})
    assert scope.granted_clusters == {"default", "cluster-3"}
    assert scope.for_cluster("cluster-3").namespaces == {}


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[TenancyService]:
    db: Database = open_test_store(tmp_path / "state.sqlite3")
    db.migrate()
    yield TenancyService(
        db,
        auth=AuthSettings(),
        clock=FakeClock(1_795_000_000.0),
        hashing=PasswordHashing(memory_kib=1024, time_cost=1),
        cluster_names=lambda: ["default", "cluster-2"],
    )
    db.close()


def test_projects_live_in_a_granted_cluster_and_scopes_follow(svc: TenancyService) -> None:
    for user in ("rita", "pete"):
        svc.create_user(user, PW)
    svc.create_workspace("retail", admin="rita")
    svc.create_workspace("payments", admin="pete")
    svc.create_project("retail", "retail-api")
    with pytest.raises(Unprocessable) as refused:
        svc.create_project("payments", "retail-api", cluster="cluster-2")  # not granted yet
    assert refused.value.field == "cluster"
    with pytest.raises(Unprocessable):
        svc.grant_cluster("payments", "nope")
    p_before = svc.scope(svc.principal_for("pete"))  # type: ignore[arg-type]
    assert not p_before.may_read_cluster("cluster-2")
    svc.grant_cluster("payments", "cluster-2", actor="admin")
    assert svc.workspace_clusters("payments") == ["default", "cluster-2"]
    # The grant bumps the project generation: the cached scope is rebuilt.
    assert svc.scope(svc.principal_for("pete")).may_read_cluster("cluster-2")  # type: ignore[arg-type]
    made = svc.create_project("payments", "retail-api", cluster="cluster-2")
    assert made.namespace == "cluster-2/retail-api" and made.cluster == "cluster-2" and made.name == "retail-api"
    assert svc.project_record("cluster-2/retail-api").cluster == "cluster-2"  # type: ignore[union-attr]
    assert svc.project_record("retail-api").cluster == ""  # type: ignore[union-attr]

    r = svc.scope(svc.principal_for("rita"))  # type: ignore[arg-type]
    p = svc.scope(svc.principal_for("pete"))  # type: ignore[arg-type]
    assert set(r.namespaces) == {"retail-api"} and r.for_cluster("cluster-2").namespaces == {}
    assert p.namespaces == {} and set(p.for_cluster("cluster-2").namespaces) == {"retail-api"}
    # Route checks by key: the implicit cluster's retail-api is refused to payments' admin.
    with pytest.raises(Forbidden):
        svc.authorize(svc.principal_for("pete"), "workloads:read", namespace="retail-api")  # type: ignore[arg-type]
    svc.authorize(svc.principal_for("pete"), "workloads:read", namespace="cluster-2/retail-api")  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        svc.authorize(svc.principal_for("rita"), "workloads:read", namespace="cluster-2/retail-api")  # type: ignore[arg-type]
    # A cluster with a project of the workspace stays granted.
    with pytest.raises(Exception, match="still has 1 project"):
        svc.revoke_cluster("payments", "cluster-2")


def test_the_keyed_scope_names_projects_by_key_for_areas_keyed_by_project() -> None:
    both = Principal("b", workspaces={"retail": WorkspaceRole.VIEWER, "payments": WorkspaceRole.VIEWER})
    keyed = scope_for(both, PROJECTS).for_cluster("cluster-2").keyed
    assert set(keyed.namespaces) == {"retail-api", "cluster-2/retail-api", "cluster-2/pay-db"}
    assert keyed.may("alerts:read", "cluster-2/retail-api") and keyed.at == "default"
    payments = scope_for(Principal("p", workspaces={"payments": WorkspaceRole.VIEWER}), PROJECTS)
    # The other tenant's retail-api (the implicit cluster's) is not theirs under any view.
    assert not payments.keyed.may("alerts:read", "retail-api")
    assert not payments.for_cluster("cluster-2").keyed.may("alerts:read", "retail-api")
    assert payments.keyed.named("alerts:read", None) == ["cluster-2/pay-db", "cluster-2/retail-api"]
