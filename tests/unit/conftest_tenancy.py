"""A ready tenancy world for tests of every area: two workspaces, four projects, a user per role.

Use it from any test module::

    # the fixture ``tenancy_world`` is available everywhere (tests/conftest.py imports it)
    from tests.unit.conftest_tenancy import FOREIGN_NAMES, TenancyWorld, assert_no_leak

    def test_tenant_cannot_read_foreign_logs(tenancy_world: TenancyWorld) -> None:
        client = tenancy_world.client("project-operator")      # bearer token of that role
        r = client.get("/api/v1/logs?namespaces=ns-b1")
        assert r.status_code == 403
        assert_no_leak(r, requested="ns-b1")

or build one yourself (e.g. with your own settings or a FakeClock)::

    world = build_world(tmp_path, clock=FakeClock(1_795_000_000), settings={"prometheus": {"url": ...}})

Layout (names are constants below)::

    ws-a: ns-a1, ns-a2          ws-b: ns-b1, ns-b2
    admin         platform admin
    regular       platform regular, no memberships
    cadmin        cluster admin of the implicit cluster (nodes, node policies; no project)
    cviewer       cluster viewer of the implicit cluster (read-only; no project)
    wsadmin       workspace admin of ws-a      (reaches ns-a1, ns-a2)
    wsregular     workspace regular of ws-a    (reaches no project)
    wsviewer      workspace viewer of ws-a     (reaches ns-a1, ns-a2 read-only)
    padmin        project admin of ns-a1
    poperator     project operator of ns-a1
    pviewer       project viewer of ns-a1
    bob           the other tenant: workspace admin of ws-b (reaches ns-b1, ns-b2)

Keys of :data:`ROLE_USERS` are the role keys of ``hub.tenancy.roles.BUILTIN_ROLES`` plus
``"tenant-b"``. Passwords hash with cheap argon2 settings so that logins stay fast.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.runtime import Hub, build_hub
from hub.settings import Settings
from hub.timeutil import Clock
from tests.conftest import world_database_url

PASSWORD = "Test-password-9"  # every world user's password (contains no user name)
FAST_AUTH = {"password_hash_memory_kib": 1024, "password_hash_time_cost": 1}  # argon2 cost for tests only

WORKSPACES: dict[str, list[str]] = {"ws-a": ["ns-a1", "ns-a2"], "ws-b": ["ns-b1", "ns-b2"]}
HOME_WORKSPACE = "ws-a"
HOME_NAMESPACE = "ns-a1"  # every tenant role below reaches it
SIBLING_NAMESPACE = "ns-a2"  # same workspace; workspace admin/viewer reach it, project roles do not
FOREIGN_WORKSPACE = "ws-b"
FOREIGN_NAMESPACE = "ns-b1"
UNKNOWN_NAMESPACE = "ns-ghost"  # exists nowhere; must answer exactly like a foreign one
UNKNOWN_WORKSPACE = "ws-ghost"


@dataclass(frozen=True)
class UserSpec:
    name: str
    platform_role: str = "regular"
    workspace: tuple[str, str] | None = None  # (workspace, role)
    project: tuple[str, str] | None = None  # (namespace, role)
    cluster: str | None = None  # a role on the implicit cluster (clusters.default_name)


ROLE_USERS: dict[str, UserSpec] = {
    "platform-admin": UserSpec("admin", platform_role="admin"),
    "platform-regular": UserSpec("regular"),
    "cluster-admin": UserSpec("cadmin", cluster="admin"),
    "cluster-viewer": UserSpec("cviewer", cluster="viewer"),
    "workspace-admin": UserSpec("wsadmin", workspace=("ws-a", "admin")),
    "workspace-regular": UserSpec("wsregular", workspace=("ws-a", "regular")),
    "workspace-viewer": UserSpec("wsviewer", workspace=("ws-a", "viewer")),
    "project-admin": UserSpec("padmin", project=("ns-a1", "admin")),
    "project-operator": UserSpec("poperator", project=("ns-a1", "operator")),
    "project-viewer": UserSpec("pviewer", project=("ns-a1", "viewer")),
    "tenant-b": UserSpec("bob", workspace=("ws-b", "admin")),
}

# Names a tenant of ws-a must never see in an answer (unless it echoes their own request).
FOREIGN_NAMES: tuple[str, ...] = ("ws-b", "ns-b1", "ns-b2", "bob")


@dataclass
class TenancyWorld:
    app: Flask
    hub: Hub
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def tenancy(self) -> Any:
        return self.hub.tenancy

    def user(self, role: str) -> str:
        return ROLE_USERS[role].name

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self, role: str | None = None) -> FlaskClient:
        """A test client that sends ``role``'s API token on every request (None: anonymous)."""
        client = self.app.test_client()
        if role is not None:
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {self.tokens[role]}"
        return client

    def session(self, role: str) -> tuple[FlaskClient, str]:
        """A test client logged in to the console as ``role`` (cookie), and its CSRF token."""
        client = self.app.test_client()
        r = client.post("/api/v1/auth/login", json={"username": self.user(role), "password": PASSWORD})
        assert r.status_code == 200, r.get_data(as_text=True)
        return client, r.get_json()["csrf_token"]


