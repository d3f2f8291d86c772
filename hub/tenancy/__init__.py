"""Tenancy: users, workspaces, projects, roles, and the one scope service every path uses."""
