"""Rows of per-project log collection settings (``log_collection``, migration
``hub/store/migrations/log_collection.py``). The rule itself is pure:
:mod:`hub.collectors.logs.collection`; this module is its store half (collectors sit above
the store layer, so the store package cannot know the settings type).

The table's ``namespace`` column holds the project's key (:func:`hub.scope.project_key`), as
the tenancy store's project rows do: the implicit cluster's project ``shop`` is ``shop``
(the rows of hubs before the cluster level keep meaning what they meant), cluster-2's is
``cluster-2/shop``. The callers pass keys, never a bare name of an added cluster's project."""

from __future__ import annotations

import json

from hub.collectors.logs.collection import CollectionRules, CollectionSettings
from hub.scope import DEFAULT_CLUSTER, split_key
from hub.store.db import Row, StateStore


def audit_detail(key: str, settings: CollectionSettings) -> dict[str, object]:
    """The ``logs.collection`` audit entry's detail (its target is ``namespace/<key>``): the
    settings, and for an added cluster's project its cluster and namespace, so the entry of
    ``cluster-2/shop`` is found by the namespace filter and never read as the implicit
    cluster's ``shop``; the implicit cluster's entries are as before the cluster level."""
    cluster, namespace = split_key(key)
    detail: dict[str, object] = dict(settings.to_dict())
    if cluster:
        detail.update(cluster=cluster, namespace=namespace)
    return detail


def _settings(r: Row) -> CollectionSettings:
    return CollectionSettings(
        enabled=bool(r["enabled"]),
        include=tuple(json.loads(r["include"])),
        exclude=tuple(json.loads(r["exclude"])),
        retention_days=None if r["retention_days"] is None else int(r["retention_days"]),
    )


class LogCollectionStore:
    def __init__(self, db: StateStore, *, implicit: str = DEFAULT_CLUSTER) -> None:
        self.db = db
        self.implicit = implicit  # the implicit cluster's name, for CollectionRules.admits_in

    def get(self, key: str) -> CollectionSettings | None:
        """The settings of the project ``key`` (a project key), None when never set."""
        r = self.db.query_one(
            "SELECT enabled, include, exclude, retention_days FROM log_collection WHERE namespace = ?", (key,)
        )
        return None if r is None else _settings(r)

    def rules(self) -> CollectionRules:
        rows = self.db.query("SELECT namespace, enabled, include, exclude, retention_days FROM log_collection")
        return CollectionRules({r["namespace"]: _settings(r) for r in rows}, implicit=self.implicit)

    def put(self, key: str, settings: CollectionSettings, *, actor: str, now: float) -> None:
        self.db.execute(
            "INSERT INTO log_collection(namespace, enabled, include, exclude, retention_days, updated_by, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(namespace) DO UPDATE SET enabled = excluded.enabled,"
            " include = excluded.include, exclude = excluded.exclude, retention_days = excluded.retention_days,"
            " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (
                key,
                1 if settings.enabled else 0,
                json.dumps(list(settings.include)),
                json.dumps(list(settings.exclude)),
                settings.retention_days,
                actor,
                now,
            ),
        )
