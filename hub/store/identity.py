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
        Only what differs is written (:func:`sync_user_roles`).
        """
        existing_ws = {
            ws: role
            for ws, role in workspaces.items()
            if self.db.query_one("SELECT 1 FROM workspaces WHERE name = ?", (ws,))
        }
        existing_ns = {
            ns: role
            for ns, role in projects.items()
            if self.db.query_one("SELECT 1 FROM projects WHERE namespace = ?", (ns,))
        }
        sync_user_roles(self.db, "workspace_members", username, existing_ws)
        sync_user_roles(self.db, "project_members", username, existing_ns)


# The tables of (<key>, username, role) rows that sync_user_roles keeps, with their key column.
_ROLE_KEYS = {"workspace_members": "workspace", "project_members": "namespace", "cluster_members": "cluster"}


def sync_user_roles(db: StateStore, table: str, username: str, wanted: Mapping[str, str]) -> None:
    """Make ``username``'s rows of ``table`` exactly ``wanted`` (key -> role), writing only the
    rows that differ. Why: a directory user's roles are set again at every sign-in and re-check,
    and each write moves the identity generation (migration tenancy_roles:2), which makes every
    replica rebuild every kept principal; a re-check that changes nothing now writes nothing."""
    key = _ROLE_KEYS[table]
    current = {r[key]: r["role"] for r in db.query(f"SELECT {key}, role FROM {table} WHERE username = ?", (username,))}
    for gone in sorted(current.keys() - wanted.keys()):
        db.execute(f"DELETE FROM {table} WHERE {key} = ? AND username = ?", (gone, username))
    for name, role in sorted(wanted.items()):
        if name not in current:
            db.execute(f"INSERT INTO {table}({key}, username, role) VALUES (?, ?, ?)", (name, username, role))
        elif current[name] != role:
            db.execute(f"UPDATE {table} SET role = ? WHERE {key} = ? AND username = ?", (role, name, username))


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
