"""Role repository: cluster role bindings, custom roles and their bindings.

Only storage: roles, levels and permissions travel as strings (the store sits below
``hub.tenancy``); the tenancy service validates them (:mod:`hub.tenancy.custom_roles`) and
decides what they mean.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.store.db import StateStore
from hub.store.identity import sync_user_roles


@dataclass(frozen=True)
class CustomRoleRow:
    name: str
    level: str
    description: str
    permissions: tuple[str, ...]
    created_at: float
    created_by: str
    updated_at: float


@dataclass(frozen=True)
class CustomBindingRow:
    role: str
    level: str
    username: str
    target: str
    permissions: tuple[str, ...]


class RoleStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

    # -- cluster roles ------------------------------------------------------------------------
    def cluster_roles_of(self, username: str) -> dict[str, str]:
        rows = self.db.query("SELECT cluster, role FROM cluster_members WHERE username = ?", (username,))
        return {r["cluster"]: r["role"] for r in rows}

    def cluster_members(self, cluster: str) -> list[tuple[str, str]]:
        rows = self.db.query(
            "SELECT username, role FROM cluster_members WHERE cluster = ? ORDER BY username", (cluster,)
        )
        return [(r["username"], r["role"]) for r in rows]

    def set_cluster_role(self, cluster: str, username: str, role: str) -> None:
        self.db.execute("DELETE FROM cluster_members WHERE cluster = ? AND username = ?", (cluster, username))
        self.db.execute(
            "INSERT INTO cluster_members(cluster, username, role) VALUES (?, ?, ?)", (cluster, username, role)
        )

    def remove_cluster_role(self, cluster: str, username: str) -> int:
        return self.db.execute("DELETE FROM cluster_members WHERE cluster = ? AND username = ?", (cluster, username))

    def replace_cluster_roles(self, username: str, clusters: Mapping[str, str]) -> None:
        """Make ``username``'s cluster roles exactly these (a directory user's, inside the caller's
        transaction: the directory owns them)."""
        sync_user_roles(self.db, "cluster_members", username, clusters)

    # -- custom roles -------------------------------------------------------------------------
    def custom_roles(self) -> list[CustomRoleRow]:
        return [_role(r) for r in self.db.query("SELECT * FROM custom_roles ORDER BY name")]

    def custom_role(self, name: str) -> CustomRoleRow | None:
        row = self.db.query_one("SELECT * FROM custom_roles WHERE name = ?", (name,))
        return _role(row) if row else None

    def insert_custom_role(
        self, *, name: str, level: str, description: str, permissions: tuple[str, ...], now: float, created_by: str
    ) -> None:
        self.db.execute(
            "INSERT INTO custom_roles(name, level, description, permissions, created_at, created_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, level, description, json.dumps(sorted(permissions)), now, created_by, now),
        )

    def update_custom_role(self, name: str, *, description: str, permissions: tuple[str, ...], now: float) -> int:
        return self.db.execute(
            "UPDATE custom_roles SET description = ?, permissions = ?, updated_at = ? WHERE name = ?",
            (description, json.dumps(sorted(permissions)), now, name),
        )

    def delete_custom_role(self, name: str) -> int:
        self.db.execute("DELETE FROM custom_role_bindings WHERE role = ?", (name,))
        return self.db.execute("DELETE FROM custom_roles WHERE name = ?", (name,))

    def bindings_of_user(self, username: str) -> list[CustomBindingRow]:
        rows = self.db.query(
            "SELECT b.role, r.level, b.username, b.target, r.permissions FROM custom_role_bindings b"
            " JOIN custom_roles r ON r.name = b.role WHERE b.username = ? ORDER BY b.role, b.target",
            (username,),
        )
        return [_binding(r) for r in rows]

    def bindings_of_role(self, role: str) -> list[CustomBindingRow]:
        rows = self.db.query(
            "SELECT b.role, r.level, b.username, b.target, r.permissions FROM custom_role_bindings b"
            " JOIN custom_roles r ON r.name = b.role WHERE b.role = ? ORDER BY b.username, b.target",
            (role,),
        )
        return [_binding(r) for r in rows]

    def bind(self, role: str, username: str, target: str) -> None:
        self.db.execute(
            "DELETE FROM custom_role_bindings WHERE role = ? AND username = ? AND target = ?", (role, username, target)
        )
        self.db.execute(
            "INSERT INTO custom_role_bindings(role, username, target) VALUES (?, ?, ?)", (role, username, target)
        )

    def replace_bindings_of_user(self, username: str, bindings: list[tuple[str, str]]) -> None:
        """Make ``username``'s custom role bindings exactly these (role, target) pairs (a
        directory user's, inside the caller's transaction: the directory owns them). Only what
        differs is written, as :func:`hub.store.identity.sync_user_roles` says why."""
        rows = self.db.query("SELECT role, target FROM custom_role_bindings WHERE username = ?", (username,))
        current = {(r["role"], r["target"]) for r in rows}
        wanted = set(bindings)
        for role, target in sorted(current - wanted):
            self.unbind(role, username, target)
        for role, target in sorted(wanted - current):
            self.db.execute(
                "INSERT INTO custom_role_bindings(role, username, target) VALUES (?, ?, ?)", (role, username, target)
            )

    def unbind(self, role: str, username: str, target: str) -> int:
        return self.db.execute(
            "DELETE FROM custom_role_bindings WHERE role = ? AND username = ? AND target = ?", (role, username, target)
        )


def _role(row: Any) -> CustomRoleRow:
    return CustomRoleRow(
        name=row["name"],
        level=row["level"],
        description=row["description"],
        permissions=tuple(json.loads(row["permissions"])),
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
    )


def _binding(row: Any) -> CustomBindingRow:
    return CustomBindingRow(
        role=row["role"],
        level=row["level"],
        username=row["username"],
        target=row["target"],
        permissions=tuple(json.loads(row["permissions"])),
    )
