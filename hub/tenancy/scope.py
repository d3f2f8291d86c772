"""The one place that decides what a principal may see and do.

:func:`scope_for` turns a principal's memberships into the :class:`hub.scope.Scope` every area
enforces (the tenancy service caches it per user); routes that act on one workspace or project
call :func:`authorize`. Nothing else re-implements membership logic.

Everything here is pure: no store, no clock. That is what lets the property tests throw
random memberships at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.errors import Forbidden
from hub.scope import DEFAULT_CLUSTER, LogFloors, Scope, split_key
from hub.tenancy.roles import (
    CLUSTER_PERMISSIONS,
    CLUSTER_ROLE_PERMISSIONS,
    PLATFORM_PERMISSIONS,
    PROJECT_ADMIN,
    PROJECT_ROLE_PERMISSIONS,
    WORKSPACE_IMPLIED_PROJECT_ROLE,
    ClusterRole,
    CustomLevel,
    PlatformRole,
    ProjectRole,
    WorkspaceRole,
    stronger,
    workspace_role_permissions,
)


@dataclass(frozen=True)
class CustomGrant:
    """A binding to a custom role: its permissions, held at ``level`` on ``target`` (a cluster,
    workspace or namespace name). A workspace-level role's project permissions reach every
    project of the workspace."""

    role: str
    level: CustomLevel
    target: str
    permissions: frozenset[str]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and its memberships, as loaded for one request.

    Loaded per request, or kept while no role write happened anywhere (the identity
    generation, ``TenancyService._vouched_principal``), so a revoked membership takes effect
    at the next request.
    ``projects`` holds direct project memberships only; workspace roles reach further through
    :func:`project_role`.
    """

    username: str
    platform_role: PlatformRole = PlatformRole.REGULAR
    workspaces: Mapping[str, WorkspaceRole] = field(default_factory=dict)
    projects: Mapping[str, ProjectRole] = field(default_factory=dict)
    via_token: bool = False
    clusters: Mapping[str, ClusterRole] = field(default_factory=dict)
    custom: tuple[CustomGrant, ...] = ()

    @property
    def is_platform_admin(self) -> bool:
        return self.platform_role is PlatformRole.ADMIN


@dataclass(frozen=True)
class Project:
    """A namespace that belongs to a workspace; ``created`` is its creation time (epoch s).

    ``created`` is the Kubernetes namespace's creationTimestamp and ``uid`` its metadata.uid
    when a cluster is connected, so a recreated namespace gets a new UID and a new log floor.
    ``namespace`` is the project's key (:func:`hub.scope.project_key`): the namespace itself in
    the implicit cluster, ``<cluster>/<namespace>`` in an added one.
    """

    namespace: str
    workspace: str
    created: float = 0.0
    uid: str = ""

    @property
    def cluster(self) -> str:
        """The cluster the project lives in ('' for the implicit one)."""
        return split_key(self.namespace)[0]

    @property
    def name(self) -> str:
        """The Kubernetes namespace's own name, in its cluster."""
        return split_key(self.namespace)[1]


def log_floors(projects: Iterable[Project]) -> LogFloors:
    """The predecessor rule for reading these projects' logs as a tenant (see :class:`LogFloors`)."""
    projects = list(projects)
    return LogFloors(
        created={p.name: float(p.created or 0.0) for p in projects},
        uids={p.name: p.uid for p in projects if p.uid},
    )


def project_role(principal: Principal, project: Project) -> ProjectRole | None:
    """The effective role on one project: direct membership or implied by the workspace role."""
    direct = principal.projects.get(project.namespace)
    ws_role = principal.workspaces.get(project.workspace) if project.workspace else None
    implied = WORKSPACE_IMPLIED_PROJECT_ROLE.get(ws_role) if ws_role else None
    return stronger(direct, implied)


def cluster_grants(principal: Principal) -> dict[str, frozenset[str]]:
    """The permissions ``principal`` holds on each cluster: its cluster role's and its
    cluster-level custom roles' (platform admins hold every one without being listed)."""
    out: dict[str, set[str]] = {c: set(CLUSTER_ROLE_PERMISSIONS[r]) for c, r in principal.clusters.items()}
    for g in principal.custom:
        if g.level == "cluster":
            out.setdefault(g.target, set()).update(g.permissions & CLUSTER_PERMISSIONS)
    return {c: frozenset(p) for c, p in out.items() if p}


def custom_project_grants(principal: Principal, project: Project) -> tuple[frozenset[str], str | None]:
    """Project permissions custom roles give on ``project`` (bound on it, or on its workspace),
    and the name of the first such role (shown as the caller's role there)."""
    perms: set[str] = set()
    name: str | None = None
    for g in principal.custom:
        if (g.level == "project" and g.target == project.namespace) or (
            g.level == "workspace" and project.workspace and g.target == project.workspace
        ):
            held = g.permissions & PROJECT_ADMIN
            if held:
                perms |= held
                name = name or g.role
    return frozenset(perms), name