def build_world(
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    settings: dict[str, Any] | None = None,
    prepare: Any = None,
) -> TenancyWorld:
    """Build a hub + app in ``tmp_path`` and fill it with the world above.

    ``settings`` are group overrides for ``Settings.replace`` (e.g. ``{"auth": {...}}``);
    ``prepare(app)`` runs before any request (to add hooks, which Flask refuses later).
    No request is made here: tokens are issued through the service.
    """
    base = Settings(data_dir=tmp_path / "data", database_url=world_database_url()).replace(
        kubernetes={"kubeconfig": "none"}, logs={"ship": False}, auth=dict(FAST_AUTH)
    )
    for group, values in (settings or {}).items():
        base = base.replace(**{group: values})
    hub = build_hub(base, clock=clock)
    from web import create_app

    app = create_app(hub=hub, testing=True)
    if prepare is not None:
        prepare(app)
    tenancy = hub.tenancy
    for spec in ROLE_USERS.values():
        tenancy.create_user(spec.name, PASSWORD, platform_role=spec.platform_role, email=f"{spec.name}@example.com")
    for ws, namespaces in WORKSPACES.items():
        tenancy.create_workspace(ws)
        for ns in namespaces:
            tenancy.create_project(ws, ns)
    for spec in ROLE_USERS.values():
        if spec.workspace:
            tenancy.set_workspace_member(spec.workspace[0], spec.name, spec.workspace[1])
        if spec.project:
            tenancy.set_project_member(spec.project[0], spec.name, spec.project[1])
        if spec.cluster:
            tenancy.set_cluster_member(tenancy.default_cluster, spec.name, spec.cluster)
    world = TenancyWorld(app=app, hub=hub)
    for role, spec in ROLE_USERS.items():
        world.tokens[role] = tenancy.issue_token(spec.name, kind="named", name="test").token
    return world


@pytest.fixture
def tenancy_world(tmp_path: Path) -> Iterator[TenancyWorld]:
    world = build_world(tmp_path)
    yield world
    world.hub.close()


def body_text(response: Any) -> str:
    return response.get_data(as_text=True)


def assert_no_leak(
    response: Any, *, requested: str | tuple[str, ...] = (), names: tuple[str, ...] = FOREIGN_NAMES
) -> None:
    """Fail if the response body names another tenant's workspace, namespace or user.

    ``requested`` lists names the caller put in the request themselves: echoing those back
    ("you lack ... in namespace ns-b1") tells them nothing new.
    """
    echoed = {requested} if isinstance(requested, str) else set(requested)
    text = body_text(response)
    try:
        text = json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        pass
    leaked = [n for n in names if n not in echoed and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
    assert not leaked, f"response leaks {leaked}: {text[:500]}"
