"""The scale tenancy of the sandbox (``kubehub sandbox up --tenants N`` or ``--profile scale``):
``N`` workspaces of three projects and ten users each, with their role bindings, a Deployment
per project and about ``10 N`` alert policies.

Why a module of its own: the default demo tenancy (``sandbox/seed.py``) is a handful of
hand-written names that tests and docs refer to; this one is generated, so it is a pure plan
(:func:`plan_tenancy`, deterministic: one seeded random generator per workspace) plus a pure
comparison with what the hub already holds (:func:`plan_changes`), which is what makes a second
``up`` create nothing. The cluster side (namespaces, Deployments) is seeded by
``sandbox.seed.Seeder`` and the hub side by ``sandbox.hub_seed.seed_tenants``, both from the
same plan. Each workspace's content depends only on its index (cross-workspace bindings only
point at earlier workspaces), so growing ``N`` keeps what an earlier ``up`` made.

Shape, per workspace (``N = 100`` gives 100 workspaces, 300 projects, 1,000 users, ≥ 1,000
policies):

* projects ``<workspace>-<component>``: real namespaces labelled like the demo's
  (``kubesphere.io/workspace``, ``kubehub.io/sandbox``) plus ``kubehub.io/sandbox-tenants``;
* one Deployment per project, whose replicas come out of the same ``--pods`` budget as the demo
  workloads (``sandbox.seed.plan_replicas``): the tenants take about half of it;
* ten users: a workspace admin, a workspace regular member and a workspace viewer; a project
  admin per project; four users with operator or viewer roles in one or more projects; about one
  user in twenty also views a project of an earlier workspace; one user in a hundred is a
  platform admin;
* three or four workload policies per project from the built-in workload templates (thresholds
  varied, some aimed at the project's Deployment, receivers the project's admin and operator),
  and one node policy per workspace from the node templates (a pool of nodes by name, receivers
  platform admins).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.seed import MiB, Workload

TENANT_LABEL = "kubehub.io/sandbox-tenants"  # on every namespace and workload of the scale tenancy
SCALE_PROFILE = {"nodes": 1000, "pods": 20000, "tenants": 100}  # `up --profile scale`
MAX_TENANTS = 1000
PROJECTS_PER_WORKSPACE = 3
USERS_PER_WORKSPACE = 10
# The tenants' Deployments together weigh as much as the demo's scalable workloads (18), so they
# get about half of the --pods budget whatever N is.
TENANT_WEIGHT = 18.0
# argon2id cost of the seeded users' hashes: the hub's default (64 MiB, 3 passes) costs ~0.2 s
# of CPU per user here, 3 minutes for 1,000 users; the hub re-hashes at its own cost on each
# user's first sign-in (hub/tenancy/sessions.py).
SEED_HASH_MEMORY_KIB = 8192
SEED_HASH_TIME_COST = 1

_TEAMS = (
    "payments", "search", "identity", "catalog", "billing", "media", "fleet", "growth", "risk",
    "ledger", "mobile", "insights", "support", "inventory", "pricing", "shipping", "notify", "reco",
    "ads", "checkin", "loyalty", "maps", "travel", "tickets",
)  # fmt: skip
# component -> (service name of its Deployment, container)
_COMPONENTS: dict[str, tuple[str, str]] = {
    "web": ("frontend", "web"),
    "api": ("api-server", "api"),
    "data": ("sync-worker", "worker"),
    "jobs": ("scheduler", "scheduler"),
    "stream": ("stream-processor", "processor"),
    "cache": ("cache-proxy", "proxy"),
    "gw": ("gateway", "gateway"),
    "ml": ("model-server", "server"),
}
_GIVEN = (
    "ada", "ben", "chen", "dana", "eli", "fang", "gia", "hao", "ines", "jun", "kai", "lena", "ming",
    "nora", "omar", "pia", "qing", "rosa", "sam", "tao", "uma", "vic", "wei", "xin", "yara", "zoe",
)  # fmt: skip
_FAMILY = (
    "li", "wang", "zhang", "liu", "smith", "garcia", "muller", "rossi", "kim", "ito", "silva",
    "novak", "khan", "chen", "lopez", "brown", "okafor", "dubois",
)  # fmt: skip
# Workload templates that fit a Deployment (the volume templates are for StatefulSets' claims).
WORKLOAD_TEMPLATES = ("workload-cpu", "workload-memory", "workload-container-restarts", "workload-unavailable-replicas")
NODE_TEMPLATES = ("node-cpu", "node-memory", "node-disk-space", "node-inode", "node-load", "node-abnormal-pods")
_PERCENT_STEPS = (-10, -5, 0, 5, 10)
_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class TenantProject:
    namespace: str
    workspace: str
    workload: Workload  # its one Deployment


@dataclass(frozen=True)
class TenantUser:
    username: str
    platform_role: str  # admin | regular
    workspaces: tuple[tuple[str, str], ...]  # (workspace, role)
    projects: tuple[tuple[str, str], ...]  # (namespace, role)


@dataclass(frozen=True)
class PolicySpec:
    """One policy to create: a built-in template, renamed, its thresholds moved, aimed and
    addressed (``policy_document`` makes the document the hub validates)."""

    level: str  # node | workload
    namespace: str  # "" for node policies
    name: str
    template: str
    shift: float  # percent points added to percent thresholds ...
    factor: float  # ... and factor of every other non-zero threshold
    nodes: tuple[str, ...] = ()  # node policies: name globs
    workloads: tuple[str, ...] = ()  # workload policies: Deployments aimed at (empty: every workload)
    receivers: tuple[str, ...] = ()  # user names


@dataclass(frozen=True)
class TenancyPlan:
    workspaces: tuple[str, ...]
    projects: tuple[TenantProject, ...]
    users: tuple[TenantUser, ...]
    policies: tuple[PolicySpec, ...]

    @property
    def workloads(self) -> list[Workload]:
        return [p.workload for p in self.projects]

    def summary(self) -> dict[str, int]:
        return {
            "workspaces": len(self.workspaces),
            "projects": len(self.projects),
            "users": len(self.users),
            "bindings": sum(len(u.workspaces) + len(u.projects) + (u.platform_role == "admin") for u in self.users),
            "policies": len(self.policies),
            "node_policies": sum(p.level == "node" for p in self.policies),
        }


def _rng(*parts: object) -> random.Random:
    return random.Random(zlib.crc32("/".join(["kubehub-tenants-v1", *map(str, parts)]).encode()))


def workspace_name(i: int) -> str:
    return f"{_rng('ws', i).choice(_TEAMS)}-{i:03d}"


def plan_tenancy(count: int) -> TenancyPlan:
    """The scale tenancy of ``count`` workspaces (0: none). Pure and deterministic."""
    if not 0 <= count <= MAX_TENANTS:
        raise ValueError(f"tenants must be within 0..{MAX_TENANTS}, got {count}")
    names = [workspace_name(i) for i in range(count)]
    projects: list[TenantProject] = []
    users: list[TenantUser] = []
    policies: list[PolicySpec] = []
    project_names: list[list[str]] = []
    for i, ws in enumerate(names):
        rng = _rng("workspace", i)
        components = rng.sample(sorted(_COMPONENTS), PROJECTS_PER_WORKSPACE)
        mine = [f"{ws}-{c}" for c in components]
        project_names.append(mine)
        for j, (ns, comp) in enumerate(zip(mine, components, strict=True)):
            projects.append(TenantProject(ns, ws, _workload(rng, ns, comp, i * PROJECTS_PER_WORKSPACE + j, count)))
        # Role bindings of the workspace's ten users (k: index within the workspace).
        ws_roles: dict[int, list[tuple[str, str]]] = {0: [(ws, "admin")], 1: [(ws, "regular")], 2: [(ws, "viewer")]}
        ns_roles: dict[int, list[tuple[str, str]]] = {k: [] for k in range(USERS_PER_WORKSPACE)}
        for j, ns in enumerate(mine):
            ns_roles[3 + j].append((ns, "admin"))
            operator, viewer = rng.sample(range(6, USERS_PER_WORKSPACE), 2)
            ns_roles[operator].append((ns, "operator"))
            ns_roles[viewer].append((ns, "viewer"))
        for k in range(6, USERS_PER_WORKSPACE):
            if not ns_roles[k]:
                ns_roles[k].append((rng.choice(mine), "viewer"))
        for k in range(USERS_PER_WORKSPACE):
            n = i * USERS_PER_WORKSPACE + k
            # Now and then a user also views a project of an earlier workspace (never a later
            # one: workspace i's plan must not depend on how many follow it).
            if k >= 3 and i > 0 and rng.random() < 0.05:
                other = project_names[rng.randrange(i)]
                ns_roles[k].append((rng.choice(other), "viewer"))
            users.append(
                TenantUser(
                    username=_username(n),
                    platform_role="admin" if k == 0 and i % 10 == 0 else "regular",
                    workspaces=tuple(ws_roles.get(k, [])),
                    projects=tuple(ns_roles[k]),
                )
            )
        # Workload policies: three or four templates per project, receivers its admin and operator.
        for j, ns in enumerate(mine):
            chosen = rng.sample(WORKLOAD_TEMPLATES, 4 if rng.random() < 0.5 else 3)
            receivers = tuple(
                sorted(
                    u.username
                    for u in users[-USERS_PER_WORKSPACE:]
                    if (ns, "admin") in u.projects or (ns, "operator") in u.projects
                )
            )
            workload = projects[-PROJECTS_PER_WORKSPACE + j].workload.name
            for template in sorted(chosen):
                policies.append(
                    PolicySpec(
                        level="workload",
                        namespace=ns,
                        name=template,
                        template=template,
                        shift=float(rng.choice(_PERCENT_STEPS)),
                        factor=rng.choice(_FACTORS),
                        workloads=(workload,) if rng.random() < 0.5 else (),
                        receivers=receivers,
                    )
                )
        # One node policy per workspace: the platform team's, on a pool of nodes by name.
        template = rng.choice(NODE_TEMPLATES)
        pool = rng.choice(
            [
                ("*",),
                (f"kwok-node-{rng.randint(1, 9)}*",),
                (f"kwok-node-{rng.randint(1, 9)}*", f"kwok-node-{rng.randint(1, 9)}*"),
            ]
        )
        # The platform admins so far (the first user of every tenth workspace, this one's included).
        admins = [_username(m * USERS_PER_WORKSPACE) for m in range(0, i + 1, 10)]
        policies.append(
            PolicySpec(
                level="node",
                namespace="",
                name=f"{template}-{i:03d}",
                template=template,
                shift=float(rng.choice(_PERCENT_STEPS)),
                factor=rng.choice(_FACTORS),
                nodes=tuple(sorted(set(pool))),
                receivers=tuple(sorted(rng.sample(admins, min(2, len(admins))))),
            )
        )
    return TenancyPlan(tuple(names), tuple(projects), tuple(users), tuple(policies))


def _username(n: int) -> str:
    rng = _rng("user", n)
    return f"{rng.choice(_GIVEN)}.{rng.choice(_FAMILY)}{n:03d}"


def _workload(rng: random.Random, namespace: str, component: str, index: int, count: int) -> Workload:
    service, container = _COMPONENTS[component]
    hot = rng.random() < 0.05  # a few run hot, so some tenants' CPU policies have something to say
    return Workload(
        namespace=namespace,
        name=f"{service}-{index:03d}",  # unique across the plan: plan_replicas keys by name
        kind="Deployment",
        containers=(container,),
        weight=TENANT_WEIGHT / (PROJECTS_PER_WORKSPACE * count) * rng.choice((0.5, 0.75, 1.0, 1.25, 1.5)),
        cpu_request=rng.choice(("50m", "100m", "250m")),
        cpu_limit=rng.choice(("500m", "1")),
        memory_request=rng.choice(("64Mi", "128Mi", "256Mi")),
        memory_limit=rng.choice(("512Mi", "1Gi")),
        cpu_base=round(rng.uniform(0.01, 0.2), 3),
        memory_base=float(rng.randint(48, 400) * MiB),
        hot_cpu=0.45 if hot else None,
        image=f"registry.example.com/{namespace.rsplit('-', 2)[0]}/{service}:1.{rng.randint(0, 20)}.0",
    )


# ---- documents ----------------------------------------------------------------------------------


def policy_document(spec: PolicySpec, templates: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The document of ``spec``: its template (as ``AlertingService.templates`` lists them) with
    the name, thresholds, target and receivers of the plan."""
    base = templates[spec.template]
    doc: dict[str, Any] = {k: v for k, v in base.items() if k not in ("template", "namespace")}
    doc["name"] = spec.name
    doc["level"] = spec.level
    doc["rules"] = [_moved(rule, spec) for rule in base.get("rules") or []]
    if spec.level == "node":
        doc["target"] = {"nodes": list(spec.nodes)}
    else:
        doc["namespace"] = spec.namespace
        doc["target"] = (
            {"workloads": [{"kind": "deployment", "name": w} for w in spec.workloads]} if spec.workloads else {}
        )
    notification = dict(base.get("notification") or {})
    notification["receivers"] = [{"user": u} for u in spec.receivers]
    doc["notification"] = notification
    return doc


