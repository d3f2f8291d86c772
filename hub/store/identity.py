"""Identity repository: the stored group -> role mappings and the directory-owned memberships.

Only storage: roles and levels travel as strings (the store sits below ``hub.tenancy``); the
tenancy service parses them (:mod:`hub.tenancy.mappings`) and decides what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.store.db import StateStore


@dataclass(frozen=True)
class GroupMappingRow:
    id: int
    group: str
    level: str
    role: str
    target: str
    created_at: float
    created_by: str


class IdentityStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

    def group_mappings(self) -> list[GroupMappingRow]:
        rows = self.db.query("SELECT * FROM group_mappings ORDER BY group_key, level, target")
        return [_row(r) for r in rows]

    def group_mapping(self, mapping_id: int) -> GroupMappingRow | None:
        row = self.db.query_one("SELECT * FROM group_mappings WHERE id = ?", (mapping_id,))
        return _row(row) if row else None

    def find_group_mapping(self, group: str, level: str, target: str) -> GroupMappingRow | None:
        row = self.db.query_one(
            "SELECT * FROM group_mappings WHERE group_key = ? AND level = ? AND target = ?",
            (group.casefold(), level, target),
        )
        return _row(row) if row else None

    def insert_group_mapping(
        self, *, group: str, level: str, role: str, target: str, now: float, created_by: str
    ) -> int:
        return self.db.execute(
            "INSERT INTO group_mappings(group_name, level, role, target, created_at, created_by, group_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (group, level, role, target, now, created_by, group.casefold()),
        )

    def update_group_mapping_role(self, mapping_id: int, role: str) -> int:
        return self.db.execute("UPDATE group_mappings SET role = ? WHERE id = ?", (role, mapping_id))

    def delete_group_mapping(self, mapping_id: int) -> int:
        return self.db.execute("DELETE FROM group_mappings WHERE id = ?", (mapping_id,))

    def replace_memberships(self, username: str, workspaces: Mapping[str, str], projects: Mapping[str, str]) -> None:
        """Make ``username``'s memberships exactly these (existing workspaces/projects only).

        Called inside the caller's transaction for a directory user: the directory owns them.
        """
        self.db.execute("DELETE FROM workspace_members WHERE username = ?", (username,))
        self.db.execute("DELETE FROM project_members WHERE username = ?", (username,))
        for ws, role in sorted(workspaces.items()):
            if self.db.query_one("SELECT 1 FROM workspaces WHERE name = ?", (ws,)):
                self.db.execute(
                    "INSERT INTO workspace_members(workspace, username, role) VALUES (?, ?, ?)", (ws, username, role)
                )
        for ns, role in sorted(projects.items()):
            if self.db.query_one("SELECT 1 FROM projects WHERE namespace = ?", (ns,)):
                self.db.execute(
                    "INSERT INTO project_members(namespace, username, role) VALUES (?, ?, ?)", (ns, username, role)
                )


def _row(row: Any) -> GroupMappingRow:
    return GroupMappingRow(
        id=row["id"],
        group=row["group_name"],
        level=row["level"],
        role=row["role"],
        target=row["target"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )
