"""Rows of per-project log collection settings (``log_collection``, migration
``hub/store/migrations/log_collection.py``). The rule itself is pure:
:mod:`hub.collectors.logs.collection`; this module is its store half (collectors sit above
the store layer, so the store package cannot know the settings type)."""

from __future__ import annotations

import json

from hub.collectors.logs.collection import CollectionRules, CollectionSettings
from hub.store.db import Row, StateStore


def _settings(r: Row) -> CollectionSettings:
    return CollectionSettings(
        enabled=bool(r["enabled"]),
        include=tuple(json.loads(r["include"])),
        exclude=tuple(json.loads(r["exclude"])),
        retention_days=None if r["retention_days"] is None else int(r["retention_days"]),
    )


class LogCollectionStore:
    def __init__(self, db: StateStore) -> None:
        self.db = db

    def get(self, namespace: str) -> CollectionSettings | None:
        r = self.db.query_one(
            "SELECT enabled, include, exclude, retention_days FROM log_collection WHERE namespace = ?", (namespace,)
        )
        return None if r is None else _settings(r)

    def rules(self) -> CollectionRules:
        rows = self.db.query("SELECT namespace, enabled, include, exclude, retention_days FROM log_collection")
        return CollectionRules({r["namespace"]: _settings(r) for r in rows})

    def put(self, namespace: str, settings: CollectionSettings, *, actor: str, now: float) -> None:
        self.db.execute(
            "INSERT INTO log_collection(namespace, enabled, include, exclude, retention_days, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(namespace) DO UPDATE SET enabled = excluded.enabled,"
            " include = excluded.include, exclude = excluded.exclude, retention_days = excluded.retention_days,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (
                namespace,
                1 if settings.enabled else 0,
                json.dumps(list(settings.include)),
                json.dumps(list(settings.exclude)),
                settings.retention_days,
                actor,
                now,
            ),
        )
