"""Route x role matrix, built from the app's own route table.

Every route must declare its access (``@permission`` or ``@public``). For every declared route,
every method, every built-in role and every sample target (home, sibling, foreign and unknown
namespace or workspace), the expected answer is derived from the declaration and the role
table of ``hub/tenancy/roles.py`` (not from the scope code under test) and asserted:

* the access layer alone (a dry-run hook answers 200 right after it, so writes change nothing):
  allowed -> 200, denied -> 403 whose body names nothing the caller did not send;
* GET routes for real: allowed -> not 401/403 (the view's own scoping must not refuse a
  caller the table allows), denied -> 403.

New routes from any area are covered without touching this file. If a route has a path
argument that the generic samples cannot fill, add it to ``SAMPLE_ARGS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, IntegerConverter, UUIDConverter

from hub.tenancy.roles import BUILTIN_ROLES, BuiltinRole
from tests.unit.conftest_tenancy import (
    FOREIGN_NAMES,
    FOREIGN_NAMESPACE,
    FOREIGN_WORKSPACE,
    HOME_NAMESPACE,
    HOME_WORKSPACE,
    SIBLING_NAMESPACE,
    UNKNOWN_NAMESPACE,
    UNKNOWN_WORKSPACE,
    WORKSPACES,
    TenancyWorld,
    assert_no_leak,
    build_world,
)

pytestmark = pytest.mark.unit

# Values for path arguments that are neither the declared namespace nor workspace argument.
SAMPLE_ARGS: dict[str, Any] = {
    "user": "regular",
    "name": "sample",
    "kind": "deployment",
    "node": "node-1",
    "pod": "pod-1",
    "cluster": "default",
}

NAMESPACE_SAMPLES = (HOME_NAMESPACE, SIBLING_NAMESPACE, FOREIGN_NAMESPACE, UNKNOWN_NAMESPACE)
WORKSPACE_SAMPLES = (HOME_WORKSPACE, FOREIGN_WORKSPACE, UNKNOWN_WORKSPACE)
PAIR_SAMPLES = (
    (HOME_WORKSPACE, HOME_NAMESPACE),
    (HOME_WORKSPACE, SIBLING_NAMESPACE),
    (HOME_WORKSPACE, FOREIGN_NAMESPACE),
    (FOREIGN_WORKSPACE, FOREIGN_NAMESPACE),
    (FOREIGN_WORKSPACE, HOME_NAMESPACE),
)
DRY_RUN_BODY = {"matrix": "passed the access layer"}
WORKSPACE_OF = {ns: ws for ws, namespaces in WORKSPACES.items() for ns in namespaces}


# -- the oracle: what the role table says -----------------------------------------------------
def reach(role: BuiltinRole) -> set[str]:
    """Targets a role of the world reaches: ``ns:<name>`` and ``ws:<name>``."""
    if role.level == "workspace":
        implied = role.name in ("admin", "viewer")
        return {f"ws:{HOME_WORKSPACE}"} | ({f"ns:{n}" for n in WORKSPACES[HOME_WORKSPACE]} if implied else set())
    if role.level == "project":
        return {f"ns:{HOME_NAMESPACE}"}
    return set()


def expected_allowed(role: BuiltinRole, access: Any, ns: str | None, ws: str | None) -> bool:
    if access.public or access.permission is None:
        return True
    if role.key == "platform-admin":
        return True
    if access.permission not in role.permissions:
        return False
    targets = reach(role)
    if ns is not None:
        home_ws = WORKSPACE_OF.get(ns)
        if home_ws is None or (ws is not None and ws != home_ws):
            return False
        return f"ns:{ns}" in targets or f"ws:{home_ws}" in targets
    if ws is not None:
        return f"ws:{ws}" in targets
    # No target: a cluster-level route (nodes, node policies, cluster metrics) on the one
    # implicit cluster, which cluster roles hold their permissions on.
    return role.level == "cluster"


# -- building requests from the route table ----------------------------------------------------
@dataclass(frozen=True)
class Case:
    rule: Rule
    method: str
    url: str
    access: Any
    ns: str | None
    ws: str | None

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.rule.endpoint})"


def _generic_value(rule: Rule, arg: str) -> Any:
    converter = rule._converters.get(arg)  # werkzeug keeps converters only here
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    if arg in SAMPLE_ARGS:
        return SAMPLE_ARGS[arg]
    if isinstance(converter, IntegerConverter):
        return 1
    if isinstance(converter, UUIDConverter):
        return uuid.UUID(int=1)
    return "sample"


def routed(app: Flask) -> list[tuple[Rule, Any]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        out.append((rule, getattr(app.view_functions[rule.endpoint], "__kubehub_access__", None)))
    return out


def cases(app: Flask) -> list[Case]:
    adapter = app.url_map.bind("localhost")
    out: list[Case] = []
    for rule, access in routed(app):
        if access is None:
            continue
        generic = {a: _generic_value(rule, a) for a in rule.arguments}
        samples: list[tuple[str | None, str | None]]
        if access.namespace_arg and access.workspace_arg:
            samples = [(ns, ws) for ws, ns in PAIR_SAMPLES]
        elif access.namespace_arg:
            samples = [(ns, None) for ns in NAMESPACE_SAMPLES]
        elif access.workspace_arg:
            samples = [(None, ws) for ws in WORKSPACE_SAMPLES]
        else:
            samples = [(None, None)]
        for ns, ws in samples:
            values = dict(generic)
            if access.namespace_arg:
                values[access.namespace_arg] = ns
            if access.workspace_arg:
                values[access.workspace_arg] = ws
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                url = adapter.build(rule.endpoint, values, method=method)
                matched, _ = adapter.match(url, method=method)
                assert matched == rule.endpoint, (
                    f"{url} routes to {matched}, not {rule.endpoint}: add a sample for its arguments to SAMPLE_ARGS"
                )
                out.append(Case(rule, method, url, access, ns, ws))
    return out


def _dry_run(app: Flask) -> None:
    @app.before_request
    def _stop_after_access_check() -> Any:
        # Registered after web.access.enforce, so it runs only for requests that passed it.
        if request.endpoint not in (None, "static"):
            return DRY_RUN_BODY, 200
        return None


@pytest.fixture(scope="module")
def dry_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    # Every route, every role: far more backtests per user than a rate limit allows; the limits
    # have their own tests (test_rate_limits.py), so they are off here.
    unlimited = {"log_exports": 0, "backtests": 0, "long_queries": 0}
    world = build_world(
        Path(tmp_path_factory.mktemp("matrix-dry")), prepare=_dry_run, settings={"rate_limits": unlimited}
    )
    yield world
    world.hub.close()


@pytest.fixture(scope="module")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    world = build_world(Path(tmp_path_factory.mktemp("matrix-live")))
    yield world
    world.hub.close()


def _send(client: Any, case: Case) -> Any:
    kwargs: dict[str, Any] = {}
    if case.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return client.open(case.url, method=case.method, **kwargs)


def _echo(case: Case) -> tuple[str, ...]:
    return tuple(n for n in (case.ns, case.ws) if n)


# -- the tests ------------------------------------------------------------------------------------
def test_every_route_declares_its_access(dry_world: TenancyWorld) -> None:
    undeclared = [f"{r.rule} ({r.endpoint})" for r, access in routed(dry_world.app) if access is None]
    assert undeclared == [], "routes without @permission/@public: " + ", ".join(undeclared)


def test_the_matrix_covers_the_tenancy_routes(dry_world: TenancyWorld) -> None:
    endpoints = {c.rule.endpoint for c in cases(dry_world.app)}
    assert {"api_tenancy.put_project_member", "api_tenancy.delete_project", "api_auth.me"} <= endpoints
    # group -> role mappings (users:read / users:write: platform admins only)
    assert {
        "api_identity.list_group_mappings",
        "api_identity.create_group_mapping",
        "api_identity.update_group_mapping",
        "api_identity.delete_group_mapping",
        "views.identity.group_mappings",
        "views.identity.group_mapping_create",
        "views.identity.group_mapping_delete",
    } <= endpoints
    # cluster role bindings and custom roles (users:read / users:write)
    assert {
        "api_roles.list_cluster_members",
        "api_roles.put_cluster_member",
        "api_roles.create_role",
        "api_roles.put_role_binding",
    } <= endpoints


def test_a_route_without_a_declaration_fails_the_matrix(tmp_path: Path) -> None:
    def add_undeclared(app: Flask) -> None:
        app.add_url_rule("/api/v1/_matrix_probe", "matrix_probe", lambda: {"leak": True})

    world = build_world(tmp_path, prepare=add_undeclared)
    try:
        undeclared = [r.endpoint for r, access in routed(world.app) if access is None]
        assert undeclared == ["matrix_probe"]
        r = world.client("platform-admin").get("/api/v1/_matrix_probe")
        assert r.status_code == 403 and "leak" not in r.get_data(as_text=True)
    finally:
        world.hub.close()


def test_anonymous_callers_get_401_on_every_non_public_route(dry_world: TenancyWorld) -> None:
    client = dry_world.client(None)
    wrong = []
    for case in cases(dry_world.app):
        r = _send(client, case)
        if case.access.public:
            if r.status_code in (401, 403):
                wrong.append(f"{case}: public route answered {r.status_code}")
        elif r.status_code != 401:
            wrong.append(f"{case}: anonymous got {r.status_code}, expected 401")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("role", BUILTIN_ROLES, ids=lambda r: r.key)
def test_each_role_passes_the_access_layer_exactly_where_the_role_table_allows(
    dry_world: TenancyWorld, role: BuiltinRole
) -> None:
    client = dry_world.client(role.key)
    wrong = []
    checked = 0
    for case in cases(dry_world.app):
        r = _send(client, case)
        allowed = expected_allowed(role, case.access, case.ns, case.ws)
        checked += 1
        if case.access.public:
            continue  # public routes are answered by their own views (e.g. login wants a body)
        if allowed and (r.status_code != 200 or r.get_json() != DRY_RUN_BODY):
            wrong.append(f"{case}: expected allowed, got {r.status_code} {r.get_data(as_text=True)[:200]}")
        elif not allowed:
            if r.status_code != 403:
                wrong.append(f"{case}: expected 403, got {r.status_code}")
            else:
                try:
                    assert_no_leak(r, requested=_echo(case), names=(*FOREIGN_NAMES, "ns-a2", "ws-a"))
                except AssertionError as exc:
                    wrong.append(f"{case}: {exc}")
    assert checked > 0
    assert wrong == [], f"{role.key}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", BUILTIN_ROLES, ids=lambda r: r.key)
def test_each_role_reads_exactly_what_the_role_table_allows(live_world: TenancyWorld, role: BuiltinRole) -> None:
    client = live_world.client(role.key)
    wrong = []
    for case in cases(live_world.app):
        if case.method != "GET" or case.access.public:
            continue
        r = _send(client, case)
        allowed = expected_allowed(role, case.access, case.ns, case.ws)
        if allowed and r.status_code in (401, 403):
            wrong.append(f"{case}: expected allowed, got {r.status_code} {r.get_data(as_text=True)[:200]}")
        elif not allowed and r.status_code != 403:
            wrong.append(f"{case}: expected 403, got {r.status_code}")
    assert wrong == [], f"{role.key}:\n" + "\n".join(wrong)


def test_the_oracle_agrees_with_the_documented_reach_of_each_role() -> None:
    """Guards the oracle itself against drifting into 'everything allowed' or 'nothing allowed'."""
    from web.access import RouteAccess

    op = next(r for r in BUILTIN_ROLES if r.key == "project-operator")
    wsv = next(r for r in BUILTIN_ROLES if r.key == "workspace-viewer")
    scale = RouteAccess("workloads:write", namespace_arg="ns")
    assert expected_allowed(op, scale, HOME_NAMESPACE, None)
    assert not expected_allowed(op, scale, SIBLING_NAMESPACE, None)
    assert not expected_allowed(op, scale, FOREIGN_NAMESPACE, None)
    assert not expected_allowed(wsv, scale, HOME_NAMESPACE, None)
    assert expected_allowed(wsv, RouteAccess("logs:read", namespace_arg="ns"), SIBLING_NAMESPACE, None)
    assert not expected_allowed(wsv, RouteAccess("users:read"), None, None)


# -- namespaces named in the query or body: the service applies the scope ------------------------
# Routes open to every caller (``@permission(None)``) whose service takes the caller's scope and
# checks the namespaces the request names. Expected from the role table like the matrix above;
# a refusal is the one answer of docs/tenancy.md: 403, the same bytes for a foreign and an
# unknown namespace.
NAMED_SCOPE_CASES = (
    ("GET", "/api/v1/monitoring/pods?metrics=pod_cpu_usage&namespaces={ns}", None, "monitoring:read"),
    ("GET", "/api/v1/logs?namespaces={ns}", None, "logs:read"),
    ("GET", "/api/v1/logs/histogram?namespaces={ns}", None, "logs:read"),
    ("GET", "/api/v1/logs/export?namespaces={ns}&limit=5", None, "logs:read"),
    ("POST", "/api/v1/alerting/silences", {"matchers": {"rule": "sample"}, "duration": "1h"}, "alerts:write"),
)


@pytest.mark.parametrize("role", BUILTIN_ROLES, ids=lambda r: r.key)
def test_a_named_namespace_outside_the_scope_is_the_one_403_in_every_area(
    live_world: TenancyWorld, role: BuiltinRole
) -> None:
    from web.access import RouteAccess

    client = live_world.client(role.key)
    wrong = []
    for method, url, body, perm in NAMED_SCOPE_CASES:
        refusals = {}
        for ns in NAMESPACE_SAMPLES:
            payload = {**body, "namespace": ns} if body is not None else None
            r = client.open(url.format(ns=ns), method=method, json=payload)
            allowed = expected_allowed(role, RouteAccess(perm, namespace_arg="ns"), ns, None)
            case = f"{method} {url.format(ns=ns)}"
            if allowed and r.status_code in (401, 403, 404):
                wrong.append(f"{case}: expected allowed, got {r.status_code} {r.get_data(as_text=True)[:200]}")
            elif not allowed:
                if r.status_code != 403:
                    wrong.append(f"{case}: expected 403, got {r.status_code}")
                    continue
                if not r.get_json()["error"].startswith(f"you lack the permission {perm} in namespace "):
                    wrong.append(f"{case}: not the one refusal: {r.get_json()['error']}")
                refusals[ns] = r.get_data(as_text=True).replace(ns, "NS")
        if FOREIGN_NAMESPACE in refusals and UNKNOWN_NAMESPACE in refusals:
            if refusals[FOREIGN_NAMESPACE] != refusals[UNKNOWN_NAMESPACE]:
                wrong.append(f"{method} {url}: a foreign and an unknown namespace answer differently")
        elif role.key != "platform-admin":
            wrong.append(f"{method} {url}: {role.key} was not refused both a foreign and an unknown namespace")
    assert wrong == [], f"{role.key}:\n" + "\n".join(wrong)
