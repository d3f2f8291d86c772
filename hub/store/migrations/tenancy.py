"""Tenancy tables: users, workspaces, projects, memberships, sessions, API tokens, login failures.

Secrets never land here in clear: passwords as argon2 hashes, session ids and API tokens as
SHA-256 digests (they are 256-bit random values, so a fast hash is enough), and the keys of
login-failure counters as digests too (a user who types a password into the user name field
must not leave it on disk).
"""

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            display_name TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '',
            password_hash TEXT NOT NULL,
            platform_role TEXT NOT NULL CHECK (platform_role IN ('admin', 'regular')),
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_login_at REAL
        );

        CREATE TABLE workspaces (
            name TEXT PRIMARY KEY,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL DEFAULT ''
        );

        CREATE TABLE projects (
            namespace TEXT PRIMARY KEY,
            workspace TEXT NOT NULL REFERENCES workspaces(name),
            display_name TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            registered_at REAL NOT NULL,
            created_by TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX projects_by_workspace ON projects(workspace);

        CREATE TABLE workspace_members (
            workspace TEXT NOT NULL REFERENCES workspaces(name) ON DELETE CASCADE,
            username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'regular', 'viewer')),
            PRIMARY KEY (workspace, username)
        );
        CREATE INDEX workspace_members_by_user ON workspace_members(username);

        CREATE TABLE project_members (
            namespace TEXT NOT NULL REFERENCES projects(namespace) ON DELETE CASCADE,
            username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
            PRIMARY KEY (namespace, username)
        );
        CREATE INDEX project_members_by_user ON project_members(username);

        CREATE TABLE sessions (
            id_hash TEXT PRIMARY KEY,
            username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            client TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX sessions_by_user ON sessions(username);

        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            name TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL CHECK (kind IN ('login', 'named')),
            token_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            last_used_at REAL,
            revoked_at REAL
        );
        CREATE INDEX api_tokens_by_user ON api_tokens(username);

        CREATE TABLE login_failures (
            key_hash TEXT NOT NULL,
            at REAL NOT NULL
        );
        CREATE INDEX login_failures_by_key ON login_failures(key_hash, at);
        """,
    ),
    (
        2,
        {
            "sqlite": """
        -- A counter bumped by every change to projects (including cascades from workspace
        -- deletion), so readers can keep the project list in memory and reload it only when
        -- it changed -- also when another process changed it.
        CREATE TABLE project_generation (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            gen INTEGER NOT NULL
        );
        INSERT INTO project_generation(id, gen) VALUES (1, 0);
        CREATE TRIGGER projects_gen_insert AFTER INSERT ON projects
        BEGIN UPDATE project_generation SET gen = gen + 1 WHERE id = 1; END;
        CREATE TRIGGER projects_gen_update AFTER UPDATE ON projects
        BEGIN UPDATE project_generation SET gen = gen + 1 WHERE id = 1; END;
        CREATE TRIGGER projects_gen_delete AFTER DELETE ON projects
        BEGIN UPDATE project_generation SET gen = gen + 1 WHERE id = 1; END;
        """,
            # The same counter on PostgreSQL: one trigger function for the three events.
            "postgresql": """
        CREATE TABLE project_generation (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            gen INTEGER NOT NULL
        );
        INSERT INTO project_generation(id, gen) VALUES (1, 0);
        CREATE FUNCTION projects_gen_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE project_generation SET gen = gen + 1 WHERE id = 1;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER projects_gen AFTER INSERT OR UPDATE OR DELETE ON projects
        FOR EACH ROW EXECUTE FUNCTION projects_gen_bump();
        """,
        },
    ),
    (
        3,
        """
        -- The metadata.uid of the project's namespace as the cluster last showed it ('' while
        -- unknown): log lines stamped with another UID belong to an earlier namespace of the
        -- same name and stay hidden from tenants.
        ALTER TABLE projects ADD COLUMN namespace_uid TEXT NOT NULL DEFAULT '';
        """,
    ),
]
