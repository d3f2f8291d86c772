"""The console's cluster switcher and multi-cluster overview (web/views/switcher.py) in the
tenancy world with a second cluster added: the switcher lists exactly the clusters a user may
pick (platform admins every one, a workspace granted the cluster its members, nobody else), the
choice is kept in the session and followed by the pages that list cluster objects, and the
overview shows each pickable cluster once, a tenant's only theirs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.clusters.secretbox import new_key
from hub.collectors.logs.store import LogRecord
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from tests.unit.namespace_fakes import patch_runtime

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    w = build_world(Path(tmp_path_factory.mktemp("switcher")), settings={"clusters": {"secret_key": new_key()}})
    yield w
    w.hub.close()


def switcher(body: str) -> list[str]:
    block = re.search(r'<span class="clusters" id="cluster-switcher".*?</span>', body, re.S)
    return re.findall(r'data-cluster="([^"]+)"', block.group(0)) if block else []


def overview_rows(body: str) -> list[str]:
    table = re.search(r'<table class="data" id="cluster-overview">.*?</table>', body, re.S)
    assert table, body[:500]
    return re.findall(r'<tr data-cluster="([^"]+)"', table.group(0))


def test_one_cluster_shows_no_switcher(world: TenancyWorld) -> None:
    client, _ = world.session("platform-admin")
    body = client.get("/workloads", headers=HTML).get_data(as_text=True)
    assert 'id="cluster-switcher"' not in body and "/clusters/overview" not in body


def test_the_switcher_lists_the_pickable_clusters_and_its_choice_follows_the_user(world: TenancyWorld) -> None:
    world.hub.clusters.add(
        {"name": "cluster-2", "display_name": "Second", "connection": {"kubeconfig_path": "/nonexistent"}},
        actor="test",
    )
    admin, _ = world.session("platform-admin")
    body = admin.get("/nodes", headers=HTML).get_data(as_text=True)
    assert switcher(body) == ["default", "cluster-2"] and "/clusters/overview" in body
    # Picking cluster-2 on one page is remembered: the next listing page named without a cluster
    # is sent to itself in cluster-2 (and says that cluster cannot be reached, naming it).
    r = admin.get("/workloads?cluster=cluster-2", headers=HTML)
    assert r.status_code in (200, 503) and "cluster-2" in r.get_data(as_text=True)
    r = admin.get("/nodes?name=x", headers=HTML)
    assert r.status_code == 302 and r.headers["Location"].endswith("/nodes?name=x&cluster=cluster-2")
    r = admin.get("/nodes?name=x&cluster=cluster-2", headers=HTML)
    assert "kubernetes API server of cluster cluster-2" in r.get_data(as_text=True)
    assert admin.get("/clusters/overview", headers=HTML).status_code == 200  # not a listing: no redirect
    # Picking the implicit cluster forgets the choice.
    admin.get("/nodes?cluster=default", headers=HTML)
    assert admin.get("/nodes", headers=HTML).status_code != 302  # (503: this world connects no cluster)

    # A project operator of ns-a1 (default only) has nothing to switch to and cannot pick cluster-2.
    tenant, _ = world.session("project-operator")
    assert switcher(tenant.get("/workloads", headers=HTML).get_data(as_text=True)) == []
    r = tenant.get("/workloads?cluster=cluster-2", headers=HTML)  # their view of cluster-2 is empty
    assert r.status_code == 200 and ">ns-a1</option>" not in r.get_data(as_text=True)
    assert ">ns-a1</option>" in tenant.get("/workloads?cluster=default", headers=HTML).get_data(as_text=True)
    assert tenant.get("/workloads", headers=HTML).status_code != 302  # nothing remembered
    assert overview_rows(tenant.get("/clusters/overview", headers=HTML).get_data(as_text=True)) == ["default"]

    # Granting ws-a the cluster lets its members pick it; tenant-b (ws-b) still cannot.
    world.hub.tenancy.grant_cluster("ws-a", "cluster-2", actor="test")
    member, _ = world.session("workspace-admin")
    assert switcher(member.get("/workloads", headers=HTML).get_data(as_text=True)) == ["default", "cluster-2"]
    assert overview_rows(member.get("/clusters/overview", headers=HTML).get_data(as_text=True)) == [
        "default",
        "cluster-2",
    ]
    other, _ = world.session("tenant-b")
    assert switcher(other.get("/workloads", headers=HTML).get_data(as_text=True)) == []
    assert overview_rows(other.get("/clusters/overview", headers=HTML).get_data(as_text=True)) == ["default"]
    assert other.get("/nodes?cluster=cluster-2", headers=HTML).status_code == 403


def test_the_overview_shows_each_cluster_with_its_state(world: TenancyWorld) -> None:
    if "cluster-2" not in world.hub.clusters.names():
        world.hub.clusters.add({"name": "cluster-2", "connection": {"kubeconfig_path": "/nonexistent"}}, actor="t")
    admin, _ = world.session("platform-admin")
    body = admin.get("/clusters/overview", headers=HTML).get_data(as_text=True)
    assert overview_rows(body) == ["default", "cluster-2"]
    row = re.search(r'<tr data-cluster="cluster-2" data-state="([^"]+)">(.*?)</tr>', body, re.S)
    assert row and row.group(1) == "unconfigured" and "/nonexistent" in row.group(2)
    zh = admin.get("/clusters/overview?lang=zh", headers=HTML).get_data(as_text=True)
    assert "多集群概览" in zh and "未连接" in zh


def test_log_lines_of_an_added_cluster_say_their_cluster(world: TenancyWorld) -> None:
    if "cluster-2" not in world.hub.clusters.names():
        world.hub.clusters.add({"name": "cluster-2", "connection": {"kubeconfig_path": "/nonexistent"}}, actor="t")
    now = time.time()
    world.hub.logs.write(
        [
            LogRecord(time=now, namespace="ns-a1", pod="p-1", container="c", message="marked two", cluster="cluster-2"),
            LogRecord(time=now + 0.001, namespace="ns-a1", pod="p-1", container="c", message="marked one"),
        ]
    )
    admin, _ = world.session("platform-admin")
    body = admin.get("/logs?search=1&q=marked", headers=HTML).get_data(as_text=True)
    two, one = (re.compile(rf"marked(</mark>)? {w}") for w in ("two", "one"))  # the term is highlighted
    assert two.search(body) and one.search(body)
    assert body.count('data-cluster="cluster-2"') >= 1 + 1  # the switcher's entry and the line's tag
    assert "/pods/p-1?cluster=cluster-2" in body or "p-1?cluster=cluster-2" in body
    only = admin.get("/logs?search=1&q=marked&cluster=cluster-2", headers=HTML).get_data(as_text=True)
    assert two.search(only) and not one.search(only)


def test_a_namespace_picked_by_query_is_checked_in_the_requests_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workloads page takes its project from ``?ns=``: a tenant who holds ``ns-a1`` in the
    implicit cluster and another project in cluster-2 must not list cluster-2's ``ns-a1`` (a
    namesake of another tenant) by naming both; before the check followed ``?cluster=`` it was
    checked on the implicit cluster's project and passed."""
    patch_runtime(monkeypatch)  # cluster-2's namespaces (it has no API server here) in memory
    w = build_world(tmp_path, settings={"clusters": {"secret_key": new_key()}})
    try:
        t = w.hub.tenancy
        w.hub.clusters.add({"name": "cluster-2", "connection": {"kubeconfig_path": "/nonexistent"}}, actor="t")
        t.grant_cluster("ws-b", "cluster-2", actor="t")
        t.create_project("ws-b", "ns-a1", actor="t", cluster="cluster-2")  # the namesake, ws-b's
        t.create_project("ws-b", "ns-c2", actor="t", cluster="cluster-2")
        t.set_project_member("cluster-2/ns-c2", w.user("project-operator"), "operator", actor="t")
        tenant, _ = w.session("project-operator")
        refused = tenant.get("/workloads?ns=ns-a1&cluster=cluster-2", headers=HTML)
        assert refused.status_code == 403, refused.status_code
        # Their own project there passes the check (this world connects no cluster: 503 naming it).
        own = tenant.get("/workloads?ns=ns-c2&cluster=cluster-2", headers=HTML)
        assert own.status_code == 503 and "cluster cluster-2" in own.get_data(as_text=True)
        assert tenant.get("/workloads?ns=ns-a1&cluster=default", headers=HTML).status_code != 403
    finally:
        w.hub.close()