def _moved(rule: Mapping[str, Any], spec: PolicySpec) -> dict[str, Any]:
    out = dict(rule)
    threshold = float(rule["threshold"])
    if threshold == 0:
        return out  # "> 0" means "any": moving it changes the question
    if rule.get("unit") == "percent":
        out["threshold"] = min(99.0, max(1.0, threshold + spec.shift))
    elif rule.get("unit") == "ratio":
        out["threshold"] = min(0.99, max(0.01, round(threshold + spec.shift / 100, 2)))
    elif rule.get("unit") == "count":
        out["threshold"] = float(max(1, round(threshold * spec.factor)))
    else:
        out["threshold"] = float(f"{threshold * spec.factor:.3g}")
    return out


# ---- what is missing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Existing:
    """What the hub holds already (only the names the plan asks about matter)."""

    workspaces: frozenset[str] = frozenset()
    projects: frozenset[str] = frozenset()
    users: Mapping[str, str] | None = None  # name -> platform role
    workspace_roles: Mapping[str, Mapping[str, str]] | None = None  # user -> {workspace: role}
    project_roles: Mapping[str, Mapping[str, str]] | None = None  # user -> {namespace: role}
    policies: frozenset[tuple[str, str, str]] = frozenset()  # (level, namespace, name)


@dataclass(frozen=True)
class Changes:
    workspaces: tuple[str, ...]
    projects: tuple[TenantProject, ...]
    users: tuple[TenantUser, ...]  # to create
    platform_roles: tuple[tuple[str, str], ...]  # (user, role) of existing users whose role differs
    workspace_members: tuple[tuple[str, str, str], ...]  # (workspace, user, role)
    project_members: tuple[tuple[str, str, str], ...]  # (namespace, user, role)
    policies: tuple[PolicySpec, ...]

    @property
    def empty(self) -> bool:
        return not any(
            (self.workspaces, self.projects, self.users, self.platform_roles, self.workspace_members,
             self.project_members, self.policies)
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        return {
            "workspaces": len(self.workspaces),
            "projects": len(self.projects),
            "users": len(self.users),
            "bindings": len(self.platform_roles) + len(self.workspace_members) + len(self.project_members),
            "policies": len(self.policies),
        }


def plan_changes(plan: TenancyPlan, have: Existing) -> Changes:
    """What to create or set so the hub holds ``plan``; nothing when it does. Only adds: what a
    user changed beyond the plan (extra members, edited policies) is left alone, except a
    planned binding's role, which is set back."""
    users = dict(have.users or {})
    ws_roles = have.workspace_roles or {}
    ns_roles = have.project_roles or {}
    return Changes(
        workspaces=tuple(w for w in plan.workspaces if w not in have.workspaces),
        projects=tuple(p for p in plan.projects if p.namespace not in have.projects),
        users=tuple(u for u in plan.users if u.username not in users),
        platform_roles=tuple(
            (u.username, u.platform_role)
            for u in plan.users
            if users.get(u.username, u.platform_role) != u.platform_role
        ),
        workspace_members=tuple(
            (ws, u.username, role)
            for u in plan.users
            for ws, role in u.workspaces
            if (ws_roles.get(u.username) or {}).get(ws) != role
        ),
        project_members=tuple(
            (ns, u.username, role)
            for u in plan.users
            for ns, role in u.projects
            if (ns_roles.get(u.username) or {}).get(ns) != role
        ),
        policies=tuple(p for p in plan.policies if (p.level, p.namespace, p.name) not in have.policies),
    )


def credentials(plan: TenancyPlan, known: Iterable[Mapping[str, Any]], new_password: Any) -> list[dict[str, Any]]:
    """The tenants' logins (``state/tenant-credentials.json``): the plan's users with their roles,
    an address at the demo mail domain, and the password already known else ``new_password()``."""
    from sandbox.seed import demo_email

    passwords = {c["username"]: c["password"] for c in known if c.get("password")}
    return [
        {
            "username": u.username,
            "password": passwords.get(u.username) or new_password(),
            "email": demo_email(u.username),
            "platform_role": u.platform_role,
            "workspaces": dict(u.workspaces),
            "projects": dict(u.projects),
        }
        for u in plan.users
    ]


def replicas_of_tenants(plan_replicas: Mapping[str, int], plan: TenancyPlan) -> int:
    """Pods of the tenants' Deployments in a replica plan (``sandbox.seed.plan_replicas``)."""
    return sum(plan_replicas.get(w.name, 0) for w in plan.workloads)
