"""Built-in roles and what each may do.

Permissions are ``resource:verb`` strings. A route declares the one it needs; the scope service
decides whether a principal holds it for the namespace or workspace at hand. Keeping the table
here, as data, is what lets the docs print it (:func:`permission_table_markdown`) and the
route x role test derive its expectations from it: code, docs and tests cannot drift apart.

Four levels, as in KubeSphere: the platform (two roles), a cluster (two roles: nodes, cluster
metrics and rankings, node-level policies and alerts; today the one implicit cluster
``default``, bindings carry its name so that several clusters can follow), a workspace (three
roles, which also reach every project of the workspace) and a project, i.e. one namespace
(three roles).

Built-in roles are named permission sets, and so are custom roles (:mod:`hub.tenancy.custom_roles`):
an admin composes one from the permissions of one level (:data:`COMPOSABLE`). Either way the
services check permissions, never role names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from hub.errors import Unprocessable


class PlatformRole(StrEnum):
    ADMIN = "admin"
    REGULAR = "regular"


class ClusterRole(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


class WorkspaceRole(StrEnum):
    ADMIN = "admin"
    REGULAR = "regular"
    VIEWER = "viewer"


class ProjectRole(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


# What each permission lets one do. Every permission must be listed here (a test checks it);
# the docs' table is generated from this mapping.
PERMISSION_DOCS: dict[str, str] = {
    # cluster (the one implicit cluster "default" today)
    "nodes:read": "list and inspect nodes",
    "nodes:write": "cordon and uncordon nodes",
    "monitoring:cluster": "cluster, node and control-plane metrics and node rankings",
    "node-policies:read": "read node-level alert policies and backtest them",
    "node-policies:write": "create, change and delete node-level alert policies",
    "node-alerts:read": "see node-level alerts (and the hub's own), their history and cluster-wide silences",
    "node-alerts:write": "comment on node-level alerts",
    # platform
    "users:read": "list users and their memberships",
    "users:write": "create, change, disable and delete users",
    "workspaces:create": "create workspaces",
    "workspaces:delete": "delete workspaces",
    "audit:read": "read the audit log",
    "logs:all": "search and export logs of every namespace, including ones outside projects",
    "alerts:all": "see and act on alerts of every namespace and of nodes",
    # workspace
    "workspaces:read": "see the workspace and the projects one may see in it",
    "workspace-members:read": "list the workspace's members",
    "workspace-members:write": "add, change and remove workspace members",
    "projects:create": "create projects (namespaces) in the workspace",
    "projects:delete": "remove projects from the workspace",
    "quotas:write": "set a project's ResourceQuota and LimitRange (CPU, memory, pods, PVC storage)",
    "workspace-policies:read": "read the workspace's alert policies that its projects inherit",
    "workspace-policies:write": "create, change and delete the workspace's inherited alert policies",
    # project (one namespace)
    "namespaces:read": "see the namespace and its quota",
    "workloads:read": "list and inspect workloads and their revisions",
    "workloads:write": "scale, restart, roll back, change image of and delete workloads",
    "pods:read": "list and inspect pods",
    "pods:log": "read container logs of pods",
    "events:read": "read the namespace's events",
    "monitoring:read": "metrics of the namespace, its workloads, pods and containers",
    "logs:read": "search, histogram and export the namespace's logs",
    "policies:read": "read workload-level alert policies",
    "policies:write": "create, change, backtest and delete workload-level alert policies",
    "alerts:read": "see alerts, history and silences",
    "alerts:write": "comment on alerts, create and remove silences",
    "members:read": "list the project's members",
    "members:write": "add, change and remove project members",
    "log-collection:write": "choose what the project's logs collect (on/off, containers, retention)",
}

# Permissions held on a cluster (its nodes and node-level objects): platform admins, cluster
# roles and cluster-level custom roles.
CLUSTER_PERMISSIONS = frozenset(
    {
        "nodes:read",
        "nodes:write",
        "monitoring:cluster",  # cluster, node and control-plane levels
        "node-policies:read",
        "node-policies:write",
        "node-alerts:read",
        "node-alerts:write",
    }
)
CLUSTER_ROLE_PERMISSIONS: dict[ClusterRole, frozenset[str]] = {
    ClusterRole.VIEWER: frozenset({"nodes:read", "monitoring:cluster", "node-policies:read", "node-alerts:read"}),
    ClusterRole.ADMIN: CLUSTER_PERMISSIONS,
}

# Permissions of the platform as a whole (users, workspaces, audit, every namespace); only
# platform admins hold them.
PLATFORM_PERMISSIONS = frozenset(
    {
        "users:read",
        "users:write",
        "workspaces:create",
        "workspaces:delete",
        "audit:read",
        "logs:all",
        "alerts:all",
    }
)

# Permissions held on one namespace (project).
PROJECT_READ = frozenset(
    {
        "namespaces:read",
        "workloads:read",
        "pods:read",
        "pods:log",
        "events:read",
        "monitoring:read",
        "logs:read",
        "policies:read",
        "alerts:read",
        "members:read",
    }
)
PROJECT_OPERATE = PROJECT_READ | {"workloads:write", "policies:write", "alerts:write"}
PROJECT_ADMIN = PROJECT_OPERATE | {"members:write", "log-collection:write"}

PROJECT_ROLE_PERMISSIONS: dict[ProjectRole, frozenset[str]] = {
    ProjectRole.VIEWER: PROJECT_READ,
    ProjectRole.OPERATOR: frozenset(PROJECT_OPERATE),
    ProjectRole.ADMIN: frozenset(PROJECT_ADMIN),
}

# Permissions held on a workspace itself (not on its projects).
WORKSPACE_ROLE_PERMISSIONS: dict[WorkspaceRole, frozenset[str]] = {
    WorkspaceRole.VIEWER: frozenset({"workspaces:read", "workspace-members:read", "workspace-policies:read"}),
    WorkspaceRole.REGULAR: frozenset({"workspaces:read"}),
    WorkspaceRole.ADMIN: frozenset(
        {
            "workspaces:read",
            "workspace-members:read",
            "workspace-members:write",
            "projects:create",
            "projects:delete",
            "quotas:write",
            "workspace-policies:read",
            "workspace-policies:write",
        }
    ),
}

# What a workspace role implies on every project of the workspace. A workspace regular member
# gets nothing implicitly: they see the projects they are members of.
WORKSPACE_IMPLIED_PROJECT_ROLE: dict[WorkspaceRole, ProjectRole | None] = {
    WorkspaceRole.ADMIN: ProjectRole.ADMIN,
    WorkspaceRole.VIEWER: ProjectRole.VIEWER,
    WorkspaceRole.REGULAR: None,
}

WORKSPACE_PERMISSIONS = frozenset().union(*WORKSPACE_ROLE_PERMISSIONS.values())

ALL_PERMISSIONS = PLATFORM_PERMISSIONS | CLUSTER_PERMISSIONS | PROJECT_ADMIN | WORKSPACE_PERMISSIONS

_PROJECT_RANK = {ProjectRole.VIEWER: 0, ProjectRole.OPERATOR: 1, ProjectRole.ADMIN: 2}

Level = Literal["platform", "cluster", "workspace", "project"]
CustomLevel = Literal["cluster", "workspace", "project"]

# What a custom role of each level may be composed of: a cluster role of cluster permissions; a
# workspace role of workspace permissions and project permissions (held on every project of the
# workspace, as a workspace admin's are); a project role of project permissions. Platform
# permissions are never delegated: they stay with platform admins.
COMPOSABLE: dict[CustomLevel, frozenset[str]] = {
    "cluster": CLUSTER_PERMISSIONS,
    "workspace": WORKSPACE_PERMISSIONS | PROJECT_ADMIN,
    "project": PROJECT_ADMIN,
}


def permission_level(permission: str) -> Level:
    """Where a permission is held: cluster-wide, on a workspace, or on one project."""
    if permission in PLATFORM_PERMISSIONS:
        return "platform"
    if permission in CLUSTER_PERMISSIONS:
        return "cluster"
    if permission in WORKSPACE_PERMISSIONS:
        return "workspace"
    if permission in PROJECT_ADMIN:
        return "project"
    raise KeyError(f"unknown permission {permission!r}")


def stronger(a: ProjectRole | None, b: ProjectRole | None) -> ProjectRole | None:
    """The stronger of two project roles (a direct and an implied one)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _PROJECT_RANK[a] >= _PROJECT_RANK[b] else b


