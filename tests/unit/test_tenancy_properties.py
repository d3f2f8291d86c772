"""Property tests over random memberships: the scope never grants outside the memberships.

The oracle here is written from the rules in words (PRODUCT.md §5 and docs/tenancy.md): a
regular user reaches a project by a direct membership, or by being admin or viewer of its
workspace; nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.errors import Forbidden
from hub.store import Database
from hub.tenancy.credentials import PasswordHashing
from hub.tenancy.roles import (
    ALL_PERMISSIONS,
    PLATFORM_PERMISSIONS,
    PROJECT_ADMIN,
    PROJECT_ROLE_PERMISSIONS,
    WORKSPACE_PERMISSIONS,
    PlatformRole,
    ProjectRole,
    WorkspaceRole,
)
from hub.tenancy.scope import Principal, Project, has_permission, scope_for
from hub.tenancy.service import TenancyService
from hub.timeutil import FakeClock

pytestmark = pytest.mark.unit

WS_NAMES = [f"w{i}" for i in range(4)]
NS_NAMES = [f"n{i}" for i in range(8)]
RANK = {ProjectRole.VIEWER: 0, ProjectRole.OPERATOR: 1, ProjectRole.ADMIN: 2}


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Project], Principal]:
    workspaces = draw(st.lists(st.sampled_from(WS_NAMES), min_size=1, unique=True))
    namespaces = draw(st.lists(st.sampled_from(NS_NAMES), unique=True))
    projects = [
        Project(namespace=ns, workspace=draw(st.sampled_from(workspaces)), created=float(draw(st.integers(0, 10**9))))
        for ns in namespaces
    ]
    # Memberships may also name workspaces and namespaces that are not (or no longer) projects.
    ws_roles = draw(st.dictionaries(st.sampled_from(WS_NAMES), st.sampled_from(list(WorkspaceRole))))
    ns_roles = draw(st.dictionaries(st.sampled_from(NS_NAMES), st.sampled_from(list(ProjectRole))))
    principal = Principal(username="u", platform_role=PlatformRole.REGULAR, workspaces=ws_roles, projects=ns_roles)
    return projects, principal


def reachable(principal: Principal, project: Project) -> set[ProjectRole]:
    roles = set()
    if project.namespace in principal.projects:
        roles.add(principal.projects[project.namespace])
    ws_role = principal.workspaces.get(project.workspace)
    if ws_role is WorkspaceRole.ADMIN:
        roles.add(ProjectRole.ADMIN)
    if ws_role is WorkspaceRole.VIEWER:
        roles.add(ProjectRole.VIEWER)
    return roles


@given(worlds())
def test_the_scope_is_exactly_the_projects_reached_by_memberships(world: tuple[list[Project], Principal]) -> None:
    projects, principal = world
    scope = scope_for(principal, projects)
    assert not scope.all_namespaces
    expected = {p.namespace: p.created for p in projects if reachable(principal, p)}
    assert dict(scope.namespaces) == expected
    assert set(scope.workspaces) == set(expected)


@given(worlds(), st.lists(st.sampled_from([*NS_NAMES, "kube-system", ""]), max_size=6))
def test_restricting_a_request_never_adds_a_namespace_outside_the_scope(
    world: tuple[list[Project], Principal], requested: list[str]
) -> None:
    projects, principal = world
    scope = scope_for(principal, projects)
    allowed = scope.restrict(requested)
    assert allowed is not None
    assert set(allowed) <= set(scope.namespaces)


@given(worlds(), st.sampled_from(sorted(ALL_PERMISSIONS)))
def test_no_permission_is_held_on_a_project_outside_the_memberships(
    world: tuple[list[Project], Principal], permission: str
) -> None:
    projects, principal = world
    for project in projects:
        roles = reachable(principal, project)
        held = has_permission(principal, permission, project=project)
        if permission in PLATFORM_PERMISSIONS:
            assert not held
        elif permission in PROJECT_ADMIN:
            best = max(roles, key=RANK.__getitem__) if roles else None
            assert held == (best is not None and permission in PROJECT_ROLE_PERMISSIONS[best])
        if held:
            assert roles or project.workspace in principal.workspaces


@given(worlds(), st.sampled_from(sorted(WORKSPACE_PERMISSIONS | PLATFORM_PERMISSIONS)), st.sampled_from(WS_NAMES))
def test_no_workspace_permission_is_held_without_a_role_in_that_workspace(
    world: tuple[list[Project], Principal], permission: str, workspace: str
) -> None:
    _, principal = world
    if has_permission(principal, permission, workspace=workspace):
        assert workspace in principal.workspaces and permission not in PLATFORM_PERMISSIONS


@given(worlds(), st.sampled_from(sorted(ALL_PERMISSIONS)))
def test_nothing_is_held_without_a_target_except_by_platform_admins(
    world: tuple[list[Project], Principal], permission: str
) -> None:
    _, principal = world
    assert not has_permission(principal, permission)
    admin = Principal(username="root", platform_role=PlatformRole.ADMIN)
    assert has_permission(admin, permission)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(worlds(), st.lists(st.sampled_from([*NS_NAMES, "ghost"]), max_size=4))
def test_the_service_over_the_store_grants_nothing_beyond_the_memberships(
    tmp_path: Path, world: tuple[list[Project], Principal], requested: list[str]
) -> None:
    """The same property end to end: memberships written to SQLite, principal loaded back."""
    projects, wanted = world
    db = Database(tmp_path / "prop.sqlite3")
    db.migrate()
    try:
        for table in ("project_members", "workspace_members", "projects", "workspaces", "users"):
            db.execute(f"DELETE FROM {table}")
        svc = TenancyService(db, clock=FakeClock(0), hashing=PasswordHashing(memory_kib=8, time_cost=1, parallelism=1))
        svc.create_user("u", "Property-pass-1")
        for ws in WS_NAMES:
            svc.create_workspace(ws)
        for p in projects:
            svc.create_project(p.workspace, p.namespace, created=p.created)
        known = {p.namespace for p in projects}
        for ws, role in wanted.workspaces.items():
            svc.set_workspace_member(ws, "u", role)
        for ns, role in wanted.projects.items():
            if ns in known:
                svc.set_project_member(ns, "u", role)
        principal = svc.principal_for("u")
        assert principal is not None
        expected = {p.namespace for p in projects if reachable(principal, p)}
        assert set(svc.scope(principal).namespaces) == expected
        assert set(svc.namespaces_for(principal, "logs:read") or []) == expected
        try:
            granted = svc.namespaces_for(principal, "logs:read", requested)
        except Forbidden:
            assert any(n not in expected for n in requested if n)
        else:
            assert set(granted or []) <= expected
    finally:
        db.close()
