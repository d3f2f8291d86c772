"""Leadership among replicas: the lease with its fencing token, and the replicas' heartbeats.

``hub_leases`` has one row per lease name (today only ``background``: the alert engine, the
outbox delivery, the log shipper and retention). ``token`` only ever grows: every new holder
(and a holder taking its own expired lease back) gets the next one, and every write of the
background work checks it (:class:`hub.store.leases.FencedStore`).

``hub_replicas`` is what the console's admin overview lists: each replica's last heartbeat and
since when it leads, written by the replica itself on every renewal round.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE hub_leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            token INTEGER NOT NULL,
            acquired_at REAL NOT NULL,
            renewed_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE TABLE hub_replicas (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            leader_since REAL,
            token INTEGER
        );
        """,
    ),
]