def scope_for(
    principal: Principal,
    projects: Iterable[Project],
    *,
    default_cluster: str = DEFAULT_CLUSTER,
    workspace_clusters: Mapping[str, Iterable[str]] | None = None,
) -> Scope:
    """What ``principal`` may read and write among ``projects`` (every project the hub knows, or
    at least every one the principal's memberships reach): the implicit cluster's view, with
    every other cluster's view reachable through :meth:`Scope.for_cluster`.

    ``workspace_clusters`` names the added clusters each workspace is granted (the implicit
    cluster is every workspace's): a member of the workspace may pick them in the switcher even
    before a project of theirs lives there."""
    per_cluster: dict[str, dict[str, dict[str, Any]]] = {}
    for p in projects:
        role = project_role(principal, p)
        held = PROJECT_ROLE_PERMISSIONS[role] if role is not None else frozenset()
        named = role.value if role is not None else None
        if principal.custom:
            extra, custom_name = custom_project_grants(principal, p)
            held |= extra
            named = named or custom_name
        if not held and not principal.is_platform_admin:
            continue
        view = per_cluster.setdefault(p.cluster or default_cluster, {})
        ns = p.name
        view.setdefault("namespaces", {})[ns] = p.created
        view.setdefault("workspaces", {})[ns] = p.workspace
        if p.uid:
            view.setdefault("uids", {})[ns] = p.uid
        if held:
            view.setdefault("roles", {})[ns] = named or ""
            view.setdefault("grants", {})[ns] = held
    grants = cluster_grants(principal)
    granted = set(per_cluster) | {default_cluster}
    for workspace in principal.workspaces:
        granted.update((workspace_clusters or {}).get(workspace, ()))
    views: dict[str, Scope] = {}

    def view_of(cluster: str) -> Scope:
        parts = per_cluster.get(cluster, {})
        return Scope(
            all_namespaces=principal.is_platform_admin,
            namespaces=parts.get("namespaces", {}),
            workspaces=parts.get("workspaces", {}),
            uids=parts.get("uids", {}),
            username=principal.username,
            roles=parts.get("roles", {}),
            grants=parts.get("grants", {}),
            cluster_grants=grants,
            default_cluster=default_cluster,
            cluster_name="" if cluster == default_cluster else cluster,
            views=views,  # filled below: every view shares the one mapping
            granted_clusters=frozenset(granted),
        )

    for cluster in sorted(set(per_cluster) | {default_cluster}):
        views[cluster] = view_of(cluster)
    return views[default_cluster]


def has_permission(
    principal: Principal,
    permission: str,
    *,
    project: Project | None = None,
    workspace: str | None = None,
    cluster: str = DEFAULT_CLUSTER,
) -> bool:
    """Whether ``principal`` holds ``permission`` on ``project`` (or on ``workspace``).

    With neither target, only platform admins hold anything: a project permission needs a
    project to be held on, so a route that takes its namespace from the body must call
    :func:`authorize` itself with that namespace.
    """
    if principal.is_platform_admin:
        return True
    if permission in PLATFORM_PERMISSIONS:
        return False
    if permission in CLUSTER_PERMISSIONS:
        # Routes act on the implicit cluster (``cluster``) unless they name another.
        return permission in cluster_grants(principal).get(cluster, ())
    if project is not None:
        role = project_role(principal, project)
        if role is not None and permission in PROJECT_ROLE_PERMISSIONS[role]:
            return True
        if principal.custom and permission in custom_project_grants(principal, project)[0]:
            return True
        # Workspace-level permissions (e.g. projects:delete) asked about one of its projects.
        workspace = project.workspace or None
    if workspace is not None:
        ws_role = principal.workspaces.get(workspace)
        if ws_role is not None and permission in workspace_role_permissions(ws_role):
            return True
        for g in principal.custom:
            if g.level == "workspace" and g.target == workspace and permission in g.permissions:
                return True
    return False


def authorize(
    principal: Principal,
    permission: str,
    *,
    project: Project | None = None,
    workspace: str | None = None,
    cluster: str = DEFAULT_CLUSTER,
) -> None:
    """Raise Forbidden unless the principal holds ``permission`` where asked.

    The message names the permission and echoes only the caller's own input, never whether the
    target exists, so a tenant probing names learns nothing from the answer.
    """
    if not has_permission(principal, permission, project=project, workspace=workspace, cluster=cluster):
        if project is not None:
            where = f" in namespace {project.namespace}"
        elif workspace is not None:
            where = f" in workspace {workspace}"
        else:
            where = ""
        raise Forbidden(f"you lack the permission {permission}{where}")
