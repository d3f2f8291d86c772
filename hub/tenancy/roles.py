"""Built-in roles and what each may do.

Permissions are ``resource:verb`` strings. A route declares the one it needs; the scope service
decides whether a principal holds it for the namespace or workspace at hand. Keeping the table
here, as data, is what lets the README print it and the route x role test enumerate it.
"""

from __future__ import annotations

from enum import StrEnum


class PlatformRole(StrEnum):
    ADMIN = "admin"
    REGULAR = "regular"


class WorkspaceRole(StrEnum):
    ADMIN = "admin"
    REGULAR = "regular"
    VIEWER = "viewer"


class ProjectRole(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


# Permissions that only make sense cluster-wide; only platform admins hold them.
PLATFORM_PERMISSIONS = frozenset(
    {
        "nodes:read",
        "nodes:write",
        "monitoring:cluster",  # cluster, node and control-plane levels, all namespaces
        "node-policies:read",
        "node-policies:write",
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
PROJECT_ADMIN = PROJECT_OPERATE | {"members:write"}

PROJECT_ROLE_PERMISSIONS: dict[ProjectRole, frozenset[str]] = {
    ProjectRole.VIEWER: PROJECT_READ,
    ProjectRole.OPERATOR: frozenset(PROJECT_OPERATE),
    ProjectRole.ADMIN: frozenset(PROJECT_ADMIN),
}

# Permissions held on a workspace itself (not on its projects).
WORKSPACE_ROLE_PERMISSIONS: dict[WorkspaceRole, frozenset[str]] = {
    WorkspaceRole.VIEWER: frozenset({"workspaces:read", "workspace-members:read"}),
    WorkspaceRole.REGULAR: frozenset({"workspaces:read"}),
    WorkspaceRole.ADMIN: frozenset(
        {"workspaces:read", "workspace-members:read", "workspace-members:write", "projects:create", "projects:delete"}
    ),
}

# What a workspace role implies on every project of the workspace. A workspace regular member
# gets nothing implicitly: they see the projects they are members of.
WORKSPACE_IMPLIED_PROJECT_ROLE: dict[WorkspaceRole, ProjectRole | None] = {
    WorkspaceRole.ADMIN: ProjectRole.ADMIN,
    WorkspaceRole.VIEWER: ProjectRole.VIEWER,
    WorkspaceRole.REGULAR: None,
}

ALL_PERMISSIONS = (
    PLATFORM_PERMISSIONS
    | PROJECT_ADMIN
    | frozenset().union(*WORKSPACE_ROLE_PERMISSIONS.values())
)

_PROJECT_RANK = {ProjectRole.VIEWER: 0, ProjectRole.OPERATOR: 1, ProjectRole.ADMIN: 2}


def stronger(a: ProjectRole | None, b: ProjectRole | None) -> ProjectRole | None:
    """The stronger of two project roles (a direct and an implied one)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _PROJECT_RANK[a] >= _PROJECT_RANK[b] else b


def permission_table_markdown() -> str:
    """The role -> permission table of the docs, generated from the sets above."""
    perms = sorted(ALL_PERMISSIONS)
    cols = [
        ("platform admin", lambda p: True),
        ("platform regular", lambda p: False),
        ("workspace admin", lambda p: p in WORKSPACE_ROLE_PERMISSIONS[WorkspaceRole.ADMIN] or p in PROJECT_ADMIN),
        ("workspace regular", lambda p: p in WORKSPACE_ROLE_PERMISSIONS[WorkspaceRole.REGULAR]),
        ("workspace viewer", lambda p: p in WORKSPACE_ROLE_PERMISSIONS[WorkspaceRole.VIEWER] or p in PROJECT_READ),
        ("project admin", lambda p: p in PROJECT_ADMIN),
        ("project operator", lambda p: p in PROJECT_OPERATE),
        ("project viewer", lambda p: p in PROJECT_READ),
    ]
    lines = ["| permission | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for p in perms:
        lines.append(f"| `{p}` | " + " | ".join("yes" if f(p) else "" for _, f in cols) + " |")
    return "\n".join(lines)
