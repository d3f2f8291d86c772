"""Deleting a project deletes its namespace (issue 19): typed confirmation, who may, and what
happens when the API server refuses or is down (the project stays registered, audited).

The namespace deletion is a callable the runtime hands the tenancy service; here it is a small
recorder/raiser through that interface. The real API server is exercised by
tests/integration/test_project_deletion.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.errors import BackendUnavailable, Conflict, Forbidden, HubError, Unprocessable
from hub.scope import Scope
from hub.settings import AuthSettings
from hub.store import Database
from hub.store.audit import AuditFilter
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.service import TenancyService
from hub.timeutil import FakeClock
from tests.conftest import open_test_store
from tests.unit.conftest_tenancy import TenancyWorld

ADMIN_SCOPE = Scope(all_namespaces=True, namespaces={})


class Namespaces:
    """Records deletions; raises ``error`` instead when set."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.error: HubError | None = None

    def delete(self, name: str) -> bool:
        if self.error is not None:
            raise self.error
        self.deleted.append(name)
        return True


@pytest.fixture
def namespaces() -> Namespaces:
    return Namespaces()


@pytest.fixture
def svc(tmp_path: Path, namespaces: Namespaces) -> Iterator[TenancyService]:
    db: Database = open_test_store(tmp_path / "state.sqlite3")
    db.migrate()
    service = TenancyService(
        db,
        auth=AuthSettings(),
        clock=FakeClock(1_800_000_000.0),
        hashing=PasswordHashing(memory_kib=1024, time_cost=1),
        delete_namespace=namespaces.delete,
    )
    service.create_workspace("ws-a")
    service.create_project("ws-a", "team-a")
    yield service
    db.close()


@pytest.mark.parametrize("confirm", [None, "", "team-b", "TEAM-A", " team-a"])
def test_without_the_project_name_typed_back_nothing_is_deleted(
    svc: TenancyService, namespaces: Namespaces, confirm: object
) -> None:
    with pytest.raises(Unprocessable) as info:
        svc.delete_project("team-a", actor="alice", confirm=confirm)
    assert info.value.field == "confirm" and "team-a" in info.value.message
    assert namespaces.deleted == [] and svc.project("team-a") is not None


def test_confirmed_deletion_deletes_the_namespace_then_unregisters_and_audits(
    svc: TenancyService, namespaces: Namespaces
) -> None:
    assert svc.delete_project("team-a", actor="alice", confirm="team-a") is True
    assert namespaces.deleted == ["team-a"] and svc.project("team-a") is None
    entries, _ = svc.audit_log(ADMIN_SCOPE, AuditFilter(action="project.delete"))
    assert [(e.actor, e.result, e.detail.get("namespace_deleted")) for e in entries] == [("alice", "ok", True)]


@pytest.mark.parametrize(
    "error",
    [
        BackendUnavailable("Kubernetes API server", "connection refused"),
        Forbidden("the hub's Kubernetes account may not delete namespaces"),
        Conflict("namespaces/team-a was changed by someone else"),
    ],
)
def test_a_refused_or_failed_namespace_deletion_leaves_the_project_registered(
    svc: TenancyService, namespaces: Namespaces, error: HubError
) -> None:
    namespaces.error = error
    with pytest.raises(type(error)):
        svc.delete_project("team-a", actor="alice", confirm="team-a")
    assert svc.project("team-a") is not None
    entries, _ = svc.audit_log(ADMIN_SCOPE, AuditFilter(action="project.delete"))
    assert len(entries) == 1 and entries[0].result == "failed" and entries[0].detail["registered"] is True
    assert error.message in entries[0].detail["error"]


# -- the API: confirmation and who may ---------------------------------------------------------
PATH = "/api/v1/workspaces/ws-a/projects/ns-a2"


def test_the_api_wants_confirm_and_names_it(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("workspace-admin")
    missing = admin.delete(PATH)
    assert missing.status_code == 422 and missing.get_json()["field"] == "confirm"
    wrong = admin.delete(PATH + "?confirm=ns-a1")
    assert wrong.status_code == 422 and wrong.get_json()["field"] == "confirm"
    assert tenancy_world.tenancy.project("ns-a2") is not None
    preview = admin.get(PATH + "/deletion")
    assert preview.status_code == 200 and preview.get_json()["confirm"] == "ns-a2"
    done = admin.delete(PATH, json={"confirm": "ns-a2"})
    assert done.status_code == 200 and done.get_json()["deleted"] is True
    assert tenancy_world.tenancy.project("ns-a2") is None


@pytest.mark.parametrize(
    "role", ["project-admin", "project-operator", "project-viewer", "workspace-viewer", "workspace-regular", "tenant-b"]
)
def test_only_workspace_and_platform_admins_may_delete_or_preview(tenancy_world: TenancyWorld, role: str) -> None:
    client = tenancy_world.client(role)
    path = "/api/v1/workspaces/ws-a/projects/ns-a1"
    assert client.get(path + "/deletion").status_code == 403
    assert client.delete(path + "?confirm=ns-a1").status_code == 403
    assert tenancy_world.tenancy.project("ns-a1") is not None


def test_a_platform_admin_may_delete_any_project(tenancy_world: TenancyWorld) -> None:
    admin = tenancy_world.client("platform-admin")
    assert admin.delete("/api/v1/workspaces/ws-b/projects/ns-b2?confirm=ns-b2").status_code == 200
    assert tenancy_world.tenancy.project("ns-b2") is None


def test_the_console_form_wants_the_name_typed_back(tenancy_world: TenancyWorld) -> None:
    client, csrf = tenancy_world.session("workspace-admin")
    page = client.get("/projects/ns-a2")
    assert "/workspaces/ws-a/projects/ns-a2/delete" in page.get_data(as_text=True)
    form = client.get("/workspaces/ws-a/projects/ns-a2/delete")
    assert form.status_code == 200 and 'name="confirm"' in form.get_data(as_text=True)
    url = "/workspaces/ws-a/projects/ns-a2/delete"
    client.post(url, data={"csrf_token": csrf, "confirm": "ns-a1"})
    assert tenancy_world.tenancy.project("ns-a2") is not None
    client.post(url, data={"csrf_token": csrf, "confirm": "ns-a2"})
    assert tenancy_world.tenancy.project("ns-a2") is None
    viewer, _ = tenancy_world.session("project-admin")
    assert "/projects/ns-a1/delete" not in viewer.get("/projects/ns-a1").get_data(as_text=True)


def test_the_project_page_answers_while_the_api_server_is_down_and_says_so_in_the_quota_panel(
    tenancy_world: TenancyWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quota panel reads the API server live; an outage stays inside the panel (the soak
    found the whole page answering 503 naming no backend)."""
    from hub.collectors import quotas

    def down(self: object, ns: str) -> dict[str, object]:
        raise BackendUnavailable("kubernetes API server", "connection refused")

    class Cluster:
        api = object()

    monkeypatch.setattr(quotas.Quotas, "usage", down)
    monkeypatch.setattr(tenancy_world.hub, "cluster", Cluster())
    client, _csrf = tenancy_world.session("project-viewer")
    r = client.get("/projects/ns-a1", headers={"Accept": "text/html"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'id="quota-unavailable"' in body and "connection refused" in body
