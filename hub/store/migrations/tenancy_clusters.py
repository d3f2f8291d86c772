"""Projects in several clusters, workspaces granted clusters (docs/tenancy.md "Several clusters").

An area of its own (after ``tenancy``, ``tenancy_identity`` and ``tenancy_roles``: areas run in
name order), so it never collides with those areas' next steps.

- ``projects.cluster``: the cluster the project lives in, '' for the implicit cluster (so every
  existing row, and every row of a single-cluster install, means what it meant). A project of an
  added cluster is keyed ``<cluster>/<namespace>`` (``hub.scope.project_key``), so the same
  namespace name may be a project in two clusters, of two tenants.
- ``workspace_clusters``: the added clusters a workspace is granted (the implicit cluster is
  every workspace's); a project of the workspace may live only in one of them. A grant bumps the
  project generation (tenancy:2) as a project write does, so cached scopes (which list the
  clusters a caller may pick) are rebuilt in every process.
"""

_TABLES = """
        ALTER TABLE projects ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
        CREATE INDEX projects_by_cluster ON projects(cluster);

        CREATE TABLE workspace_clusters (
            workspace TEXT NOT NULL REFERENCES workspaces(name) ON DELETE CASCADE,
            cluster TEXT NOT NULL,
            granted_at REAL NOT NULL,
            granted_by TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (workspace, cluster)
        );
"""

MIGRATIONS = [
    (
        1,
        {
            "sqlite": _TABLES
            + """
        CREATE TRIGGER workspace_clusters_gen_insert AFTER INSERT ON workspace_clusters
        BEGIN UPDATE project_generation SET gen = gen + 1 WHERE id = 1; END;
        CREATE TRIGGER workspace_clusters_gen_delete AFTER DELETE ON workspace_clusters
        BEGIN UPDATE project_generation SET gen = gen + 1 WHERE id = 1; END;
        """,
            # tenancy:2's trigger function, fired by this table too.
            "postgresql": _TABLES
            + """
        CREATE TRIGGER workspace_clusters_gen AFTER INSERT OR DELETE ON workspace_clusters
        FOR EACH ROW EXECUTE FUNCTION projects_gen_bump();
        """,
        },
    ),
]
