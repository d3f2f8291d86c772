"""The sandbox's hooks into the hub (``sandbox/seed.py`` ``HUB_HOOKS``): the demo tenants and the
built-in alert policies, created through the hub's own services.

Here, not in ``hub/runtime/``, because they are the sandbox's demo data, not wiring: the hub
knows nothing of the sandbox. Each hook is ``fn(settings, sandbox_state) -> str`` (one line for
the sandbox's output), idempotent, and builds a hub of its own from ``settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.runtime import build_hub
from hub.settings import Settings


def seed_tenancy(settings: Settings, state: Mapping[str, Any]) -> str:
    """The demo workspaces, projects and users.

    Idempotent: run again, it brings users, roles and memberships back to what the sandbox's
    credentials say (passwords included, which the sandbox generated and keeps in its own
    state; the hub has no default password of its own). Projects are created through the
    cluster service when the sandbox's API server is configured, so their namespaces carry the
    workspace label and their real creation times.
    """
    hub = build_hub(settings)
    try:
        svc = hub.tenancy
        workspaces: Mapping[str, Any] = state.get("workspaces") or {}
        projects = 0
        for ws, namespaces in workspaces.items():
            if svc.workspace(ws) is None:
                svc.create_workspace(ws, actor="sandbox")
            for ns in namespaces:
                if svc.project(ns) is None:
                    svc.create_project(ws, ns, actor="sandbox")
                projects += 1
        users = 0
        for cred in state.get("credentials") or []:
            if cred.get("cluster"):
                continue  # a further cluster's tenant: seed_clusters, once its workspace exists
            _seed_user(svc, cred)
            users += 1
        svc.refresh_floors()
        return f"tenancy: {users} users, {len(workspaces)} workspaces, {projects} projects"
    finally:
        hub.close()


def _seed_user(svc: Any, cred: Mapping[str, Any]) -> None:
    """One demo user as the sandbox's credentials say (password, role, address, memberships)."""
    name, password = cred["username"], cred["password"]
    role = cred.get("platform_role", "regular")
    # Every demo user has an address (the sandbox's catcher takes any), so the seeded
    # policies that name them as receivers actually mail them.
    email = str(cred.get("email") or "")
    if svc.user(name) is None:
        svc.create_user(name, password, platform_role=role, email=email, actor="sandbox")
    else:
        svc.update_user(
            name, password=password, platform_role=role, email=email or None, disabled=False, actor="sandbox"
        )
    for ws, ws_role in (cred.get("workspaces") or {}).items():
        svc.set_workspace_member(ws, name, ws_role, actor="sandbox")
    for ns, ns_role in (cred.get("projects") or {}).items():
        svc.set_project_member(ns, name, ns_role, actor="sandbox")


