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

from hub.errors import Forbidden
from hub.scope import LogFloors, Scope
from hub.tenancy.roles import (
    PLATFORM_PERMISSIONS,
    PROJECT_ROLE_PERMISSIONS,
    WORKSPACE_IMPLIED_PROJECT_ROLE,
    PlatformRole,
    ProjectRole,
    WorkspaceRole,
    stronger,
    workspace_role_permissions,
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and its memberships, as loaded for one request.

    Loaded fresh per request, so a revoked membership takes effect at the next request.
    ``projects`` holds direct project memberships only; workspace roles reach further through
    :func:`project_role`.
    """

    username: str
    platform_role: PlatformRole = PlatformRole.REGULAR
    workspaces: Mapping[str, WorkspaceRole] = field(default_factory=dict)
    projects: Mapping[str, ProjectRole] = field(default_factory=dict)
    via_token: bool = False

    @property
    def is_platform_admin(self) -> bool:
        return self.platform_role is PlatformRole.ADMIN


@dataclass(frozen=True)
class Project:
    """A namespace that belongs to a workspace; ``created`` is its creation time (epoch s).

    ``created`` is the Kubernetes namespace's creationTimestamp and ``uid`` its metadata.uid
    when a cluster is connected, so a recreated namespace gets a new UID and a new log floor.
    """

    namespace: str
    workspace: str
    created: float = 0.0
    uid: str = ""


def log_floors(projects: Iterable[Project]) -> LogFloors:
    """The predecessor rule for reading these projects' logs as a tenant (see :class:`LogFloors`)."""
    projects = list(projects)
    return LogFloors(
        created={p.namespace: float(p.created or 0.0) for p in projects},
        uids={p.namespace: p.uid for p in projects if p.uid},
    )


def project_role(principal: Principal, project: Project) -> ProjectRole | None:
    """The effective role on one project: direct membership or implied by the workspace role."""
    direct = principal.projects.get(project.namespace)
    ws_role = principal.workspaces.get(project.workspace) if project.workspace else None
    implied = WORKSPACE_IMPLIED_PROJECT_ROLE.get(ws_role) if ws_role else None
    return stronger(direct, implied)


def scope_for(principal: Principal, projects: Iterable[Project]) -> Scope:
    """What ``principal`` may read and write among ``projects`` (every project the hub knows, or
    at least every one the principal's memberships reach)."""
    roles: dict[str, str] = {}
    grants: dict[str, frozenset[str]] = {}
    visible: list[Project] = []
    for p in projects:
        role = project_role(principal, p)
        if role is not None:
            roles[p.namespace] = role.value
            grants[p.namespace] = PROJECT_ROLE_PERMISSIONS[role]
        if role is not None or principal.is_platform_admin:
            visible.append(p)
    return Scope(
        all_namespaces=principal.is_platform_admin,
        namespaces={p.namespace: p.created for p in visible},
        workspaces={p.namespace: p.workspace for p in visible},
        uids={p.namespace: p.uid for p in visible if p.uid},
        username=principal.username,
        roles=roles,
        grants=grants,
    )


def has_permission(
    principal: Principal,
    permission: str,
    *,
    project: Project | None = None,
    workspace: str | None = None,
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
    if project is not None:
        role = project_role(principal, project)
        if role is not None and permission in PROJECT_ROLE_PERMISSIONS[role]:
            return True
        # Workspace-level permissions (e.g. projects:delete) asked about one of its projects.
        workspace = project.workspace or None
    if workspace is not None:
        ws_role = principal.workspaces.get(workspace)
        if ws_role is not None and permission in workspace_role_permissions(ws_role):
            return True
    return False


def authorize(
    principal: Principal,
    permission: str,
    *,
    project: Project | None = None,
    workspace: str | None = None,
) -> None:
    """Raise Forbidden unless the principal holds ``permission`` where asked.

    The message names the permission and echoes only the caller's own input, never whether the
    target exists, so a tenant probing names learns nothing from the answer.
    """
    if not has_permission(principal, permission, project=project, workspace=workspace):
        if project is not None:
            where = f" in namespace {project.namespace}"
        elif workspace is not None:
            where = f" in workspace {workspace}"
        else:
            where = ""
        raise Forbidden(f"you lack the permission {permission}{where}")
