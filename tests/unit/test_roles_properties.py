"""Property tests for cluster roles and custom roles over random memberships and bindings.

The oracle is written from docs/tenancy.md ("Role levels", "Custom roles") in words, not from
the scope code: a permission is held on a project when a built-in role reaching the project has
it, or a custom role bound on the project or on its workspace lists it; on a workspace when the
workspace role has it or a custom workspace role bound there lists it; on a cluster when the
cluster role has it or a custom cluster role bound there lists it; platform permissions never.
Both paths the hub uses must agree with it: the scope (services) and ``has_permission`` (routes).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.tenancy.roles import (
    ALL_PERMISSIONS,
    CLUSTER_PERMISSIONS,
    CLUSTER_ROLE_PERMISSIONS,
    COMPOSABLE,
    PLATFORM_PERMISSIONS,
    PROJECT_ADMIN,
    PROJECT_ROLE_PERMISSIONS,
    WORKSPACE_PERMISSIONS,
    WORKSPACE_ROLE_PERMISSIONS,
    ClusterRole,
    ProjectRole,
    WorkspaceRole,
)
from hub.tenancy.scope import CustomGrant, Principal, Project, has_permission, scope_for

pytestmark = pytest.mark.unit

WS = ["w0", "w1", "w2"]
NS = ["n0", "n1", "n2", "n3", "n4"]
CLUSTERS = ["default", "east"]
IMPLIED = {WorkspaceRole.ADMIN: ProjectRole.ADMIN, WorkspaceRole.VIEWER: ProjectRole.VIEWER}
TARGETS = {"cluster": CLUSTERS, "workspace": WS, "project": NS}


@st.composite
def grants(draw: st.DrawFn) -> CustomGrant:
    level = draw(st.sampled_from(["cluster", "workspace", "project"]))
    perms = draw(st.sets(st.sampled_from(sorted(COMPOSABLE[level])), min_size=1, max_size=4))  # type: ignore[index]
    return CustomGrant(f"r{draw(st.integers(0, 5))}", level, draw(st.sampled_from(TARGETS[level])), frozenset(perms))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Project], Principal]:
    projects = [Project(namespace=ns, workspace=draw(st.sampled_from(WS))) for ns in NS]
    principal = Principal(
        username="u",
        workspaces=draw(st.dictionaries(st.sampled_from(WS), st.sampled_from(list(WorkspaceRole)))),
        projects=draw(st.dictionaries(st.sampled_from(NS), st.sampled_from(list(ProjectRole)))),
        clusters=draw(st.dictionaries(st.sampled_from(CLUSTERS), st.sampled_from(list(ClusterRole)))),
        custom=tuple(draw(st.lists(grants(), max_size=5))),
    )
    return projects, principal


def held_on_project(pr: Principal, p: Project, perm: str) -> bool:
    roles = [pr.projects.get(p.namespace), IMPLIED.get(pr.workspaces.get(p.workspace))]  # type: ignore[arg-type]
    if any(r is not None and perm in PROJECT_ROLE_PERMISSIONS[r] for r in roles):
        return True
    return perm in PROJECT_ADMIN and any(
        perm in g.permissions
        and ((g.level == "project" and g.target == p.namespace) or (g.level == "workspace" and g.target == p.workspace))
        for g in pr.custom
    )


def held_on_workspace(pr: Principal, ws: str, perm: str) -> bool:
    role = pr.workspaces.get(ws)
    if role is not None and perm in WORKSPACE_ROLE_PERMISSIONS[role]:
        return True
    return any(g.level == "workspace" and g.target == ws and perm in g.permissions for g in pr.custom)


def held_on_cluster(pr: Principal, cluster: str, perm: str) -> bool:
    role = pr.clusters.get(cluster)
    if role is not None and perm in CLUSTER_ROLE_PERMISSIONS[role]:
        return True
    return any(g.level == "cluster" and g.target == cluster and perm in g.permissions for g in pr.custom)


@given(worlds(), st.sampled_from(sorted(PROJECT_ADMIN)))
def test_project_permissions_are_exactly_the_documented_ones(world: tuple[list[Project], Principal], perm: str) -> None:
    projects, pr = world
    scope = scope_for(pr, projects)
    for p in projects:
        want = held_on_project(pr, p, perm)
        assert scope.may(perm, p.namespace) == want
        assert has_permission(pr, perm, project=p) == (want or held_on_workspace(pr, p.workspace, perm))
    reached = {p.namespace for p in projects if any(held_on_project(pr, p, q) for q in PROJECT_ADMIN)}
    assert set(scope.namespaces) == reached


@given(worlds(), st.sampled_from(sorted(WORKSPACE_PERMISSIONS)), st.sampled_from(WS))
def test_workspace_permissions_are_exactly_the_documented_ones(
    world: tuple[list[Project], Principal], perm: str, ws: str
) -> None:
    _, pr = world
    assert has_permission(pr, perm, workspace=ws) == held_on_workspace(pr, ws, perm)


@given(worlds(), st.sampled_from(sorted(CLUSTER_PERMISSIONS)), st.sampled_from(CLUSTERS))
def test_cluster_permissions_are_exactly_the_documented_ones(
    world: tuple[list[Project], Principal], perm: str, cluster: str
) -> None:
    projects, pr = world
    want = held_on_cluster(pr, cluster, perm)
    assert scope_for(pr, projects).may_cluster(perm, cluster) == want
    assert has_permission(pr, perm, cluster=cluster) == want
    # Node-level alerting objects are decided by the node-level twin on the implicit cluster.
    scope = scope_for(pr, projects, default_cluster=cluster)
    assert scope.may("alerts:read", None) == held_on_cluster(pr, cluster, "node-alerts:read")
    assert scope.may("alerts:write", None) == held_on_cluster(pr, cluster, "node-alerts:write")


@given(worlds(), st.sampled_from(sorted(PLATFORM_PERMISSIONS)))
def test_no_role_but_platform_admin_holds_a_platform_permission(
    world: tuple[list[Project], Principal], perm: str
) -> None:
    projects, pr = world
    assert not has_permission(pr, perm)
    assert not any(has_permission(pr, perm, project=p) for p in projects)
    assert perm not in set().union(*COMPOSABLE.values())
    assert perm in ALL_PERMISSIONS
