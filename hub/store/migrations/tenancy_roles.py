"""Cluster role bindings and custom roles (docs/tenancy.md "Role levels", "Custom roles").

An area of its own (after ``tenancy`` and ``tenancy_identity``: areas run in name order), so it
never collides with those areas' next steps.

- ``cluster_members``: a user's built-in role on a cluster. ``cluster`` is the cluster's name;
  today every binding names the one implicit cluster ``default``.
- ``custom_roles``: a role an admin composed from the permissions of one level; ``permissions``
  is a JSON list, checked against the catalogue whenever it is written.
- ``custom_role_bindings``: a user holds a custom role on a target of its level (a cluster,
  workspace or namespace name). Deleting the role or the user deletes its bindings.
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE cluster_members (
            cluster TEXT NOT NULL,
            username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
            PRIMARY KEY (cluster, username)
        );
        CREATE INDEX cluster_members_by_user ON cluster_members(username);

        CREATE TABLE custom_roles (
            name TEXT PRIMARY KEY,
            level TEXT NOT NULL CHECK (level IN ('cluster', 'workspace', 'project')),
            description TEXT NOT NULL DEFAULT '',
            permissions TEXT NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL
        );

        CREATE TABLE custom_role_bindings (
            role TEXT NOT NULL REFERENCES custom_roles(name) ON DELETE CASCADE,
            username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            target TEXT NOT NULL,
            PRIMARY KEY (role, username, target)
        );
        CREATE INDEX custom_role_bindings_by_user ON custom_role_bindings(username);
        """,
    ),
]