def workspace_role_permissions(role: WorkspaceRole) -> frozenset[str]:
    """Everything a workspace role grants, on the workspace and on each of its projects."""
    implied = WORKSPACE_IMPLIED_PROJECT_ROLE[role]
    return WORKSPACE_ROLE_PERMISSIONS[role] | (PROJECT_ROLE_PERMISSIONS[implied] if implied else frozenset())


_ROLE_ENUMS: dict[Level, type[StrEnum]] = {
    "platform": PlatformRole,
    "cluster": ClusterRole,
    "workspace": WorkspaceRole,
    "project": ProjectRole,
}


def parse_role(level: Level, value: object, *, field: str = "role") -> StrEnum:
    """A role name from user input, or an Unprocessable naming the field and the choices."""
    enum = _ROLE_ENUMS[level]
    if isinstance(value, str):
        try:
            return enum(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(r.value for r in enum)
    raise Unprocessable(f"{field} must be one of {choices} for a {level} role, got {value!r}", field=field)


@dataclass(frozen=True)
class BuiltinRole:
    """One column of the role table: a role at a level, with where it reaches."""

    key: str  # e.g. "project-operator"; stable, used by tests and docs
    level: Level
    name: str
    reach: str

    @property
    def label(self) -> str:
        return self.key.replace("-", " ")

    @property
    def permissions(self) -> frozenset[str]:
        if self.level == "platform":
            return ALL_PERMISSIONS if self.name == PlatformRole.ADMIN else frozenset()
        if self.level == "cluster":
            return CLUSTER_ROLE_PERMISSIONS[ClusterRole(self.name)]
        if self.level == "workspace":
            return workspace_role_permissions(WorkspaceRole(self.name))
        return PROJECT_ROLE_PERMISSIONS[ProjectRole(self.name)]


BUILTIN_ROLES: tuple[BuiltinRole, ...] = (
    BuiltinRole("platform-admin", "platform", PlatformRole.ADMIN, "everything: every workspace, project and namespace"),
    BuiltinRole("platform-regular", "platform", PlatformRole.REGULAR, "nothing by itself; memberships grant the rest"),
    BuiltinRole("cluster-admin", "cluster", ClusterRole.ADMIN, "its cluster's nodes, node-level policies and alerts"),
    BuiltinRole(
        "cluster-viewer", "cluster", ClusterRole.VIEWER, "its cluster's nodes, metrics, policies and alerts, read-only"
    ),
    BuiltinRole("workspace-admin", "workspace", WorkspaceRole.ADMIN, "its workspace and every project in it"),
    BuiltinRole(
        "workspace-regular", "workspace", WorkspaceRole.REGULAR, "its workspace; only projects it is a member of"
    ),
    BuiltinRole(
        "workspace-viewer", "workspace", WorkspaceRole.VIEWER, "its workspace and every project in it, read-only"
    ),
    BuiltinRole("project-admin", "project", ProjectRole.ADMIN, "its project (namespace)"),
    BuiltinRole("project-operator", "project", ProjectRole.OPERATOR, "its project (namespace)"),
    BuiltinRole("project-viewer", "project", ProjectRole.VIEWER, "its project (namespace), read-only"),
)


def permission_table_markdown() -> str:
    """The role -> permission table of the docs, generated from the sets above.

    Rows are grouped by level (platform, cluster, workspace, project); a cell says "yes" where the
    column's role holds the permission within its reach (the second table).
    """
    order = {"platform": 0, "cluster": 1, "workspace": 2, "project": 3}
    perms = sorted(ALL_PERMISSIONS, key=lambda p: (order[permission_level(p)], p))
    head = "| permission | held on | " + " | ".join(r.label for r in BUILTIN_ROLES) + " | meaning |"
    lines = [head, "|---" * (len(BUILTIN_ROLES) + 3) + "|"]
    for p in perms:
        cells = " | ".join("yes" if p in r.permissions else "" for r in BUILTIN_ROLES)
        lines.append(f"| `{p}` | {permission_level(p)} | {cells} | {PERMISSION_DOCS[p]} |")
    lines += ["", "| role | reaches |", "|---|---|"]
    lines += [f"| {r.label} | {r.reach} |" for r in BUILTIN_ROLES]
    return "\n".join(lines)
