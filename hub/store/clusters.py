"""Cluster repository: the clusters platform admins added (migration ``clusters``).

Only storage: the spec travels as JSON text and the credentials as an already sealed Fernet
token; the cluster area (:mod:`hub.clusters`) turns them into typed values and seals and opens.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.store.db import IntegrityError, StateStore


class ClusterExists(Exception):
    """A cluster of that name is stored already."""


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    spec: str  # JSON
    sealed: str | None
    created: float
    updated: float


class ClusterStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

    def all(self) -> list[ClusterRecord]:
        rows = self.db.query("SELECT name, spec, sealed, created, updated FROM hub_clusters ORDER BY name")
        return [ClusterRecord(r["name"], r["spec"], r["sealed"], r["created"], r["updated"]) for r in rows]

    def names(self) -> list[str]:
        return [r["name"] for r in self.db.query("SELECT name FROM hub_clusters ORDER BY name")]

    def get(self, name: str) -> ClusterRecord | None:
        r = self.db.query_one("SELECT name, spec, sealed, created, updated FROM hub_clusters WHERE name = ?", (name,))
        return None if r is None else ClusterRecord(r["name"], r["spec"], r["sealed"], r["created"], r["updated"])

    def insert(self, record: ClusterRecord) -> None:
        try:
            self.db.execute(
                "INSERT INTO hub_clusters(name, spec, sealed, created, updated) VALUES (?, ?, ?, ?, ?)",
                (record.name, record.spec, record.sealed, record.created, record.updated),
            )
        except IntegrityError as exc:
            raise ClusterExists(record.name) from exc

    def update(self, name: str, spec: str, *, sealed: str | None, keep_sealed: bool, updated: float) -> bool:
        """Write a new spec; ``keep_sealed`` leaves the stored credentials as they are."""
        if keep_sealed:
            n = self.db.execute("UPDATE hub_clusters SET spec = ?, updated = ? WHERE name = ?", (spec, updated, name))
        else:
            n = self.db.execute(
                "UPDATE hub_clusters SET spec = ?, sealed = ?, updated = ? WHERE name = ?",
                (spec, sealed, updated, name),
            )
        return n > 0

    def delete(self, name: str) -> bool:
        return self.db.execute("DELETE FROM hub_clusters WHERE name = ?", (name,)) > 0
