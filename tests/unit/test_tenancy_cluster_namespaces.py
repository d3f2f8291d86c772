"""A project of an added cluster gets its namespace in that cluster's API server (issue 18).

The tenancy service is given an added cluster's namespace calls through its own protocol
(:class:`hub.tenancy.placement.ClusterNamespaces`); here an in-memory stand-in per cluster
records what reached which cluster, so the tests see that cluster-2's project goes to cluster-2
only, with the workspace label, that a namespace held by another workspace there is 409 (that
workspace unnamed), that a cluster that does not answer is 503 naming it with nothing recorded,
and that deleting the project deletes its namespace in its own cluster. The real API servers
are in tests/integration/test_clusters_multi.py. The web side: a project's routes with
``?cluster=`` act on the project the permission was checked on (before, the members routes
acted on the implicit cluster's namesake of another tenant).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.clusters.secretbox import new_key
from hub.errors import BackendUnavailable, Conflict, Unprocessable
from hub.settings import AuthSettings
from hub.store import Database
from hub.store.audit import AuditFilter
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.directory import WORKSPACE_LABEL
from hub.tenancy.service import TenancyService
from hub.timeutil import FakeClock
from tests.conftest import open_test_store
from tests.unit.conftest_tenancy import build_world
from tests.unit.namespace_fakes import MemoryNamespaces, patch_runtime

pytestmark = pytest.mark.unit

PW = "Plenty-of-chars-7"


@pytest.fixture
def clusters() -> dict[str, MemoryNamespaces]:
    return {"cluster-2": MemoryNamespaces("cluster-2")}


@pytest.fixture
def svc(tmp_path: Path, clusters: dict[str, MemoryNamespaces]) -> Iterator[TenancyService]:
    implicit = MemoryNamespaces("default")
    clusters["default"] = implicit
    db: Database = open_test_store(tmp_path / "state.sqlite3")
    db.migrate()
    service = TenancyService(
        db,
        auth=AuthSettings(),
        clock=FakeClock(1_795_000_000.0),
        hashing=PasswordHashing(memory_kib=1024, time_cost=1),
        ensure_namespace=implicit.ensure_namespace,
        namespace_uid=implicit.namespace_uid,
        delete_namespace=implicit.delete_namespace,
        cluster_names=lambda: ["default", "cluster-2"],
        cluster_namespaces=lambda name: clusters[name],
    )
    service.create_user("rita", PW)
    service.create_workspace("retail", admin="rita")
    service.create_workspace("logistics")
    service.grant_cluster("retail", "cluster-2", actor="admin")
    service.grant_cluster("logistics", "cluster-2", actor="admin")
    yield service
    db.close()


def test_a_project_of_an_added_cluster_gets_its_namespace_there_only(
    svc: TenancyService, clusters: dict[str, MemoryNamespaces]
) -> None:
    made = svc.create_project("retail", "shop", cluster="cluster-2", actor="rita")
    two, implicit = clusters["cluster-2"], clusters["default"]
    assert two.namespaces == {"shop": {WORKSPACE_LABEL: "retail"}} and implicit.namespaces == {}
    # Its creation time and UID are the namespace's, as for the implicit cluster's projects.
    assert made.namespace == "cluster-2/shop" and made.uid == "uid-cluster-2-shop" and made.created == 1_700_000_001.0
    record = svc.project_record("cluster-2/shop")
    assert record is not None and record.cluster == "cluster-2" and record.namespace_uid == "uid-cluster-2-shop"
    # The implicit cluster's namesake is a project of its own, in the implicit cluster only.
    svc.create_project("logistics", "shop", actor="admin")
    assert implicit.namespaces == {"shop": {WORKSPACE_LABEL: "logistics"}} and set(two.namespaces) == {"shop"}


def test_a_namespace_another_workspace_holds_there_is_409_without_naming_it(
    svc: TenancyService, clusters: dict[str, MemoryNamespaces]
) -> None:
    clusters["cluster-2"].namespaces["depot"] = {WORKSPACE_LABEL: "logistics"}  # made by that cluster's admins
    with pytest.raises(Conflict) as refused:
        svc.create_project("retail", "depot", cluster="cluster-2", actor="rita")
    assert refused.value.field == "namespace" and "logistics" not in refused.value.message
    assert "cluster-2" in refused.value.message and svc.project_record("cluster-2/depot") is None
    # An unlabelled namespace there is adopted and labelled (as in the implicit cluster).
    clusters["cluster-2"].namespaces["loose"] = {}
    svc.create_project("retail", "loose", cluster="cluster-2", actor="rita")
    assert clusters["cluster-2"].namespaces["loose"] == {WORKSPACE_LABEL: "retail"}
    # Registered already in that cluster: 409 before the API server is asked.
    clusters["cluster-2"].down = True
    with pytest.raises(Conflict):
        svc.create_project("retail", "loose", cluster="cluster-2", actor="rita")


def test_a_cluster_that_does_not_answer_is_503_naming_it_and_nothing_is_recorded(
    svc: TenancyService, clusters: dict[str, MemoryNamespaces]
) -> None:
    clusters["cluster-2"].down = True
    with pytest.raises(BackendUnavailable) as down:
        svc.create_project("retail", "shop", cluster="cluster-2", actor="rita")
    assert down.value.status == 503 and "cluster cluster-2" in down.value.backend
    assert svc.project_record("cluster-2/shop") is None
    # Deletion likewise: the project stays, the failure is audited.
    clusters["cluster-2"].down = False
    svc.create_project("retail", "shop", cluster="cluster-2", actor="rita")
    clusters["cluster-2"].down = True
    with pytest.raises(BackendUnavailable):
        svc.delete_project("cluster-2/shop", actor="rita", confirm="cluster-2/shop")
    assert svc.project_record("cluster-2/shop") is not None
    entries, _ = svc.audit_store.search(AuditFilter(action="project.delete", target="namespace/cluster-2/shop"))
    assert [e.result for e in entries] == ["failed"]


def test_deleting_the_project_deletes_its_namespace_in_its_own_cluster(
    svc: TenancyService, clusters: dict[str, MemoryNamespaces]
) -> None:
    svc.create_project("retail", "shop", cluster="cluster-2", actor="rita")
    svc.create_project("logistics", "shop", actor="admin")
    with pytest.raises(Unprocessable) as typed:
        svc.delete_project("cluster-2/shop", actor="rita", confirm="shop")  # the key is the name to type
    assert typed.value.field == "confirm"
    assert svc.delete_project("cluster-2/shop", actor="rita", confirm="cluster-2/shop") is True
    assert clusters["cluster-2"].deleted == ["shop"] and "shop" not in clusters["cluster-2"].namespaces
    assert clusters["default"].deleted == [] and "shop" in clusters["default"].namespaces
    assert svc.project_record("cluster-2/shop") is None and svc.project_record("shop") is not None


def test_without_the_runtimes_calls_a_project_of_an_added_cluster_is_only_recorded(tmp_path: Path) -> None:
    db: Database = open_test_store(tmp_path / "state.sqlite3")
    db.migrate()
    try:
        svc = TenancyService(db, clock=FakeClock(1_795_000_000.0), cluster_names=lambda: ["default", "cluster-2"])
        svc.create_workspace("retail")
        svc.grant_cluster("retail", "cluster-2")
        made = svc.create_project("retail", "shop", cluster="cluster-2")
        assert made.created == 1_795_000_000.0 and made.uid == ""
        assert svc.delete_project("cluster-2/shop", confirm="cluster-2/shop") is None
    finally:
        db.close()


def test_project_routes_with_a_cluster_act_on_that_clusters_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PUT /namespaces/ns-a1/members/x?cluster=cluster-2`` was authorized on cluster-2's
    ns-a1 (the caller's) and then changed the implicit cluster's ns-a1 (another tenant's)."""
    stand_ins = patch_runtime(monkeypatch)
    w = build_world(tmp_path, settings={"clusters": {"secret_key": new_key()}})
    try:
        t = w.hub.tenancy
        w.hub.clusters.add({"name": "cluster-2", "connection": {"kubeconfig_path": "/nonexistent"}}, actor="t")
        t.grant_cluster("ws-b", "cluster-2", actor="t")
        bob = w.user("tenant-b")  # ws-b's admin: cluster-2's ns-a1 is theirs, the implicit one is ws-a's
        t.create_project("ws-b", "ns-a1", actor="t", cluster="cluster-2")
        client = w.client("tenant-b")
        r = client.put("/api/v1/namespaces/ns-a1/members/regular?cluster=cluster-2", json={"role": "admin"})
        assert r.status_code == 200, r.get_data(as_text=True)
        assert ("regular", "admin") in [(u, role.value) for u, role in t.project_members("cluster-2/ns-a1")]
        assert "regular" not in [u for u, _ in t.project_members("ns-a1")]
        assert client.put("/api/v1/namespaces/ns-a1/members/regular", json={"role": "admin"}).status_code == 403
        listed = client.get("/api/v1/namespaces/ns-a1/members?cluster=cluster-2").get_json()["items"]
        assert {m["user"] for m in listed} == {"regular"}
        # Creating names the cluster once: ?cluster= and a different body cluster is refused.
        r = client.post(
            "/api/v1/workspaces/ws-b/projects?cluster=cluster-2", json={"namespace": "x", "cluster": "default"}
        )
        assert r.status_code == 422 and r.get_json()["field"] == "cluster"
        # Deletion through the API: the namespace goes in cluster-2 only; first the typed name.
        assert stand_ins["cluster-2"].namespaces == {"ns-a1": {WORKSPACE_LABEL: "ws-b"}}
        preview = client.get("/api/v1/workspaces/ws-b/projects/ns-a1/deletion?cluster=cluster-2")
        assert preview.status_code == 503 and "cluster cluster-2" in preview.get_data(as_text=True)  # not connected
        r = client.delete("/api/v1/workspaces/ws-b/projects/ns-a1?cluster=cluster-2&confirm=ns-a1")
        assert r.status_code == 422 and r.get_json()["field"] == "confirm"
        r = client.delete("/api/v1/workspaces/ws-b/projects/ns-a1?cluster=cluster-2&confirm=cluster-2/ns-a1")
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.get_json() == {
            "namespace": "ns-a1",
            "cluster": "cluster-2",
            "deleted": True,
            "namespace_deleted": True,
        }
        assert stand_ins["cluster-2"].deleted == ["ns-a1"]
        assert t.project_record("cluster-2/ns-a1") is None and t.project_record("ns-a1") is not None
        # A cluster-2 that does not answer: 503 naming it, nothing recorded.
        stand_ins["cluster-2"].down = True
        r = client.post("/api/v1/workspaces/ws-b/projects", json={"namespace": "ns-b9", "cluster": "cluster-2"})
        assert r.status_code == 503 and "cluster cluster-2" in r.get_json()["backend"], r.get_data(as_text=True)
        assert t.project_record("cluster-2/ns-b9") is None
        assert bob

        # The console's project forms likewise: the page of cluster-2's ns-a1, its members form
        # and its deletion act on cluster-2's project, never on the implicit cluster's ns-a1.
        stand_ins["cluster-2"].down = False
        t.create_project("ws-b", "ns-a1", actor="t", cluster="cluster-2")
        console, csrf = w.session("tenant-b")
        html = {"Accept": "text/html"}
        page = console.get("/projects/ns-a1?cluster=cluster-2", headers=html).get_data(as_text=True)
        assert "/projects/ns-a1/members?cluster=cluster-2" in page
        r = console.post(
            "/projects/ns-a1/members?cluster=cluster-2",
            data={"csrf_token": csrf, "user": "regular", "role": "viewer"},
            headers=html,
        )
        assert r.status_code in (302, 303), r.status_code
        assert "regular" in [u for u, _ in t.project_members("cluster-2/ns-a1")]
        assert "regular" not in [u for u, _ in t.project_members("ns-a1")]
        r = console.post(
            "/workspaces/ws-b/projects/ns-a1/delete?cluster=cluster-2",
            data={"csrf_token": csrf, "confirm": "cluster-2/ns-a1"},
            headers=html,
        )
        assert r.status_code in (302, 303) and t.project_record("cluster-2/ns-a1") is None
        assert t.project_record("ns-a1") is not None and stand_ins["cluster-2"].deleted == ["ns-a1", "ns-a1"]
    finally:
        w.hub.close()
