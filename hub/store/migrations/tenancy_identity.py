"""Identity tables: where each user comes from, and the group -> role mappings.

An area of its own (applied after ``tenancy``, areas run in name order) so that it never
collides with the tenancy area's own next steps.

- ``users.source``: ``local`` (a password kept here, argon2id), ``ldap`` or ``oidc`` (the
  directory or provider vouches for the user; no usable local password is kept).
- ``users.external_checked_at``: when the directory last confirmed an external user (at login
  or at a re-check); tokens and sessions of a user not confirmed for longer than the re-check
  interval trigger a new check (docs/tenancy.md "Sign-in methods").
- ``group_mappings``: the mappings admins edit in the console (the settings' own are not
  stored: they are read from the settings at every start).
"""

MIGRATIONS = [
    (
        1,
        """
        ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
        ALTER TABLE users ADD COLUMN external_checked_at REAL;

        CREATE TABLE group_mappings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            group_name TEXT NOT NULL,
            level TEXT NOT NULL CHECK (level IN ('platform', 'cluster', 'workspace', 'project')),
            role TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL DEFAULT '',
            group_key TEXT NOT NULL,
            UNIQUE (group_key, level, target)
        );
        """,
    ),
]
