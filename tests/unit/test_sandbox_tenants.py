"""The sandbox's scale tenancy (``up --tenants N`` / ``--profile scale``, sandbox/tenants.py): the
pure plan (counts, determinism, names the API server and the hub accept, bindings that let
every receiver see its alerts), the comparison that makes a second ``up`` create nothing, and
the hub hook on a real store (the hub's own services validate every user and policy)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pytest

from hub.alerts.policy import parse_policy
from hub.collectors.catalogue import default_catalogue
from hub.tenancy.credentials import DNS_LABEL_RE, USERNAME_RE, check_password_strength
from sandbox import seed, tenants
from sandbox.cli import add_arguments, apply_profile
from sandbox.config import SandboxConfig
from sandbox.core import Sandbox

pytestmark = pytest.mark.unit

RULES = Path(__file__).resolve().parents[2] / "rules"
# Kubernetes: a namespace is an RFC 1123 label; a Deployment's name a DNS subdomain whose pods'
# names (name-<hash>-<suffix>) must stay within 63 characters for their hostname.
MAX_DEPLOYMENT_NAME = 47


@pytest.fixture(scope="module")
def plan() -> tenants.TenancyPlan:
    return tenants.plan_tenancy(100)


def test_the_scale_profile_has_the_size_the_issue_asks_for(plan: tenants.TenancyPlan) -> None:
    counts = plan.summary()
    assert counts["workspaces"] == 100 and counts["projects"] == 300 and counts["users"] == 1000
    assert counts["policies"] >= 1000
    levels = Counter(p.level for p in plan.policies)
    assert levels["node"] == 100 and levels["workload"] >= 900  # both levels, mostly workload
    assert Counter(p.template for p in plan.policies if p.level == "workload").keys() == set(tenants.WORKLOAD_TEMPLATES)
    assert len({p.template for p in plan.policies if p.level == "node"}) >= 4
    # Platform, workspace and project roles, every one of them used; every user holds a binding.
    admins = [u for u in plan.users if u.platform_role == "admin"]
    assert len(admins) == 10
    ws_roles = Counter(role for u in plan.users for _, role in u.workspaces)
    ns_roles = Counter(role for u in plan.users for _, role in u.projects)
    assert ws_roles == {"admin": 100, "regular": 100, "viewer": 100}
    assert ns_roles["admin"] == 300 and ns_roles["operator"] == 300 and ns_roles["viewer"] >= 300
    assert all(u.workspaces or u.projects for u in plan.users)
    # Some users reach a project of another workspace (tenancy tests want such users).
    ws_of = {p.namespace: p.workspace for p in plan.projects}
    home = {u.username: {ws for ws, _ in u.workspaces} | {ws_of[ns] for ns, _ in u.projects[:1]} for u in plan.users}
    crossing = [u for u in plan.users if len({ws_of[ns] for ns, _ in u.projects} | home[u.username]) > 1]
    assert 10 <= len(crossing) <= 80


def test_the_plan_is_deterministic_and_grows_without_changing_what_exists() -> None:
    a, b = tenants.plan_tenancy(20), tenants.plan_tenancy(20)
    assert a == b
    small, big = tenants.plan_tenancy(5), tenants.plan_tenancy(20)
    assert big.workspaces[:5] == small.workspaces
    assert big.users[:50] == small.users
    assert big.policies[: len(small.policies)] == small.policies
    assert [p.namespace for p in big.projects[:15]] == [p.namespace for p in small.projects]
    assert tenants.plan_tenancy(0).summary()["users"] == 0
    with pytest.raises(ValueError, match="tenants"):
        tenants.plan_tenancy(tenants.MAX_TENANTS + 1)


def test_every_name_is_valid_for_kubernetes_and_the_hub_and_clashes_with_nothing(plan: tenants.TenancyPlan) -> None:
    namespaces = [p.namespace for p in plan.projects]
    demo = {ns for ps in [*seed.WORKSPACES.values(), *seed.OTHER_WORKSPACES.values()] for ns in ps}
    demo |= {*seed.WORKSPACES, *seed.OTHER_WORKSPACES, seed.SYSTEM_NAMESPACE}
    for name in [*plan.workspaces, *namespaces]:
        assert DNS_LABEL_RE.match(name) and len(name) <= 63, name
        assert not name.startswith("kube-") and name != "default"
    assert not (set(namespaces) | set(plan.workspaces)) & demo
    assert len(set(namespaces)) == 300 and len(set(plan.workspaces)) == 100
    workloads = [w.name for w in plan.workloads]
    assert len(set(workloads)) == 300  # plan_replicas keys by name
    assert not set(workloads) & {w.name for w in seed.WORKLOADS}
    assert all(DNS_LABEL_RE.match(w) and len(w) <= MAX_DEPLOYMENT_NAME for w in workloads)
    names = [u.username for u in plan.users]
    assert len(set(names)) == 1000 and all(USERNAME_RE.match(n) for n in names)
    assert not set(names) & {u["username"] for u in seed.DEMO_USERS + seed.OTHER_DEMO_USERS}
    scopes = Counter((p.level, p.namespace, p.name) for p in plan.policies)
    assert max(scopes.values()) == 1  # one name per scope
    creds = tenants.credentials(plan, [], iter(f"Pw-{i:05d}-xkcd-Q9" for i in range(2000)).__next__)
    for c in creds[:50]:
        check_password_strength(c["password"], username=c["username"])


def test_every_policy_document_passes_the_hubs_validation_with_receivers_who_may_see_it(
    plan: tenants.TenancyPlan,
) -> None:
    from hub.alerts.policy import builtin_templates

    templates = {name: {"template": name, **p.to_document()} for name, p in builtin_templates(RULES).items()}
    catalogue = default_catalogue()
    metrics = {level: catalogue.units(level) for level in ("nodes", "workloads")}
    admins = {u.username for u in plan.users if u.platform_role == "admin"}
    members: dict[str, set[str]] = {}
    for u in plan.users:
        for ns, role in u.projects:
            if role in ("admin", "operator"):
                members.setdefault(ns, set()).add(u.username)
    workloads = {p.namespace: p.workload.name for p in plan.projects}
    shifted = 0
    for spec in plan.policies:
        doc = tenants.policy_document(spec, templates)
        may = admins if spec.level == "node" else members[spec.namespace]
        policy = parse_policy(doc, metrics=metrics, users=may, namespace=spec.namespace or None)
        assert policy.name == spec.name and policy.level == spec.level
        assert spec.receivers and set(spec.receivers) <= may
        if spec.level == "workload":
            assert set(spec.workloads) <= {workloads[spec.namespace]}
        base = [r["threshold"] for r in templates[spec.template]["rules"]]
        shifted += [r.threshold for r in policy.rules] != base
    assert shifted > len(plan.policies) // 2  # thresholds vary: not a thousand copies


def test_changes_are_everything_on_an_empty_hub_and_nothing_once_seeded(plan: tenants.TenancyPlan) -> None:
    empty = tenants.plan_changes(plan, tenants.Existing())
    counts = empty.counts()
    assert counts == {
        "workspaces": 100,
        "projects": 300,
        "users": 1000,
        "bindings": plan.summary()["bindings"] - 10,  # platform roles come with create_user
        "policies": len(plan.policies),
    }
    full = tenants.Existing(
        workspaces=frozenset(plan.workspaces),
        projects=frozenset(p.namespace for p in plan.projects),
        users={u.username: u.platform_role for u in plan.users},
        workspace_roles={u.username: dict(u.workspaces) for u in plan.users},
        project_roles={u.username: dict(u.projects) for u in plan.users},
        policies=frozenset((p.level, p.namespace, p.name) for p in plan.policies),
    )
    assert tenants.plan_changes(plan, full).empty
    # Partly seeded, and a binding changed by hand: only the missing and the changed.
    u0, u5 = plan.users[0], plan.users[5]
    some = tenants.Existing(
        workspaces=full.workspaces - {plan.workspaces[3]},
        projects=full.projects,
        users={k: v for k, v in (full.users or {}).items() if k != u5.username} | {u0.username: "regular"},
        workspace_roles=full.workspace_roles,
        project_roles={**(full.project_roles or {}), u5.username: {}},
        policies=full.policies - {("node", "", plan.policies[-1].name)},
    )
    todo = tenants.plan_changes(plan, some)
    assert todo.workspaces == (plan.workspaces[3],) and not todo.projects
    assert todo.users == (u5,) and todo.platform_roles == ((u0.username, "admin"),)
    assert todo.project_members == tuple((ns, u5.username, role) for ns, role in u5.projects)
    assert not todo.workspace_members and todo.policies == (plan.policies[-1],)


def test_the_tenants_take_about_half_of_the_pods_and_the_default_plan_is_unchanged(
    plan: tenants.TenancyPlan,
) -> None:
    scale = seed.plan_replicas(20000, 1000, seed.WORKLOADS + plan.workloads)
    theirs = sum(scale[w.name] for w in plan.workloads)
    ours = sum(scale[w.name] for w in seed.WORKLOADS if w.name in scale)
    assert 0.4 < theirs / (theirs + ours) < 0.6
    assert min(scale[w.name] for w in plan.workloads) >= 10
    assert seed.plan_replicas(60, 10) == seed.plan_replicas(60, 10, seed.WORKLOADS + tenants.plan_tenancy(0).workloads)


def test_the_option_and_the_profile(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["up", "--profile", "scale", "--pods", "5000"])
    apply_profile(args)
    assert (args.nodes, args.pods, args.tenants) == (1000, 5000, 100)  # an explicit option wins
    args = parser.parse_args(["up"])
    apply_profile(args)
    assert (args.nodes, args.pods, args.tenants) == (None, None, None)  # the default sandbox: as it was
    cfg = SandboxConfig()
    assert cfg.tenants == 0
    cfg.tenants = 7
    cfg.save(tmp_path / "sandbox.json")
    assert SandboxConfig.load(tmp_path / "sandbox.json") == cfg
    assert "tenants" not in Sandbox(tmp_path / "default", quiet=True).status()


def test_the_default_sandbox_seeds_what_it_did_and_hands_the_hub_no_tenants(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path / "sb", quiet=True)
    seeder = seed.Seeder(sb, None)  # type: ignore[arg-type]
    assert seeder.tenancy is None and seeder.tenant_workloads == []
    seeder.seed_credentials()
    assert not (sb.state_dir / seed.TENANT_CREDENTIALS).exists()
    sb.config.tenants = 2
    seeder = seed.Seeder(sb, None)  # type: ignore[arg-type]
    seeder.seed_credentials()
    creds = json.loads((sb.state_dir / seed.TENANT_CREDENTIALS).read_text())
    assert len(creds) == 20 and (sb.state_dir / seed.TENANT_CREDENTIALS).stat().st_mode & 0o777 == 0o600
    seeder.seed_credentials()  # kept: passwords are not regenerated
    assert json.loads((sb.state_dir / seed.TENANT_CREDENTIALS).read_text()) == creds
    assert [c["username"] for c in sb.credentials] == [u["username"] for u in seed.DEMO_USERS]
    assert sb.status()["tenants"]["users"] == 20


def test_the_hook_seeds_through_the_hubs_services_and_a_second_run_creates_nothing(tmp_path: Path) -> None:
    """On a real store (no cluster: projects are registered only): every user, binding and
    policy the plan has, accepted by the services' own validation; then nothing more."""
    from hub.runtime import build_hub
    from hub.settings import load_settings
    from sandbox.hub_seed import seed_tenants

    sb = Sandbox(tmp_path / "sb", quiet=True)
    sb.config.tenants = 3
    seed.Seeder(sb, None).seed_credentials()  # type: ignore[arg-type]
    settings = load_settings(
        env={"KUBEHUB_DATA_DIR": str(tmp_path / "hub"), "KUBEHUB_KUBERNETES_KUBECONFIG": "none",
             "KUBEHUB_PROMETHEUS_URL": sb.prometheus_url}
    )  # fmt: skip
    state = {
        "rules_dir": str(RULES),
        "tenants": {"workspaces": 3, "credentials": str(sb.state_dir / seed.TENANT_CREDENTIALS)},
    }
    plan = tenants.plan_tenancy(3)
    first = seed_tenants(settings, state)
    assert "created 3 workspaces, 9 projects, 30 users" in first and "warnings" not in first, first
    assert f"{len(plan.policies)} policies (" in first, first
    again = seed_tenants(settings, state)
    assert "created 0 workspaces, 0 projects, 0 users (" in again and ", 0 role bindings, 0 policies (" in again
    hub = build_hub(settings)
    try:
        svc = hub.tenancy
        u = plan.users[7]
        ws, ns = svc.memberships_of(u.username)
        assert {k: str(v) for k, v in ns.items()} == dict(u.projects) and not ws
        creds = {c["username"]: c["password"] for c in json.loads(Path(state["tenants"]["credentials"]).read_text())}
        assert svc.hashing.verify(svc.user(u.username).password_hash, creds[u.username])  # type: ignore[union-attr]
        node = {p["name"] for p in hub.alerting.list_policies(level="node")}
        assert node == {p.name for p in plan.policies if p.level == "node"}
        spec = next(p for p in plan.policies if p.level == "workload" and p.workloads)
        (stored,) = [p for p in hub.alerting.list_policies(level="workload", namespace=spec.namespace)
                     if p["name"] == spec.name]  # fmt: skip
        assert stored["target"]["workloads"] == [{"kind": "deployment", "name": spec.workloads[0]}]
        assert [r["user"] for r in stored["notification"]["receivers"]] == list(spec.receivers)
    finally:
        hub.close()
    assert seed_tenants(settings, {}) == "tenants: none"
