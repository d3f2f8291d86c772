"""Clusters added by platform admins (the implicit cluster of the settings is not stored).

``spec`` is the cluster's public description as JSON (connection without credentials, metrics
and log sources); ``sealed`` the credentials (kubeconfig contents or a token) as a Fernet token
(ASCII), NULL when the cluster has none (a kubeconfig path on the hub's disk, or in-cluster).
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE hub_clusters (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            sealed TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL
        );
        """,
    ),
]
