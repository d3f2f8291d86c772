"""Cluster role bindings and custom roles (docs/tenancy.md "Role levels", "Custom roles").

An area of its own (after ``tenancy`` and ``tenancy_identity``: areas run in name order), so it
never collides with those areas' next steps.

- ``cluster_members``: a user's built-in role on a cluster. ``cluster`` is the cluster's name;
  today every binding names the one implicit cluster ``default``.
- ``custom_roles``: a role an admin composed from the permissions of one level; ``permissions``
  is a JSON list, checked against the catalogue whenever it is written.
- ``custom_role_bindings``: a user holds a custom role on a target of its level (a cluster,
  workspace or namespace name). Deleting the role or the user deletes its bindings.
- ``identity_generation`` (step 2): a counter bumped by every write that can change what a
  user's principal holds -- the user's role, disabled flag or source, and any row of the five
  role tables above and in ``tenancy`` (cascades included) -- so a process may keep principals in
  memory and rebuild one only when the counter moved, also when another process wrote.
  ``last_login_at``, ``external_checked_at`` and password changes do not move it.
"""

# What a principal is built from (TenancyService._principal): the user row's role, disabled
# flag and source, and these tables.
_ROLE_TABLES = ("workspace_members", "project_members", "cluster_members", "custom_roles", "custom_role_bindings")
_USER_COLUMNS = "platform_role, disabled, source"

_COUNTER = """
        CREATE TABLE identity_generation (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            gen INTEGER NOT NULL
        );
        INSERT INTO identity_generation(id, gen) VALUES (1, 0);
"""


def _sqlite_triggers() -> str:
    """SQLite has one event per trigger: three per table."""
    bump = "BEGIN UPDATE identity_generation SET gen = gen + 1 WHERE id = 1; END;"
    events = [("users", "INSERT"), ("users", f"UPDATE OF {_USER_COLUMNS}"), ("users", "DELETE")]
    events += [(table, event) for table in _ROLE_TABLES for event in ("INSERT", "UPDATE", "DELETE")]
    return "".join(
        f"\n        CREATE TRIGGER {table}_identity_gen_{event.split()[0].lower()} AFTER {event} ON {table}\n"
        f"        {bump}"
        for table, event in events
    )


def _postgresql_triggers() -> str:
    """One trigger function; one trigger per table for its three events."""
    function = """
        CREATE FUNCTION identity_gen_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE identity_generation SET gen = gen + 1 WHERE id = 1;
            RETURN NULL;
        END
        $$;"""
    events = [("users", f"INSERT OR DELETE OR UPDATE OF {_USER_COLUMNS}")]
    events += [(table, "INSERT OR UPDATE OR DELETE") for table in _ROLE_TABLES]
    return function + "".join(
        f"\n        CREATE TRIGGER {table}_identity_gen AFTER {event} ON {table}\n"
        "        FOR EACH ROW EXECUTE FUNCTION identity_gen_bump();"
        for table, event in events
    )


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
    (2, {"sqlite": _COUNTER + _sqlite_triggers(), "postgresql": _COUNTER + _postgresql_triggers()}),
]