def test_an_alerting_route_of_an_unknown_cluster_is_404_naming_it(tmp_path: Path) -> None:
    """The fuzzer created a policy as a platform admin under ``?cluster=nan``: a project key of a
    cluster nobody registered, which no later request could reach. An unknown cluster is 404
    naming ``cluster``; a tenant is refused as for a foreign cluster, before that."""
    w = build_world(tmp_path)
    try:
        admin = w.client("platform-admin")
        r = admin.post(
            "/api/v1/namespaces/ns-a1/alerting/policies/templates/workload-cpu?cluster=nan", json={"name": "x"}
        )
        assert r.status_code == 404 and "cluster" in r.get_data(as_text=True), r.get_data(as_text=True)
        listed = admin.get("/api/v1/alerting/policies?level=workload").get_data(as_text=True)
        assert "nan/" not in listed and '"x"' not in listed
        tenant = w.client("project-operator")
        r = tenant.get("/api/v1/namespaces/ns-a1/alerting/policies?cluster=nan")
        assert r.status_code == 403
        r = admin.post(
            "/api/v1/namespaces/ns-a1/alerting/policies/templates/workload-cpu?cluster=default", json={"name": "y"}
        )
        assert r.status_code == 201, r.get_data(as_text=True)
    finally:
        w.hub.close()
