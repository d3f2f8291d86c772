"""The console's create-project form names the cluster (issue 18): a workspace granted clusters
besides the implicit one shows a cluster select listing exactly those (en and zh labels), to
whoever may create its projects; the choice goes through the tenancy service's own check (a
cluster the workspace is not granted is refused naming ``cluster``, nothing made), the project
is made in the chosen cluster only (its namespace in that cluster's API server: the in-memory
stand-in of tests/unit/namespace_fakes.py, through the tenancy area's own protocol), and the
workspace page links it with its cluster."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.clusters.secretbox import new_key
from hub.tenancy.directory import WORKSPACE_LABEL
from tests.unit.conftest_tenancy import TenancyWorld, build_world
from tests.unit.namespace_fakes import MemoryNamespaces, patch_runtime

pytestmark = pytest.mark.unit

HTML = {"Accept": "text/html"}


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TenancyWorld, dict[str, MemoryNamespaces]]]:
    stand_ins = patch_runtime(monkeypatch)
    w = build_world(tmp_path, settings={"clusters": {"secret_key": new_key()}})
    for name in ("cluster-2", "cluster-3"):
        w.hub.clusters.add({"name": name, "connection": {"kubeconfig_path": "/nonexistent"}}, actor="t")
    w.hub.tenancy.grant_cluster("ws-a", "cluster-2", actor="t")  # cluster-3 is nobody's
    yield w, stand_ins
    w.hub.close()


def options(page: str) -> list[str] | None:
    """The cluster select's option values (None: no select)."""
    m = re.search(r'<select name="cluster" id="project-cluster">(.*?)</select>', page, re.S)
    return None if m is None else re.findall(r'<option value="([^"]*)"', m.group(1))


@pytest.mark.parametrize("role", ["workspace-admin", "platform-admin"])
def test_the_form_lists_the_workspaces_granted_clusters_only(
    world: tuple[TenancyWorld, dict[str, MemoryNamespaces]], role: str
) -> None:
    w, _ = world
    console, _csrf = w.session(role)
    page = console.get("/workspaces/ws-a", headers=HTML).get_data(as_text=True)
    assert options(page) == ["default", "cluster-2"]
    assert "In cluster" in page and "default (this hub&#39;s own)" in page
    zh = console.get("/workspaces/ws-a?lang=zh", headers=HTML).get_data(as_text=True)
    assert "所在集群" in zh and options(zh) == ["default", "cluster-2"]


def test_no_select_without_grants_or_without_the_right_to_create(
    world: tuple[TenancyWorld, dict[str, MemoryNamespaces]],
) -> None:
    w, _ = world
    bob, _csrf = w.session("tenant-b")  # ws-b's admin: ws-b has the implicit cluster only
    page = bob.get("/workspaces/ws-b", headers=HTML).get_data(as_text=True)
    assert 'name="namespace"' in page and options(page) is None
    viewer, _csrf = w.session("workspace-viewer")  # may read ws-a, not create in it
    assert options(viewer.get("/workspaces/ws-a", headers=HTML).get_data(as_text=True)) is None


def test_a_project_is_created_in_the_chosen_cluster_only(
    world: tuple[TenancyWorld, dict[str, MemoryNamespaces]],
) -> None:
    w, stand_ins = world
    t = w.hub.tenancy
    console, csrf = w.session("workspace-admin")
    r = console.post(
        "/workspaces/ws-a/projects",
        data={"csrf_token": csrf, "namespace": "ns-new", "cluster": "cluster-2"},
        headers=HTML,
    )
    assert r.status_code == 303 and r.headers["Location"].endswith("/projects/ns-new?cluster=cluster-2")
    record = t.project_record("cluster-2/ns-new")
    assert record is not None and record.workspace == "ws-a" and record.cluster == "cluster-2"
    assert t.project_record("ns-new") is None
    assert stand_ins["cluster-2"].namespaces == {"ns-new": {WORKSPACE_LABEL: "ws-a"}}
    page = console.get("/workspaces/ws-a", headers=HTML).get_data(as_text=True)
    assert "/projects/ns-new?cluster=cluster-2" in page
    # The implicit cluster named in the form is the implicit cluster, as without the field.
    r = console.post(
        "/workspaces/ws-a/projects",
        data={"csrf_token": csrf, "namespace": "ns-here", "cluster": "default"},
        headers=HTML,
    )
    assert r.status_code == 303 and r.headers["Location"].endswith("/projects/ns-here")
    assert t.project_record("ns-here") is not None and "ns-here" not in stand_ins["cluster-2"].namespaces


@pytest.mark.parametrize(
    ("role", "ws", "url", "cluster"),
    [
        ("workspace-admin", "ws-a", "/workspaces/ws-a/projects", "cluster-3"),  # not granted to ws-a
        ("tenant-b", "ws-b", "/workspaces/ws-b/projects", "cluster-2"),  # ws-a's grant, not ws-b's
        ("workspace-admin", "ws-a", "/workspaces/ws-a/projects", "no-such"),
        ("workspace-admin", "ws-a", "/workspaces/ws-a/projects?cluster=default", "cluster-2"),  # two clusters
    ],
)
def test_a_cluster_the_workspace_is_not_granted_is_refused_naming_cluster(
    world: tuple[TenancyWorld, dict[str, MemoryNamespaces]], role: str, ws: str, url: str, cluster: str
) -> None:
    w, stand_ins = world
    console, csrf = w.session(role)
    r = console.post(url, data={"csrf_token": csrf, "namespace": "ns-x", "cluster": cluster}, headers=HTML)
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/workspaces/{ws}")
    shown = console.get(f"/workspaces/{ws}", headers=HTML).get_data(as_text=True)
    assert "(cluster)" in shown  # the refusal's sentence names the field
    assert [p.namespace for p in w.hub.tenancy.project_records() if p.namespace.endswith("ns-x")] == []
    assert all("ns-x" not in c.namespaces for c in stand_ins.values())
