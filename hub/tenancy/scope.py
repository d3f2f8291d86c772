"""The one place that decides what a principal may see and do.

Every read and write elsewhere asks this module (through the tenancy service, which loads the
principal and the projects): metrics and log queries take :meth:`Scope.namespaces` (and the
log predecessor rule from :meth:`Scope.log_floors` / :func:`log_floors`), routes call
:func:`authorize`. Nothing else re-implements membership logic.

Everything here is pure: no store, no clock. That is what lets the property tests throw
random memberships at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.errors import Forbidden
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


@dataclass(frozen=True)
class LogFloors:
    """How a tenant's log queries tell a namespace from an earlier one of the same name.

    A line stamped with a namespace UID is the current namespace's exactly when that UID is
    ``uids[namespace]``, whatever its time: history shipped from the namespace's own pods is
    shown even when it predates the namespace object (seeded or backfilled logs), and a
    predecessor's lines are hidden. A line without a UID, or of a namespace whose UID is not
    known, is shown from ``created[namespace]`` (the creation time) on. The stores apply this
    (``LogQuery.visibility`` and ``LogQuery.namespace_uids``).
    """

    created: Mapping[str, float]
    uids: Mapping[str, str]


def log_floors(projects: Iterable[Project]) -> LogFloors:
    """The predecessor rule for reading these projects' logs as a tenant (see :class:`LogFloors`)."""
    projects = list(projects)
    return LogFloors(
        created={p.namespace: float(p.created or 0.0) for p in projects},
        uids={p.namespace: p.uid for p in projects if p.uid},
    )


@dataclass(frozen=True)
class Scope:
    """The namespaces a principal may read, with each one's creation time.

    ``all_namespaces`` is true only for platform admins; queries then carry no namespace
    filter. Otherwise ``namespaces`` is the complete allow-list and an empty one means "see
    nothing" (callers must not treat empty as "no filter"). ``workspaces`` maps each listed
    namespace to its workspace (for workspace-level aggregation).
    """

    all_namespaces: bool
    namespaces: Mapping[str, float]
    workspaces: Mapping[str, str] = field(default_factory=dict)
    uids: Mapping[str, str] = field(default_factory=dict)  # namespace -> its current metadata.uid

    def allows(self, namespace: str) -> bool:
        return self.all_namespaces or namespace in self.namespaces

    def floor(self, namespace: str) -> float:
        """The creation time of a namespace: its logs without a namespace UID are visible only
        from then on (a recreated namespace does not inherit its predecessor's lines)."""
        return self.namespaces.get(namespace, 0.0)

    def log_floors(self, namespaces: Iterable[str]) -> LogFloors:
        """The predecessor rule (:class:`LogFloors`) for reading ``namespaces`` as this scope's
        principal. Platform admins get none: they investigate the cluster as a whole, a
        predecessor's lines included."""
        wanted = list(namespaces)
        if self.all_namespaces:
            return LogFloors(created=dict.fromkeys(wanted, 0.0), uids={})
        # Dicts straight from the scope's (no Project per namespace): tenants of 1,000+ projects
        # pay this on every log request.
        created = {ns: float(self.namespaces.get(ns, 0.0)) for ns in wanted}
        uids = self.uids
        return LogFloors(created=created, uids={ns: uids[ns] for ns in wanted if uids.get(ns)})

    def restrict(self, requested: Iterable[str] | None) -> list[str] | None:
        """Intersect a requested namespace list with the scope.

        Returns None for "every namespace" (admins asking for no filter), else the allowed
        subset (possibly empty, which must yield no data).
        """
        wanted = [n for n in (requested or []) if n]
        if self.all_namespaces:
            return wanted or None
        if not wanted:
            return sorted(self.namespaces)
        return [n for n in wanted if n in self.namespaces]


def project_role(principal: Principal, project: Project) -> ProjectRole | None:
    """The effective role on one project: direct membership or implied by the workspace role."""
    direct = principal.projects.get(project.namespace)
    ws_role = principal.workspaces.get(project.workspace) if project.workspace else None
    implied = WORKSPACE_IMPLIED_PROJECT_ROLE.get(ws_role) if ws_role else None
    return stronger(direct, implied)


def scope_for(principal: Principal, projects: Iterable[Project]) -> Scope:
    """What ``principal`` may read among ``projects`` (every project the hub knows)."""
    projects = list(projects)
    if principal.is_platform_admin:
        return Scope(
            all_namespaces=True,
            namespaces={p.namespace: p.created for p in projects},
            workspaces={p.namespace: p.workspace for p in projects},
            uids={p.namespace: p.uid for p in projects if p.uid},
        )
    visible = [p for p in projects if project_role(principal, p) is not None]
    return Scope(
        all_namespaces=False,
        namespaces={p.namespace: p.created for p in visible},
        workspaces={p.namespace: p.workspace for p in visible},
        uids={p.namespace: p.uid for p in visible if p.uid},
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
