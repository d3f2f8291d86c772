"""Route x role matrix for custom roles: one custom role per composable permission, made of that
permission alone, bound at the world's home target of its level (the cluster ``default``, the
workspace ``ws-a``, the project ``ns-a1``), and every route asked as its holder.

The oracle is written from the documented rule (docs/tenancy.md "Custom roles"), not from the
scope code: a route is open exactly when it needs that one permission and its target is within
the binding's reach (a cluster role: the routes without a namespace or workspace; a workspace
role: the workspace and each of its projects; a project role: that project). Everything else is
the one 403, naming nothing the caller did not send. Both the access layer (dry run) and the
GET views for real (the view's own scoping must not refuse what the role allows) are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.tenancy.roles import COMPOSABLE
from tests.unit.conftest_tenancy import (
    FOREIGN_NAMES,
    HOME_NAMESPACE,
    HOME_WORKSPACE,
    PASSWORD,
    TenancyWorld,
    assert_no_leak,
    build_world,
)
from tests.unit.test_routes_matrix import DRY_RUN_BODY, WORKSPACE_OF, _dry_run, _echo, _send, cases

pytestmark = pytest.mark.unit

HOME = {"cluster": "default", "workspace": HOME_WORKSPACE, "project": HOME_NAMESPACE}


@dataclass(frozen=True)
class Single:
    level: str
    permission: str

    @property
    def key(self) -> str:
        return f"only-{self.level}-{self.permission.replace(':', '-')}"


SINGLES = tuple(Single(level, p) for level in ("cluster", "workspace", "project") for p in sorted(COMPOSABLE[level]))  # type: ignore[index]


def expected(single: Single, access: Any, ns: str | None, ws: str | None) -> bool:
    if access.public or access.permission is None:
        return True
    if access.permission != single.permission:
        return False
    if single.level == "cluster":
        return ns is None and ws is None
    if ns is not None:
        home_ws = WORKSPACE_OF.get(ns)
        if home_ws is None or (ws is not None and ws != home_ws):
            return False
        return ns == HOME_NAMESPACE if single.level == "project" else home_ws == HOME_WORKSPACE
    if ws is not None:
        return single.level == "workspace" and ws == HOME_WORKSPACE
    return False


def _add_singles(world: TenancyWorld) -> None:
    tenancy = world.tenancy
    for single in SINGLES:
        name = single.key
        tenancy.create_user(name, PASSWORD, email=f"{name}@example.com")
        tenancy.create_custom_role(
            {"name": name, "level": single.level, "permissions": [single.permission]}, actor="admin"
        )
        tenancy.bind_custom_role(name, name, HOME[single.level], actor="admin")
        world.tokens[name] = tenancy.issue_token(name, kind="named", name="test").token


@pytest.fixture(scope="module")
def dry_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    unlimited = {"log_exports": 0, "backtests": 0, "long_queries": 0}
    world = build_world(
        Path(tmp_path_factory.mktemp("custom-dry")), prepare=_dry_run, settings={"rate_limits": unlimited}
    )
    _add_singles(world)
    yield world
    world.hub.close()


@pytest.fixture(scope="module")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenancyWorld]:
    world = build_world(Path(tmp_path_factory.mktemp("custom-live")))
    _add_singles(world)
    yield world
    world.hub.close()


def test_every_composable_permission_has_a_single_permission_role() -> None:
    assert {s.permission for s in SINGLES} == set().union(*COMPOSABLE.values())
    assert len(SINGLES) == sum(len(v) for v in COMPOSABLE.values())


@pytest.mark.parametrize("single", SINGLES, ids=lambda s: s.key)
def test_a_single_permission_role_passes_the_access_layer_exactly_where_documented(
    dry_world: TenancyWorld, single: Single
) -> None:
    client = dry_world.client(single.key)
    wrong, opened = [], 0
    for case in cases(dry_world.app):
        if case.access.public:
            continue
        r = _send(client, case)
        allowed = expected(single, case.access, case.ns, case.ws)
        if allowed and case.access.permission is not None:
            opened += 1
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
    assert wrong == [], f"{single.key}:\n" + "\n".join(wrong)
    # Guards the oracle: a permission that no route declares opens nothing by itself, and the
    # ones routes do declare must open at least one route somewhere.
    declared = {c.access.permission for c in cases(dry_world.app)}
    assert (opened > 0) == (single.permission in declared), (single.key, opened)


@pytest.mark.parametrize("single", SINGLES, ids=lambda s: s.key)
def test_a_single_permission_role_reads_exactly_what_is_documented(live_world: TenancyWorld, single: Single) -> None:
    client = live_world.client(single.key)
    wrong = []
    for case in cases(live_world.app):
        if case.method != "GET" or case.access.public:
            continue
        r = _send(client, case)
        allowed = expected(single, case.access, case.ns, case.ws)
        if allowed and r.status_code in (401, 403):
            wrong.append(f"{case}: expected allowed, got {r.status_code} {r.get_data(as_text=True)[:200]}")
        elif not allowed and r.status_code != 403:
            wrong.append(f"{case}: expected 403, got {r.status_code}")
    assert wrong == [], f"{single.key}:\n" + "\n".join(wrong)