def seed_alerting(settings: Settings, state: Mapping[str, Any]) -> str:
    """The built-in templates as live policies.

    Node-level templates become the cluster's policies and workload-level templates are loaded
    into every demo project, so the demo has alerts to show and backtest on first start.
    Idempotent: a policy whose name already exists in its scope is left as the user edited it.
    Receivers: the project's members (else the platform admins) for workload policies, the
    platform admins for node policies; every demo user has an address (sandbox/seed.py), so the
    demo alerts arrive in the sandbox's mailbox. Any save warning (a receiver without an
    address) is reported in the hook's line.
    """
    hub = build_hub(settings)
    try:
        svc = hub.alerting
        created = 0
        warnings: list[str] = []
        # Node policies mail the demo's platform admins (they alone see node alerts).
        admins = sorted(c["username"] for c in state.get("credentials") or [] if c.get("platform_role") == "admin")
        existing = {p["name"] for p in svc.list_policies(level="node")}
        for template in svc.templates(level="node"):
            if template["name"] not in existing:
                notification = dict(template.get("notification") or {})
                notification["receivers"] = [{"user": name} for name in admins]
                out = svc.create_from_template(
                    template["template"], level="node", actor="sandbox", overrides={"notification": notification}
                )
                warnings += [w["warning"] for w in out.get("warnings") or []]
                created += 1
        workload_templates = svc.templates(level="workload")
        for workspace, namespaces in (state.get("workspaces") or {}).items():
            for namespace in namespaces:
                # The templates ship without receivers; in the demo the project's own members
                # (direct or through their workspace) get its notices, else the platform admins.
                members = (
                    sorted(
                        c["username"]
                        for c in state.get("credentials") or []
                        if namespace in (c.get("projects") or {}) or workspace in (c.get("workspaces") or {})
                    )
                    or admins
                )  # a project without members: its alerts go to the platform admins
                existing = {p["name"] for p in svc.list_policies(level="workload", namespace=namespace)}
                for template in workload_templates:
                    if template["name"] in existing:
                        continue
                    notification = dict(template.get("notification") or {})
                    notification["receivers"] = [{"user": name} for name in members]
                    out = svc.create_from_template(
                        template["template"],
                        level="workload",
                        namespace=namespace,
                        actor="sandbox",
                        overrides={"notification": notification},
                    )
                    warnings += [w["warning"] for w in out.get("warnings") or []]
                    created += 1
        told = f"; warnings: {'; '.join(sorted(set(warnings)))}" if warnings else ""
        return f"alerting: {created} policies created from rules/{told}"
    finally:
        hub.close()


def seed_clusters(settings: Settings, state: Mapping[str, Any]) -> str:
    """The sandbox's further clusters (``--clusters 2``), added to the hub as an admin would:
    their kubeconfig files on disk (no credentials to seal) and the sandbox's one Prometheus as a
    shared endpoint with their ``cluster`` label. Then their tenant: each cluster's workspaces
    (``logistics``) created and granted the cluster, their projects placed in it (keyed
    ``<cluster>/<namespace>``, so cluster-2's ``retail-api`` is not the first cluster's), and the
    credentials marked with a ``cluster`` (``logistics-admin``) made users and members.
    Idempotent; nothing to do with one cluster."""
    wanted = state.get("clusters") or []
    if not wanted:
        return "clusters: one cluster, nothing to add"
    hub = build_hub(settings)
    try:
        added = 0
        for c in wanted:
            if c["name"] in hub.clusters.names():
                continue
            body = {
                "name": c["name"],
                "connection": {"mode": "kubeconfig", "kubeconfig_path": c["kubeconfig"], "context": c["context"]},
                "metrics": {"mode": "shared", "url": settings.prometheus.url, "label_value": c["name"]},
                "logs": {"mode": "shared"},
            }
            hub.clusters.add(body, actor="sandbox")
            added += 1
        svc = hub.tenancy
        projects = users = 0
        for c in wanted:
            for ws, namespaces in (c.get("workspaces") or {}).items():
                if svc.workspace(ws) is None:
                    svc.create_workspace(ws, actor="sandbox")
                svc.grant_cluster(ws, c["name"], actor="sandbox")  # idempotent
                for ns in namespaces:
                    key, _ = svc.placed_key(ws, ns, c["name"])
                    if svc.project(key) is None:
                        svc.create_project(ws, ns, cluster=c["name"], actor="sandbox")
                    projects += 1
        for cred in state.get("credentials") or []:
            if cred.get("cluster"):
                _seed_user(svc, cred)
                users += 1
        return f"clusters: {len(wanted)} further cluster(s), {added} added; {projects} projects, {users} users"
    finally:
        hub.close()


