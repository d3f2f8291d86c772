"""Tenancy repository: SQL for users, workspaces, projects, memberships, sessions and tokens.

Only storage lives here: no role logic and no hashing. Roles travel as their string values
(the store sits below ``hub.tenancy`` and must not import it); the tenancy service turns them
into enums and decides what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.store.db import StateStore


@dataclass(frozen=True)
class UserRecord:
    name: str
    display_name: str
    email: str
    password_hash: str
    platform_role: str
    disabled: bool
    created_at: float
    updated_at: float
    last_login_at: float | None
    source: str = "local"  # local | ldap | oidc (migration tenancy_identity 1)
    external_checked_at: float | None = None  # when the directory last confirmed an external user


@dataclass(frozen=True)
class WorkspaceRecord:
    name: str
    description: str
    created_at: float
    created_by: str


@dataclass(frozen=True)
class ProjectRecord:
    namespace: str
    workspace: str
    display_name: str
    created: float
    registered_at: float
    created_by: str
    namespace_uid: str = ""
    cluster: str = ""  # '' = the implicit cluster (migration tenancy_clusters:1)


@dataclass(frozen=True)
class TokenRecord:
    id: int
    username: str
    name: str
    kind: str
    hint: str
    created_at: float
    expires_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class SessionRecord:
    username: str
    created_at: float
    expires_at: float


def _user(row: Any) -> UserRecord:
    return UserRecord(
        name=row["name"],
        display_name=row["display_name"],
        email=row["email"],
        password_hash=row["password_hash"],
        platform_role=row["platform_role"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_login_at=row["last_login_at"],
        source=row["source"],
        external_checked_at=row["external_checked_at"],
    )


def _project(row: Any) -> ProjectRecord:
    return ProjectRecord(
        namespace=row["namespace"],
        workspace=row["workspace"],
        display_name=row["display_name"],
        created=row["created"],
        registered_at=row["registered_at"],
        created_by=row["created_by"],
        namespace_uid=row["namespace_uid"],
        cluster=row["cluster"],
    )


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        username=row["username"],
        name=row["name"],
        kind=row["kind"],
        hint=row["hint"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class TenancyStore:
    """Tenancy tables over the state store."""

    def __init__(self, db: StateStore) -> None:
        self.db = db

    def transaction(self) -> Any:
        return self.db.transaction()

    # -- users ------------------------------------------------------------------------------
    def user(self, name: str) -> UserRecord | None:
        row = self.db.query_one("SELECT * FROM users WHERE name = ?", (name,))
        return _user(row) if row else None

    def users(self) -> list[UserRecord]:
        return [_user(r) for r in self.db.query("SELECT * FROM users ORDER BY name")]

    def insert_user(
        self,
        *,
        name: str,
        password_hash: str,
        platform_role: str,
        display_name: str,
        email: str,
        now: float,
        source: str = "local",
    ) -> None:
        self.db.execute(
            "INSERT INTO users(name, display_name, email, password_hash, platform_role, created_at, updated_at,"
            " source, external_checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, display_name, email, password_hash, platform_role, now, now, source,
             None if source == "local" else now),
        )  # fmt: skip

    def update_user(self, name: str, *, now: float, **fields: Any) -> None:
        allowed = {
            "display_name", "email", "password_hash", "platform_role", "disabled", "last_login_at",
            "external_checked_at",
        }  # fmt: skip
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown user fields {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        params = [int(v) if isinstance(v, bool) else v for v in fields.values()]
        updated = "" if set(fields) <= {"last_login_at", "external_checked_at"} else ", updated_at = ?"
        if updated:
            params.append(now)
        self.db.execute(f"UPDATE users SET {sets}{updated} WHERE name = ?", (*params, name))

    def delete_user(self, name: str) -> int:
        return self.db.execute("DELETE FROM users WHERE name = ?", (name,))

    def count_active_admins(self) -> int:
        row = self.db.query_one("SELECT COUNT(*) AS n FROM users WHERE platform_role = 'admin' AND disabled = 0")
        return int(row["n"]) if row else 0

    # -- workspaces -------------------------------------------------------------------------
    def workspace(self, name: str) -> WorkspaceRecord | None:
        row = self.db.query_one("SELECT * FROM workspaces WHERE name = ?", (name,))
        return WorkspaceRecord(**dict(row)) if row else None

    def workspaces(self) -> list[WorkspaceRecord]:
        return [WorkspaceRecord(**dict(r)) for r in self.db.query("SELECT * FROM workspaces ORDER BY name")]

    def insert_workspace(self, *, name: str, description: str, created_by: str, now: float) -> None:
        self.db.execute(
            "INSERT INTO workspaces(name, description, created_at, created_by) VALUES (?, ?, ?, ?)",
            (name, description, now, created_by),
        )

    def delete_workspace(self, name: str) -> int:
        return self.db.execute("DELETE FROM workspaces WHERE name = ?", (name,))

    # -- projects ---------------------------------------------------------------------------
    def project(self, namespace: str) -> ProjectRecord | None:
        row = self.db.query_one("SELECT * FROM projects WHERE namespace = ?", (namespace,))
        return _project(row) if row else None

    def projects_generation(self) -> int:
        """A number that changes whenever any project row changes (see migration tenancy:2)."""
        row = self.db.query_one("SELECT gen FROM project_generation WHERE id = 1")
        return int(row["gen"]) if row else 0

    def identity_generation(self) -> int:
        """A number that changes whenever a user's role, disabled flag or source, or any role
        binding changes (see migration tenancy_roles:2)."""
        row = self.db.query_one("SELECT gen FROM identity_generation WHERE id = 1")
        return int(row["gen"]) if row else 0

    def projects(self, workspace: str | None = None) -> list[ProjectRecord]:
        if workspace is None:
            rows = self.db.query("SELECT * FROM projects ORDER BY namespace")
        else:
            rows = self.db.query("SELECT * FROM projects WHERE workspace = ? ORDER BY namespace", (workspace,))
        return [_project(r) for r in rows]

    def insert_project(
        self,
        *,
        namespace: str,
        workspace: str,
        display_name: str,
        created: float,
        created_by: str,
        now: float,
        namespace_uid: str = "",
        cluster: str = "",
    ) -> None:
        self.db.execute(
            "INSERT INTO projects(namespace, workspace, display_name, created, registered_at, created_by,"
            " namespace_uid, cluster) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (namespace, workspace, display_name, created, now, created_by, namespace_uid, cluster),
        )

    # -- clusters granted to workspaces (migration tenancy_clusters:1) ----------------------
    def workspace_clusters(self) -> dict[str, frozenset[str]]:
        """Every workspace's granted added clusters (the implicit cluster is everyone's)."""
        out: dict[str, set[str]] = {}
        for r in self.db.query("SELECT workspace, cluster FROM workspace_clusters"):
            out.setdefault(r["workspace"], set()).add(r["cluster"])
        return {w: frozenset(c) for w, c in out.items()}

    def grant_cluster(self, workspace: str, cluster: str, *, actor: str, now: float) -> int:
        return self.db.execute(
            "INSERT INTO workspace_clusters(workspace, cluster, granted_at, granted_by) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (workspace, cluster) DO NOTHING",
            (workspace, cluster, now, actor),
        )

    def revoke_cluster(self, workspace: str, cluster: str) -> int:
        return self.db.execute(
            "DELETE FROM workspace_clusters WHERE workspace = ? AND cluster = ?", (workspace, cluster)
        )

    def projects_in_cluster(self, workspace: str, cluster: str) -> int:
        row = self.db.query_one(
            "SELECT COUNT(*) AS n FROM projects WHERE workspace = ? AND cluster = ?", (workspace, cluster)
        )
        return int(row["n"]) if row else 0

    def set_project_created(self, namespace: str, created: float, namespace_uid: str | None = None) -> int:
        """Record the namespace's creation time (and UID when given); 0 when nothing changed."""
        if namespace_uid is None:
            return self.db.execute(
                "UPDATE projects SET created = ? WHERE namespace = ? AND created != ?", (created, namespace, created)
            )
        return self.db.execute(
            "UPDATE projects SET created = ?, namespace_uid = ?"
            " WHERE namespace = ? AND (created != ? OR namespace_uid != ?)",
            (created, namespace_uid, namespace, created, namespace_uid),
        )

    def delete_project(self, namespace: str) -> int:
        return self.db.execute("DELETE FROM projects WHERE namespace = ?", (namespace,))

    # -- memberships ------------------------------------------------------------------------
    def workspace_roles_of(self, username: str) -> dict[str, str]:
        rows = self.db.query("SELECT workspace, role FROM workspace_members WHERE username = ?", (username,))
        return {r["workspace"]: r["role"] for r in rows}

    def project_roles_of(self, username: str) -> dict[str, str]:
        rows = self.db.query("SELECT namespace, role FROM project_members WHERE username = ?", (username,))
        return {r["namespace"]: r["role"] for r in rows}

    def workspace_members(self, workspace: str) -> list[tuple[str, str]]:
        rows = self.db.query(
            "SELECT username, role FROM workspace_members WHERE workspace = ? ORDER BY username", (workspace,)
        )
        return [(r["username"], r["role"]) for r in rows]

    def project_members(self, namespace: str) -> list[tuple[str, str]]:
        rows = self.db.query(
            "SELECT username, role FROM project_members WHERE namespace = ? ORDER BY username", (namespace,)
        )
        return [(r["username"], r["role"]) for r in rows]

    def put_workspace_member(self, workspace: str, username: str, role: str) -> None:
        self.db.execute(
            "INSERT INTO workspace_members(workspace, username, role) VALUES (?, ?, ?)"
            " ON CONFLICT(workspace, username) DO UPDATE SET role = excluded.role",
            (workspace, username, role),
        )

    def delete_workspace_member(self, workspace: str, username: str) -> int:
        return self.db.execute(
            "DELETE FROM workspace_members WHERE workspace = ? AND username = ?", (workspace, username)
        )

    def put_project_member(self, namespace: str, username: str, role: str) -> None:
        self.db.execute(
            "INSERT INTO project_members(namespace, username, role) VALUES (?, ?, ?)"
            " ON CONFLICT(namespace, username) DO UPDATE SET role = excluded.role",
            (namespace, username, role),
        )

    def delete_project_member(self, namespace: str, username: str) -> int:
        return self.db.execute(
            "DELETE FROM project_members WHERE namespace = ? AND username = ?", (namespace, username)
        )

    # -- sessions ---------------------------------------------------------------------------
    def insert_session(self, *, id_hash: str, username: str, now: float, expires_at: float, client: str) -> None:
        self.db.execute(
            "INSERT INTO sessions(id_hash, username, created_at, expires_at, client) VALUES (?, ?, ?, ?, ?)",
            (id_hash, username, now, expires_at, client),
        )

    def session(self, id_hash: str) -> SessionRecord | None:
        row = self.db.query_one("SELECT username, created_at, expires_at FROM sessions WHERE id_hash = ?", (id_hash,))
        return SessionRecord(**dict(row)) if row else None

    def delete_session(self, id_hash: str) -> int:
        return self.db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))

    def delete_sessions_of(self, username: str, *, keep: str | None = None) -> int:
        return self.db.execute("DELETE FROM sessions WHERE username = ? AND id_hash != ?", (username, keep or ""))

    def purge_sessions(self, now: float) -> int:
        return self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))

    # -- API tokens -------------------------------------------------------------------------
    def insert_token(
        self, *, username: str, name: str, kind: str, token_hash: str, hint: str, now: float, expires_at: float
    ) -> int:
        return self.db.execute(
            "INSERT INTO api_tokens(username, name, kind, token_hash, hint, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (username, name, kind, token_hash, hint, now, expires_at),
        )

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        row = self.db.query_one("SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,))
        return _token(row) if row else None

    def token(self, token_id: int) -> TokenRecord | None:
        row = self.db.query_one("SELECT * FROM api_tokens WHERE id = ?", (token_id,))
        return _token(row) if row else None

    def tokens_of(self, username: str, *, kind: str | None = None) -> list[TokenRecord]:
        sql = "SELECT * FROM api_tokens WHERE username = ?"
        params: list[Any] = [username]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        return [_token(r) for r in self.db.query(sql + " ORDER BY id", params)]

    def touch_token(self, token_id: int, now: float) -> None:
        self.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))

    def revoke_token(self, token_id: int, now: float) -> int:
        return self.db.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id)
        )

    def revoke_tokens_of(self, username: str, now: float) -> int:
        return self.db.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL", (now, username)
        )

    def purge_tokens(self, before: float) -> int:
        """Forget tokens that expired or were revoked before ``before`` (kept a while for the listing)."""
        return self.db.execute(
            "DELETE FROM api_tokens WHERE expires_at < ? OR (revoked_at IS NOT NULL AND revoked_at < ?)",
            (before, before),
        )

    # -- login failures ---------------------------------------------------------------------
    def record_failure(self, key_hash: str, now: float) -> None:
        self.db.execute("INSERT INTO login_failures(key_hash, at) VALUES (?, ?)", (key_hash, now))

    def failures_since(self, key_hash: str, since: float) -> list[float]:
        rows = self.db.query(
            "SELECT at FROM login_failures WHERE key_hash = ? AND at > ? ORDER BY at", (key_hash, since)
        )
        return [r["at"] for r in rows]

    def clear_failures(self, key_hash: str) -> None:
        self.db.execute("DELETE FROM login_failures WHERE key_hash = ?", (key_hash,))

    def purge_failures(self, before: float) -> None:
        self.db.execute("DELETE FROM login_failures WHERE at <= ?", (before,))
