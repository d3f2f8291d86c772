"""The shipper's spool rows: lines read from the API and not yet stored wait in the shipper's
SQLite file as one JSON payload per batch. Kept apart from the shipper so the row format, the
file's tables and their schema steps (and how older rows are read after an upgrade) are in one
small place."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from hub.collectors.logs.store import LogRecord


def create_tables(db: sqlite3.Connection) -> None:
    """The shipper file's tables, then its schema steps by ``PRAGMA user_version`` (never
    edited, only added to):

    1: positions carry their cluster ('' for the implicit one, which every older row is).
    2: spool rows carry their cluster (older rows: '', delivered as one group; their lines
    still carry their own clusters).
    """
    db.execute(
        "CREATE TABLE IF NOT EXISTS positions (key TEXT PRIMARY KEY, last_ns INTEGER NOT NULL, "
        "seen INTEGER NOT NULL, restarts INTEGER NOT NULL, touched REAL NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, lines INTEGER NOT NULL, "
        "payload TEXT NOT NULL)"
    )
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    for step, table in ((1, "positions"), (2, "spool")):
        if version >= step:
            continue
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        db.execute("BEGIN IMMEDIATE")
        if "cluster" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN cluster TEXT NOT NULL DEFAULT ''")
        db.execute(f"PRAGMA user_version = {step}")
        db.execute("COMMIT")


def encode_spooled(records: Sequence[LogRecord]) -> str:
    """One spool row's payload: the records as compact JSON arrays (fields in a fixed order,
    newer fields appended so older rows still decode)."""
    return json.dumps(
        [
            [
                *(r.time, r.namespace, r.pod, r.container, r.message, r.workload, r.node, r.pod_uid, r.uid),
                *(r.namespace_uid, r.cluster),
            ]
            for r in records
        ],
        ensure_ascii=False,
    )


def decode_spooled(payload: str) -> list[LogRecord]:
    """The records of one spool row, whichever version wrote it."""
    # Rows spooled before lines carried their namespace's UID have nine fields: they are
    # delivered without one (and judged by the time floor); rows spooled before the cluster
    # level have ten and no cluster (the implicit one's, which the shipper alone followed).
    return [
        LogRecord(
            time=t,
            namespace=ns,
            pod=p,
            container=c,
            message=m,
            workload=w,
            node=n,
            pod_uid=pu,
            uid=u,
            namespace_uid=str(rest[0]) if rest else "",
            cluster=str(rest[1]) if len(rest) > 1 else "",
        )
        for t, ns, p, c, m, w, n, pu, u, *rest in json.loads(payload)
    ]