def seed_tenants(settings: Settings, state: Mapping[str, Any]) -> str:
    """The scale tenancy (``--tenants N``, sandbox/tenants.py): its workspaces, projects, users,
    role bindings and policies, through the hub's own services (the validation a user's request
    gets). Only what :func:`sandbox.tenants.plan_changes` finds missing is created, so a second
    run creates nothing. The users' passwords are hashed at a lower argon2id cost than the hub's
    (``SEED_HASH_*``): the hub re-hashes each at its own cost on first sign-in."""
    import dataclasses
    import json
    import time
    from pathlib import Path

    from sandbox import tenants as plan_mod

    spec = state.get("tenants") or {}
    count = int(spec.get("workspaces") or 0)
    if count <= 0:
        return "tenants: none"
    plan = plan_mod.plan_tenancy(count)
    creds = {c["username"]: c for c in json.loads(Path(spec["credentials"]).read_text())}
    auth = dataclasses.replace(
        settings.auth,
        password_hash_memory_kib=min(settings.auth.password_hash_memory_kib, plan_mod.SEED_HASH_MEMORY_KIB),
        password_hash_time_cost=min(settings.auth.password_hash_time_cost, plan_mod.SEED_HASH_TIME_COST),
    )
    hub = build_hub(dataclasses.replace(settings, auth=auth))
    try:
        t0 = time.monotonic()
        svc, alerting = hub.tenancy, hub.alerting
        users = {u.name: u.platform_role for u in svc.users()}
        ws_roles: dict[str, dict[str, str]] = {}
        ns_roles: dict[str, dict[str, str]] = {}
        for u in plan.users:
            if u.username in users:
                w, n = svc.memberships_of(u.username)
                ws_roles[u.username] = {k: str(v) for k, v in w.items()}
                ns_roles[u.username] = {k: str(v) for k, v in n.items()}
        policies = {("node", "", p["name"]) for p in alerting.list_policies(level="node")}
        for project in plan.projects:
            policies |= {
                ("workload", project.namespace, p["name"])
                for p in alerting.list_policies(level="workload", namespace=project.namespace)
            }
        have = plan_mod.Existing(
            workspaces=frozenset(w.name for w in svc.workspaces()),
            projects=frozenset(p.namespace for p in svc.projects()),
            users=users,
            workspace_roles=ws_roles,
            project_roles=ns_roles,
            policies=frozenset(policies),
        )
        todo = plan_mod.plan_changes(plan, have)
        read = time.monotonic() - t0
        for ws in todo.workspaces:
            svc.create_workspace(ws, actor="sandbox")
        for project in todo.projects:
            svc.create_project(project.workspace, project.namespace, actor="sandbox")
        t_users = time.monotonic()
        for user in todo.users:
            cred = creds[user.username]
            svc.create_user(
                user.username, cred["password"], platform_role=user.platform_role, email=cred["email"], actor="sandbox"
            )
        t_users = time.monotonic() - t_users
        for name, role in todo.platform_roles:
            svc.update_user(name, platform_role=role, actor="sandbox")
        for ws, name, role in todo.workspace_members:
            svc.set_workspace_member(ws, name, role, actor="sandbox")
        for ns, name, role in todo.project_members:
            svc.set_project_member(ns, name, role, actor="sandbox")
        t_policies = time.monotonic()
        templates = {t["template"]: t for t in alerting.templates()}
        warnings: set[str] = set()
        for p in todo.policies:
            out = alerting.create_policy(
                plan_mod.policy_document(p, templates),
                level=p.level,
                namespace=p.namespace or None,
                actor="sandbox",
            )
            warnings |= {w["warning"] for w in out.get("warnings") or []}
        t_policies = time.monotonic() - t_policies
        made = todo.counts()
        told = f"; warnings: {'; '.join(sorted(warnings))}" if warnings else ""
        total = plan.summary()
        return (
            f"tenants: {total['workspaces']} workspaces, {total['projects']} projects, {total['users']} users, "
            f"{total['policies']} policies; created {made['workspaces']} workspaces, {made['projects']} projects, "
            f"{made['users']} users ({t_users:.1f}s), {made['bindings']} role bindings, {made['policies']} policies "
            f"({t_policies:.1f}s); reading what exists took {read:.1f}s{told}"
        )
    finally:
        hub.close()
